"""EM with missing cells: per-iteration time with 20% of the cells missing vs complete data, and
what marginalising buys over dropping rows or imputing column means.

Usage::

    python bench/em_missing.py                 # N=100k, D=8, K=8 (the issue's shape), float32
    python bench/em_missing.py --quick         # N=20k, D=4, K=4
    python bench/em_missing.py --shape 100000x8x8 --frac 0.2 --repeat 3

Method
------
* One data set from a K-component, D-feature full-covariance mixture (seeded, float32); a copy
  with ``--frac`` of its cells set to NaN completely at random (every row keeps one cell).
* Per-iteration time of ``bayesgmm.infer.fit_map(prior=None)`` (maximum likelihood, the path of
  ``GaussianMixture(prior=None, missing="marginalize")``) from the same start, by differencing:
  ``(t(max_iter=m) - t(max_iter=1)) / (m - 1)``, each t the best of ``--repeat`` whole fits after
  a warm-up fit (compilation excluded), complete and missing interleaved. ``tol=0`` so that both
  run every iteration.
* Accuracy at convergence (``GaussianMixture`` defaults, MAP), the RMS error of the fitted means
  against the true means (components matched): marginalising the missing cells; dropping every
  incomplete row (scikit-learn's only option); imputing column means and fitting the completed
  data. And the RMS error of the imputed cells: ``GaussianMixture.impute`` vs column means.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
from _machine import cpu_model, loadavg  # this folder: run as a script


def _parse_shape(s):
    n, d, k = (int(float(p)) for p in s.lower().split("x"))
    return n, d, k


def _data(n, d, k, frac, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 4, (k, d))
    covs = []
    for _ in range(k):
        a = rng.normal(size=(d, d)) / np.sqrt(d)
        covs.append(a @ a.T + 0.3 * np.eye(d))
    z = rng.integers(k, size=n)
    x = np.empty((n, d))
    for j in range(k):
        idx = z == j
        x[idx] = rng.multivariate_normal(means[j], covs[j], idx.sum())
    xm = x.copy()
    gone = rng.uniform(size=x.shape) < frac
    gone[np.arange(n), rng.integers(d, size=n)] = False
    xm[gone] = np.nan
    return x.astype(np.float32), xm.astype(np.float32), means


def _rms_means(est, truth):
    from scipy.optimize import linear_sum_assignment

    cost = ((truth[:, None] - est[None]) ** 2).sum(-1)
    r, c = linear_sum_assignment(cost)
    return float(np.sqrt(np.mean((est[c] - truth[r]) ** 2)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", type=_parse_shape, default=None, help="NxDxK (default 100000x8x8)")
    ap.add_argument("--frac", type=float, default=0.2, help="fraction of cells missing (default 0.2)")
    ap.add_argument("--iters", type=int, default=10, help="m of the differencing (default 10)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    n, d, k = args.shape or ((20_000, 4, 4) if args.quick else (100_000, 8, 8))

    import jax
    import jax.numpy as jnp  # noqa: F401

    from bayesgmm import GaussianMixture
    from bayesgmm.infer import fit_map

    x, xm, means = _data(n, d, k, args.frac)
    miss = np.isnan(xm)
    print(f"data: N={n:,}, D={d}, K={k}, full covariance, float32; {miss.mean():.1%} of cells missing, "
          f"{np.mean(~miss.any(1)):.1%} of rows complete")
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}; {platform.machine()}; jax {jax.__version__} "
          f"({jax.default_backend()}); load {loadavg()}")

    start = dict(weights_init=np.full(k, 1.0 / k), means_init=x[np.random.default_rng(1).choice(n, k, replace=False)].astype(np.float64),
                 covariances_init=np.repeat(np.cov(x.T)[None], k, axis=0))

    def fit(data, iters):
        t0 = time.perf_counter()
        fit_map(0, data, n_components=k, covariance_type="full", prior=None, tol=0.0, max_iter=iters, **start)
        return time.perf_counter() - t0

    compile_s = {}
    for name, data in (("complete", x), (f"{miss.mean():.0%} of cells missing", xm)):
        compile_s[name] = fit(data, 1)  # warm-up: compiles
    names = list(compile_s)
    times = {nm: {1: [], args.iters: []} for nm in names}
    for _ in range(args.repeat):
        for nm, data in zip(names, (x, xm)):
            for it in (1, args.iters):
                times[nm][it].append(fit(data, it))
    per = {nm: (min(times[nm][args.iters]) - min(times[nm][1])) / (args.iters - 1) for nm in names}
    print()
    print(f"{'EM (ML, full)':<28}{'warm-up s':>12}{'ms / iter':>12}{'vs complete':>13}")
    print("-" * 65)
    for nm in names:
        print(f"{nm:<28}{compile_s[nm]:>12.2f}{1e3 * per[nm]:>12.1f}{per[nm] / per[names[0]]:>12.2f}x")
    print("warm-up s: the first fit (max_iter=1) of each kind in this process, compilation included.")

    # one scoring pass (score_samples) and one imputation pass at the fitted parameters
    gm0 = GaussianMixture(k, prior=None, missing="marginalize", max_iter=5, tol=0.0, random_state=0).fit(x)
    for label, fn, data in (("score_samples, complete", gm0.score_samples, x),
                            ("score_samples, missing", gm0.score_samples, xm),
                            ("impute", gm0.impute, xm)):
        fn(data)  # compiles
        t0 = time.perf_counter()
        fn(data)
        print(f"{label:<28}{time.perf_counter() - t0:>12.3f} s (one pass, after compilation)")

    # accuracy at convergence
    rows = []
    gm = GaussianMixture(k, missing="marginalize", random_state=0, n_init=2).fit(xm)
    rows.append(("marginalise (bayesgmm)", _rms_means(gm.means_, means), len(xm)))
    keep = ~miss.any(1)
    gd = GaussianMixture(k, random_state=0, n_init=2).fit(xm[keep])
    rows.append(("drop incomplete rows", _rms_means(gd.means_, means), int(keep.sum())))
    col = np.where(miss, np.nanmean(xm, axis=0), xm)
    gc = GaussianMixture(k, random_state=0, n_init=2).fit(col)
    rows.append(("impute column means, fit", _rms_means(gc.means_, means), len(xm)))
    full = GaussianMixture(k, random_state=0, n_init=2).fit(x)
    rows.append(("(complete data, reference)", _rms_means(full.means_, means), len(x)))
    print()
    print(f"{'means at convergence':<30}{'rows used':>10}{'RMS error':>11}")
    print("-" * 51)
    for name, err, used in rows:
        print(f"{name:<30}{used:>10,}{err:>11.4f}")
    imp = gm.impute(xm)
    e_imp = float(np.sqrt(np.mean((imp[miss] - x[miss]) ** 2)))
    e_col = float(np.sqrt(np.mean((col[miss] - x[miss]) ** 2)))
    print(f"imputed cells, RMS error: GaussianMixture.impute {e_imp:.4f}, column means {e_col:.4f} "
          f"({e_col / e_imp:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
