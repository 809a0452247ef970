"""EM speed: bayesgmm vs scikit-learn vs gmmx, per EM iteration, full covariance.

Usage::

    python bench/em_speed.py                       # all shapes, float32 and float64
    python bench/em_speed.py --quick               # only the small shapes
    python bench/em_speed.py --shapes 200000x32x16 --dtypes float32 --repeat 5
    python bench/em_speed.py --json out/em_speed.json

Method
------
* One data set per shape (N, D, K), drawn once from a random K-component Gaussian mixture in
  float64 and cast to the benchmark dtype; every library gets the same array and the *same*
  starting parameters (weights uniform, means = K random data points, every covariance = the data
  covariance), given through each library's user-initialisation hooks.
* Maximum-likelihood EM, ``covariance_type="full"``, ``reg_covar=1e-6``, ``tol=0`` so that no
  library stops early; the iteration count each library reports is checked to be exactly the one
  asked for (gmmx stops when the log-likelihood change is ``< tol``, i.e. on an exact 0.0 change;
  if that happens the run is repeated with ``tol=-1`` and the table says so).
* Per-iteration time = (t(max_iter=30) - t(max_iter=1)) / 29, each t the best of ``--repeat``
  whole ``fit`` calls after warm-up calls (so JIT compilation is excluded; for gmmx ``max_iter``
  is static and each value compiles once in the warm-up). The ``--repeat`` rounds interleave the
  libraries, so that a change in the machine's load affects all of them alike.
  Differencing removes everything that does not scale with the iteration count: initialisation,
  input validation / standardisation, host<->device transfers, the final E-step (sklearn and
  bayesgmm do one after the loop) and Python dispatch -- the same way for all three libraries.
* float32 and float64 run in separate subprocesses, the float64 one with JAX's x64 mode on
  (``jax.config.update("jax_enable_x64", True)`` before any JAX work), the float32 one with it off.
  scikit-learn validates X with ``dtype=[float64, float32]`` and, in the installed 1.9, keeps
  float32 input in float32 throughout (E-step log-probabilities and the fitted parameters take X's
  dtype; the script prints the dtype of the fitted ``means_``), so the float32 rows compare
  float32 against float32. gmmx 0.7 accepts float32 parameters only (n/a in float64 rows).
* Timings are sensitive to other load on the machine: scikit-learn's multi-threaded OpenBLAS
  slows down far more under CPU oversubscription than XLA's mostly single-threaded loop, so the
  1/5/15-minute load average is printed and stored with every shape; compare runs made on a quiet
  machine.
* bayesgmm is timed through ``bayesgmm.infer.fit_map(prior=None)``, which is what
  ``bayesgmm.GaussianMixture(prior=None).fit`` calls.
* ``n_init=8`` vs ``n_init=1`` (bayesgmm only; on a CPU the restarts are vmapped when the data
  fit in one block and run one after another otherwise, see
  ``bayesgmm.core.em.restarts_one_at_a_time``): per-iteration time ratio by the same
  differencing, between max_iter=1 and max_iter=``--n-init-iters`` (default: 30 for small shapes,
  5 when N*K*D^2 >= 1e7, to keep the run short); all 8 restarts start from the same parameters.
* The JSON also holds process CPU seconds per iteration (all threads), which is less sensitive
  to other load on the machine than wall time.

Thread settings are left at the libraries' defaults unless ``--threads`` is given (it sets
OMP/OPENBLAS/MKL thread counts for the worker subprocesses, and with ``--threads 1`` also turns off
XLA's multi-threaded Eigen on CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from _machine import cpu_model as _cpu_model  # this folder: run as a script
from _machine import loadavg as _loadavg

DEFAULT_SHAPES = [(10_000, 2, 4), (100_000, 8, 8), (200_000, 32, 16)]
QUICK_SHAPES = [(10_000, 2, 4), (100_000, 8, 8)]
LIBS = ("bayesgmm", "sklearn", "gmmx")
REG_COVAR = 1e-6


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
def _parse_shape(s: str):
    parts = s.lower().replace(",", "x").split("x")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"shape {s!r}: expected NxDxK, e.g. 200000x32x16")
    n, d, k = (int(float(p)) for p in parts)
    return n, d, k


def _parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="only the small shapes " + str(QUICK_SHAPES))
    p.add_argument("--shapes", type=str, default=None,
                   help="comma-separated NxDxK list, e.g. '10000x2x4,200000x32x16'")
    p.add_argument("--dtypes", type=str, default="float32,float64", help="float32,float64")
    p.add_argument("--repeat", type=int, default=3, help="best-of-N timing (default 3)")
    p.add_argument("--n-iter", type=int, default=30, help="iterations of the long fit (default 30)")
    p.add_argument("--libs", type=str, default=",".join(LIBS), help="subset of " + ",".join(LIBS))
    p.add_argument("--n-init", type=int, default=8,
                   help="restarts for the bayesgmm n_init cost row (0 to skip; default 8)")
    p.add_argument("--n-init-iters", type=int, default=0,
                   help="max_iter of the long n_init fit (per-iteration by differencing with 1); "
                        "default: --n-iter for small shapes (N*K*D^2 < 1e7), else 5")
    p.add_argument("--threads", type=int, default=None,
                   help="set OMP/OPENBLAS/MKL threads (and XLA single-threading if 1) for the workers")
    p.add_argument("--platform", type=str, default=None,
                   help="JAX platform for the workers (JAX_PLATFORMS), e.g. cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=str, default=None, help="write machine-readable results here")
    # internal: run one dtype in this process
    p.add_argument("--_worker", type=str, default=None, help=argparse.SUPPRESS)
    p.add_argument("--_out", type=str, default=None, help=argparse.SUPPRESS)
    return p


def _shapes(args):
    if args.shapes:
        return [_parse_shape(s) for s in args.shapes.replace(";", " ").replace(",", " ").split()]
    return QUICK_SHAPES if args.quick else DEFAULT_SHAPES


def _log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# worker: one dtype, all shapes, in one process
# ---------------------------------------------------------------------------------------------
def _make_data(n, d, k, seed):
    """A K-component mixture sample (float64) and common starting parameters."""
    import numpy as np

    rng = np.random.default_rng([seed, n, d, k])
    centres = rng.normal(scale=4.0, size=(k, d))
    a = rng.normal(size=(k, d, d)) / np.sqrt(d)
    covs = a @ np.swapaxes(a, -1, -2) + 0.3 * np.eye(d)
    w = rng.dirichlet(np.full(k, 5.0))
    z = rng.choice(k, size=n, p=w)
    chol = np.linalg.cholesky(covs)
    x = centres[z] + np.einsum("nde,ne->nd", chol[z], rng.normal(size=(n, d)))
    # starting point shared by all libraries
    idx = rng.choice(n, size=k, replace=False)
    means0 = x[idx].copy()
    cov0 = np.broadcast_to(np.cov(x, rowvar=False).reshape(d, d), (k, d, d)).copy()
    weights0 = np.full(k, 1.0 / k)
    return x, weights0, means0, cov0


def _timed(fn):
    """Wall and process-CPU seconds of one call, and its result."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def _worker(args):
    dtype_name = args._worker
    x64 = dtype_name == "float64"
    import jax

    jax.config.update("jax_enable_x64", x64)
    import jax.numpy as jnp
    import numpy as np
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture as SkGMM

    import bayesgmm
    from bayesgmm.core.density import default_block_size
    from bayesgmm.infer import fit_map

    warnings.simplefilter("ignore", ConvergenceWarning)
    libs = [s.strip() for s in args.libs.split(",") if s.strip()]
    skipped = {}
    if "gmmx" in libs and x64:
        # gmmx 0.7 checks that every parameter array is float32 (gmm.check_shape)
        libs.remove("gmmx")
        skipped["gmmx"] = "gmmx only supports float32 (its check_shape rejects other dtypes)"
    if "gmmx" in libs:
        import gmmx
        from gmmx import EMFitter, GaussianMixtureModelJax
    np_dtype = np.dtype(dtype_name)
    jdtype = jnp.float64 if x64 else jnp.float32
    m_long, m_short = int(args.n_iter), 1
    n_diff = m_long - m_short
    repeat = max(1, int(args.repeat))

    results = []
    for n, d, k in _shapes(args):
        _log(f"[{dtype_name}] N={n} D={d} K={k}: generating data")
        x64_data, w0, mu0, c0 = _make_data(n, d, k, args.seed)
        x = x64_data.astype(np_dtype)
        w0c, mu0c, c0c = w0.astype(np_dtype), mu0.astype(np_dtype), c0.astype(np_dtype)
        rec = {"dtype": dtype_name, "n": n, "d": d, "k": k, "libs": {}, "skipped": dict(skipped)}

        # -- bayesgmm (what bayesgmm.GaussianMixture(prior=None).fit calls) -------------------
        def bg_fit(max_iter, n_init=1):
            res = fit_map(
                jax.random.PRNGKey(0), x, n_components=k, covariance_type="full", prior=None,
                tol=0.0, max_iter=max_iter, reg_covar=REG_COVAR, n_init=n_init,
                init_params_method="random_from_data",
                weights_init=w0, means_init=mu0, covariances_init=c0, dtype=jdtype,
            )
            jax.block_until_ready(res.params)
            return res

        # -- scikit-learn ---------------------------------------------------------------------
        prec0 = np.linalg.inv(c0).astype(np_dtype)

        def sk_fit(max_iter):
            g = SkGMM(
                n_components=k, covariance_type="full", tol=0.0, reg_covar=REG_COVAR,
                max_iter=max_iter, n_init=1, init_params="random_from_data",
                weights_init=w0c, means_init=mu0c, precisions_init=prec0, random_state=0,
            )
            g.fit(x)
            return g

        # -- gmmx -----------------------------------------------------------------------------
        gmmx_tol = [0.0]
        if "gmmx" in libs:
            xj = jax.device_put(jnp.asarray(x))
            gmm0 = GaussianMixtureModelJax.from_squeezed(
                means=jnp.asarray(mu0c), covariances=jnp.asarray(c0c), weights=jnp.asarray(w0c),
                covariance_type="full",
            )

            def gx_fit(max_iter):
                r = EMFitter(max_iter=max_iter, tol=gmmx_tol[0], reg_covar=REG_COVAR).fit(xj, gmm0)
                return jax.block_until_ready(r)

        runners = {
            "bayesgmm": (bg_fit, lambda r: int(r.n_iter)),
            "sklearn": (sk_fit, lambda g: int(g.n_iter_)),
        }
        if "gmmx" in libs:
            runners["gmmx"] = (gx_fit, lambda r: int(r.n_iter))

        # warm-up: compiles the JAX programs (gmmx's max_iter is static: both values compile)
        note = {lib: "" for lib in libs}
        for lib in libs:
            fit, n_iter_of = runners[lib]
            _log(f"[{dtype_name}] N={n} D={d} K={k}: {lib} warm-up")
            fit(m_short)
            if lib == "gmmx":
                if n_iter_of(fit(m_long)) != m_long:
                    gmmx_tol[0] = -1.0
                    note[lib] = "gmmx stopped early at tol=0 (exact zero change); timed with tol=-1"
                    fit(m_short)
                    fit(m_long)
        ni = int(args.n_init or 0)
        m_ni = int(args.n_init_iters) or (m_long if n * k * d * d < 1e7 else 5)
        m_ni = max(2, min(m_ni, m_long))
        if "bayesgmm" in libs and ni > 1:
            _log(f"[{dtype_name}] N={n} D={d} K={k}: bayesgmm n_init={ni} warm-up")
            bg_fit(m_short, ni)
            runners["bayesgmm_n_init"] = (lambda m: bg_fit(m, ni), lambda r: int(r.n_iter))
        # timing: rounds interleave the libraries so that a change in machine load hits all of
        # them alike; per library the best (minimum) t(max_iter=1) and t(max_iter=m) are kept.
        best = {lib: {} for lib in runners}
        for rnd in range(repeat):
            _log(f"[{dtype_name}] N={n} D={d} K={k}: timing round {rnd + 1}/{repeat}")
            for lib, (fit, n_iter_of) in runners.items():
                m_hi = m_ni if lib == "bayesgmm_n_init" else m_long
                for m in (m_short, m_hi):
                    t, c, r = _timed(lambda: fit(m))
                    b = best[lib].setdefault(m, {"t": np.inf, "cpu": np.inf, "result": None})
                    b["t"], b["cpu"] = min(b["t"], t), min(b["cpu"], c)
                    b["result"] = r
        for lib in libs:
            _, n_iter_of = runners[lib]
            lo, hi = best[lib][m_short], best[lib][m_long]
            r_long = hi["result"]
            it_short, it_long = n_iter_of(lo["result"]), n_iter_of(r_long)
            per_iter = (hi["t"] - lo["t"]) / n_diff
            entry = {
                "per_iter_s": per_iter,
                "per_iter_cpu_s": (hi["cpu"] - lo["cpu"]) / n_diff,
                "t_fit_max_iter_1_s": lo["t"],
                "t_fit_max_iter_long_s": hi["t"],
                "max_iter_long": m_long,
                "n_iter_short": it_short,
                "n_iter_long": it_long,
                "iterations_ok": it_short == m_short and it_long == m_long,
                "note": note[lib],
            }
            # log-likelihood per sample evaluated at the parameters after (m_long - 1) M-steps,
            # which all three report: a cross-check that they ran the same algorithm.
            if lib == "bayesgmm":
                entry["mean_loglik"] = float(r_long.history[m_long - 1]) / n
                entry["compute_dtype"] = str(np.asarray(r_long.params.means).dtype)
                entry["block_size"] = int(min(n, default_block_size(k, d)))
            elif lib == "sklearn":
                entry["mean_loglik"] = float(r_long.lower_bound_)
                entry["compute_dtype"] = str(r_long.means_.dtype)
            else:
                entry["mean_loglik"] = float(r_long.log_likelihood)
                entry["compute_dtype"] = str(np.asarray(r_long.gmm.means).dtype)
            rec["libs"][lib] = entry
            _log(f"    {lib}: {per_iter * 1e3:.2f} ms/iter (iters {it_short}/{it_long}) {note[lib]}")
        if "bayesgmm_n_init" in runners:
            lo, hi = best["bayesgmm_n_init"][m_short], best["bayesgmm_n_init"][m_ni]
            per_iter = (hi["t"] - lo["t"]) / (m_ni - m_short)
            base = rec["libs"]["bayesgmm"]
            rec["bayesgmm_n_init"] = {
                "n_init": ni,
                "per_iter_s": per_iter,
                "per_iter_cpu_s": (hi["cpu"] - lo["cpu"]) / (m_ni - m_short),
                "per_iter_ratio_vs_n_init_1": per_iter / base["per_iter_s"],
                "t_fit_max_iter_1_s": lo["t"],
                "fit_max_iter_1_ratio_vs_n_init_1": lo["t"] / base["t_fit_max_iter_1_s"],
                "timed_max_iter": [m_short, m_ni],
                "n_iter": int(hi["result"].n_iter),
            }
            _log(f"    bayesgmm n_init={ni}: {per_iter * 1e3:.2f} ms/iter "
                 f"({per_iter / base['per_iter_s']:.2f}x n_init=1)")
        rec["loadavg"] = _loadavg()
        results.append(rec)

    info = {
        "dtype": dtype_name,
        "jax_enable_x64": bool(jax.config.jax_enable_x64),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(dv) for dv in jax.devices()],
        "versions": {
            "jax": jax.__version__,
            "jaxlib": __import__("jaxlib").__version__,
            "numpy": np.__version__,
            "sklearn": sklearn.__version__,
            "bayesgmm": bayesgmm.__version__,
            "gmmx": _dist_version("gmmx") if "gmmx" in libs else None,
        },
    }
    with open(args._out, "w") as f:
        json.dump({"info": info, "results": results}, f)


def _dist_version(name):
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # pragma: no cover
        return "?"


# ---------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _machine_info(args):
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "loadavg_start": _loadavg(),
        "thread_env": {v: os.environ.get(v) for v in _THREAD_VARS + ("XLA_FLAGS", "JAX_PLATFORMS")},
    }
    if args.threads is not None:
        info["threads_arg"] = args.threads
    return info




def _worker_env(args, dtype):
    env = dict(os.environ)
    env["JAX_ENABLE_X64"] = "1" if dtype == "float64" else "0"
    if args.threads is not None:
        for v in _THREAD_VARS:
            env[v] = str(args.threads)
        if args.threads == 1:
            flags = env.get("XLA_FLAGS", "")
            env["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                "intra_op_parallelism_threads=1").strip()
    if args.platform:
        env["JAX_PLATFORMS"] = args.platform
    return env


def _fmt_ms(s):
    if s is None:
        return "-"
    ms = s * 1e3
    return f"{ms:.3g}" if ms < 10 else f"{ms:.1f}"


def _ratio(a, b):
    if a is None or b is None or b <= 0:
        return "-"
    return f"{a / b:.2f}x"


def _table(results, n_iter, n_init):
    ni_label = f"n_init={n_init}" if n_init and n_init > 1 else "n_init"
    head = (f"{'dtype':<8}{'N':>8}{'D':>4}{'K':>4} | {'bayesgmm':>9}{'sklearn':>9}{'gmmx':>9}"
            f" | {'sk/bg':>7}{'gmmx/bg':>8} | {ni_label:>10}{'/n_init=1':>10} | {'iters':>5}"
            f" {'max|dLL|':>9}")
    units = (f"{'':<24} | {'ms/iter':>9}{'ms/iter':>9}{'ms/iter':>9} | {'':>15} |"
             f" {'ms/iter':>9}{'':>10} | {'ok':>5}")
    lines = [head, units, "-" * len(head)]
    notes = []
    for rec in results:
        libs = rec["libs"]
        get = lambda lib: libs[lib]["per_iter_s"] if lib in libs else None  # noqa: E731
        bg, sk, gx = get("bayesgmm"), get("sklearn"), get("gmmx")
        ni = rec.get("bayesgmm_n_init")
        ok = all(e["iterations_ok"] for e in libs.values())
        lls = [e["mean_loglik"] for e in libs.values()]
        dll = max(lls) - min(lls) if lls else float("nan")
        lines.append(
            f"{rec['dtype']:<8}{rec['n']:>8}{rec['d']:>4}{rec['k']:>4} | {_fmt_ms(bg):>9}"
            f"{_fmt_ms(sk):>9}{_fmt_ms(gx):>9} | {_ratio(sk, bg):>7}{_ratio(gx, bg):>8} | "
            f"{_fmt_ms(ni['per_iter_s'] if ni else None):>9}"
            f"{(format(ni['per_iter_ratio_vs_n_init_1'], '.2f') + 'x') if ni else '-':>10} | "
            f"{'yes' if ok else 'NO':>5} {dll:>9.2e}"
        )
        for lib, why in rec.get("skipped", {}).items():
            nt = f"{rec['dtype']}: {lib} n/a -- {why}"
            if nt not in notes:
                notes.append(nt)
        for lib, e in libs.items():
            if e.get("note"):
                notes.append(f"{rec['dtype']} {rec['n']}x{rec['d']}x{rec['k']} {lib}: {e['note']}")
            if not e["iterations_ok"]:
                notes.append(f"{rec['dtype']} {rec['n']}x{rec['d']}x{rec['k']} {lib}: ran "
                             f"{e['n_iter_short']}/{e['n_iter_long']} iterations, not 1/{n_iter}")
    return "\n".join(lines), notes


def main(argv=None):
    args = _parser().parse_args(argv)
    if args._worker:
        _worker(args)
        return 0
    dtypes = [s.strip() for s in args.dtypes.split(",") if s.strip()]
    for dt in dtypes:
        if dt not in ("float32", "float64"):
            raise SystemExit(f"unknown dtype {dt!r}")
    machine = _machine_info(args)
    worker_infos, results = {}, []
    passthrough = ["--repeat", str(args.repeat), "--n-iter", str(args.n_iter), "--libs", args.libs,
                   "--n-init", str(args.n_init), "--n-init-iters", str(args.n_init_iters),
                   "--seed", str(args.seed)]
    if args.shapes:
        passthrough += ["--shapes", args.shapes]
    elif args.quick:
        passthrough += ["--quick"]
    for dt in dtypes:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tf:
            out = tf.name
        try:
            cmd = [sys.executable, os.path.abspath(__file__), "--_worker", dt, "--_out", out] + passthrough
            subprocess.run(cmd, env=_worker_env(args, dt), check=True)
            with open(out) as f:
                payload = json.load(f)
        finally:
            if os.path.exists(out):
                os.unlink(out)
        worker_infos[dt] = payload["info"]
        results.extend(payload["results"])

    machine["loadavg_end"] = _loadavg()
    first = next(iter(worker_infos.values()))
    print()
    print("EM speed benchmark: bayesgmm (fit_map, prior=None) vs scikit-learn vs gmmx")
    print(f"machine : {machine['cpu_model']}, os.cpu_count()={machine['cpu_count']}, "
          f"{machine['platform']}, python {machine['python']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in first["versions"].items() if v))
    print(f"load    : 1/5/15-min load average {machine['loadavg_start']} at start, "
          f"{machine['loadavg_end']} at end (other processes on the machine inflate timings)")
    print(f"jax     : backend={first['jax_backend']}, devices={first['jax_devices']}")
    print("threads : " + ", ".join(f"{k}={v}" for k, v in machine["thread_env"].items())
          + (f" (set by --threads {args.threads} for the workers)" if args.threads is not None
             else " (library defaults; the script sets nothing)"))
    print(f"method  : full covariance, ML-EM, reg_covar={REG_COVAR}, tol=0, identical data and "
          f"starting parameters; per-iteration = (t(max_iter={args.n_iter}) - t(max_iter=1)) / "
          f"{args.n_iter - 1}, best of {args.repeat} interleaved rounds after warm-up (excludes JIT "
          "compile and initialisation); float64 runs in a subprocess with jax_enable_x64")
    dts = sorted({(r['dtype'], lib, e['compute_dtype']) for r in results for lib, e in r['libs'].items()})
    print("compute dtypes (fitted params): " + ", ".join(f"{d}:{lib}={c}" for d, lib, c in dts))
    print()
    table, notes = _table(results, args.n_iter, args.n_init)
    print(table)
    print()
    print("sk/bg, gmmx/bg: how many times slower per iteration than bayesgmm (>1: bayesgmm faster).")
    if args.n_init and args.n_init > 1:
        print(f"n_init={args.n_init}: bayesgmm per-iteration time with {args.n_init} restarts (vmapped on one block "
              "of data, in turn on more), and its ratio to n_init=1 (differencing max_iter=1 and max_iter="
              + (str(args.n_init_iters) if args.n_init_iters else f"{args.n_iter}, or 5 when N*K*D^2 >= 1e7")
              + ").")
    print("max|dLL|: spread of the mean log-likelihood after the same number of EM steps across the "
          "libraries (cross-check that they ran the same algorithm).")
    for nt in notes:
        print("note: " + nt)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "workers": worker_infos, "args": {
                k: v for k, v in vars(args).items() if not k.startswith("_")}, "results": results},
                f, indent=2)
        print(f"\nJSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
