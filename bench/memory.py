"""Peak memory of a large fit: bayesgmm's passes are blocked, so memory is O(block x K + K x D^2).

Usage::

    python bench/memory.py                      # N=2M, D=32, K=64, float32, 2 EM iterations
    python bench/memory.py --n 200000 --iters 2
    python bench/memory.py --json out.json

Method
------
Each configuration runs in a fresh subprocess (so that nothing else has touched its memory). The
worker draws the data directly in float32 (a K-component mixture, N x D), records its peak
resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) after importing JAX and creating
the data, then runs ``GaussianMixture(n_components=K, max_iter=iters, tol=0, init_params="k-means++").fit(X)``
(MAP-EM, default prior) and ``score_samples(X)``, recording the peak after each. k-means++ seeding
by default because the 100 Lloyd passes of ``init_params="kmeans"`` take minutes at this size on a
CPU; both are blocked passes with the same O(block x K) working set (``--init kmeans`` measures it).
The table gives the peaks, their growth over the baseline, and for scale the size of the data
and of one N x K float32 array (the responsibilities, which are never materialised whole).
Goal (issue 6): peak under 2 GB at N=2M, D=32, K=64.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

MB = 1024.0 * 1024.0


def _peak_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _worker(n, d, k, iters, init):
    import faulthandler
    import signal
    import warnings

    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints where a long run is

    import numpy as np

    import jax  # noqa: F401

    from bayesgmm import GaussianMixture

    rng = np.random.default_rng(0)
    x = np.empty((n, d), np.float32)
    centres = rng.normal(scale=3.0, size=(k, d)).astype(np.float32)
    step = 1 << 18
    for i in range(0, n, step):  # in chunks: no float64 copy of the data
        m = min(step, n - i)
        x[i:i + m] = rng.standard_normal((m, d), dtype=np.float32) + centres[rng.integers(0, k, m)]
    out = {"n": n, "d": d, "k": k, "iters": iters, "init": init,
           "data_mb": x.nbytes / MB, "nk_f32_mb": n * k * 4 / MB, "baseline_mb": _peak_mb()}
    gm = GaussianMixture(k, max_iter=iters, tol=0.0, init_params=init, random_state=0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(x)
    out["fit_s"] = time.perf_counter() - t0
    out["after_fit_mb"] = _peak_mb()
    t0 = time.perf_counter()
    s = gm.score_samples(x)
    out["score_s"] = time.perf_counter() - t0
    out["after_score_mb"] = _peak_mb()
    out["finite"] = bool(np.all(np.isfinite(s)))
    print(json.dumps(out))


def run(n, d, k, iters=2, init="kmeans"):
    """Measure one configuration in a subprocess; returns the worker's dict."""
    cmd = [sys.executable, os.path.abspath(__file__), "--_worker", f"{n},{d},{k},{iters},{init}"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows):
    head = (f"{'N':>9}{'D':>4}{'K':>4}{'iters':>6} | {'data MB':>8}{'NxK f32 MB':>11} | "
            f"{'baseline MB':>11}{'peak fit MB':>12}{'peak score MB':>14} | {'fit s':>7}{'score s':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['n']:>9}{r['d']:>4}{r['k']:>4}{r['iters']:>6} | {r['data_mb']:>8.0f}{r['nk_f32_mb']:>11.0f} | "
            f"{r['baseline_mb']:>11.0f}{r['after_fit_mb']:>12.0f}{r['after_score_mb']:>14.0f} | "
            f"{r['fit_s']:>7.1f}{r['score_s']:>8.1f}"
        )
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--init", type=str, default="k-means++")
    ap.add_argument("--json", type=str, default=None)
    ap.add_argument("--_worker", type=str, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._worker:
        n, d, k, iters, init = args._worker.split(",")
        _worker(int(n), int(d), int(k), int(iters), init)
        return 0
    rows = [run(args.n, args.d, args.k, args.iters, args.init)]
    print("peak resident memory (ru_maxrss) of a float32 MAP-EM fit + score_samples, fresh process")
    print(table(rows))
    print("goal: peak under 2048 MB at N=2M, D=32, K=64 (memory O(block x K + K x D^2) beyond the data)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
