"""EM scaling in N, K and D (bayesgmm vs scikit-learn), compile time of the first call, recompiles.

Usage::

    python bench/em_scaling.py --quick          # small shapes, a few minutes on a laptop
    python bench/em_scaling.py                  # N up to 1M, K and D up to 32
    python bench/em_scaling.py --json out.json

Method
------
* Data: a K-component Gaussian mixture, float32, one seeded sample per shape; both libraries get
  the same array in the same process. Maximum-likelihood EM (``prior=None`` / scikit-learn's
  ``GaussianMixture``), full covariance, ``reg_covar=1e-6``, ``tol=0`` (no early stop),
  ``init_params="random_from_data"`` (cheap, so the differencing below is not noisy).
* Per-iteration time = (t(max_iter=m) - t(max_iter=1)) / (m - 1), each t the best of ``--repeat``
  calls after a warm-up call (JAX compilation excluded); ratio = sklearn / bayesgmm (> 1: bayesgmm
  faster). The log-log slope of time per iteration against N (K, D) is a least-squares fit; the
  E-step costs O(N K D^2), so the expected slopes are 1 in N and K and up to 2 in D.
* Compile time of the first call: wall time of the first ``GaussianMixture(...).fit`` of a new
  shape minus that of a second, identical call (cached programs).
* Recompiles: ``bayesgmm.core.programs.TRACE_COUNTS`` (incremented whenever a jitted EM entry point is
  traced) and the cache sizes of the jitted scoring functions, before and after repeated fits /
  scoring calls with *new data of the same shape* and new values of ``tol``, ``max_iter``,
  ``reg_covar`` and the prior: they must not change.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

QUICK = {"n": [5_000, 20_000, 80_000], "k": [2, 4, 8], "d": [2, 4, 8], "base": (20_000, 4, 4), "iters": 21}
FULL = {"n": [10_000, 100_000, 1_000_000], "k": [4, 8, 16, 32], "d": [4, 8, 16, 32],
        "base": (100_000, 8, 8), "iters": 21}


def make_data(n, d, k, seed=0):
    rng = np.random.default_rng([seed, n, d, k])
    centres = rng.normal(scale=3.0, size=(k, d))
    z = rng.integers(0, k, n)
    return (centres[z] + rng.normal(size=(n, d))).astype(np.float32)


def _best(fn, repeat):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def per_iter(x, k, iters, repeat):
    """Per-iteration seconds of bayesgmm and scikit-learn on ``x``."""
    import jax
    from sklearn.mixture import GaussianMixture as Sk

    from bayesgmm.infer import fit_map

    def bg(m):
        r = fit_map(jax.random.key(0), x, n_components=k, prior=None, tol=0.0, max_iter=m,
                    init_params_method="random_from_data")
        jax.block_until_ready(r.params)

    def sk(m):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Sk(k, tol=0.0, max_iter=m, init_params="random_from_data", random_state=0).fit(x)

    out = {}
    for name, fn in (("bayesgmm", bg), ("sklearn", sk)):
        fn(1), fn(iters)  # warm-up (compiles)
        t1 = _best(lambda: fn(1), repeat)
        tm = _best(lambda: fn(iters), repeat)
        out[name] = max(tm - t1, 1e-9) / (iters - 1)
    return out


def slope(xs, ys):
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def scaling(cfg, repeat):
    n0, d0, k0 = cfg["base"]
    rows = {"n": [], "k": [], "d": []}
    for n in cfg["n"]:
        rows["n"].append((n, d0, k0, per_iter(make_data(n, d0, k0), k0, cfg["iters"], repeat)))
    for k in cfg["k"]:
        rows["k"].append((n0, d0, k, per_iter(make_data(n0, d0, k), k, cfg["iters"], repeat)))
    for d in cfg["d"]:
        rows["d"].append((n0, d, k0, per_iter(make_data(n0, d, k0), k0, cfg["iters"], repeat)))
    return rows


def compile_and_recompiles(n, d, k):
    import jax

    from bayesgmm import GaussianMixture, Prior
    from bayesgmm.infer import scoring as est_mod
    from bayesgmm.core.programs import TRACE_COUNTS

    x = make_data(n, d, k, seed=1)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        gm = GaussianMixture(k, random_state=0).fit(x)
        gm.score_samples(x)
        gm.predict_proba(x)
        times.append(time.perf_counter() - t0)
    before = dict(TRACE_COUNTS)
    # the jitted scoring programs (blocked, sharded) are built once per process by _scoring_programs
    caches = lambda: {"_apply_in_blocks": est_mod._scoring_programs()[0]._cache_size()}  # noqa: E731
    cache_before = caches()
    variants = [dict(tol=1e-4), dict(max_iter=50), dict(prior=Prior(lkj_concentration=3.0)),
                dict(prior=Prior(weight_concentration=2.0, scale_prior="log_normal")), dict()]
    calls = 0
    for seed, kw in enumerate(variants, start=2):
        xs = make_data(n, d, k, seed=seed)  # new data, same shape
        g = GaussianMixture(k, random_state=seed, **kw).fit(xs)
        g.score_samples(xs)
        g.predict_proba(xs)
        calls += 1
    jax.effects_barrier()
    after = dict(TRACE_COUNTS)
    return {
        "shape": (n, d, k),
        "first_call_s": times[0],
        "second_call_s": times[1],
        "compile_s": max(0.0, times[0] - times[1]),
        "repeat_calls": calls,
        "traces_before": before,
        "traces_after": after,
        "new_traces": {key: after.get(key, 0) - before.get(key, 0) for key in after},
        "scoring_cache_before": cache_before,
        "scoring_cache_after": caches(),
    }


def report(rows, comp):
    lines = []
    for axis, label in (("n", "N"), ("k", "K"), ("d", "D")):
        lines.append(f"EM per iteration vs {label} (full covariance, ML, float32)")
        head = f"{'N':>9}{'D':>4}{'K':>4} | {'bayesgmm ms':>12}{'sklearn ms':>12} | {'sk/bg':>7}"
        lines += [head, "-" * len(head)]
        for n, d, k, t in rows[axis]:
            lines.append(f"{n:>9}{d:>4}{k:>4} | {1e3 * t['bayesgmm']:>12.2f}{1e3 * t['sklearn']:>12.2f} | "
                         f"{t['sklearn'] / t['bayesgmm']:>6.2f}x")
        xs = [r[{"n": 0, "k": 2, "d": 1}[axis]] for r in rows[axis]]
        lines.append(f"log-log slope in {label}: bayesgmm {slope(xs, [r[3]['bayesgmm'] for r in rows[axis]]):.2f}, "
                     f"sklearn {slope(xs, [r[3]['sklearn'] for r in rows[axis]]):.2f}")
        lines.append("")
    n, d, k = comp["shape"]
    lines.append(f"compile time of the first call (GaussianMixture.fit + score_samples + predict_proba, N={n}, D={d}, K={k}): "
                 f"first {comp['first_call_s']:.2f} s, second (cached) {comp['second_call_s']:.2f} s, "
                 f"compile ~{comp['compile_s']:.2f} s")
    new = {key: v for key, v in comp["new_traces"].items() if v}
    lines.append(f"recompiles over {comp['repeat_calls']} fits + scorings with new data of the same shape and "
                 f"new tol / max_iter / prior values: EM traces {new or 0}, scoring cache "
                 f"{comp['scoring_cache_before']} -> {comp['scoring_cache_after']}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=str, default=None)
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    rows = scaling(cfg, args.repeat)
    comp = compile_and_recompiles(*cfg["base"])
    print(report(rows, comp))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"scaling": rows, "compile": comp, "cpu_count": os.cpu_count()}, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
