"""Minibatch VI at N = 10M on a CPU: ``GaussianMixture.fit_posterior(method="vi", batch_size=...)``.

Usage::

    python bench/vi_large.py --quick        # N=10M, D=2, K=3; 1000 steps, 100 draws
    python bench/vi_large.py                # N=10M; 4000 steps, 1000 draws
    python bench/vi_large.py --n 1000000

Method
------
* Data: N points (float32) from a 3-component, 2-feature Gaussian mixture, seeded.
* ``GaussianMixture(3, random_state=0).fit(X)`` (MAP-EM, the start and pivot of VI), then
  ``fit_posterior(X, method="vi", guide="normal", batch_size=1000, num_steps=S, num_samples=M)``:
  each step draws 1000 rows (with replacement, O(batch) per step), so the time per step does not
  depend on N. Reported: the wall time of each phase (EM fit, VI compile, VI optimisation, the
  draws and their full-data log posteriors), steps per second, and the peak resident memory of
  the process (``ru_maxrss``) against the size of the data.
* Comparison in the same process on the same data: full-batch SVI (``batch_size=None``), timed
  over a few steps: its time per step grows with N, the minibatch's does not; the ratio is the
  speed-up per step.
* Accuracy: the posterior-mean means against the true means (matched), next to the MAP's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import warnings

import numpy as np


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_data(n, seed=0):
    rng = np.random.default_rng(seed)
    means = np.array([[-4.0, 0.0], [0.0, 3.0], [4.0, -1.0]])
    weights = np.array([0.5, 0.3, 0.2])
    x = np.empty((n, 2), np.float32)
    step = 1 << 20
    for i in range(0, n, step):
        m = min(step, n - i)
        z = rng.choice(3, size=m, p=weights)
        x[i:i + m] = means[z] + rng.standard_normal((m, 2)) * [1.0, 0.7]
    return x, means


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--json", type=str, default=None)
    args = ap.parse_args(argv)
    steps, draws, full_steps = (1000, 100, 5) if args.quick else (4000, 1000, 20)

    import jax

    from bayesgmm import GaussianMixture, Prior
    from bayesgmm.infer.svi import run_svi

    x, truth = make_data(args.n)
    base_mb = _peak_mb()
    t0 = time.perf_counter()
    gm = GaussianMixture(3, random_state=0).fit(x)
    t_em = time.perf_counter() - t0
    em_mb = _peak_mb()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        post = gm.fit_posterior(x, method="vi", guide="normal", batch_size=args.batch_size,
                                num_steps=steps, num_samples=draws, progress_bar=False)
        t_vi = time.perf_counter() - t0
    info = post.info
    vi_mb = _peak_mb()
    post_means = np.asarray(post.raw_draws.means).mean(axis=(0, 1))
    order = np.argsort(post_means[:, 0])
    err_vi = float(np.sqrt(np.mean((post_means[order] - truth) ** 2)))
    err_map = float(np.sqrt(np.mean((gm.means_[np.argsort(gm.means_[:, 0])] - truth) ** 2)))

    # full-batch SVI on the same data, a few steps, for the per-step comparison
    r_full = run_svi(jax.random.key(1), x, n_components=3, covariance_type="full",
                     prior=Prior(),
                     init=gm.params_, num_steps=full_steps, num_samples=1)
    per_step_mb = info["sampling_seconds"] / steps
    per_step_full = r_full.info["sampling_seconds"] / full_steps
    out = {
        "n": args.n, "d": 2, "k": 3, "batch_size": args.batch_size, "num_steps": steps,
        "num_samples": draws, "data_mb": x.nbytes / 1024**2, "baseline_mb": base_mb,
        "peak_after_em_mb": em_mb, "peak_after_vi_mb": vi_mb, "em_fit_s": t_em,
        "em_n_iter": int(gm.n_iter_), "vi_total_s": t_vi, "vi_compile_s": info["compile_seconds"],
        "vi_optimise_s": info["sampling_seconds"], "vi_draws_s": info["postprocess_seconds"],
        "minibatch_s_per_step": per_step_mb, "full_batch_s_per_step": per_step_full,
        "full_batch_compile_s": r_full.info["compile_seconds"],
        "rms_mean_error_vi": err_vi, "rms_mean_error_map": err_map, "cpu_count": os.cpu_count(),
    }
    print(f"data: N={args.n:,}, D=2, K=3, float32 ({out['data_mb']:.0f} MB); {os.cpu_count()} CPUs, "
          f"jax {jax.__version__} ({jax.default_backend()})")
    print(f"MAP-EM fit: {t_em:.1f} s ({gm.n_iter_} iterations, incl. compile); peak RSS {em_mb:.0f} MB")
    print(f"minibatch VI (batch {args.batch_size}, {steps} steps, {draws} draws): total {t_vi:.1f} s = "
          f"compile {info['compile_seconds']:.1f} s + optimisation {info['sampling_seconds']:.1f} s + "
          f"draws and full-data log posteriors {info['postprocess_seconds']:.1f} s; peak RSS {vi_mb:.0f} MB")
    head = f"{'SVI':<28}{'ms/step':>10}{'steps/s':>10}{'full/minibatch':>16}"
    print(head)
    print("-" * len(head))
    print(f"{'minibatch ' + str(args.batch_size):<28}{1e3 * per_step_mb:>10.2f}{1 / per_step_mb:>10.0f}"
          f"{per_step_full / per_step_mb:>15.0f}x")
    print(f"{'full batch (N rows/step)':<28}{1e3 * per_step_full:>10.2f}{1 / per_step_full:>10.1f}{'1':>15}x")
    print(f"RMS error of the means: VI posterior mean {err_vi:.4f}, MAP {err_map:.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
