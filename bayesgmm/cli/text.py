"""The text that ``bayesgmm fit`` prints: one formatter per part of a run, and :func:`format_run`.

Each ``format_*`` function turns one result into lines of plain text (tables padded by
:func:`_table`): the MAP fit (:func:`format_map_summary`), the model selection grid, the EM
estimate next to the posteriors, the diagnostics and the assignment uncertainty;
:func:`format_run` joins them with the run's notes into what the command prints on stdout. The
rows of the tables that the HTML report shows too come from :mod:`bayesgmm.report`, so that the
text and the report always say the same.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .. import __version__
from ..report import (
    _agreement_rows, _comparison_rows, _diagnostic_rows, _label_mapping, _num, _range_text,
)
from .arguments import PROG, UNCERTAIN_BELOW
from .data import Dataset

if TYPE_CHECKING:  # annotations only (bayesgmm.cli.run imports this module)
    from .run import FitOutcome, FitSettings, RunResult


def _table(rows: list[list[str]], indent: str = "  ", right: Sequence[int] = ()) -> list[str]:
    """Columns padded to their widest cell; indices in ``right`` are right-aligned."""
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [c.rjust(w) if j in right else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths))]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


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
    gm = outcome.estimator
    names = data.feature_names
    d = data.n_features
    ct = gm.covariance_type
    weights = np.asarray(gm.weights_, dtype=np.float64)
    means = np.asarray(gm.means_, dtype=np.float64)
    sds = np.asarray(gm.params_.component_sds(), np.float64)
    # Components are ordered by the mean of the first feature so that repeated runs read alike.
    order = np.argsort(means[:, 0], kind="stable")

    dropped = f"; {data.n_dropped} row(s) with missing values dropped" if data.n_dropped else ""
    dropped += missing_text(data)
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


def missing_text(data) -> str:
    """``"; 12 missing cell(s) in 9 row(s), marginalised"`` (empty without missing cells)."""
    if not data.n_missing:
        return ""
    rows = int(np.isnan(data.X).any(axis=1).sum())
    share = data.n_missing / data.X.size
    return f"; {data.n_missing} missing cell(s) ({share:.1%}) in {rows} row(s), marginalised (missing at random)"


#: Missing cells listed in the printed summary (all of them are in imputed.csv).
MAX_IMPUTED_LINES = 10


def format_imputation(imp: dict) -> str:
    """The first missing cells and their imputations: the MAP's conditional mean and, with a
    posterior, its predictive mean and 90% interval."""
    post = "posterior_mean" in imp
    head = f"{'row':>6}  {'feature':<14}{'MAP':>12}" + (f"{'posterior':>12}{'90% interval':>26}" if post else "")
    lines = [f"missing cells: {len(imp['row'])}, imputed" + (f" (posterior: {imp['source']})" if post else ""), head]
    for i in range(min(MAX_IMPUTED_LINES, len(imp["row"]))):
        line = f"{int(imp['row'][i]):>6}  {str(imp['feature'][i]):<14}{_num(imp['map'][i]):>12}"
        if post:
            interval = f"[{_num(imp['posterior_lower'][i])}, {_num(imp['posterior_upper'][i])}]"
            line += f"{_num(imp['posterior_mean'][i]):>12}{interval:>26}"
        lines.append(line)
    if len(imp["row"]) > MAX_IMPUTED_LINES:
        lines.append(f"... {len(imp['row']) - MAX_IMPUTED_LINES} more in imputed.csv")
    return "\n".join(lines)


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
    if result.imputation is not None:
        parts.append(format_imputation(result.imputation))
    tail = [f"note: {n}" for n in result.notes()]
    if files:
        tail.append(f"report    {os.path.join(out, 'report.html')}  (also: {', '.join(f for f in files if f != 'report.html')})")
    if tail:
        parts.append("\n".join(tail))
    return "\n\n".join(parts)
