"""The HTML report of ``bayesgmm fit``: figures as base64 PNG images and HTML tables, one file.

:func:`make_figures` draws the report's figures with :mod:`bayesgmm.plotting` on bare matplotlib
:class:`~matplotlib.figure.Figure` objects (no pyplot, so no GUI backend and no global state is
touched) and renders them to PNG bytes; :func:`render_html` lays out the text sections, tables
and figures of a :class:`ReportContent` as a self-contained HTML page (no external files, no
scripts). :func:`build_report` assembles the report of a ``bayesgmm fit`` run (the sections, their
paragraphs, tables and figures) from what the run computed; the ``_*_rows`` helpers tabulate the
results as rows of strings, the same rows that the command line prints
(:mod:`bayesgmm.cli.text`). The command line (:mod:`bayesgmm.cli`) runs the fits and writes the
files; it imports this module, never the reverse.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
from collections.abc import Sequence

import numpy as np

from . import __version__, plotting

__all__ = [
    "Figure", "ReportContent", "Section", "Table", "build_report", "format_float", "make_figures", "render_html",
]


@dataclasses.dataclass
class Table:
    """A table: ``header`` (list of str) and ``rows`` (list of lists of str); ``caption`` text."""

    header: list
    rows: list
    caption: str = ""


@dataclasses.dataclass
class Figure:
    """A rendered figure: a short ``name`` (the ``id`` in the page), its ``title`` and ``png`` bytes."""

    name: str
    title: str
    png: bytes
    caption: str = ""


@dataclasses.dataclass
class Section:
    """A section of the report: a heading, paragraphs, preformatted text, tables and figures."""

    title: str
    paragraphs: list = dataclasses.field(default_factory=list)
    pre: str = ""
    tables: list = dataclasses.field(default_factory=list)
    figures: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ReportContent:
    title: str
    subtitle: str
    sections: list


# -- figures ---------------------------------------------------------------------------------------
def _new_axes(figsize=(6.0, 4.5)):
    from matplotlib.figure import Figure as MplFigure  # lazy: matplotlib is optional and slow to import

    fig = MplFigure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _png(fig, dpi: int = 90) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _label_axes(ax, names, i, j=None):
    ax.set_xlabel(names[i])
    if j is not None:
        ax.set_ylabel(names[j])


def make_figures(
    X,
    feature_names: Sequence[str],
    estimator,
    posteriors: dict | None = None,
    comparison=None,
    selection=None,
    dpi: int = 90,
) -> list:
    """The report's figures, rendered to PNG.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    feature_names : sequence of str
    estimator : fitted bayesgmm.GaussianMixture
        The MAP fit.
    posteriors : dict of str -> bayesgmm.Posterior, optional
        E.g. ``{"nuts": ..., "vi": ...}``; the first one is shown in the posterior panels, trace
        and rank plots come from the first MCMC posterior.
    comparison : bayesgmm.comparison.Comparison, optional
    selection : bayesgmm.selection.Selection, optional
        Adds the criterion curve.
    dpi : int, default=90

    Returns
    -------
    list of Figure
        Names: ``map_ellipses`` / ``map_density`` / ``posterior_ellipses`` / ``uncertainty``
        (two or more features; with more than two the first two are shown) or ``map_density_1d``
        / ``posterior_density_1d`` / ``uncertainty`` (one feature), ``comparison``, ``trace``,
        ``rank`` (MCMC), ``criteria`` (selection).
    """
    posteriors = dict(posteriors or {})
    names = [str(n) for n in feature_names]
    d = X.shape[1]
    first = next(iter(posteriors.items()), None)
    mcmc = next(((n, p) for n, p in posteriors.items() if p.method == "nuts"), None)
    out = []

    def add(name, title, draw, caption="", figsize=(6.0, 4.5)):
        fig, ax = _new_axes(figsize)
        draw(fig, ax)
        out.append(Figure(name, title, _png(fig, dpi), caption))

    shown = "" if d <= 2 else f" (features {names[0]} and {names[1]} of {d}; marginal densities)"
    feats = None if d <= 2 else (0, 1)
    if d >= 2:
        add("map_ellipses", "MAP fit: 1, 2 and 3 sd ellipses",
            lambda fig, ax: (plotting.plot_ellipses(estimator, X, features=feats, ax=ax), _label_axes(ax, names, 0, 1)),
            "Points coloured by their most probable component; shading grows with the weight" + shown + ".")
        add("map_density", "MAP fit: log density",
            lambda fig, ax: (plotting.plot_density(estimator, X, features=feats, ax=ax), _label_axes(ax, names, 0, 1)),
            "Contours of the log density of the MAP mixture" + shown + ".")
        if first is not None:
            pname, post = first
            add("posterior_ellipses", f"Posterior ({pname}): 2 sd ellipses of 30 draws",
                lambda fig, ax: (plotting.plot_ellipses(post, X, features=feats, ax=ax), _label_axes(ax, names, 0, 1)),
                "Each outline is one relabelled posterior draw; their spread is the uncertainty of the "
                "component's location and shape.")
        model = first[1] if first is not None else estimator
        who = f"posterior ({first[0]})" if first is not None else "MAP"
        add("uncertainty", f"Assignment uncertainty ({who}): 1 - max_k p(k | x)",
            lambda fig, ax: (plotting.plot_uncertainty(model, X, features=feats, ax=ax), _label_axes(ax, names, 0, 1)),
            "Larger, darker points are less sure of their component (mclust's uncertainty).")
    else:
        add("map_density_1d", "MAP fit: histogram, mixture density and its components",
            lambda fig, ax: (plotting.plot_density_1d(estimator, X, ax=ax), _label_axes(ax, names, 0)))
        if first is not None:
            pname, post = first
            add("posterior_density_1d", f"Posterior ({pname}): predictive density with a 90% band",
                lambda fig, ax: (plotting.plot_density_1d(post, X, ax=ax), _label_axes(ax, names, 0)))
        model = first[1] if first is not None else estimator

        def unc_1d(fig, ax):
            u = plotting.uncertainty(model, X)
            ax.scatter(X[:, 0], u, s=8, c=u, cmap="magma_r", edgecolors="k", linewidths=0.2)
            ax.set_xlabel(names[0])
            ax.set_ylabel("1 - max_k p(k | x)")

        add("uncertainty", "Assignment uncertainty: 1 - max_k p(k | x)", unc_1d)

    if comparison is not None:
        n_rows = len(comparison.column("parameter"))
        add("comparison", "EM (MAP) next to the posterior: HDIs per parameter",
            lambda fig, ax: comparison.plot(ax=ax),
            f"Bars: {comparison.hdi_prob:.0%} HDIs, dots: posterior means, red crosses: the MAP; each "
            "row standardised by the first posterior.",
            figsize=(6.5, max(3.0, 0.28 * n_rows + 1.2)))
    if mcmc is not None:
        from . import _arviz  # lazy: it imports xarray, which importing this module does not need

        mname, mpost = mcmc
        k_shown = list(range(min(mpost.n_components, 4)))
        f_shown = names[: min(d, 3)]
        fig = _arviz.trace_figure(mpost.idata, k_shown, f_shown)
        out.append(Figure("trace", f"Trace plots (relabelled draws), {mname}", _png(fig, dpi),
                          "Densities and traces per chain of the weights and means after relabelling to "
                          "the MAP" + ("" if len(f_shown) == d and len(k_shown) == mpost.n_components
                                       else " (first features / components only)") + "."))
        fig = _arviz.rank_figure(mpost.idata, k_shown, f_shown)
        out.append(Figure("rank", f"Rank plots (relabelled draws), {mname}", _png(fig, dpi),
                          "Rank plots per chain (histograms with ArviZ 0.2x, ECDF differences with 1.x); "
                          "flat when the chains mix."))
    if selection is not None:
        add("criteria", f"Model selection: {selection.criterion.upper()} over the grid",
            lambda fig, ax: selection.plot(ax=ax), "Lower is better; the star marks the chosen model.")
    return out


# -- html ------------------------------------------------------------------------------------------
_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { margin-bottom: 0.1em; } .subtitle { color: #666; margin-top: 0; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
caption { caption-side: top; text-align: left; color: #555; padding-bottom: 0.3em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
figure { display: inline-block; margin: 0.6em 1.2em 0.6em 0; vertical-align: top; max-width: 100%; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.85em; max-width: 560px; }
"""


def _table_html(t: Table) -> str:
    esc = html.escape
    parts = ["<table>"]
    if t.caption:
        parts.append(f"<caption>{esc(t.caption)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{esc(str(h))}</th>" for h in t.header) + "</tr></thead>")
    parts.append("<tbody>")
    for row in t.rows:
        parts.append("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts)


def _figure_html(f: Figure) -> str:
    data = base64.b64encode(f.png).decode("ascii")
    cap = html.escape(f.title) + (f"<br>{html.escape(f.caption)}" if f.caption else "")
    return (f'<figure id="fig-{html.escape(f.name)}"><img alt="{html.escape(f.title)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{cap}</figcaption></figure>')


def render_html(content: ReportContent) -> str:
    """The self-contained HTML page of a report (str)."""
    esc = html.escape
    body = [f"<h1>{esc(content.title)}</h1>", f'<p class="subtitle">{esc(content.subtitle)}</p>']
    for s in content.sections:
        body.append(f"<h2>{esc(s.title)}</h2>")
        body += [f"<p>{esc(p)}</p>" for p in s.paragraphs]
        if s.pre:
            body.append(f"<pre>{esc(s.pre)}</pre>")
        body += [_table_html(t) for t in s.tables]
        if s.figures:
            body.append("<div>" + "\n".join(_figure_html(f) for f in s.figures) + "</div>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{esc(content.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def format_float(value, digits: int = 4) -> str:
    """A number for a table cell: ``digits`` significant digits, "" for None, "nan" kept."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.{digits}g}"


# -- the report of a `bayesgmm fit` run ------------------------------------------------------------
def _num(value: float) -> str:
    """A number of the text and the report's tables: 5 significant digits."""
    return f"{value:.5g}"


def _component_order(gm) -> np.ndarray:
    """Estimator labels in the order of the component table (by the mean of the first feature)."""
    return np.argsort(np.asarray(gm.means_, dtype=np.float64)[:, 0], kind="stable")


def _label_mapping(gm) -> str:
    order = _component_order(gm)
    return ", ".join(f"label {int(k)} is component {rank} above" for rank, k in enumerate(order, start=1))


def _range_text(sel) -> str:
    ks = sorted(set(sel.column("n_components").astype(int).tolist()))
    cts = list(dict.fromkeys(sel.column("covariance_type").astype(str).tolist()))
    ktext = f"{ks[0]}..{ks[-1]}" if ks == list(range(ks[0], ks[-1] + 1)) and len(ks) > 1 else ", ".join(map(str, ks))
    return ktext + (f" and covariance {', '.join(cts)}" if len(cts) > 1 else "")


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


def _selection_tables(sel):
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


#: Missing cells shown in the report's table (all of them are in imputed.csv).
MAX_IMPUTED_ROWS = 30


def _imputation_section(imp: dict) -> Section:
    post = "posterior_mean" in imp
    header = ["row", "feature", "MAP"] + (["posterior mean", "5%", "95%"] if post else [])
    rows = []
    for i in range(min(MAX_IMPUTED_ROWS, len(imp["row"]))):
        row = [str(int(imp["row"][i])), str(imp["feature"][i]), _num(imp["map"][i])]
        if post:
            row += [_num(imp[f"posterior_{k}"][i]) for k in ("mean", "lower", "upper")]
        rows.append(row)
    more = (f" The first {MAX_IMPUTED_ROWS} of {len(imp['row'])} are shown; all are in imputed.csv."
            if len(imp["row"]) > MAX_IMPUTED_ROWS else " All are also in imputed.csv.")
    text = ("Each missing cell was integrated out of the likelihood (missing at random). MAP: its conditional "
            "expectation given the row's observed cells under the MAP (GaussianMixture.impute)."
            + (f" Posterior: the mean and central 90% interval of its posterior predictive distribution "
               f"({imp['source']}; Posterior.impute_summary), which carries the parameters' uncertainty and the "
               "cell's spread given the observed cells." if post else " Fit a posterior (--method nuts or vi) "
               "for intervals.") + more)
    return Section("Missing cells", paragraphs=[text],
                   tables=[Table(header, rows, "Imputations of the missing cells (row: 0-based data row).")])


def build_report(result, figures: list, files: Sequence[str], *, selection_text: str = "",
                 uncertainty_text: str = "") -> ReportContent:
    """The :class:`ReportContent` of a ``bayesgmm fit`` run (tables and the given figures).

    Parameters
    ----------
    result : bayesgmm.cli.run.RunResult
        What the run computed: its ``data``, ``settings``, ``fit``, ``bic``, ``selection``,
        ``posteriors``, ``comparison``, ``uncertainty``, ``uncertainty_source``, ``command`` and
        ``notes()`` are used.
    figures : list of Figure
        From :func:`make_figures`; each is placed in its section, the others under "More figures".
    files : sequence of str
        The names of the files written (listed in the "Files" section).
    selection_text : str, default=""
        The command line's text of the model selection grid
        (:func:`bayesgmm.cli.text.format_selection`), shown as is when the run selected a model.
    uncertainty_text : str, default=""
        The command line's text of the assignment uncertainty
        (:func:`bayesgmm.cli.text.format_uncertainty`): its lines after the heading are the
        paragraphs of that section.
    """
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
    sds = np.asarray(gm.params_.component_sds(), np.float64)
    rows = []
    for rank, k in enumerate(_component_order(gm), start=1):
        for j, name in enumerate(names):
            rows.append([str(rank) if j == 0 else "", str(int(k)) if j == 0 else "",
                         f"{weights[k]:.3f}" if j == 0 else "", name, _num(means[k, j]), _num(sds[k, j])])
    chosen = (f"K = {settings.n_components} components, covariance = {gm.covariance_type}"
              + (f" (chosen by {result.selection.criterion.upper()} over K = {_range_text(result.selection)})"
                 if result.selection is not None else ""))
    dropped = f"; {data.n_dropped} row(s) with missing values dropped" if data.n_dropped else ""
    if data.n_missing:
        rows_missing = int(np.isnan(data.X).any(axis=1).sum())
        dropped += (f"; {data.n_missing} missing cell(s) ({data.n_missing / data.X.size:.1%}) in {rows_missing} "
                    "row(s), marginalised out of the likelihood (missing at random)")
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
            pre=selection_text,
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
        text = uncertainty_text.splitlines()[1:]
        sections.append(Section(
            "Assignment uncertainty",
            paragraphs=[t.strip() for t in text],
            figures=take("uncertainty"),
        ))
    if getattr(result, "imputation", None) is not None:
        sections.append(_imputation_section(result.imputation))
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
