"""What ``bayesgmm fit`` does: fit the model, compare, write the report directory; and :func:`main`.

A *fitter* per inference method (``_FITTERS`` for the MAP, ``_POSTERIOR_FITTERS`` for NUTS and
VI) turns a :class:`~bayesgmm.cli.data.Dataset` and :class:`FitSettings` into a fitted estimator
or posterior; :func:`_run` runs them in turn (after model selection with ``--select`` /
``--covariance auto``), with one progress line per step on stderr, and collects everything in a
:class:`RunResult`; :func:`write_outputs` writes the report directory (``report.html``, laid out
by :func:`bayesgmm.report.build_report`, ``summary.csv``, the posteriors as ArviZ netCDF, the MAP
model); :func:`main` parses the options, runs the command and prints its text
(:func:`bayesgmm.cli.text.format_run`) or its one-line error.

Output directory policy (``--out``, default ``bayesgmm_report``): the files are built in a
temporary directory beside it and moved into place only once all of them are written, so a failed
run leaves ``--out`` as it was. A new ``--out`` is created; in an existing one, only the files
this command writes (:data:`REPORT_FILES`) are replaced or, when this run does not produce them
(e.g. ``posterior_vi.nc`` after ``--method nuts``), removed; any other file is left alone.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..comparison import _entries, compare, full_covariances
from ..estimator import GaussianMixture
from ..report import build_report, make_figures, render_html
from ..selection import select
from .arguments import (
    COVARIANCE_CHOICES, DEFAULT_CHAINS, DEFAULT_N_INIT, DEFAULT_SAMPLES, DEFAULT_SEED, DEFAULT_VI_STEPS,
    DEFAULT_WARMUP, MODEL_FILE, PROG, UNCERTAIN_BELOW, CLIError, build_parser,
)
from .data import Dataset, _check_rows_and_columns, load_data
from .text import format_run, format_selection, format_uncertainty

#: Above this many rows the posterior partition of the comparison uses the most probable
#: components instead of Binder's loss (whose co-clustering matrix is n x n).
MAX_ROWS_BINDER = 2000

#: Every file ``bayesgmm fit`` may write in ``--out``; only these are ever replaced or removed.
REPORT_FILES = (
    "report.html", "summary.csv", "selection.csv", "imputed.csv", "posterior_nuts.nc", "posterior_vi.nc",
    MODEL_FILE,
)


# ----------------------------------------------------------------------------------------------
# fitting
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FitSettings:
    """The model and algorithm options shared by every inference method."""

    n_components: int
    covariance_type: str = "full"
    seed: int = DEFAULT_SEED
    n_init: int = DEFAULT_N_INIT
    num_chains: int = DEFAULT_CHAINS
    num_warmup: int = DEFAULT_WARMUP
    num_samples: int = DEFAULT_SAMPLES
    vi_steps: int = DEFAULT_VI_STEPS
    progress: bool = False
    criterion: str = "bic"
    missing: str = "error"


@dataclasses.dataclass
class FitOutcome:
    """A fitted estimator and the warnings its fit raised (shown as notes, not tracebacks)."""

    estimator: object
    notes: list
    seconds: float = 0.0


@contextlib.contextmanager
def _recorded(notes: list):
    """Collect warnings as notes (one line each) and keep ArviZ's logged warnings off stderr."""
    from .. import _arviz  # lazy: it imports xarray, which `import bayesgmm.cli` does not need

    loggers = _arviz.loggers()
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        for w in caught:
            if not issubclass(w.category, (DeprecationWarning, FutureWarning)):
                text = " ".join(str(w.message).split())
                if text not in notes:
                    notes.append(text)


def _fit_map(data: Dataset, settings: FitSettings) -> FitOutcome:
    """MAP-EM with the default prior: ``GaussianMixture(prior="default")``."""
    _check_rows_and_columns(data, settings.n_components)
    gm = GaussianMixture(
        n_components=settings.n_components,
        covariance_type=settings.covariance_type,
        prior="default",
        n_init=settings.n_init,
        random_state=settings.seed,
        missing=settings.missing,
    )
    notes: list = []
    t0 = time.perf_counter()
    with _recorded(notes):
        try:
            gm.fit(data.X)
        except ValueError as exc:  # input the model cannot take (e.g. a constant column)
            raise CLIError(str(exc)) from None
        except FloatingPointError as exc:  # the fit itself failed; the message says what to change
            raise CLIError(str(exc), status=1) from None
    return FitOutcome(gm, notes, time.perf_counter() - t0)


@dataclasses.dataclass
class PosteriorOutcome:
    """A :class:`bayesgmm.Posterior`, the warnings of its run and its wall time."""

    name: str
    posterior: object
    notes: list
    seconds: float


def _fit_posterior(method: str, estimator, data: Dataset, settings: FitSettings) -> PosteriorOutcome:
    if method == "nuts":
        options = dict(num_warmup=settings.num_warmup, num_samples=settings.num_samples,
                       num_chains=settings.num_chains)
    else:  # as many VI draws as NUTS keeps, so the two summaries have the same Monte Carlo error
        options = dict(num_steps=settings.vi_steps, num_samples=settings.num_chains * settings.num_samples)
    from .. import _arviz  # noqa: F401 -- lazy (xarray); imported first, so that _recorded quiets ArviZ's logger

    notes: list = []
    t0 = time.perf_counter()
    with _recorded(notes):
        try:
            post = estimator.fit_posterior(
                # (no NumPyro bars: their host callbacks keep the sampler out of the on-disk cache)
                data.X, method=method, random_state=settings.seed, progress_bar=False, **options
            )
        except (ValueError, FloatingPointError) as exc:  # the run failed numerically; says what to change
            raise CLIError(f"{method}: {exc}", status=1) from None
    post.feature_names = list(data.feature_names)  # before .idata is built: names the feature dim
    return PosteriorOutcome(method, post, notes, time.perf_counter() - t0)


def _fit_nuts(estimator, data: Dataset, settings: FitSettings) -> PosteriorOutcome:
    """NUTS from the MAP, ``settings.num_chains`` chains (vectorised), relabelled to the MAP."""
    return _fit_posterior("nuts", estimator, data, settings)


def _fit_vi(estimator, data: Dataset, settings: FitSettings) -> PosteriorOutcome:
    """SVI with a mean-field normal guide started at the MAP."""
    return _fit_posterior("vi", estimator, data, settings)


#: Inference methods by name: the MAP first, then the posteriors of the same model from it.
_FITTERS: dict[str, Callable[[Dataset, FitSettings], FitOutcome]] = {"map": _fit_map}
_POSTERIOR_FITTERS: dict[str, Callable[..., PosteriorOutcome]] = {"nuts": _fit_nuts, "vi": _fit_vi}


def _select(data: Dataset, ks: Sequence[int], covariance_types: Sequence[str], settings: FitSettings):
    """:func:`bayesgmm.select` by ``settings.criterion`` over ``ks`` x ``covariance_types``.

    Returns (Selection, notes, seconds). LOO and WAIC fit NUTS at every grid point with the run's
    chains, warm-up and draws.
    """
    _check_rows_and_columns(data, max(ks), option="components in --select")
    notes: list = []
    t0 = time.perf_counter()
    with _recorded(notes):
        try:
            sel = select(
                data.X, n_components=list(ks), covariance_types=list(covariance_types),
                criterion=settings.criterion, n_init=settings.n_init, random_state=settings.seed,
                progress_bar=settings.progress, posterior_options=dict(
                    num_chains=settings.num_chains, num_warmup=settings.num_warmup,
                    num_samples=settings.num_samples),
                missing=settings.missing,
            )
        except ValueError as exc:  # no grid point could be fitted
            raise CLIError(str(exc), status=1) from None
    return sel, notes, time.perf_counter() - t0


class _Steps:
    """One line per long step on stderr (``[2/4] NUTS ... done in 12.3 s``); silent when disabled."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.i = total, enabled, 0

    @contextlib.contextmanager
    def step(self, text: str):
        self.i += 1
        t0 = time.perf_counter()
        if self.enabled:
            print(f"{PROG}: [{self.i}/{self.total}] {text} ...", file=sys.stderr, flush=True)
        yield
        if self.enabled:
            print(f"{PROG}: [{self.i}/{self.total}] done in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr, flush=True)


def _uncertainty_counts(model, X) -> dict:
    """How many points are unsure of their component, from a Posterior or a GaussianMixture."""
    if hasattr(model, "assignment_probabilities"):
        a = model.assignment_probabilities(X)
        p = a.mean
        top = np.argmax(p, axis=1)
        rows = np.arange(p.shape[0])
        width = a.upper[rows, top] - a.lower[rows, top]
        lower_below = int(np.sum(a.lower[rows, top] < UNCERTAIN_BELOW))
    else:
        p = np.asarray(model.predict_proba(X), np.float64)
        width, lower_below = None, None
    pmax = np.max(p, axis=1)
    return {
        "n": int(p.shape[0]),
        "n_uncertain": int(np.sum(pmax < UNCERTAIN_BELOW)),
        "mean_uncertainty": float(np.mean(1.0 - pmax)),
        "max_interval_width": None if width is None else float(np.max(width)),
        "n_lower_below": lower_below,
    }


@dataclasses.dataclass
class RunResult:
    """Everything one ``bayesgmm fit`` computed (what the text and the report are made from)."""

    data: Dataset
    settings: FitSettings
    fit: FitOutcome
    bic: float
    selection: object = None
    selection_notes: list = dataclasses.field(default_factory=list)
    posteriors: list = dataclasses.field(default_factory=list)
    comparison: object = None
    uncertainty: dict | None = None
    uncertainty_source: str = "MAP"
    command: str = ""
    imputation: dict | None = None

    def notes(self) -> list:
        out = list(self.selection_notes) + list(self.fit.notes)
        for o in self.posteriors:
            out += [f"{o.name}: {n}" for n in o.notes]
        if any(word in n for n in out for word in ("num_samples", "num_warmup", "num_chains")):
            out.append("on the command line, num_samples, num_warmup and num_chains are --samples, --warmup "
                       "and --chains")
        return list(dict.fromkeys(out))


def _method_names(method: str) -> list:
    return ["nuts", "vi"] if method == "all" else ([] if method == "map" else [method])


def _run(args: argparse.Namespace, data: Dataset, progress: bool) -> RunResult:
    posterior_methods = _method_names(args.method)
    selecting = args.select is not None or args.covariance == "auto"
    n_steps = 1 + len(posterior_methods) + (1 if posterior_methods else 0)
    steps = _Steps(n_steps, progress)
    base = dict(seed=args.seed, n_init=args.n_init, num_chains=args.chains, num_warmup=args.warmup,
                num_samples=args.samples, vi_steps=args.vi_steps, progress=progress,
                criterion=args.criterion or "bic", missing=args.missing)
    sel, sel_notes = None, []
    if selecting:
        ks = args.select if args.select is not None else (
            (args.components,) if args.components is not None else (data.default_components,))
        cts = COVARIANCE_CHOICES if args.covariance == "auto" else (args.covariance,)
        fits = "MAP fits" if base["criterion"] in ("bic", "aic", "icl") else "MAP + NUTS fits"
        with steps.step(f"model selection by {base['criterion'].upper()}: K in {', '.join(map(str, ks))} x "
                        f"covariance {', '.join(cts)} ({len(ks) * len(cts)} {fits})"):
            sel, sel_notes, _ = _select(data, ks, cts, FitSettings(n_components=max(ks), **base))
        settings = FitSettings(n_components=sel.best_params_["n_components"],
                               covariance_type=sel.best_params_["covariance_type"], **base)
        fit = FitOutcome(sel.best_estimator_, [], 0.0)
    else:
        settings = FitSettings(
            n_components=args.components if args.components is not None else data.default_components,
            covariance_type=args.covariance, **base)
        with steps.step(f"MAP-EM: K = {settings.n_components}, covariance = {settings.covariance_type}, "
                        f"{settings.n_init} start(s)"):
            fit = _FITTERS["map"](data, settings)
    gm = fit.estimator
    result = RunResult(data, settings, fit, float(gm.bic(data.X)), selection=sel, selection_notes=sel_notes,
                       command=" ".join([PROG] + list(args.argv)))
    for method in posterior_methods:
        what = (f"NUTS: {settings.num_chains} chain(s) x ({settings.num_warmup} warm-up + "
                f"{settings.num_samples} draws), from the MAP" if method == "nuts" else
                f"VI: {settings.vi_steps} SVI steps, {settings.num_chains * settings.num_samples} draws")
        with steps.step(what):
            result.posteriors.append(_POSTERIOR_FITTERS[method](gm, data, settings))
    if result.posteriors:
        with steps.step("EM next to the posterior, assignment uncertainty"), _recorded(result.fit.notes):
            loss = "binder" if data.n_samples <= MAX_ROWS_BINDER else None
            result.comparison = compare(gm, *[o.posterior for o in result.posteriors], X=data.X,
                                        partition_loss=loss, threshold=UNCERTAIN_BELOW)
            first = result.posteriors[0]
            result.uncertainty = _uncertainty_counts(first.posterior, data.X)
            result.uncertainty_source = f"{first.name} posterior"
    else:
        result.uncertainty = _uncertainty_counts(gm, data.X)
        result.uncertainty_source = "MAP responsibilities"
    if data.n_missing:
        result.imputation = _imputation(gm, result.posteriors, data, settings.seed)
    return result


def _imputation(gm, posteriors, data: Dataset, seed: int) -> dict:
    """Per missing cell: its row and feature, the MAP's conditional mean (``GaussianMixture.impute``)
    and, with a posterior, the posterior predictive mean and central 90% interval
    (``Posterior.impute_summary``)."""
    rows, cols = np.nonzero(np.isnan(data.X))
    out = {"row": rows, "feature": np.asarray(data.feature_names, dtype=object)[cols],
           "map": gm.impute(data.X)[rows, cols]}
    if posteriors:
        t = posteriors[0].posterior.impute_summary(data.X, interval=(0.05, 0.95), random_state=seed)
        out["source"] = posteriors[0].name
        for key in ("mean", "lower", "upper"):
            out[f"posterior_{key}"] = np.asarray(t[key], np.float64)
    return out


# ----------------------------------------------------------------------------------------------
# files: the report directory
# ----------------------------------------------------------------------------------------------
def write_model(estimator, path) -> Path:
    """Write the fitted MAP model to ``path`` with :meth:`GaussianMixture.save` (``bayesgmm.load`` reads it)."""
    estimator.save(path)
    return Path(path)


def _write_posterior(post, path) -> Path:
    """The posterior with :meth:`Posterior.save`: netCDF-4 that ``arviz.from_netcdf`` opens and
    ``bayesgmm.load_posterior`` restores (NUTS runs can be extended from it)."""
    post.save(path)
    return Path(path)


def _write_csv(path, header, rows) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _map_entries_rows(gm, feature_names):
    k, d = np.shape(gm.means_)
    entries = _entries(
        np.asarray(gm.weights_, np.float64), np.asarray(gm.means_, np.float64),
        full_covariances(gm.covariances_, gm.covariance_type, k, d), gm.covariance_type, feature_names,
    )
    return [[name, var, repr(float(value))] for name, (var, value) in entries.items()]


def write_outputs(result: RunResult, directory) -> list:
    """Write the report files of ``result`` into ``directory`` (which must exist); returns their names.

    ``report.html`` (self-contained), ``summary.csv`` (the EM-vs-posterior table of
    :func:`bayesgmm.compare`, or the MAP entries with ``--method map``), ``selection.csv`` (with
    ``--select`` / ``--covariance auto``), ``posterior_nuts.nc`` / ``posterior_vi.nc`` (ArviZ
    netCDF of the relabelled posteriors) and the MAP model (:data:`MODEL_FILE`).
    """
    directory = Path(directory)
    gm = result.fit.estimator
    files = []
    write_model(gm, directory / MODEL_FILE)
    files.append(MODEL_FILE)
    for o in result.posteriors:
        name = f"posterior_{o.name}.nc"
        _write_posterior(o.posterior, directory / name)
        files.append(name)
    if result.comparison is not None:
        table = result.comparison.table
        if hasattr(table, "to_csv"):
            table.to_csv(directory / "summary.csv")
        else:  # pandas missing: the dict-of-arrays form
            cols = list(table)
            _write_csv(directory / "summary.csv", cols, zip(*(table[c] for c in cols)))
    else:
        _write_csv(directory / "summary.csv", ["parameter", "variable", "map"],
                   _map_entries_rows(gm, result.data.feature_names))
    files.append("summary.csv")
    if result.imputation is not None:
        imp = result.imputation
        cols = [c for c in ("row", "feature", "map", "posterior_mean", "posterior_lower", "posterior_upper") if c in imp]
        _write_csv(directory / "imputed.csv", cols, zip(*(imp[c] for c in cols)))
        files.append("imputed.csv")
    if result.selection is not None:
        t = result.selection.table
        if hasattr(t, "to_csv"):
            t.to_csv(directory / "selection.csv", index=False)
        else:
            cols = list(t)
            _write_csv(directory / "selection.csv", cols, zip(*(t[c] for c in cols)))
        files.append("selection.csv")
    figures = make_figures(
        result.data.X, result.data.feature_names, gm,
        posteriors={o.name: o.posterior for o in result.posteriors},
        comparison=result.comparison, selection=result.selection,
    )
    files.append("report.html")
    content = build_report(
        result, figures, files,
        selection_text="" if result.selection is None else format_selection(result.selection),
        uncertainty_text="" if result.uncertainty is None else format_uncertainty(
            result.uncertainty_source, result.uncertainty),
    )
    html = render_html(content)
    (directory / "report.html").write_text(html, encoding="utf-8")
    return files


def _prepare_out(out: str) -> tuple[Path, Path]:
    """Check ``--out`` and make the staging directory beside it: (out, staging)."""
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise CLIError(f"--out {out!r} exists and is not a directory; choose another --out")
    for name in REPORT_FILES:
        if (target / name).is_dir():
            raise CLIError(f"--out {out!r} holds a directory named {name!r}; remove it or choose another --out")
    parent = target.resolve().parent
    if not parent.is_dir():
        raise CLIError(f"--out {out!r}: the directory {str(parent)!r} does not exist; create it first")
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
    except OSError as exc:
        raise CLIError(f"--out {out!r} cannot be written: {exc.strerror or exc}") from None
    return target, staging


def _publish(staging: Path, target: Path, files: Sequence[str]) -> None:
    """Move the staged files into ``target``: a rename when it is new, else file by file."""
    if not target.exists():
        os.replace(staging, target)
        return
    for name in files:  # report.html last: a reader never sees a report whose files are missing
        os.replace(staging / name, target / name)
    for name in REPORT_FILES:  # our files that this run did not produce would describe another run
        if name not in files and (target / name).is_file():
            (target / name).unlink()


# ----------------------------------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------------------------------
def _cmd_fit(args: argparse.Namespace) -> int:
    if args.select is not None and args.components is not None:
        raise CLIError("--components and --select exclude each other: fix K with --components or choose it "
                       "with --select")
    if args.criterion is not None and args.select is None and args.covariance != "auto":
        raise CLIError(f"--criterion {args.criterion} chooses a model: use it with --select A..B or "
                       "--covariance auto")
    if args.dropna and args.missing == "marginalize":
        raise CLIError("--dropna and --missing marginalize exclude each other: drop the incomplete rows or "
                       "keep their missing cells")
    data = load_data(args.data, columns=args.columns, dropna=args.dropna, keep_missing=args.missing == "marginalize")
    # input checks before any work or any file
    k_max = max(args.select) if args.select is not None else (
        args.components if args.components is not None else data.default_components)
    _check_rows_and_columns(data, k_max, "components in --select" if args.select is not None else "--components")
    progress = not args.quiet
    target = staging = None
    if not args.no_report:
        try:
            import matplotlib  # noqa: F401 -- lazy: an optional dependency, only the report's figures need it
        except ImportError:
            raise CLIError("the report needs matplotlib: pip install matplotlib, or pass --no-report") from None
        target, staging = _prepare_out(args.out)
    try:
        result = _run(args, data, progress)
        files = None
        if staging is not None:
            if progress:
                print(f"{PROG}: writing the report ...", file=sys.stderr, flush=True)
            with _recorded(result.fit.notes):
                files = write_outputs(result, staging)
            _publish(staging, target, files)
        print(format_run(result, files, args.out))
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return 0


#: The commands of :func:`build_parser` by name (``args.command``).
_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"fit": _cmd_fit}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 on success, 2 for bad input).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help and --version
            return int(exc.code or 0)
        if args.command is None:
            raise CLIError(f"choose a command: fit (see '{PROG} --help')")
        args.argv = argv
        return _COMMANDS[args.command](args)
    except CLIError as exc:
        message = " ".join(str(exc).split())
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return exc.status
