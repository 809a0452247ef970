"""Fresh-process speed: what a new user waits for, bayesgmm next to scikit-learn.

Usage::

    python bench/startup.py                 # every workflow, 3 fresh processes each
    python bench/startup.py --quick         # no CLI main job, 1 process each
    python bench/startup.py --json out/startup.json

Method
------
Every measurement is a **fresh Python process** (a new notebook kernel, a script, the command line),
run one after another on the same data (the embedded Old Faithful set, 272 x 2):

* ``import``: ``import bayesgmm`` against ``import jax`` plus scikit-learn's
  ``sklearn.mixture`` (what bayesgmm's estimator front imports); seconds of wall time.
* ``fit``: ``GaussianMixture(2, random_state=0).fit(X)`` then ``predict_proba(X)``, timed after the
  imports (scikit-learn's ``GaussianMixture`` against bayesgmm's, default prior).
* ``grid``: the BIC grid ``n_components = 1..6`` x the four covariance types with ``n_init=10``:
  ``bayesgmm.select`` against a loop over scikit-learn's ``GaussianMixture(...).fit(X).bic(X)``.
  ``grid again`` is the same grid a second time in the same process.
* ``groups``: a MAP, then NUTS (500 + 500 draws x 2 chains) and VI through ``fit_posterior``, on
  four random subsets of 180, 210, 230 and 250 rows of the data (groups of a data set fitted one
  by one): the samplers' rows are padded to one bucket (``sampler_rows``), so the four share one
  NUTS and one VI program; ``groups 2-4`` is the samplers' time after the first group.
* ``lengths``: on the whole data set, NUTS with 400 and then 500 draws (300 warm-up, 2 chains),
  ``extend`` by 100 and then by 120 draws, and VI with 1000 draws at learning rate 0.01 and then
  800 at 0.005: each pair's lengths share a bucket (``draw_slots``) and the learning rate is an
  argument, so the second of each reuses the first's program; ``2nd of each`` is the time of the
  three second calls.
* ``main job``: ``bayesgmm fit`` (the README's first command, NUTS and VI included) without the
  report's figures being looked at; wall time of the whole command.

bayesgmm runs twice per workflow: with an **empty** compilation cache (a private new directory,
``BAYESGMM_COMPILATION_CACHE``) -- a first run on a new machine -- and with the **warm** cache the
empty run left behind -- every later process. ``programs`` counts the XLA programs compiled in that
process, ``loaded whole`` the programs loaded without tracing, lowering or compiling
(:mod:`bayesgmm.core.executables`) and ``JAX cache hits`` those JAX found in its persistent cache
after tracing and lowering them (``jax.monitoring`` events).
Each cell is the median over ``--repeat`` fresh processes (a new empty cache for each empty run).
The machine's load average is printed: compile times are single-threaded and suffer from other
load on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
from bench._machine import cpu_model, loadavg  # noqa: E402

_PRELUDE = textwrap.dedent(
    """
    import json, sys, time
    t_start = time.perf_counter()
    counts = {"programs": 0, "cache_hits": 0, "loaded": 0}
    def _listen():
        import jax.monitoring
        from bayesgmm.core.executables import HIT_EVENT
        def on_duration(event, duration, **kw):
            if event == "/jax/core/compile/backend_compile_duration":
                counts["programs"] += 1
        def on_event(event, **kw):
            if event == "/jax/compilation_cache/cache_hits":  # (a hit is a backend_compile event too)
                counts["cache_hits"] += 1
                counts["programs"] -= 1
            elif event == HIT_EVENT:  # a program loaded whole (not traced, lowered or compiled)
                counts["loaded"] += 1
        jax.monitoring.register_event_duration_secs_listener(on_duration)
        jax.monitoring.register_event_listener(on_event)
    """
)

WORKFLOWS = {
    "import_bayesgmm": """
        t0 = time.perf_counter()
        import bayesgmm
        out = {"seconds": time.perf_counter() - t0}
    """,
    "import_sklearn": """
        t0 = time.perf_counter()
        import jax, sklearn.mixture
        out = {"seconds": time.perf_counter() - t0}
    """,
    "fit_bayesgmm": """
        import numpy as np
        from bayesgmm import GaussianMixture
        from bayesgmm.datasets import load_faithful
        _listen()
        X, _ = load_faithful()
        t0 = time.perf_counter()
        gm = GaussianMixture(2, random_state=0).fit(X)
        p = gm.predict_proba(X)
        out = {"seconds": time.perf_counter() - t0, **counts}
    """,
    "fit_sklearn": """
        import numpy as np
        from sklearn.mixture import GaussianMixture
        from bayesgmm.datasets import load_faithful
        X, _ = load_faithful()
        t0 = time.perf_counter()
        gm = GaussianMixture(2, random_state=0).fit(X)
        p = gm.predict_proba(X)
        out = {"seconds": time.perf_counter() - t0}
    """,
    "grid_bayesgmm": """
        import warnings
        import bayesgmm
        from bayesgmm.datasets import load_faithful
        _listen()
        X, _ = load_faithful()
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        sel = bayesgmm.select(X, n_components=range(1, 7), covariance_types=("full", "tied", "diag", "spherical"),
                              criterion="bic", n_init=10, random_state=0, progress_bar=False)
        t1 = time.perf_counter()
        first = dict(counts)
        bayesgmm.select(X, n_components=range(1, 7), covariance_types=("full", "tied", "diag", "spherical"),
                        criterion="bic", n_init=10, random_state=0, progress_bar=False)
        t2 = time.perf_counter()
        out = {"seconds": t1 - t0, "again_seconds": t2 - t1, "best": str(sel.best_params_), **first}
    """,
    "groups_bayesgmm": """
        import warnings
        import numpy as np
        import bayesgmm
        from bayesgmm.datasets import load_faithful
        _listen()
        X, _ = load_faithful()
        rng = np.random.default_rng(0)
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        later = 0.0
        for i, n in enumerate((180, 210, 230, 250)):  # four groups of nearby sizes: one row bucket
            x = X[rng.permutation(len(X))[:n]]
            gm = bayesgmm.GaussianMixture(2, random_state=0).fit(x)
            t = time.perf_counter()
            gm.fit_posterior(x, method="nuts", num_warmup=500, num_samples=500, num_chains=2, random_state=1)
            gm.fit_posterior(x, method="vi", random_state=1)
            later += (time.perf_counter() - t) if i else 0.0
        out = {"seconds": time.perf_counter() - t0, "later_seconds": later, **counts}
    """,
    "lengths_bayesgmm": """
        import warnings
        import bayesgmm
        from bayesgmm.datasets import load_faithful
        _listen()
        X, _ = load_faithful()
        warnings.simplefilter("ignore")
        gm = bayesgmm.GaussianMixture(2, random_state=0).fit(X)
        t0 = time.perf_counter()
        second = 0.0
        # one bucket each (the warm-ups: 5 adaptation windows both)
        for n, warm, more, draws, rate in ((400, 300, 100, 1000, 0.01), (500, 400, 120, 800, 0.005)):
            t = time.perf_counter()
            post = gm.fit_posterior(X, method="nuts", num_warmup=warm, num_samples=n, num_chains=2, random_state=1)
            post.extend(more, warn=False)
            gm.fit_posterior(X, method="vi", num_samples=draws, learning_rate=rate, random_state=1)
            second = time.perf_counter() - t
        out = {"seconds": time.perf_counter() - t0, "later_seconds": second, **counts}
    """,
    "grid_sklearn": """
        import warnings
        from sklearn.mixture import GaussianMixture
        from bayesgmm.datasets import load_faithful
        X, _ = load_faithful()
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        bics = {}
        for ct in ("full", "tied", "diag", "spherical"):
            for k in range(1, 7):
                bics[(k, ct)] = GaussianMixture(k, covariance_type=ct, n_init=10, random_state=0).fit(X).bic(X)
        best = min(bics, key=bics.get)
        out = {"seconds": time.perf_counter() - t0, "best": str({"n_components": best[0], "covariance_type": best[1]})}
    """,
}


def _run(name: str, cache: str | None, timeout: float) -> dict:
    code = _PRELUDE + textwrap.dedent(WORKFLOWS[name]) + "\nprint('RESULT ' + json.dumps(out))\n"
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["BAYESGMM_COMPILATION_CACHE"] = cache if cache else "0"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")


def _main_job(cache: str, timeout: float) -> dict:
    import time

    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["BAYESGMM_COMPILATION_CACHE"] = cache
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "bayesgmm", "fit", "--out", out], env=env,
                              capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"bayesgmm fit failed:\n{proc.stderr[-3000:]}")
    return {"seconds": seconds}


def _median(runs, key="seconds"):
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else float("nan")


def _empty_and_warm(name: str, repeat: int, timeout: float, run=None) -> tuple[list, list]:
    """``repeat`` fresh runs of workflow ``name`` with a new empty cache, each followed by a run
    with the cache it left behind."""
    run = run or (lambda cache: _run(name, cache, timeout))
    empty, warm = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="bayesgmm-bench-xla-") as cache:
            empty.append(run(cache))
            warm.append(run(cache))
    return empty, warm


def measure(repeat: int, with_main_job: bool, timeout: float) -> dict:
    results = {}
    for name in ("import_sklearn", "import_bayesgmm"):
        results[name] = [_run(name, None, timeout) for _ in range(repeat)]
    for sk, bg in (("fit_sklearn", "fit_bayesgmm"), ("grid_sklearn", "grid_bayesgmm")):
        results[sk] = [_run(sk, None, timeout) for _ in range(repeat)]
        results[bg + "_empty"], results[bg + "_warm"] = _empty_and_warm(bg, repeat, timeout)
    for bg in ("groups_bayesgmm", "lengths_bayesgmm"):
        results[bg + "_empty"], results[bg + "_warm"] = _empty_and_warm(bg, repeat, timeout)
    if with_main_job:
        results["main_job_empty"], results["main_job_warm"] = _empty_and_warm(
            "main_job", repeat, timeout, run=lambda cache: _main_job(cache, timeout)
        )
    return results


def table(results: dict) -> str:
    m = _median
    sk_import = m(results["import_sklearn"])
    rows = [
        "| workflow (fresh process) | scikit-learn | bayesgmm, empty cache | bayesgmm, warm cache | empty / sklearn | warm / sklearn | programs compiled (empty / warm) | loaded whole / JAX cache hits (warm) |",
        "|---|---|---|---|---|---|---|---|",
        f"| import (jax + sklearn.mixture vs bayesgmm) | {sk_import:.2f} s | {m(results['import_bayesgmm']):.2f} s | - | "
        f"{m(results['import_bayesgmm']) / sk_import:.2f}x | - | - | - |",
    ]
    for label, sk, bg in (
        ("`GaussianMixture(2).fit(X)` + `predict_proba(X)`", "fit_sklearn", "fit_bayesgmm"),
        ("BIC grid K = 1..6 x 4 covariance types, n_init=10", "grid_sklearn", "grid_bayesgmm"),
    ):
        s, e, w = m(results[sk]), m(results[bg + "_empty"]), m(results[bg + "_warm"])
        rows.append(
            f"| {label} | {s:.2f} s | {e:.2f} s | {w:.2f} s | {e / s:.1f}x | {w / s:.1f}x | "
            f"{m(results[bg + '_empty'], 'programs'):.0f} / {m(results[bg + '_warm'], 'programs'):.0f} | "
            f"{m(results[bg + '_warm'], 'loaded'):.0f} / {m(results[bg + '_warm'], 'cache_hits'):.0f} |"
        )
    rows.append(
        f"| the same grid again in the same process | - | {m(results['grid_bayesgmm_empty'], 'again_seconds'):.2f} s | "
        f"{m(results['grid_bayesgmm_warm'], 'again_seconds'):.2f} s | - | - | - | - |"
    )
    for name, label, later in (
        ("groups_bayesgmm", "NUTS + VI (`fit_posterior`) on four groups of 180-250 rows (one row bucket)", "groups 2-4"),
        ("lengths_bayesgmm", "NUTS 400 then 500 draws (300 then 400 warm-up), `extend` 100 then 120, VI 1000 "
         "then 800 draws (another learning rate)", "2nd of each"),
    ):
        if name + "_empty" not in results:
            continue
        e, w = results[name + "_empty"], results[name + "_warm"]
        rows.append(
            f"| {label} | - | {m(e):.1f} s ({later}: {m(e, 'later_seconds'):.1f} s) | {m(w):.1f} s | - | - | "
            f"{m(e, 'programs'):.0f} / {m(w, 'programs'):.0f} | {m(w, 'loaded'):.0f} / {m(w, 'cache_hits'):.0f} |"
        )
    if "main_job_empty" in results:
        rows.append(
            f"| `bayesgmm fit` (README main job: EM, NUTS, VI, report) | - | {m(results['main_job_empty']):.1f} s | "
            f"{m(results['main_job_warm']):.1f} s | - | - | - | - |"
        )
    best_sk = results["grid_sklearn"][0].get("best")
    best_bg = results["grid_bayesgmm_empty"][0].get("best")
    rows.append("")
    rows.append(f"Grid choice: scikit-learn {best_sk}, bayesgmm {best_bg}.")
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one process per cell, no main job")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--no-main-job", action="store_true")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}; load average at start {loadavg()}")
    results = measure(repeat, not (args.quick or args.no_main_job), args.timeout)
    print(f"load average at end {loadavg()}; median of {repeat} fresh process(es) per cell\n")
    print(table(results))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
