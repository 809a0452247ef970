"""The HTML report of ``bayesgmm fit``: figures as base64 PNG images and HTML tables, one file.

:func:`make_figures` draws the report's figures with :mod:`bayesgmm.plotting` on bare matplotlib
:class:`~matplotlib.figure.Figure` objects (no pyplot, so no GUI backend and no global state is
touched) and renders them to PNG bytes; :func:`render_html` lays out the text sections, tables
and figures of a :class:`ReportContent` as a self-contained HTML page (no external files, no
scripts). The command line (:mod:`bayesgmm.cli`) decides what goes in; this module only renders.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
from collections.abc import Sequence

import numpy as np

__all__ = ["Figure", "ReportContent", "Section", "Table", "format_float", "make_figures", "render_html"]


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
    from matplotlib.figure import Figure as MplFigure

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
    from . import plotting

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
        from . import _arviz

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
