"""Execute the research notebooks and store them with their outputs (figures included).

Usage, from the repository root with the ``notebooks`` extra installed
(``pip install -e ".[notebooks]"``)::

    python -m notebooks.run                  # all six, full mode (what is committed)
    python -m notebooks.run 01 05            # the notebooks whose names start with 01 or 05
    python -m notebooks.run --fast 03        # fast mode (BAYESGMM_NOTEBOOK_FAST=1), for a quick look
    python -m notebooks.run --check          # only check that stored outputs match the sources

Each executed notebook gets ``metadata["bayesgmm"]``: ``source_sha256`` (the hash of its code
cells' sources, :func:`source_hash`), ``mode`` (``"full"`` or ``"fast"``), ``run_seconds`` and
the versions it ran with. ``tests/test_notebooks.py`` fails when a notebook's stored outputs
were not produced from its current code cells (the hash differs), so an edited notebook must be
re-run with this command before it is committed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
META_KEY = "bayesgmm"
TIMEOUT_S = 4 * 3600  # per cell: a full-mode cell (notebook 03's grids) can take long on 2 cores


def notebook_paths(patterns=()) -> list[Path]:
    """The notebooks in ``notebooks/`` whose names start with one of ``patterns`` (all if none)."""
    paths = sorted(HERE.glob("*.ipynb"))
    if patterns:
        paths = [p for p in paths if any(p.name.startswith(pat) for pat in patterns)]
    return paths


def source_hash(nb) -> str:
    """SHA-256 of the code cells' sources, in order (markdown cells and outputs excluded).

    Line endings are normalised and trailing whitespace of each cell ignored, so the hash
    changes exactly when code that produces the outputs changes.
    """
    h = hashlib.sha256()
    for cell in nb.cells:
        if cell.cell_type == "code":
            src = cell.source.replace("\r\n", "\n").rstrip()
            h.update(src.encode("utf-8"))
            h.update(b"\n\x00cell\x00\n")
    return h.hexdigest()


def check(nb) -> list[str]:
    """What is wrong with a stored notebook's outputs (empty list when they match its sources).

    The outputs must come from one in-order run of all code cells of the current sources: the
    stored ``source_sha256`` equals :func:`source_hash`, and the execution counts are 1, 2, ...
    """
    problems = []
    meta = nb.metadata.get(META_KEY)
    if not meta or "source_sha256" not in meta:
        return ["no stored outputs (run: python -m notebooks.run)"]
    if meta["source_sha256"] != source_hash(nb):
        problems.append("the code cells changed since the outputs were stored (run: python -m notebooks.run)")
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    if counts != list(range(1, len(counts) + 1)):
        problems.append(f"the code cells were not run once each, in order (execution counts {counts})")
    return problems


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("bayesgmm", "jax", "numpyro", "arviz", "numpy", "matplotlib"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def execute(path: Path, fast: bool = False, timeout: int = TIMEOUT_S, verbose: bool = True):
    """Run one notebook top to bottom in a fresh kernel and write it back with its outputs."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # nothing from an earlier run survives
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
    env_fast = os.environ.pop("BAYESGMM_NOTEBOOK_FAST", None)
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend stores the figures as PNG
    if fast:
        os.environ["BAYESGMM_NOTEBOOK_FAST"] = "1"
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    n_code = sum(c.cell_type == "code" for c in nb.cells)
    t0 = time.perf_counter()
    last = [t0]

    def progress(cell, cell_index, **_):  # one line per code cell: long runs show where they are
        if cell.cell_type == "code" and verbose:
            now = time.perf_counter()
            print(f"  {path.name}: cell {cell.execution_count}/{n_code} (#{cell_index}) "
                  f"{now - last[0]:.0f} s", flush=True)
            last[0] = now

    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                                     resources={"metadata": {"path": str(HERE)}},
                                     on_cell_executed=progress)
    try:
        client.execute()
    finally:
        os.environ.pop("BAYESGMM_NOTEBOOK_FAST", None)
        if env_fast is not None:
            os.environ["BAYESGMM_NOTEBOOK_FAST"] = env_fast
    seconds = time.perf_counter() - t0
    nb.metadata[META_KEY] = {
        "source_sha256": source_hash(nb),
        "mode": "fast" if fast else "full",
        "run_seconds": round(seconds, 1),
        "versions": _versions(),
    }
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m notebooks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="name prefixes (e.g. 01 05); default: all notebooks")
    parser.add_argument("--fast", action="store_true", help="fast mode (BAYESGMM_NOTEBOOK_FAST=1)")
    parser.add_argument("--check", action="store_true", help="only check the stored outputs")
    parser.add_argument("--timeout", type=int, default=TIMEOUT_S, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = notebook_paths(args.names)
    if not paths:
        parser.error(f"no notebook matches {args.names}")
    status = 0
    for path in paths:
        if args.check:
            import nbformat

            problems = check(nbformat.read(path, as_version=4))
            for p in problems:
                print(f"{path.name}: {p}")
            status |= bool(problems)
            continue
        print(f"{path.name}: running ({'fast' if args.fast else 'full'} mode) ...", flush=True)
        seconds = execute(path, fast=args.fast, timeout=args.timeout)
        print(f"{path.name}: done in {seconds:.0f} s", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
