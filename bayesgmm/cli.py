"""Command-line front: ``bayesgmm fit [DATA.csv] ...`` fits a Gaussian mixture three ways and writes a report.

The work is split so that new options slot in without reshaping it: :func:`build_parser` declares
the options, :func:`load_data` turns them into a :class:`Dataset`, a *fitter* (one per inference
method, see ``_FITTERS`` and ``_POSTERIOR_FITTERS``) turns data and :class:`FitSettings` into a
fitted estimator or posterior, the ``format_*`` functions render the text, and
:func:`write_outputs` writes the report directory (``report.html``, ``summary.csv``, the
posteriors as ArviZ netCDF, the MAP model). Every user error is a :class:`CLIError`, printed as one
line ``bayesgmm: error: ...`` with exit status 2; no traceback reaches the user.

Output directory policy (``--out``, default ``bayesgmm_report``): the files are built in a
temporary directory beside it and moved into place only once all of them are written, so a failed
run leaves ``--out`` as it was. A new ``--out`` is created; in an existing one, only the files
this command writes (:data:`REPORT_FILES`) are replaced or, when this run does not produce them
(e.g. ``posterior_vi.nc`` after ``--method nuts``), removed; any other file is left alone.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "main", "build_parser", "CLIError", "Dataset", "FitSettings", "load_data", "format_map_summary",
    "REPORT_FILES", "write_outputs",
]

PROG = "bayesgmm"
COVARIANCE_CHOICES = ("full", "tied", "diag", "spherical")
METHOD_CHOICES = ("map", "nuts", "vi", "all")
CRITERION_CHOICES = ("bic", "aic", "icl", "loo", "waic")
#: Components fitted when ``--components`` is not given and the data set has no default of its own.
DEFAULT_COMPONENTS = 2
DEFAULT_N_INIT = 5
DEFAULT_SEED = 0
DEFAULT_METHOD = "all"
DEFAULT_CHAINS = 4
DEFAULT_WARMUP = 500
DEFAULT_SAMPLES = 500
DEFAULT_VI_STEPS = 2000
DEFAULT_OUT = "bayesgmm_report"
#: A point is "uncertain" when its largest assignment probability is below this.
UNCERTAIN_BELOW = 0.9
#: Above this many rows the posterior partition of the comparison uses the most probable
#: components instead of Binder's loss (whose co-clustering matrix is n x n).
MAX_ROWS_BINDER = 2000

#: The MAP model written by :func:`write_model` (in ``--out``; ``bayesgmm.load`` reads it).
MODEL_FILE = "model.npz"
#: Every file ``bayesgmm fit`` may write in ``--out``; only these are ever replaced or removed.
REPORT_FILES = (
    "report.html", "summary.csv", "selection.csv", "posterior_nuts.nc", "posterior_vi.nc", MODEL_FILE,
)


class CLIError(Exception):
    """A problem with the user's input or options: reported as one line, exit status ``status``."""

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


class _ArgumentParser(argparse.ArgumentParser):
    """argparse, but usage errors become a :class:`CLIError` (one line, exit 2, no usage dump)."""

    def error(self, message):  # noqa: D401 - argparse's hook
        raise CLIError(f"{message} (see '{self.prog} --help')")


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Dataset:
    """Data ready to fit, with what the summary says about it."""

    name: str
    X: np.ndarray
    feature_names: tuple
    n_dropped: int = 0
    default_components: int = DEFAULT_COMPONENTS

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]


@dataclasses.dataclass(frozen=True)
class _Embedded:
    file: str
    name: str
    default_components: int


#: The data set used when no DATA file is given.
EMBEDDED = _Embedded(
    file="faithful.csv",
    name="Old Faithful geyser (embedded; R datasets::faithful, 272 eruptions)",
    default_components=2,
)


def load_data(path: str | None, columns: str | None = None, dropna: bool = False) -> Dataset:
    """Read ``path`` (a CSV file) or, when ``path`` is None, the embedded Old Faithful data.

    Raises
    ------
    CLIError
        With the reader's message when the file is missing or its columns are unusable.
    """
    from .datasets import load_csv

    try:
        if path is None:
            ref = resources.files("bayesgmm.datasets") / EMBEDDED.file
            with resources.as_file(ref) as file:
                X, names, n_dropped = load_csv(file, columns=columns, dropna=dropna)
            return Dataset(EMBEDDED.name, X, names, n_dropped, EMBEDDED.default_components)
        X, names, n_dropped = load_csv(path, columns=columns, dropna=dropna)
    except (OSError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    return Dataset(str(path), X, names, n_dropped)


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


@dataclasses.dataclass
class FitOutcome:
    """A fitted estimator and the warnings its fit raised (shown as notes, not tracebacks)."""

    estimator: object
    notes: list
    seconds: float = 0.0


def _check_rows_and_columns(data: Dataset, n_components: int, option: str = "--components") -> None:
    """Enough rows for ``n_components`` and no constant column (the default prior needs a spread)."""
    if data.n_samples < n_components:
        raise CLIError(
            f"too few rows for {n_components} components: {data.name} has "
            f"{data.n_samples} usable row(s); use fewer {option} or more data"
        )
    constant = [name for name, col in zip(data.feature_names, data.X.T) if np.ptp(col) == 0]
    if constant:
        raise CLIError(
            f"constant column(s) {', '.join(repr(c) for c in constant)} in {data.name}: the default "
            "prior takes its scales from each column's spread; leave them out with --columns"
        )


@contextlib.contextmanager
def _recorded(notes: list):
    """Collect warnings as notes (one line each) and keep ArviZ's logged warnings off stderr."""
    from . import _arviz

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
    from .estimator import GaussianMixture

    _check_rows_and_columns(data, settings.n_components)
    gm = GaussianMixture(
        n_components=settings.n_components,
        covariance_type=settings.covariance_type,
        prior="default",
        n_init=settings.n_init,
        random_state=settings.seed,
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
    from . import _arviz  # noqa: F401 -- imports ArviZ first, so that _recorded quiets its logger

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
    from .selection import select

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


# ----------------------------------------------------------------------------------------------
# output
# ----------------------------------------------------------------------------------------------
def _num(value: float) -> str:
    return f"{value:.5g}"


def _table(rows: list[list[str]], indent: str = "  ", right: Sequence[int] = ()) -> list[str]:
    """Columns padded to their widest cell; indices in ``right`` are right-aligned."""
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [c.rjust(w) if j in right else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths))]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def _component_sds(gm, n_features: int) -> np.ndarray:
    """Per-component, per-feature standard deviations (K, D) for any covariance type."""
    cov = np.asarray(gm.covariances_, dtype=np.float64)
    k = gm.weights_.shape[0]
    ct = gm.covariance_type
    if ct == "full":
        var = np.diagonal(cov, axis1=-2, axis2=-1)
    elif ct == "tied":
        var = np.broadcast_to(np.diag(cov), (k, n_features))
    elif ct == "diag":
        var = cov
    else:  # spherical
        var = np.repeat(cov[:, None], n_features, axis=1)
    return np.sqrt(var)


def _correlation(cov: np.ndarray) -> np.ndarray:
    sd = np.sqrt(np.diag(cov))
    return cov / np.outer(sd, sd)


def _correlation_lines(label: str, corr: np.ndarray, names: Sequence[str]) -> list[str]:
    if len(names) == 2:
        return [f"  {label}: r({names[0]}, {names[1]}) = {corr[0, 1]:+.3f}"]
    rows = [[""] + list(names)]
    rows += [[names[i]] + [f"{corr[i, j]:+.3f}" for j in range(len(names))] for i in range(len(names))]
    return [f"  {label}:"] + _table(rows, indent="    ", right=range(1, len(names) + 1))


def format_map_summary(
    data: Dataset, settings: FitSettings, outcome: FitOutcome, bic: float, *, notes: bool = True,
    chosen_by: str | None = None,
) -> str:
    """The text of a MAP-EM fit: data, settings, components, correlations, fit (and its notes).

    ``chosen_by`` (e.g. ``"1..8"``) says that K and the covariance were chosen by BIC over that grid.
    """
    from . import __version__

    gm = outcome.estimator
    names = data.feature_names
    d = data.n_features
    ct = gm.covariance_type
    weights = np.asarray(gm.weights_, dtype=np.float64)
    means = np.asarray(gm.means_, dtype=np.float64)
    sds = _component_sds(gm, d)
    # Components are ordered by the mean of the first feature so that repeated runs read alike.
    order = np.argsort(means[:, 0], kind="stable")

    dropped = f"; {data.n_dropped} row(s) with missing values dropped" if data.n_dropped else ""
    out = [
        f"{PROG} {__version__}: Gaussian mixture, MAP estimate by EM",
        "",
        f"data      {data.name}",
        f"          N = {data.n_samples} samples, D = {d} feature(s): {', '.join(names)}{dropped}",
        f"settings  K = {settings.n_components} components, covariance = {ct}, "
        "prior = default (bayesgmm.Prior())",
        f"          n_init = {settings.n_init} start(s), seed = {settings.seed}",
    ]
    if chosen_by is not None:
        out.append(f"          chosen by {settings.criterion.upper()} over K = {chosen_by} "
                   "(see model selection below)")
    out += [
        "",
        f"components (ordered by mean {names[0]})",
    ]
    rows = [["k", "weight", "feature", "mean", "sd"]]
    for rank, k in enumerate(order, start=1):
        for j, name in enumerate(names):
            first = j == 0
            empty = weights[k] == 0
            rows.append(
                [
                    str(rank) if first else "",
                    f"{weights[k]:.3f}" if first else "",
                    name,
                    "(empty)" if empty else _num(means[k, j]),
                    "" if empty else _num(sds[k, j]),
                ]
            )
    out += _table(rows, right=(0, 3, 4))

    out.append("")
    if ct == "full" and d > 1:
        out.append("correlations (full covariance: one matrix per component)")
        cov = np.asarray(gm.covariances_, dtype=np.float64)
        for rank, k in enumerate(order, start=1):
            if weights[k] > 0:
                out += _correlation_lines(f"component {rank}", _correlation(cov[k]), names)
    elif ct == "tied" and d > 1:
        out.append("correlations (tied covariance: shared by all components)")
        out += _correlation_lines("all components", _correlation(np.asarray(gm.covariances_)), names)
    elif d > 1:
        out.append(f"correlations: none ({ct} covariance: features independent within a component)")
    if d > 1:
        out.append("")

    converged = "yes" if gm.converged_ else "NO"
    out += [
        "fit",
        f"  log posterior / N  {_num(gm.lower_bound_)}  (lower_bound_, MAP objective per sample)",
        f"  converged          {converged}, after {gm.n_iter_} EM iteration(s); best of {settings.n_init} start(s)",
        f"  BIC                {_num(bic)}  (at the MAP; lower is better)",
    ]
    if notes:
        for note in outcome.notes:
            out.append(f"note: {' '.join(note.split())}")
    return "\n".join(out)


def _component_order(gm) -> np.ndarray:
    """Estimator labels in the order of the component table (by the mean of the first feature)."""
    return np.argsort(np.asarray(gm.means_, dtype=np.float64)[:, 0], kind="stable")


def _label_mapping(gm) -> str:
    order = _component_order(gm)
    return ", ".join(f"label {int(k)} is component {rank} above" for rank, k in enumerate(order, start=1))


def format_selection(sel) -> str:
    """The criterion's grid of :func:`bayesgmm.select` as text: one row per K, one column per covariance type."""
    ks = sel.column("n_components").astype(int)
    cts = sel.column("covariance_type").astype(str)
    crit = sel.criterion
    values = sel.column(crit).astype(np.float64)
    best = (sel.best_params_["n_components"], sel.best_params_["covariance_type"])
    types = list(dict.fromkeys(cts))
    rows = [["K"] + types]
    for k in sorted(set(ks.tolist())):
        row = [str(k)]
        for ct in types:
            hit = np.flatnonzero((ks == k) & (cts == ct))
            v = values[hit[0]] if hit.size else np.nan
            cell = "failed" if not np.isfinite(v) else f"{v:.1f}"
            row.append(("*" if (k, ct) == best else "") + cell)
        rows.append(row)
    out = [f"model selection by {crit.upper()} (lower is better; * = chosen: K = {best[0]}, {best[1]})"]
    out += _table(rows, right=range(len(types) + 1))
    return "\n".join(out)


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


def format_uncertainty(source: str, counts: dict) -> str:
    n, u = counts["n"], counts["n_uncertain"]
    out = [
        f"assignment uncertainty ({source})",
        f"  {u} of {n} points ({u / n:.1%}) have max_k p(k | x) < {UNCERTAIN_BELOW:g}; "
        f"mean 1 - max_k p(k | x) = {counts['mean_uncertainty']:.3g}",
    ]
    if counts["n_lower_below"] is not None:
        out.append(
            f"  {counts['n_lower_below']} point(s) have the 5% bound of their top probability below "
            f"{UNCERTAIN_BELOW:g}; the widest 90% interval of a top probability is "
            f"{counts['max_interval_width']:.3f}"
        )
    return "\n".join(out)


def _comparison_rows(cmp) -> tuple[list, list]:
    """(header, rows) of the EM-vs-posterior table (str cells)."""
    params = cmp.column("parameter")
    header = ["parameter", "MAP"]
    for name in cmp.names:
        header += [f"{name} mean", f"{name} sd", f"{name} {cmp.hdi_prob:.0%} HDI", "MAP in HDI"]
    rows = []
    m = cmp.column("map").astype(np.float64)
    cols = {name: {c: cmp.column(f"{name}_{c}") for c in ("mean", "sd", "hdi_lower", "hdi_upper", "map_in_hdi")}
            for name in cmp.names}
    for i, param in enumerate(params):
        row = [str(param), _num(m[i])]
        for name in cmp.names:
            c = cols[name]
            row += [_num(c["mean"][i]), f"{float(c['sd'][i]):.3g}",
                    f"[{_num(c['hdi_lower'][i])}, {_num(c['hdi_upper'][i])}]",
                    "yes" if bool(c["map_in_hdi"][i]) else "NO"]
        rows.append(row)
    return header, rows


def _agreement_rows(cmp) -> tuple[list, list]:
    header = ["posterior", "ARI (EM labels vs partition)",
              f"EM labels with probability < {cmp.threshold:g}", "partition clusters", "MAP entries outside HDI"]
    rows = []
    for name in cmp.names:
        i = cmp.names.index(name)
        share = float(cmp.column("share_uncertain", "agreement")[i])
        rows.append([
            name,
            f"{float(cmp.column('ari', 'agreement')[i]):.3f}",
            f"{share:.1%}",
            str(int(cmp.column("partition_clusters", "agreement")[i])),
            str(int(cmp.column("n_outside_hdi", "agreement")[i])),
        ])
    return header, rows


def format_comparison(cmp, gm) -> str:
    """The EM-vs-posterior table and the agreement of the labels, as text."""
    header, rows = _comparison_rows(cmp)
    out = [
        f"EM (MAP) next to the posterior ({cmp.hdi_prob:.0%} HDI; bayesgmm.compare)",
        f"  parameters by the estimator's component label: {_label_mapping(gm)}",
    ]
    out += _table([header] + rows, right=range(1, len(header)))
    out.append("")
    header, rows = _agreement_rows(cmp)
    out.append("agreement of the EM labels with each posterior")
    out += _table([header] + rows, right=range(1, len(header)))
    return "\n".join(out)


def _diagnostic_rows(outcomes) -> tuple[list, list]:
    header = ["posterior", "draws", "max R-hat (before relabelling)", "min ESS bulk / tail",
              "divergences", "tree-depth hits", "draws relabelled", "seconds"]
    rows = []
    for o in outcomes:
        p, d = o.posterior, o.posterior.diagnostics()
        if p.method == "nuts":
            rows.append([
                o.name, f"{p.num_chains} x {p.num_samples} (+{p.num_warmup} warm-up)",
                f"{d['max_rhat']:.3f} ({d['max_rhat_before']:.3f})",
                f"{d['min_ess_bulk']:.0f} / {d['min_ess_tail']:.0f}",
                str(d["n_divergent"]), str(d["n_max_tree_depth"]), str(d["n_relabelled"]), f"{o.seconds:.1f}",
            ])
        else:  # independent draws from the fitted guide: R-hat and ESS do not apply
            steps = p.info.get("num_steps", "?")
            rows.append([o.name, f"{p.n_draws} (after {steps} SVI steps)", "n/a", "n/a", "n/a", "n/a",
                         str(d["n_relabelled"]), f"{o.seconds:.1f}"])
    return header, rows


def format_diagnostics(outcomes) -> str:
    header, rows = _diagnostic_rows(outcomes)
    out = ["diagnostics (after relabelling to the MAP; Posterior.diagnostics())"]
    out += _table([header] + rows, right=range(2, len(header)))
    for o in outcomes:
        p = o.posterior
        if p.method == "vi" and "elbo" in p.info:
            elbo = np.asarray(p.info["elbo"], np.float64)
            tail = elbo[-max(1, elbo.size // 10):]
            out.append(f"  {o.name}: final ELBO {_num(float(np.mean(tail)))} (mean of the last 10% of steps)")
    return "\n".join(out)


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
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _map_entries_rows(gm, feature_names):
    from .comparison import _entries, full_covariances

    k, d = np.shape(gm.means_)
    entries = _entries(
        np.asarray(gm.weights_, np.float64), np.asarray(gm.means_, np.float64),
        full_covariances(gm.covariances_, gm.covariance_type, k, d), gm.covariance_type, feature_names,
    )
    return [[name, var, repr(float(value))] for name, (var, value) in entries.items()]


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

    def notes(self) -> list:
        out = list(self.selection_notes) + list(self.fit.notes)
        for o in self.posteriors:
            out += [f"{o.name}: {n}" for n in o.notes]
        if any(word in n for n in out for word in ("num_samples", "num_warmup", "num_chains")):
            out.append("on the command line, num_samples, num_warmup and num_chains are --samples, --warmup "
                       "and --chains")
        return list(dict.fromkeys(out))


def _selection_tables(sel):
    from .report import Table, format_float

    ks = sel.column("n_components").astype(int)
    cts = sel.column("covariance_type").astype(str)
    best = (sel.best_params_["n_components"], sel.best_params_["covariance_type"])
    cols = ["n_parameters", "log_likelihood", "bic", "aic", "icl"]
    cols += [c for c in ("loo", "waic") if c in sel.table] + ["converged"]
    values = {c: sel.column(c) for c in cols}
    rows = []
    for i in range(ks.size):
        mark = "*" if (ks[i], cts[i]) == best else ""
        rows.append([f"{ks[i]}{mark}", cts[i]] + [format_float(values[c][i].item() if hasattr(values[c][i], "item")
                                                              else values[c][i], 6) for c in cols])
    names = {"n_parameters": "parameters", "log_likelihood": "log-likelihood", "converged": "converged"}
    return Table(["K", "covariance"] + [names.get(c, c.upper()) for c in cols], rows,
                 f"Every grid point (lower is better; * = chosen by {sel.criterion.upper()}).")


def build_report(result: RunResult, figures: list, files: Sequence[str]):
    """The :class:`bayesgmm.report.ReportContent` of a run (tables and the given figures)."""
    from . import __version__
    from .report import ReportContent, Section, Table

    data, settings, gm = result.data, result.settings, result.fit.estimator
    figs = {f.name: f for f in figures}
    used = set()

    def take(*names):
        out = [figs[n] for n in names if n in figs]
        used.update(f.name for f in out)
        return out

    names = data.feature_names
    weights = np.asarray(gm.weights_, np.float64)
    means = np.asarray(gm.means_, np.float64)
    sds = _component_sds(gm, data.n_features)
    rows = []
    for rank, k in enumerate(_component_order(gm), start=1):
        for j, name in enumerate(names):
            rows.append([str(rank) if j == 0 else "", str(int(k)) if j == 0 else "",
                         f"{weights[k]:.3f}" if j == 0 else "", name, _num(means[k, j]), _num(sds[k, j])])
    chosen = (f"K = {settings.n_components} components, covariance = {gm.covariance_type}"
              + (f" (chosen by {result.selection.criterion.upper()} over K = {_range_text(result.selection)})"
                 if result.selection is not None else ""))
    dropped = f"; {data.n_dropped} row(s) with missing values dropped" if data.n_dropped else ""
    sections = [Section(
        "Data and model",
        paragraphs=[
            f"Data: {data.name}; N = {data.n_samples} samples, D = {data.n_features} feature(s): "
            f"{', '.join(names)}{dropped}.",
            f"Model: {chosen}; prior = default (bayesgmm.Prior()); MAP by EM with {settings.n_init} "
            f"start(s), seed {settings.seed}.",
            f"Fit: log posterior / N = {_num(gm.lower_bound_)}, converged = "
            f"{'yes' if gm.converged_ else 'NO'} after {gm.n_iter_} EM iteration(s), BIC = {_num(result.bic)}.",
        ],
        tables=[Table(["k", "label", "weight", "feature", "mean", "sd"], rows,
                      f"MAP components, ordered by the mean of {names[0]} (label: the estimator's index).")],
        figures=take("map_ellipses", "map_density", "map_density_1d"),
    )]
    if result.selection is not None:
        sel = result.selection
        sections.append(Section(
            "Model selection",
            pre=format_selection(sel),
            tables=[_selection_tables(sel)],
            figures=take("criteria"),
        ))
    if result.comparison is not None:
        cmp = result.comparison
        header, rows = _comparison_rows(cmp)
        a_header, a_rows = _agreement_rows(cmp)
        sections.append(Section(
            "EM next to the posterior",
            paragraphs=[f"bayesgmm.compare: the MAP against each posterior's mean, sd and {cmp.hdi_prob:.0%} "
                        f"highest-density interval. Parameters are indexed by the estimator's component label: "
                        f"{_label_mapping(gm).replace(' above', ' of the component table')}."],
            tables=[Table(header, rows, "Per parameter entry (also in summary.csv)."),
                    Table(a_header, a_rows, "Agreement of the EM labels with each posterior.")],
            figures=take("comparison", "posterior_ellipses", "posterior_density_1d"),
        ))
    if result.posteriors:
        header, rows = _diagnostic_rows(result.posteriors)
        warn = [f"{o.name}: {w}" for o in result.posteriors for w in o.posterior.diagnostics()["warnings"]]
        sections.append(Section(
            "Diagnostics",
            paragraphs=["R-hat and ESS are computed after relabelling the draws to the MAP (values before "
                        "relabelling in brackets), so label switching does not inflate them."]
                       + (warn or ["No warnings: no divergences, R-hat <= 1.01, enough effective draws."]),
            tables=[Table(header, rows, "Posterior.diagnostics()")],
            figures=take("trace", "rank"),
        ))
    if result.uncertainty is not None:
        u = result.uncertainty
        text = format_uncertainty(result.uncertainty_source, u).splitlines()[1:]
        sections.append(Section(
            "Assignment uncertainty",
            paragraphs=[t.strip() for t in text],
            figures=take("uncertainty"),
        ))
    rest = [f for f in figures if f.name not in used]
    if rest:
        sections.append(Section("More figures", figures=rest))
    notes = result.notes()
    if notes:
        sections.append(Section("Notes", paragraphs=notes))
    sections.append(Section(
        "Files",
        paragraphs=[f"Command: {result.command}", "Written: " + ", ".join(files) + "."],
    ))
    return ReportContent(
        title=f"bayesgmm report: {data.name}",
        subtitle=f"bayesgmm {__version__}; {chosen}; methods: "
                 + ", ".join(["map"] + [o.name for o in result.posteriors]),
        sections=sections,
    )


def _range_text(sel) -> str:
    ks = sorted(set(sel.column("n_components").astype(int).tolist()))
    cts = list(dict.fromkeys(sel.column("covariance_type").astype(str).tolist()))
    ktext = f"{ks[0]}..{ks[-1]}" if ks == list(range(ks[0], ks[-1] + 1)) and len(ks) > 1 else ", ".join(map(str, ks))
    return ktext + (f" and covariance {', '.join(cts)}" if len(cts) > 1 else "")


def write_outputs(result: RunResult, directory) -> list:
    """Write the report files of ``result`` into ``directory`` (which must exist); returns their names.

    ``report.html`` (self-contained), ``summary.csv`` (the EM-vs-posterior table of
    :func:`bayesgmm.compare`, or the MAP entries with ``--method map``), ``selection.csv`` (with
    ``--select`` / ``--covariance auto``), ``posterior_nuts.nc`` / ``posterior_vi.nc`` (ArviZ
    netCDF of the relabelled posteriors) and the MAP model (:data:`MODEL_FILE`).
    """
    from .report import make_figures, render_html

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
    html = render_html(build_report(result, figures, files))
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
def _int_at_least(minimum: int, description: str) -> Callable[[str], int]:
    """An argparse ``type`` for integers >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {description}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "positive integer")
_seed = _int_at_least(0, "non-negative integer")
_draws = _int_at_least(4, "integer of at least 4")


def _k_range(text: str) -> tuple:
    """``--select``: ``A..B`` (inclusive), ``A-B`` or a list ``A,B,C`` of positive integers."""
    t = text.strip()
    try:
        if ".." in t or ("-" in t and not t.startswith("-")):
            lo, hi = (int(v) for v in t.replace("..", "-").split("-"))
            ks = tuple(range(lo, hi + 1)) if 1 <= lo <= hi else ()
        else:
            ks = tuple(sorted({int(v) for v in t.split(",")}))
    except ValueError:
        ks = ()
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(
            f"expected a range of positive component counts like 1..8 or a list like 2,3,5, got {text!r}")
    return ks


def _method_names(method: str) -> list:
    return ["nuts", "vi"] if method == "all" else ([] if method == "map" else [method])


def _run(args: argparse.Namespace, data: Dataset, progress: bool) -> RunResult:
    posterior_methods = _method_names(args.method)
    selecting = args.select is not None or args.covariance == "auto"
    n_steps = 1 + len(posterior_methods) + (1 if posterior_methods else 0)
    steps = _Steps(n_steps, progress)
    base = dict(seed=args.seed, n_init=args.n_init, num_chains=args.chains, num_warmup=args.warmup,
                num_samples=args.samples, vi_steps=args.vi_steps, progress=progress,
                criterion=args.criterion or "bic")
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
        from .comparison import compare

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
    return result


def format_run(result: RunResult, files: Sequence[str] | None = None, out: str | None = None) -> str:
    """The whole text that ``bayesgmm fit`` prints."""
    parts = [format_map_summary(result.data, result.settings, result.fit, result.bic, notes=False,
                                chosen_by=None if result.selection is None else _range_text(result.selection))]
    if result.selection is not None:
        parts.append(format_selection(result.selection))
    if result.comparison is not None:
        parts.append(format_comparison(result.comparison, result.fit.estimator))
    if result.posteriors:
        parts.append(format_diagnostics(result.posteriors))
    if result.uncertainty is not None:
        parts.append(format_uncertainty(result.uncertainty_source, result.uncertainty))
    tail = [f"note: {n}" for n in result.notes()]
    if files:
        tail.append(f"report    {os.path.join(out, 'report.html')}  (also: {', '.join(f for f in files if f != 'report.html')})")
    if tail:
        parts.append("\n".join(tail))
    return "\n\n".join(parts)


def _cmd_fit(args: argparse.Namespace) -> int:
    if args.select is not None and args.components is not None:
        raise CLIError("--components and --select exclude each other: fix K with --components or choose it "
                       "with --select")
    if args.criterion is not None and args.select is None and args.covariance != "auto":
        raise CLIError(f"--criterion {args.criterion} chooses a model: use it with --select A..B or "
                       "--covariance auto")
    data = load_data(args.data, columns=args.columns, dropna=args.dropna)
    # input checks before any work or any file
    k_max = max(args.select) if args.select is not None else (
        args.components if args.components is not None else data.default_components)
    _check_rows_and_columns(data, k_max, "components in --select" if args.select is not None else "--components")
    progress = not args.quiet
    target = staging = None
    if not args.no_report:
        try:
            import matplotlib  # noqa: F401 -- the report's figures
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


def build_parser() -> argparse.ArgumentParser:
    """The ``bayesgmm`` argument parser (subcommands: ``fit``)."""
    from . import __version__

    parser = _ArgumentParser(
        prog=PROG,
        description="Bayesian Gaussian mixtures on JAX and NumPyro.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    fit = commands.add_parser(
        "fit",
        help="fit a Gaussian mixture (MAP, NUTS, VI) and write a report",
        description=(
            "Fit a Gaussian mixture with bayesgmm's default prior three ways -- the MAP by EM, the "
            "posterior by NUTS (started at the MAP) and by variational inference -- print the MAP "
            "components, the EM estimate next to the posterior, the diagnostics and how many points "
            "have uncertain assignments, and write a report directory (--out): report.html "
            "(self-contained, with plots), summary.csv, posterior_nuts.nc / posterior_vi.nc (ArviZ "
            f"netCDF) and the MAP model ({MODEL_FILE}). Without DATA, fits the embedded Old Faithful "
            "geyser data (272 x 2) with 2 components.\n\n"
            "The files are built beside --out and moved in at the end: a failed run leaves --out as "
            "it was. In an existing --out only this command's files are replaced (and those this run "
            "does not produce are removed); other files are kept."
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} fit\n"
            f"  {PROG} fit --method map --components 3 --covariance diag --no-report\n"
            f"  {PROG} fit --select 1..6 --covariance auto --out faithful_report\n"
            f"  {PROG} fit measurements.csv --columns length,width --components 4 --dropna"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fit.add_argument(
        "data", nargs="?", metavar="DATA.csv",
        help="CSV file with a header row (default: the embedded Old Faithful data)",
    )
    fit.add_argument(
        "--columns", metavar="A,B,...",
        help="comma-separated numeric columns to use (default: all columns)",
    )
    k = fit.add_mutually_exclusive_group()
    k.add_argument(
        "--components", "-k", type=_positive_int, metavar="K",
        help=f"number of mixture components (default: {DEFAULT_COMPONENTS})",
    )
    k.add_argument(
        "--select", type=_k_range, metavar="A..B",
        help="choose the number of components among A..B (or a list A,B,C) with bayesgmm.select, by "
             "--criterion (default BIC)",
    )
    fit.add_argument(
        "--covariance", choices=COVARIANCE_CHOICES + ("auto",), default="full",
        help="covariance structure; 'auto' chooses it by --criterion (default: full)",
    )
    fit.add_argument(
        "--criterion", choices=CRITERION_CHOICES, default=None,
        help="how --select / --covariance auto choose: bic, aic, icl (at the MAP), or loo, waic "
             "(from a NUTS posterior at every grid point, with --chains/--warmup/--samples; slower) "
             "(default: bic)",
    )
    fit.add_argument(
        "--method", choices=METHOD_CHOICES, default=DEFAULT_METHOD,
        help="map: EM only; nuts / vi: the MAP and that posterior; all: MAP, NUTS and VI "
             f"(default: {DEFAULT_METHOD})",
    )
    fit.add_argument(
        "--chains", type=_positive_int, default=DEFAULT_CHAINS, metavar="N",
        help=f"NUTS chains (in turn on a CPU, together on an accelerator) (default: {DEFAULT_CHAINS})",
    )
    fit.add_argument(
        "--warmup", type=_positive_int, default=DEFAULT_WARMUP, metavar="N",
        help=f"NUTS warm-up iterations per chain (default: {DEFAULT_WARMUP})",
    )
    fit.add_argument(
        "--samples", type=_draws, default=DEFAULT_SAMPLES, metavar="N",
        help=f"NUTS draws per chain; VI keeps chains x samples draws (default: {DEFAULT_SAMPLES})",
    )
    fit.add_argument(
        "--vi-steps", type=_positive_int, default=DEFAULT_VI_STEPS, metavar="N",
        help=f"optimisation steps of variational inference (default: {DEFAULT_VI_STEPS})",
    )
    fit.add_argument(
        "--seed", type=_seed, default=DEFAULT_SEED, metavar="N",
        help=f"random seed of the initialisation and the samplers (default: {DEFAULT_SEED})",
    )
    fit.add_argument(
        "--n-init", type=_positive_int, default=DEFAULT_N_INIT, metavar="N",
        help=f"number of EM starts; the best is kept (default: {DEFAULT_N_INIT})",
    )
    fit.add_argument(
        "--out", default=DEFAULT_OUT, metavar="DIR",
        help=f"report directory (default: {DEFAULT_OUT})",
    )
    fit.add_argument(
        "--no-report", action="store_true",
        help="print the summary only; write no files",
    )
    fit.add_argument(
        "--dropna", action="store_true",
        help="drop rows with missing values instead of stopping with an error",
    )
    fit.add_argument(
        "--quiet", "-q", action="store_true",
        help="no progress output on stderr",
    )
    fit.set_defaults(handler=_cmd_fit)
    return parser


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
        return args.handler(args)
    except CLIError as exc:
        message = " ".join(str(exc).split())
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return exc.status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
