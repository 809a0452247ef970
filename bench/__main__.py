"""Run every benchmark and rewrite ``bench/RESULTS.md``: ``python -m bench [--quick] [--only ...]``.

``python -m bench --gpu [...]`` runs the GPU rows instead (EM, matmul and NUTS; see ``bench/gpu.py``).

Each benchmark is a script in this folder that compares bayesgmm with an alternative on the same
data in the same process and prints its own table with the ratios; this runner starts each in a
fresh subprocess (so that one's compiled programs and memory do not affect another), records the
machine's conditions (CPU count and model, load average before and after, versions), and writes
every table, verbatim, into RESULTS.md. ``--quick`` uses the small shapes (minutes); the full mode
uses the shapes of the goals and takes much longer.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from ._machine import cpu_model as _cpu_model
from ._machine import loadavg as _loadavg

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

#: name -> (title, quick arguments, full arguments)
BENCHMARKS = {
    "startup": ("Fresh-process speed: import, first fit, BIC grid and the main job vs scikit-learn "
                "(empty and warm compilation cache)", ["--quick"], []),
    "em_speed": ("EM per iteration: bayesgmm vs scikit-learn vs gmmx",
                 ["--quick", "--dtypes", "float32", "--repeat", "2"], []),
    "em_scaling": ("EM scaling in N, K and D (vs scikit-learn); compile time; recompiles",
                   ["--quick"], []),
    "nuts_speed": ("NUTS: min bulk-ESS per second vs a hand-written NumPyro model and PyMC",
                   ["--quick"], []),
    "nuts_mass": ("NUTS: diagonal vs dense mass matrix, chains from the MAP vs a broad start",
                  ["--quick", "--mass-repeats", "2"], []),
    "vi_speed": ("VI: MAP-EM + SVI vs scikit-learn's BayesianGaussianMixture", ["--quick"], []),
    "em_missing": ("EM with 20% of the cells missing vs complete data; marginalising vs dropping rows "
                   "or imputing means", ["--quick"], []),
    "memory": ("Peak memory of a large fit (goal: N=2M, D=32, K=64, float32, under 2 GB)",
               ["--n", "500000"], []),
    "vi_large": ("Minibatch VI at N=10M on a CPU", ["--quick"], []),
    "starts": ("EM starts: how often the default start reaches the best-known optimum, vs scikit-learn",
               ["--quick"], ["--data-dir", os.path.join(ROOT, "..", "shared", "data")]),
    "seeds": ("Seed 003's scikit-learn workflow, fresh processes: scikit-learn vs bayesgmm per stage",
              ["--ci"], []),
}


def _versions():
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("bayesgmm", "jax", "jaxlib", "numpyro", "numpy", "scikit-learn", "gmmx", "pymc"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except Exception:  # pragma: no cover
        return "unknown"


def run_one(name, args, timeout):
    cmd = [sys.executable, os.path.join(HERE, f"{name}.py")] + args
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    load0 = _loadavg()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        out, rc = proc.stdout, proc.returncode
        err = proc.stderr
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err, rc = f"timed out after {timeout} s", "timeout"
    return {"cmd": "python " + " ".join([os.path.relpath(cmd[1], ROOT)] + args), "stdout": out,
            "stderr": err, "rc": rc, "seconds": time.perf_counter() - t0, "load_start": load0,
            "load_end": _loadavg()}


GPU_TABLE = """## GPU

| shape (N, D, K), full covariance | bayesgmm ms/iter | gmmx ms/iter | plain matmul X @ W ms | bayesgmm / matmul | gmmx / bayesgmm |
|---|---|---|---|---|---|
| (1M, 32, 64) | not measured: no device lent | | | | |
| (10M, 16, 16) | not measured: no device lent | | | | |

Goal: within 2.5x of the matmul and at least 1.5x faster than gmmx. To measure on a GPU:
`pip install "bayesgmm[cuda]"` and `python -m bench --gpu --out bench/RESULTS_GPU.md` (= `python bench/gpu.py`:
these EM rows, the matmul, and the large-N NUTS rows vs the hand-written NumPyro model, in one
command; `python -m bench --gpu --tiny --platform cpu` checks it on a CPU in a minute or two).
"""


def write_results(path, mode, records, started, machine):
    lines = [
        "# bayesgmm benchmark results",
        "",
        f"Written by `python -m bench{' --quick' if mode == 'quick' else ''}` on "
        f"{machine.get('started', f'{started:%Y-%m-%d %H:%M}')} UTC, commit `{machine['commit']}`, mode **{mode}** (a section "
        "run separately with `--only` says its own mode and time).",
        "",
        "## Conditions of this run",
        "",
        f"- CPU: {machine['cpu_model']}, `os.cpu_count()` = {machine['cpu_count']}; "
        f"{machine['platform']}, Python {machine['python']}",
        f"- load average (1/5/15 min): {machine['load_start']} at the start, {machine['load_end']} at "
        "the end; every benchmark's own start/end load is given with its table. A load above the "
        "CPU count means other processes shared the cores: absolute times are then inflated, and "
        "ratios between libraries measured in the same process are the more meaningful numbers.",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v),
        "- thread settings: library defaults (the runner sets no thread variables).",
        "",
    ]
    for key, rec in records.items():
        name, _, extra = key.partition(":")
        title = BENCHMARKS[name][0] + (f" ({extra} mode)" if extra else "")
        lines += [f"## {title}", "",
                  f"`{rec['cmd']}` ({rec.get('mode', mode)} mode, started {rec.get('started', '?')} UTC) -- "
                  f"{rec['seconds']:.0f} s, load {rec['load_start']} -> {rec['load_end']}"
                  + ("" if rec["rc"] == 0 else f", **exit status {rec['rc']}**"), "", "```",
                  rec["stdout"].rstrip() or "(no output)", "```", ""]
        if rec["rc"] != 0:
            lines += ["stderr (last lines):", "", "```", "\n".join(rec["stderr"].splitlines()[-15:]), "```", ""]
    lines.append(GPU_TABLE)
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small shapes (minutes)")
    ap.add_argument("--only", type=str, default=None, help="comma-separated subset of " + ",".join(BENCHMARKS))
    ap.add_argument("--out", type=str, default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per benchmark")
    ap.add_argument("--rewrite", action="store_true",
                    help="only rewrite RESULTS.md from the stored results (bench/RESULTS.json)")
    ap.add_argument("--gpu", action="store_true",
                    help="run the GPU rows instead (bench/gpu.py; the other options go to it, "
                         "e.g. --gpu --tiny --platform cpu)")
    args, rest = ap.parse_known_args(argv)
    if args.gpu:
        from . import gpu

        return gpu.main(rest + (["--out", args.out] if "--out" in (argv or sys.argv[1:]) else []))
    if rest:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    names = list(BENCHMARKS) if not args.only else [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    mode = "quick" if args.quick else "full"
    started = datetime.datetime.now(datetime.timezone.utc)
    machine = {"cpu_model": _cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
               "python": platform.python_version(), "load_start": _loadavg(), "versions": _versions(),
               "commit": _git_commit(), "started": f"{started:%Y-%m-%d %H:%M}"}
    store = os.path.splitext(args.out)[0] + ".json"
    records = {}
    if (args.only or args.rewrite) and os.path.exists(store):  # keep the others' last results
        with open(store) as f:
            previous = json.load(f)
        records = {k: v for k, v in previous.get("records", {}).items() if k.partition(":")[0] in BENCHMARKS}
        machine = previous.get("machine", machine) | {"versions": machine["versions"]}
    if args.rewrite:
        names = []
    for name in names:
        _, quick, full = BENCHMARKS[name]
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        t_start = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M}"
        # a section run in the other mode than the stored file's is kept next to it
        key = name if mode == machine.get("mode", mode) else f"{name}:{mode}"
        records[key] = run_one(name, quick if args.quick else full, args.timeout)
        records[key]["mode"] = mode
        records[key]["started"] = t_start
        print(records[key]["stdout"], flush=True)
        print(f"[bench] {name}: exit {records[key]['rc']} in {records[key]['seconds']:.0f} s",
              file=sys.stderr, flush=True)
    if not (args.only or args.rewrite):
        machine["load_end"] = _loadavg()
    ordered = {k: records[k] for b in BENCHMARKS for k in sorted(records) if k.partition(":")[0] == b}
    write_results(args.out, machine.get("mode", mode), ordered, started, machine)
    machine.setdefault("mode", mode)
    with open(store, "w") as f:
        json.dump({"machine": machine, "records": ordered}, f, indent=1)
    print(f"[bench] wrote {args.out}", file=sys.stderr)
    return 0 if all(r["rc"] == 0 for r in records.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
