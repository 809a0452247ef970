"""Simulation-based calibration (SBC) of bayesgmm's NUTS posterior (Talts et al. 2018).

For each configuration (covariance type, number of features D, number of components K):

1. draw the parameters from an explicit prior **with numpy**, independently of bayesgmm's model code
   (Dirichlet weights, Normal means sorted by the first feature, log-normal standard deviations,
   LKJ correlations by the onion method of Lewandowski, Kurowicka & Joe 2009);
2. simulate ``N`` points from the mixture;
3. fit the MAP (``GaussianMixture(prior=...)``) and run ``fit_posterior(method="nuts")`` with that
   prior (``ordered_means=True``, ``covariance_floor=0`` so that the model's prior is exactly the
   generative one);
4. rank every true value among the posterior draws, thinned to about their effective sample size
   (the rank-normalised bulk ESS of Vehtari et al. 2021, computed here in numpy), and turn the rank
   into a randomised PIT value ``u = (rank + V) / (L + 1)``, ``V ~ U(0, 1)``, which is exactly
   uniform on (0, 1) when the posterior is calibrated, whatever ``L``.

Per quantity it reports a chi-square test of the PIT values in ``--bins`` bins, whether their ECDF
leaves the simultaneous 95% band of Säilynoja, Bürkner & Vehtari (2022), and the coverage of the
central 50% and 90% posterior intervals (all draws), with its binomial standard error; per
configuration the divergences and the share of replicates with R-hat above 1.01.

Run (minutes to hours: every replicate is one MAP fit and one NUTS run)::

    python bench/sbc.py                       # every configuration, 200 replicates each
    python bench/sbc.py --quick               # 3 configurations x 60 replicates (a few minutes)
    python bench/sbc.py --configs full:2:2 diag:3:3 --reps 300 --workers 2
    python bench/sbc.py --out bench/VALIDATION.md   # the markdown table goes to that file

A configuration is ``TYPE:D:K``. The multiple-testing verdict of a configuration is Bonferroni's over
its quantities (``p < 0.01 / n_quantities`` fails).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import math
import multiprocessing
import os
import sys
import time
import warnings

import numpy as np
from scipy import stats

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
ALL_CONFIGS = [f"{t}:{d}:{k}" for t in COVARIANCE_TYPES for d in (1, 2, 3) for k in (2, 3)]
QUICK_CONFIGS = ["full:2:2", "diag:3:2", "spherical:1:3"]

# The explicit prior (data units). Weight concentration 5 keeps components from being nearly empty
# at N = 80 (the SBC then probes the scales and correlations rather than empty-component geometry).
PRIOR = dict(
    weight_concentration=5.0, mean_loc=0.0, mean_scale=3.0, scale_scale=1.0,
    lkj_concentration=2.0,
)
LOG_NORMAL_SIGMA = 1.0  # bayesgmm's log-normal scale prior: LogNormal(log(scale_scale), 1)


# ----------------------------------------------------------------------------- prior draws (numpy)
def lkj_corr(rng: np.random.Generator, d: int, eta: float) -> np.ndarray:
    """One correlation matrix from LKJ(eta) by the onion method (Lewandowski et al. 2009, s. 3.2)."""
    if d == 1:
        return np.ones((1, 1))
    beta = eta + (d - 2) / 2.0
    r12 = 2.0 * rng.beta(beta, beta) - 1.0
    corr = np.array([[1.0, r12], [r12, 1.0]])
    for k in range(2, d):
        beta -= 0.5
        y = rng.beta(k / 2.0, beta)
        u = rng.standard_normal(k)
        u /= np.linalg.norm(u)
        w = math.sqrt(y) * u
        z = np.linalg.cholesky(corr) @ w
        corr = np.block([[corr, z[:, None]], [z[None, :], np.ones((1, 1))]])
    return corr


@dataclasses.dataclass
class Truth:
    weights: np.ndarray       # (K,)
    means: np.ndarray         # (K, D), sorted by the first feature
    scales: np.ndarray        # full/diag (K, D); tied (D,); spherical (K,)
    corr: np.ndarray | None   # full (K, D, D); tied (D, D); else None

    def covariances(self, covariance_type: str) -> np.ndarray:
        k, d = self.means.shape
        if covariance_type == "full":
            return self.scales[:, :, None] * self.corr * self.scales[:, None, :]
        if covariance_type == "tied":
            c = self.scales[:, None] * self.corr * self.scales[None, :]
            return np.broadcast_to(c, (k, d, d))
        if covariance_type == "diag":
            return np.stack([np.diag(s**2) for s in self.scales])
        return np.stack([np.eye(d) * s**2 for s in self.scales])


def prior_values(d: int, overrides: dict | None = None) -> dict:
    """The explicit prior's numbers for D features: ``PRIOR`` with ``overrides``, per feature."""
    v = dict(PRIOR, **(overrides or {}))
    for name in ("mean_loc", "mean_scale"):
        v[name] = np.broadcast_to(np.asarray(v[name], np.float64), (d,)).copy()
    return v


def draw_truth(rng: np.random.Generator, covariance_type: str, d: int, k: int,
               overrides: dict | None = None) -> Truth:
    p = prior_values(d, overrides)
    weights = rng.dirichlet(np.full(k, p["weight_concentration"]))
    means = p["mean_loc"] + p["mean_scale"] * rng.standard_normal((k, d))
    means = means[np.argsort(means[:, 0])]
    shape = {"full": (k, d), "diag": (k, d), "tied": (d,), "spherical": (k,)}[covariance_type]
    scales = np.exp(math.log(p["scale_scale"]) + LOG_NORMAL_SIGMA * rng.standard_normal(shape))
    corr = None
    if covariance_type == "full":
        corr = np.stack([lkj_corr(rng, d, p["lkj_concentration"]) for _ in range(k)])
    elif covariance_type == "tied":
        corr = lkj_corr(rng, d, p["lkj_concentration"])
    return Truth(weights, means, scales, corr)


def simulate(rng: np.random.Generator, truth: Truth, covariance_type: str, n: int) -> np.ndarray:
    covs = truth.covariances(covariance_type)
    z = rng.choice(len(truth.weights), size=n, p=truth.weights)
    chol = np.linalg.cholesky(covs)
    eps = rng.standard_normal((n, truth.means.shape[1]))
    return truth.means[z] + np.einsum("nij,nj->ni", chol[z], eps)


# ----------------------------------------------------------------------------- quantities ranked
def quantities(weights, means, scales, corr_chol, covariance_type: str) -> dict:
    """Named scalar quantities, each an array with the leading axes of the inputs.

    ``corr_chol`` may be a correlation matrix (truth) or its Cholesky factor (draws): pass
    ``corr_chol=None`` for diag/spherical.
    """
    out = {}
    k = weights.shape[-1]
    d = means.shape[-1]
    for j in range(k):
        out[f"w[{j}]"] = weights[..., j]
    for j in range(k):
        for f in range(d):
            out[f"mu[{j},{f}]"] = means[..., j, f]
    if covariance_type in ("full", "diag"):
        for j in range(k):
            for f in range(d):
                out[f"sd[{j},{f}]"] = scales[..., j, f]
    elif covariance_type == "tied":
        for f in range(d):
            out[f"sd[{f}]"] = scales[..., f]
    else:
        for j in range(k):
            out[f"sd[{j}]"] = scales[..., j]
    if corr_chol is not None and d > 1:
        comps = range(k) if covariance_type == "full" else [None]
        for j in comps:
            c = corr_chol if j is None else corr_chol[..., j, :, :]
            for a in range(d):
                for b in range(a + 1, d):
                    name = f"rho[{a},{b}]" if j is None else f"rho[{j},{a},{b}]"
                    out[name] = c[..., a, b]
    return out


def _corr_from_chol(chol):
    return np.einsum("...ij,...kj->...ik", chol, chol)


# ----------------------------------------------------------------------------- ESS (numpy)
def _autocov(x: np.ndarray) -> np.ndarray:
    """Autocovariances of each row of x (chains, draws), biased estimator, by FFT."""
    n = x.shape[-1]
    m = 2 ** int(math.ceil(math.log2(2 * n)))
    xc = x - x.mean(axis=-1, keepdims=True)
    f = np.fft.rfft(xc, n=m, axis=-1)
    return np.fft.irfft(f * np.conj(f), n=m, axis=-1)[..., :n] / n


def ess(x: np.ndarray) -> float:
    """Effective sample size of x (chains, draws) by Geyer's initial monotone sequence (split chains)."""
    c, n = x.shape
    half = n // 2
    x = np.concatenate([x[:, :half], x[:, half : 2 * half]], axis=0)
    c, n = x.shape
    acov = _autocov(x)
    chain_var = acov[:, 0] * n / (n - 1.0)
    w = chain_var.mean()
    var_plus = w * (n - 1.0) / n + (x.mean(axis=1).var(ddof=1) if c > 1 else 0.0)
    if not np.isfinite(var_plus) or var_plus <= 0:
        return float(c * n)
    rho = 1.0 - (w - acov.mean(axis=0)) / var_plus
    rho[0] = 1.0
    # Geyer: pairs Gamma_t = rho_2t + rho_2t+1 while positive, made monotone
    total, prev = 0.0, np.inf
    for t in range(0, n - 1, 2):
        g = rho[t] + rho[t + 1]
        if g <= 0:
            break
        g = min(g, prev)
        prev = g
        total += g
    tau = -1.0 + 2.0 * total
    return float(min(c * n / max(tau, 1e-12), c * n * math.log10(c * n)))


def ess_bulk(x: np.ndarray) -> float:
    """Rank-normalised bulk ESS (Vehtari et al. 2021) of x (chains, draws)."""
    r = stats.rankdata(x, method="average").reshape(x.shape)
    z = stats.norm.ppf((r - 0.375) / (x.size + 0.25))
    return ess(z)


def rhat(x: np.ndarray) -> float:
    """Rank-normalised split R-hat (bulk) of x (chains, draws)."""
    c, n = x.shape
    half = n // 2
    x = np.concatenate([x[:, :half], x[:, half : 2 * half]], axis=0)
    r = stats.rankdata(x, method="average").reshape(x.shape)
    z = stats.norm.ppf((r - 0.375) / (x.size + 0.25))
    n = z.shape[1]
    w = z.var(axis=1, ddof=1).mean()
    b = n * z.mean(axis=1).var(ddof=1)
    return float(math.sqrt(((n - 1) / n * w + b / n) / w)) if w > 0 else float("nan")


# ----------------------------------------------------------------------------- one replicate
@dataclasses.dataclass
class Settings:
    n: int = 80
    chains: int = 4
    warmup: int = 400
    draws: int = 400
    dense_mass: bool = False
    init_jitter: float | None = None
    target_accept: float = 0.8
    fold: bool = False
    prior: dict = dataclasses.field(default_factory=dict)  # overrides of PRIOR
    extra: dict = dataclasses.field(default_factory=dict)


def run_replicate(config: str, seed: int, settings: Settings) -> dict:
    """Draw, simulate, fit, rank: the PIT value and interval coverage of every quantity."""
    import bayesgmm

    covariance_type, d, k = config.split(":")
    d, k = int(d), int(k)
    rng = np.random.default_rng([seed, d, k, COVARIANCE_TYPES.index(covariance_type)])
    truth = draw_truth(rng, covariance_type, d, k, settings.prior)
    x = simulate(rng, truth, covariance_type, settings.n)
    p = prior_values(d, settings.prior)
    prior = bayesgmm.Prior(
        weight_concentration=p["weight_concentration"], mean_loc=p["mean_loc"], mean_scale=p["mean_scale"],
        scale_scale=(p["scale_scale"] if covariance_type == "spherical" else np.full(d, p["scale_scale"])),
        lkj_concentration=p["lkj_concentration"], scale_prior="log_normal",
        ordered_means=not settings.fold,
        covariance_floor=0.0,
    )
    options = dict(num_warmup=settings.warmup, num_samples=settings.draws, num_chains=settings.chains,
                   dense_mass=settings.dense_mass, target_accept=settings.target_accept, **settings.extra)
    if settings.init_jitter is not None:
        options["init_jitter"] = settings.init_jitter
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = bayesgmm.GaussianMixture(k, covariance_type=covariance_type, prior=prior, random_state=seed)
        gm.fit(x)
        post = gm.fit_posterior(x, method="nuts", relabel=None, random_state=seed, **options)
    seconds = time.perf_counter() - t0
    raw = post.raw_draws
    weights, means, scales = np.asarray(raw.weights), np.asarray(raw.means), np.asarray(raw.scales)
    corr_draws = None if raw.corr_chol is None else _corr_from_chol(np.asarray(raw.corr_chol))
    if settings.fold:  # sort each draw's components by their first-feature mean
        order = np.argsort(means[..., 0], axis=-1)
        weights = np.take_along_axis(weights, order, -1)
        means = np.take_along_axis(means, order[..., None], -2)
        if covariance_type in ("full", "diag"):
            scales = np.take_along_axis(scales, order[..., None], -2)
        elif covariance_type == "spherical":
            scales = np.take_along_axis(scales, order, -1)
        if covariance_type == "full":
            corr_draws = np.take_along_axis(corr_draws, order[..., None, None], -3)
    drawn = quantities(weights, means, scales, corr_draws, covariance_type)
    true = quantities(truth.weights, truth.means, truth.scales, truth.corr, covariance_type)
    out = {"seconds": seconds, "pit": {}, "in50": {}, "in90": {}, "ess": {}, "rhat": {}}
    for name, draws in drawn.items():
        chains = np.asarray(draws, np.float64).reshape(settings.chains, settings.draws)
        e = max(ess_bulk(chains), 1.0)
        flat = chains.reshape(-1)
        # thin to about the ESS (at most every draw, at least 20 draws)
        n_keep = int(min(flat.size, max(20, math.floor(e))))
        idx = np.linspace(0, flat.size - 1, n_keep).round().astype(int)
        kept = flat[idx]
        tv = float(true[name])
        rank = int(np.sum(kept < tv))
        ties = int(np.sum(kept == tv))
        rank += int(rng.integers(0, ties + 1)) if ties else 0
        out["pit"][name] = (rank + rng.uniform()) / (n_keep + 1)
        lo50, hi50, lo90, hi90 = np.quantile(flat, [0.25, 0.75, 0.05, 0.95])
        out["in50"][name] = bool(lo50 <= tv <= hi50)
        out["in90"][name] = bool(lo90 <= tv <= hi90)
        out["ess"][name] = e
        out["rhat"][name] = rhat(chains)
    diverging = post.sample_stats.get("diverging")
    out["divergent"] = int(np.sum(diverging)) if diverging is not None else 0
    out["max_rhat"] = max(out["rhat"].values())
    return out


def _worker(args):
    config, seeds, settings = args
    return [(s, run_replicate(config, s, settings)) for s in seeds]


# ----------------------------------------------------------------------------- statistics
def ecdf_band_gamma(n: int, n_eval: int = 100, n_sim: int = 2000, alpha: float = 0.05, seed: int = 0) -> float:
    """Säilynoja et al. (2022) adjusted pointwise level for a simultaneous 1-alpha ECDF band."""
    rng = np.random.default_rng(seed)
    z = np.arange(1, n_eval + 1) / (n_eval + 1)
    u = rng.uniform(size=(n_sim, n))
    counts = (u[:, :, None] <= z[None, None, :]).sum(axis=1)
    cdf = stats.binom.cdf(counts, n, z)
    cdf_below = stats.binom.cdf(counts - 1, n, z)
    p = 2 * np.minimum(cdf, 1 - cdf_below)
    return float(np.quantile(p.min(axis=1), alpha))


def ecdf_outside(pit: np.ndarray, gamma: float, n_eval: int = 100) -> bool:
    n = pit.size
    z = np.arange(1, n_eval + 1) / (n_eval + 1)
    counts = (pit[:, None] <= z[None, :]).sum(axis=0)
    lo = stats.binom.ppf(gamma / 2, n, z)
    hi = stats.binom.ppf(1 - gamma / 2, n, z)
    return bool(np.any((counts < lo) | (counts > hi)))


def summarise(config: str, results: list[dict], bins: int) -> dict:
    names = list(results[0]["pit"])
    n = len(results)
    gamma = ecdf_band_gamma(n)
    rows = []
    for name in names:
        pit = np.array([r["pit"][name] for r in results])
        counts, _ = np.histogram(pit, bins=bins, range=(0, 1))
        p = float(stats.chisquare(counts).pvalue)
        rows.append(dict(
            name=name, p=p, ecdf_out=ecdf_outside(pit, gamma),
            cov50=float(np.mean([r["in50"][name] for r in results])),
            cov90=float(np.mean([r["in90"][name] for r in results])),
            outer=float(np.mean((pit < 0.1) | (pit > 0.9))),
            ess=float(np.median([r["ess"][name] for r in results])),
        ))
    min_p = min(r["p"] for r in rows)
    return dict(
        config=config, n_reps=n, quantities=rows, min_p=min_p,
        passed=bool(min_p >= 0.01 / len(rows)),
        n_ecdf_out=sum(r["ecdf_out"] for r in rows),
        divergent=int(sum(r["divergent"] for r in results)),
        reps_with_divergences=int(sum(r["divergent"] > 0 for r in results)),
        rhat_above=float(np.mean([r["max_rhat"] > 1.01 for r in results])),
        seconds=float(sum(r["seconds"] for r in results)),
        cov50=float(np.mean([r["cov50"] for r in rows])),
        cov90=float(np.mean([r["cov90"] for r in rows])),
        worst=sorted(rows, key=lambda r: r["p"])[:3],
    )


def markdown(summaries: list[dict], settings: Settings, bins: int) -> str:
    lines = [
        f"N = {settings.n} points per replicate; NUTS {settings.chains} chains x ({settings.warmup} warm-up + "
        f"{settings.draws} draws), dense_mass={settings.dense_mass}, target_accept={settings.target_accept}"
        + (", unordered model folded by the first-feature means" if settings.fold else ", ordered_means=True")
        + (f", {settings.extra}" if settings.extra else "") + f"; chi-square on {bins} bins of the PIT values.",
        "",
        "| config (type:D:K) | reps | quantities | min p | verdict | ECDF outside band | cov 50% | cov 90% | "
        "div. (reps) | R-hat > 1.01 | worst quantities (p, share in outer 20%) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        n = s["n_reps"]
        se50 = math.sqrt(0.25 / n)
        se90 = math.sqrt(0.09 / n)
        worst = "; ".join(f"{w['name']} {w['p']:.3g}, {w['outer']:.2f}" for w in s["worst"])
        lines.append(
            f"| {s['config']} | {n} | {len(s['quantities'])} | {s['min_p']:.3g} | "
            f"{'pass' if s['passed'] else '**FAIL**'} | {s['n_ecdf_out']} | {s['cov50']:.3f} (±{se50:.3f}) | "
            f"{s['cov90']:.3f} (±{se90:.3f}) | {s['divergent']} ({s['reps_with_divergences']}) | "
            f"{s['rhat_above']:.2f} | {worst} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="*", default=None, help="TYPE:D:K ... (default: all 24)")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_CONFIGS}, 60 replicates")
    ap.add_argument("--reps", type=int, default=None, help="replicates per configuration (default 200)")
    ap.add_argument("--n", type=int, default=80, help="points per data set (default 80)")
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=400)
    ap.add_argument("--draws", type=int, default=400)
    ap.add_argument("--dense-mass", action="store_true")
    ap.add_argument("--init-jitter", type=float, default=None)
    ap.add_argument("--target-accept", type=float, default=0.8)
    ap.add_argument("--fold", action="store_true",
                    help="sample the unordered model and sort each draw by its first-feature means")
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0, help="first replicate's seed")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--out", default=None, help="append the markdown table to this file")
    ap.add_argument("--json", default=None, help="write every replicate's numbers to this JSON file")
    args = ap.parse_args(argv)

    configs = args.configs or (QUICK_CONFIGS if args.quick else ALL_CONFIGS)
    reps = args.reps or (60 if args.quick else 200)
    for c in configs:
        t, d, k = c.split(":")
        if t not in COVARIANCE_TYPES or not d.isdigit() or not k.isdigit():
            ap.error(f"--configs: {c!r} is not TYPE:D:K with TYPE one of {COVARIANCE_TYPES}")
    settings = Settings(n=args.n, chains=args.chains, warmup=args.warmup, draws=args.draws,
                        dense_mass=args.dense_mass, init_jitter=args.init_jitter,
                        target_accept=args.target_accept, fold=args.fold)
    summaries, everything = [], {}
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(args.workers, mp_context=ctx) as pool:
        for config in configs:
            t0 = time.perf_counter()
            seeds = list(range(args.seed, args.seed + reps))
            chunks = [(config, seeds[i :: args.workers], settings) for i in range(args.workers)]
            results = [r for part in pool.map(_worker, chunks) for r in part]
            results.sort(key=lambda sr: sr[0])
            everything[config] = results
            s = summarise(config, [r for _, r in results], args.bins)
            summaries.append(s)
            print(f"{config:>14}: min p {s['min_p']:.3g} {'pass' if s['passed'] else 'FAIL'}, "
                  f"ECDF out {s['n_ecdf_out']}, cov50 {s['cov50']:.3f} cov90 {s['cov90']:.3f}, "
                  f"div {s['divergent']} in {s['reps_with_divergences']} reps, R-hat>1.01 {s['rhat_above']:.2f}, "
                  f"worst {[(w['name'], round(w['p'], 4), round(w['outer'], 2)) for w in s['worst']]} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    table = markdown(summaries, settings, args.bins)
    print()
    print(table)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write("\n" + table + "\n")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({c: [dict(seed=s, **r) for s, r in rs] for c, rs in everything.items()}, fh)
    return 0 if all(s["passed"] for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
