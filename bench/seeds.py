"""Seed 003's scikit-learn workflow at full size, scikit-learn vs bayesgmm, in fresh processes.

Usage::

    python bench/seeds.py                 # the stages of issue 17's table, full size
    python bench/seeds.py --ci            # the reduced sizes of tests/test_seeds.py (a smoke run)
    python bench/seeds.py --with-faces    # also the image-clustering grid (116 fits per library)
    python bench/seeds.py --warm          # bayesgmm's second run on the same on-disk cache
    python bench/seeds.py --json out.json

Method
------
The workflow is ``tests/seeds/seed003.py`` (the seed's code with the estimator class as an
argument; every change to the seed is marked there). Each library runs the whole workflow in one
fresh Python process -- as a user running the seed as a script: imports, compilation (bayesgmm)
and the fits all count -- and reports the wall time of each stage:

=====================================  ============================================================
stage                                  what runs
=====================================  ============================================================
four 4-component fits                  ``n_init=10``, full/spherical/diag/tied, fit + predict
BIC/AIC over k = 1..10                 ``n_init=10``, full
grid k x covariance type (40 fits)     ``n_init=10``
sample, density grid, anomalies        tied fit, ``sample(5)``, ``score_samples`` on 4 million grid
                                       points and a 1000 x 1000 mesh, the 4% rule
moons, 19 fits of 200 points           full, k = 1..19, then the chosen k and ``sample(200)``
digits, k = 30..90                     PCA(0.99, whiten), full, 7 fits, ``sample(100)``
=====================================  ============================================================

plus, with ``--with-faces``, the image-clustering section (digits in place of the Olivetti faces,
which need the network: 40 components, then k = 5..145 x 4 covariance types with ``n_init=10``).
bayesgmm's on-disk compilation cache is a fresh, empty directory (a new user's first run: every
program is compiled); ``--warm`` runs bayesgmm a second time on that cache and reports that run
(a user's later runs). Measured without this control, the runs read whatever the user's own
cache held, which made two measurements of the same code differ by 2x.
The choices each library made (arg min BIC/AIC, best (k, type), integral, anomaly count, moons and
digits k) are printed beside the times. Thread settings are the libraries' defaults. A stage that
raises is reported with its exception, and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from _machine import loadavg  # this folder: run as a script

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

STAGES = [
    ("four", "four 4-component fits"),
    ("bic_aic", "BIC/AIC over k"),
    ("grid", "grid k x covariance type"),
    ("density", "sample, density grid, anomalies"),
    ("moons", "moons, BIC over k"),
    ("digits", "digits, k = 30..90"),
    ("faces", "image clustering grid (digits for faces)"),
]

_WORKER = r"""
import json, sys, time, warnings
t_start = time.perf_counter()
sys.path.insert(0, {tests!r})
lib, full, with_faces = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
if lib == "sklearn":
    from sklearn.mixture import GaussianMixture
else:
    from bayesgmm import GaussianMixture
from seeds import seed003 as s
warnings.simplefilter("ignore")
size = s.SIZES["full" if full else "ci"]
X, X_stretched = s.blobs()
out = {{"import_s": time.perf_counter() - t_start}}
calls = {{
    "four": lambda: s.stage_four_fits(GaussianMixture, size, X_stretched),
    "bic_aic": lambda: s.stage_bic_aic(GaussianMixture, size, X),
    "grid": lambda: s.stage_grid(GaussianMixture, size, X),
    "density": lambda: s.stage_sample_density_anomalies(GaussianMixture, size, X_stretched),
    "moons": lambda: s.stage_moons(GaussianMixture, size),
    "digits": lambda: s.stage_digits(GaussianMixture, size),
    "faces": lambda: s.stage_faces(GaussianMixture, size),
}}
def choice(name, r):
    if name == "bic_aic":
        return f"BIC k={{r['arg_min_bic']}}, AIC k={{r['arg_min_aic']}}"
    if name == "grid":
        return f"best ({{r['best_k']}}, {{r['best_covariance_type']}})"
    if name == "density":
        return f"integral {{r['integral']:.4f}}, {{len(r['anomalies'])}} anomalies"
    if name in ("moons", "digits"):
        return f"k={{r['arg_min_bic']}}"
    if name == "faces":
        return f"best ({{r['best_k']}}, {{r['best_covariance_type']}}), {{r['n_features']}} features"
    return ""
for name in calls:
    if name == "faces" and not with_faces:
        continue
    t0 = time.perf_counter()
    try:
        r = calls[name]()
        out[name] = {{"seconds": time.perf_counter() - t0, "choice": choice(name, r)}}
    except Exception as exc:
        out[name] = {{"seconds": time.perf_counter() - t0, "error": f"{{type(exc).__name__}}: {{str(exc)[:200]}}"}}
out["total_s"] = time.perf_counter() - t_start
print("RESULT " + json.dumps(out))
"""


def run_library(lib, full, with_faces, timeout, cache=None):
    code = _WORKER.format(tests=os.path.join(ROOT, "tests"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    if cache is not None:
        env["BAYESGMM_COMPILATION_CACHE"] = cache
    proc = subprocess.run([sys.executable, "-c", code, lib, "1" if full else "0", "1" if with_faces else "0"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{lib} worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def _cell(r):
    if r is None:
        return "n/a", ""
    if "error" in r:
        return f"{r['seconds']:.1f} s", "**" + r["error"] + "**"
    return f"{r['seconds']:.1f} s", r.get("choice", "")


def table(sk, ours):
    lines = ["| stage | scikit-learn | bayesgmm | ratio | scikit-learn's choice | bayesgmm's choice |",
             "|---|---|---|---|---|---|"]
    for name, title in STAGES:
        a, b = sk.get(name), ours.get(name)
        if a is None and b is None:
            continue
        ta, ca = _cell(a)
        tb, cb = _cell(b)
        ratio = f"{b['seconds'] / a['seconds']:.1f}x" if a and b and a["seconds"] > 0 else ""
        lines.append(f"| {title} | {ta} | {tb} | {ratio} | {ca} | {cb} |")
    lines.append(f"| import (in the process's total) | {sk['import_s']:.1f} s | {ours['import_s']:.1f} s | | | |")
    lines.append(f"| total, fresh process | {sk['total_s']:.1f} s | {ours['total_s']:.1f} s | "
                 f"{ours['total_s'] / sk['total_s']:.1f}x | | |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ci", action="store_true", help="the reduced sizes of the test suite")
    ap.add_argument("--with-faces", action="store_true", help="also the image-clustering grid")
    ap.add_argument("--timeout", type=int, default=7200, help="seconds per library")
    ap.add_argument("--warm", action="store_true",
                    help="report bayesgmm's second run on the same on-disk compilation cache")
    ap.add_argument("--json", type=str, default=None)
    args = ap.parse_args(argv)
    full = not args.ci
    load0 = loadavg()
    sk = run_library("sklearn", full, args.with_faces, args.timeout)
    with tempfile.TemporaryDirectory(prefix="bayesgmm-bench-cache-") as cache:
        ours = run_library("bayesgmm", full, args.with_faces, args.timeout, cache)
        if args.warm:
            ours = run_library("bayesgmm", full, args.with_faces, args.timeout, cache)
    print(f"seed 003 workflow, {'full' if full else 'CI'} sizes, one fresh process per library, "
          f"bayesgmm's compilation cache {'warm (its second run)' if args.warm else 'empty'}; "
          f"load average {load0} -> {loadavg()}, os.cpu_count() = {os.cpu_count()}")
    print()
    print(table(sk, ours))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sklearn": sk, "bayesgmm": ours, "full": full}, f, indent=1)
    return 0 if not any("error" in v for r in (sk, ours) for v in r.values() if isinstance(v, dict)) else 1


if __name__ == "__main__":
    sys.exit(main())
