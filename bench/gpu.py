"""The GPU rows in one command: EM per iteration (vs gmmx and a plain matmul) and NUTS at large N.

Usage::

    python bench/gpu.py                          # on a machine with a CUDA GPU (pip install "bayesgmm[cuda]")
    python bench/gpu.py --out bench/RESULTS_GPU.md
    python bench/gpu.py --tiny --platform cpu    # tiny shapes on the CPU: checks that it all runs
    python -m bench --gpu [--tiny --platform cpu]   # the same, from the benchmark runner

What runs (each part in its own subprocess with ``JAX_PLATFORMS=<--platform>``, default ``cuda``):

1. **EM** -- ``bench/em_speed.py --shapes 1000000x32x64,10000000x16x16 --dtypes float32 --libs
   bayesgmm,gmmx --n-init 0``: ms per EM iteration of bayesgmm and gmmx on the same data and
   start (gmmx is left out when it is not installed).
2. **Matmul** -- the floor an EM iteration is compared with: the whitening product of the E-step,
   ``X @ W`` with ``X`` (N, D) and ``W`` (D, K*D), float32, jitted, median of ``--repeat`` timed
   calls after a warm-up call (``block_until_ready``). The EM goal: bayesgmm within 2.5x of it.
3. **NUTS** -- ``bench/nuts_speed.py --shapes 100000x4x4,1000000x2x3``: bayesgmm vs the
   hand-written NumPyro model, 4 vectorized chains from the same MAP (on a GPU bayesgmm's
   ``chain_method="auto"`` is vectorized too), min bulk-ESS per second and us per leapfrog step.

``--tiny`` swaps in small shapes and short chains (a minute or two on a CPU), to check that the
script works where no GPU is at hand. The tables are printed and, with ``--out``, written to a
Markdown file with the command, the date, the devices and the versions.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

EM_SHAPES = "1000000x32x64,10000000x16x16"
NUTS_SHAPES = "100000x4x4,1000000x2x3"
TINY = {"em": "4000x4x4", "nuts": "2000x2x3"}


def _env(platform):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    if platform:
        env["JAX_PLATFORMS"] = platform
    return env


def _run(title, cmd, env, timeout):
    print(f"[gpu] {title}: {' '.join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd[1:])}",
          file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        out, err, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err, rc = f"timed out after {timeout} s", "timeout"
    rec = {"title": title, "cmd": "python " + " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c
                                                      for c in cmd[1:]),
           "stdout": out, "stderr": err, "rc": rc, "seconds": time.perf_counter() - t0}
    print(out, flush=True)
    if rc != 0:
        print("\n".join(err.splitlines()[-15:]), file=sys.stderr, flush=True)
    return rec


def _matmul(shapes, repeat):
    """Worker: time ``X @ W`` (float32) for each (N, D, K) on the default JAX device."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    print(f"plain matmul X @ W, X (N, D), W (D, K*D), float32; device {jax.devices()[0]}")
    print(f"{'N':>10s} {'D':>4s} {'K':>4s} {'ms (median)':>12s} {'ms (min)':>10s}")
    f = jax.jit(lambda x, w: jnp.dot(x, w, precision=jax.lax.Precision.HIGHEST))
    for n, d, k in shapes:
        rng = np.random.default_rng(0)
        x = jax.device_put(rng.normal(size=(n, d)).astype(np.float32))
        w = jax.device_put(rng.normal(size=(d, k * d)).astype(np.float32))
        jax.block_until_ready(f(x, w))
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            jax.block_until_ready(f(x, w))
            times.append(time.perf_counter() - t0)
        print(f"{n:10d} {d:4d} {k:4d} {1e3 * float(np.median(times)):12.3f} {1e3 * min(times):10.3f}")
        del x, w


def _parse(text):
    return [tuple(int(float(v)) for v in s.lower().split("x")) for s in text.split(",") if s.strip()]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--platform", default="cuda", help="JAX_PLATFORMS of the runs (default cuda)")
    ap.add_argument("--tiny", action="store_true", help="small shapes, short chains (checks the script)")
    ap.add_argument("--em-shapes", default=None, help=f"NxDxK,... (default {EM_SHAPES})")
    ap.add_argument("--nuts-shapes", default=None, help=f"NxDxK,... (default {NUTS_SHAPES})")
    ap.add_argument("--only", default="em,matmul,nuts", help="subset of em,matmul,nuts")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per part")
    ap.add_argument("--out", default=None, help="also write the tables to this Markdown file")
    ap.add_argument("--_matmul", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._matmul:
        _matmul(_parse(args._matmul), args.repeat)
        return 0

    em_shapes = args.em_shapes or (TINY["em"] if args.tiny else EM_SHAPES)
    nuts_shapes = args.nuts_shapes or (TINY["nuts"] if args.tiny else NUTS_SHAPES)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    env = _env(args.platform)
    started = datetime.datetime.now(datetime.timezone.utc)
    py = sys.executable
    try:
        import gmmx  # noqa: F401

        libs = "bayesgmm,gmmx"
    except ImportError:
        libs = "bayesgmm"
    records = []
    if "em" in parts:
        cmd = [py, os.path.join(HERE, "em_speed.py"), "--platform", args.platform or "",
               "--shapes", em_shapes, "--dtypes", "float32", "--libs", libs, "--n-init", "0",
               "--repeat", str(min(args.repeat, 3))]
        if args.tiny:
            cmd += ["--n-iter", "5"]
        records.append(_run("EM per iteration", cmd, env, args.timeout))
    if "matmul" in parts:
        cmd = [py, os.path.abspath(__file__), "--_matmul", em_shapes, "--repeat", str(args.repeat)]
        records.append(_run("plain matmul", cmd, env, args.timeout))
    if "nuts" in parts:
        cmd = [py, os.path.join(HERE, "nuts_speed.py"), "--shapes", nuts_shapes]
        if args.tiny:
            cmd += ["--large-warmup", "20", "--large-draws", "20", "--large-chains", "2"]
        records.append(_run("NUTS at large N", cmd, env, args.timeout))

    devices = subprocess.run([py, "-c", "import jax; print(jax.devices())"], env=env,
                             capture_output=True, text=True).stdout.strip()
    if args.out:
        lines = ["# bayesgmm GPU benchmarks", "",
                 f"`python bench/gpu.py {' '.join(argv if argv is not None else sys.argv[1:])}` on "
                 f"{started:%Y-%m-%d %H:%M} UTC, JAX_PLATFORMS={args.platform}, devices {devices}", ""]
        for rec in records:
            lines += [f"## {rec['title']}", "", f"`{rec['cmd']}` -- {rec['seconds']:.0f} s"
                      + ("" if rec["rc"] == 0 else f", **exit status {rec['rc']}**"), "", "```",
                      rec["stdout"].rstrip() or "(no output)", "```", ""]
        with open(args.out, "w") as f:
            f.write("\n".join(lines))
        with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
            json.dump({"started": f"{started:%Y-%m-%d %H:%M}", "devices": devices,
                       "records": records}, f, indent=1)
        print(f"[gpu] wrote {args.out}", file=sys.stderr)
    return 0 if all(r["rc"] == 0 for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
