"""Plots of mixtures and posteriors (matplotlib, imported only when a function is called).

Every function takes either a fitted :class:`bayesgmm.GaussianMixture` (the MAP / ML fit) or a
:class:`bayesgmm.Posterior` where that makes sense, draws on ``ax`` (a new figure when None) and
returns the axes (:func:`plot_trace` returns ArviZ's array of axes). For data with more than two
features, name the two shown with ``features=(i, j)`` (indices or feature names); the densities
shown are then the *marginal* densities of those features.

========================  =================================================================
:func:`plot_ellipses`     1, 2, 3 sd ellipses of the MAP fit; ellipses of posterior draws
:func:`plot_density_1d`   histogram, mixture density and its components, posterior band
:func:`plot_density`      log-density contours (2 features)
:func:`plot_uncertainty`  points coloured by assignment uncertainty
:func:`plot_coclustering` co-clustering heatmap ordered by a posterior partition
:func:`plot_criteria`     BIC/AIC/ICL/LOO/WAIC curves of :func:`bayesgmm.select`
:func:`plot_comparison`   forest plot of :func:`bayesgmm.compare`
:func:`plot_trace`        trace / rank plots of the relabelled draws (ArviZ)
========================  =================================================================
"""

from __future__ import annotations

import math

import numpy as np

from .core.layouts import full_covariances

__all__ = [
    "plot_coclustering",
    "plot_comparison",
    "plot_criteria",
    "plot_density",
    "plot_density_1d",
    "plot_ellipses",
    "plot_trace",
    "plot_uncertainty",
]


# -- helpers ---------------------------------------------------------------------------------------
def _axes(ax):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    return ax


def _is_posterior(model) -> bool:
    return hasattr(model, "draws") and hasattr(model, "n_draws")


def _feature_names(model):
    if _is_posterior(model):
        return model.feature_names
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def _n_features(model) -> int:
    return model.n_features if _is_posterior(model) else int(np.shape(model.means_)[1])


def _feature_index(model, f) -> int:
    d = _n_features(model)
    if isinstance(f, str):
        names = _feature_names(model)
        if names is None or f not in names:
            raise ValueError(f"unknown feature {f!r}; the model's feature names are {names}.")
        return names.index(f)
    if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or not -d <= f < d:
        raise ValueError(f"feature index {f!r} is out of range for {d} features.")
    return int(f) % d


def _features(model, features):
    d = _n_features(model)
    if d < 2:
        raise ValueError("this plot needs at least 2 features; use plot_density_1d for one feature.")
    if features is None:
        if d > 2:
            raise ValueError(f"the data have {d} features: name the two to show with features=(i, j).")
        features = (0, 1)
    if len(features) != 2:
        raise ValueError(f"features must name two features, got {features!r}.")
    i, j = (_feature_index(model, f) for f in features)
    if i == j:
        raise ValueError(f"features must be two different features, got {features!r}.")
    return i, j


def _label(model, i):
    names = _feature_names(model)
    return names[i] if names is not None else f"x{i}"


def _mixture_arrays(model, n_draws=None, random_state=0):
    """``(weights (S, K), means (S, K, D), covs (S, K, D, D))`` numpy float64.

    A GaussianMixture gives ``S = 1``; a Posterior its draws, thinned evenly to ``n_draws``.
    """
    if _is_posterior(model):
        s = model.n_draws
        idx = np.arange(s) if n_draws is None or n_draws >= s else np.linspace(0, s - 1, int(n_draws)).astype(int)
        k, d = model.n_components, model.n_features
        w = np.asarray(model.draws.weights, np.float64).reshape(s, k)[idx]
        m = np.asarray(model.draws.means, np.float64).reshape(s, k, d)[idx]
        c = model.draws.to_numpy(None).full_covariances().reshape(s, k, d, d)[idx].astype(np.float64)
        return w, m, c
    k, d = np.shape(model.means_)
    cov = full_covariances(np.asarray(model.covariances_, np.float64), model.covariance_type, k, d)
    return (
        np.asarray(model.weights_, np.float64)[None],
        np.asarray(model.means_, np.float64)[None],
        cov[None],
    )


def _check_X(model, X):
    if X is None:
        return model.x if _is_posterior(model) else None
    X = np.asarray(X, np.float64)
    if X.ndim != 2 or X.shape[1] != _n_features(model):
        raise ValueError(f"X must have shape (n_samples, {_n_features(model)}), got {X.shape}.")
    return X


def _ellipse_geometry(cov2, n_std):
    """Width, height and angle (degrees) of the ``n_std`` ellipse of a 2x2 covariance."""
    vals, vecs = np.linalg.eigh(cov2)
    vals = np.maximum(vals, 0.0)
    angle = math.degrees(math.atan2(vecs[1, 1], vecs[0, 1]))  # direction of the largest axis
    return 2.0 * n_std * math.sqrt(vals[1]), 2.0 * n_std * math.sqrt(vals[0]), angle


def _marginal_logpdf(weights, means, covs, grid):
    """``log mean_s sum_k w_sk N(grid | m_sk, C_sk)`` for grid (G, p), params marginal in p dims.

    One draw at a time, so memory stays O(K G) whatever the number of draws.
    """
    s, k, p = means.shape
    inv = np.linalg.inv(covs)  # (S, K, p, p)
    _, logdet = np.linalg.slogdet(covs)  # (S, K)
    with np.errstate(divide="ignore"):
        logw = np.log(weights)
    out = np.full(grid.shape[0], -np.inf)
    for t in range(s):
        diff = grid[None, :, :] - means[t][:, None, :]  # (K, G, p)
        maha = np.einsum("kgi,kij,kgj->kg", diff, inv[t], diff)
        lp = logw[t][:, None] - 0.5 * (maha + logdet[t][:, None] + p * math.log(2 * math.pi))
        mx = np.max(lp, axis=0)
        mx = np.where(np.isfinite(mx), mx, 0.0)
        out = np.logaddexp(out, mx + np.log(np.sum(np.exp(lp - mx), axis=0)))
    return out - math.log(s)


# -- ellipses ------------------------------------------------------------------------------------------
def plot_ellipses(model, X=None, *, features=None, n_std=None, n_draws: int = 30, ax=None, scatter: bool = True):
    """Covariance ellipses: 1, 2 and 3 sd of every component of a MAP fit, or of posterior draws.

    Parameters
    ----------
    model : fitted GaussianMixture or Posterior
        A GaussianMixture draws ``n_components * len(n_std)`` filled ellipses (opacity grows with
        the component weight) and the means; a Posterior draws one outline per component, draw and
        ``n_std`` for ``n_draws`` evenly spaced (relabelled) draws, coloured by component, plus the
        posterior-mean means.
    X : array-like of shape (n_samples, n_features), optional
        Points to show, coloured by their most probable component (a Posterior shows its data by
        default).
    features : (int or str, int or str), optional
        The two features shown (required when there are more than two).
    n_std : sequence of float, optional
        Default (1, 2, 3) for a GaussianMixture, (2,) for a Posterior.
    n_draws : int, default=30
        Posterior draws shown.
    ax : matplotlib Axes, optional
    scatter : bool, default=True
        Show ``X``.

    Returns
    -------
    matplotlib.axes.Axes
        The ellipses are :class:`matplotlib.patches.Ellipse` patches in ``ax.patches`` with
        ``gid`` ``"component-{k}"``.
    """
    from matplotlib.patches import Ellipse

    ax = _axes(ax)
    i, j = _features(model, features)
    post = _is_posterior(model)
    n_std = tuple(n_std) if n_std is not None else ((2.0,) if post else (1.0, 2.0, 3.0))
    X = _check_X(model, X)
    w, m, c = _mixture_arrays(model, n_draws if post else None)
    sel = np.ix_(range(c.shape[0]), range(c.shape[1]), [i, j], [i, j])
    c2 = c[sel]
    k = m.shape[1]
    if scatter and X is not None:
        labels = model.predict(X)
        ax.scatter(X[:, i], X[:, j], c=[f"C{int(z) % 10}" for z in labels], s=12, alpha=0.6, zorder=2,
                   linewidths=0)
    wmax = float(np.max(w))
    for s in range(m.shape[0]):
        for a in range(k):
            for ns in n_std:
                width, height, angle = _ellipse_geometry(c2[s, a], ns)
                if post:
                    e = Ellipse((m[s, a, i], m[s, a, j]), width, height, angle=angle, fill=False,
                                edgecolor=f"C{a % 10}", alpha=0.2, lw=0.8, zorder=3)
                else:
                    e = Ellipse((m[s, a, i], m[s, a, j]), width, height, angle=angle,
                                facecolor=f"C{a % 10}", alpha=0.25 * float(w[s, a]) / wmax if wmax > 0 else 0.0,
                                edgecolor=f"C{a % 10}", lw=1.0, zorder=1)
                e.set_gid(f"component-{a}")
                ax.add_patch(e)
    centre = m.mean(axis=0)
    ax.scatter(centre[:, i], centre[:, j], marker="x", c="k", s=60, zorder=4, label="posterior mean" if post else "means")
    ax.set_xlabel(_label(model, i))
    ax.set_ylabel(_label(model, j))
    ax.autoscale_view()
    if X is None:  # patches do not update the data limits
        lo = np.min(m[..., [i, j]].reshape(-1, 2) - 3.5 * np.sqrt(np.diagonal(c2, axis1=-2, axis2=-1)).reshape(-1, 2), axis=0)
        hi = np.max(m[..., [i, j]].reshape(-1, 2) + 3.5 * np.sqrt(np.diagonal(c2, axis1=-2, axis2=-1)).reshape(-1, 2), axis=0)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
    ax.set_title(f"{'Posterior draws' if post else 'MAP'}: {', '.join(f'{v:g}' for v in n_std)} sd ellipses")
    return ax


# -- densities -------------------------------------------------------------------------------------
def plot_density_1d(
    model,
    X=None,
    *,
    feature=0,
    bins=30,
    band=(0.05, 0.95),
    n_draws: int = 400,
    components: bool = True,
    resolution: int = 400,
    ax=None,
):
    """Histogram of one feature with the mixture density, its components and a posterior band.

    The density drawn is ``sum_k w_k N(x | mu_k, sigma_k^2)`` (the marginal of ``feature``), the
    weighted sum of the component curves. With one feature it is the same function as
    ``exp(score_samples)``, which is overlaid as markers to show it.

    Parameters
    ----------
    model : fitted GaussianMixture or Posterior
        For a Posterior the line is the posterior predictive density (mean over draws) and the
        band holds the ``band`` quantiles of the per-draw densities; components are the posterior
        means of ``w_k N(x | mu_k, sigma_k^2)``.
    X : array-like of shape (n_samples, n_features), optional
        Data of the histogram (a Posterior uses its data by default).
    feature : int or str, default=0
    bins : int or sequence, default=30
    band : (float, float), default=(0.05, 0.95)
    n_draws : int, default=400
        Posterior draws used (evenly thinned).
    components : bool, default=True
    resolution : int, default=400
        Points of the x grid.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        Lines with ``gid`` ``"mixture"`` (the sum), ``"component-{k}"``, ``"score_samples"``
        (the markers, one feature only); the band is a ``PolyCollection`` with ``gid`` ``"band"``.
    """
    ax = _axes(ax)
    f = _feature_index(model, feature)
    post = _is_posterior(model)
    X = _check_X(model, X)
    w, m, c = _mixture_arrays(model, n_draws if post else None)
    mu, sd = m[..., f], np.sqrt(c[..., f, f])  # (S, K)
    if X is not None:
        lo, hi = float(np.nanmin(X[:, f])), float(np.nanmax(X[:, f]))  # NaN: a missing cell
        pad = 0.1 * (hi - lo) + 1e-9
        lo, hi = lo - pad, hi + pad
    else:
        lo = float(np.min(mu - 4 * sd))
        hi = float(np.max(mu + 4 * sd))
    grid = np.linspace(lo, hi, int(resolution))
    comp = w[..., None] / (sd[..., None] * math.sqrt(2 * math.pi)) * np.exp(
        -0.5 * ((grid - mu[..., None]) / sd[..., None]) ** 2
    )  # (S, K, G)
    per_draw = comp.sum(axis=1)  # (S, G)
    total = per_draw.mean(axis=0)
    if X is not None:
        ax.hist(X[:, f], bins=bins, density=True, color="0.8", edgecolor="0.6", label="data")
    if post:
        q = np.quantile(per_draw, band, axis=0)
        poly = ax.fill_between(grid, q[0], q[1], color="k", alpha=0.15,
                               label=f"{band[0]:.0%}-{band[1]:.0%} posterior band")
        poly.set_gid("band")
    if components:
        for a in range(comp.shape[1]):
            (line,) = ax.plot(grid, comp[:, a].mean(axis=0), ls="--", lw=1, color=f"C{a % 10}",
                              label=f"$w_{a} N(x | \\mu_{a}, \\sigma_{a}^2)$")
            line.set_gid(f"component-{a}")
    (line,) = ax.plot(grid, total, color="k", lw=2, label="$\\sum_k w_k N(x | \\mu_k, \\sigma_k^2)$")
    line.set_gid("mixture")
    if _n_features(model) == 1:
        every = max(1, grid.size // 25)
        xs = grid[::every]
        dens = np.exp(model.score_samples(xs[:, None]))
        (marks,) = ax.plot(xs, dens, "o", ms=4, mfc="none", color="C3", label="exp(score_samples)")
        marks.set_gid("score_samples")
    ax.set_xlabel(_label(model, f))
    ax.set_ylabel("density")
    ax.legend(fontsize="small")
    return ax


def plot_density(model, X=None, *, features=None, resolution: int = 120, levels: int = 12, n_draws: int = 200,
                 ax=None):
    """Contours of the log density over two features, with the data.

    With exactly two features the log density is ``model.score_samples`` on a grid (for a
    Posterior: the posterior predictive over all draws); with more it is the marginal density of
    the two features (a Posterior uses ``n_draws`` evenly spaced draws).

    Parameters
    ----------
    model : fitted GaussianMixture or Posterior
    X : array-like of shape (n_samples, n_features), optional
    features : (int or str, int or str), optional
    resolution : int, default=120
        Grid points per axis.
    levels : int or sequence, default=12
        Contour levels of the log density.
    n_draws : int, default=200
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        The filled contours are the first collection in ``ax.collections``; the data points
        a line.
    """
    ax = _axes(ax)
    i, j = _features(model, features)
    X = _check_X(model, X)
    w, m, c = _mixture_arrays(model, n_draws if _is_posterior(model) else None)
    if X is not None:
        lo, hi = np.nanmin(X[:, [i, j]], axis=0), np.nanmax(X[:, [i, j]], axis=0)  # NaN: a missing cell
    else:
        sd = np.sqrt(np.stack([c[..., i, i], c[..., j, j]], axis=-1))
        lo = np.min(m[..., [i, j]] - 3 * sd, axis=(0, 1))
        hi = np.max(m[..., [i, j]] + 3 * sd, axis=(0, 1))
    pad = 0.1 * (hi - lo) + 1e-9
    gx = np.linspace(lo[0] - pad[0], hi[0] + pad[0], int(resolution))
    gy = np.linspace(lo[1] - pad[1], hi[1] + pad[1], int(resolution))
    xx, yy = np.meshgrid(gx, gy)
    grid2 = np.column_stack([xx.ravel(), yy.ravel()])
    if _n_features(model) == 2:
        pts = np.empty_like(grid2)
        pts[:, i], pts[:, j] = grid2[:, 0], grid2[:, 1]
        z = np.asarray(model.score_samples(pts), np.float64)
    else:
        sel = [i, j]
        z = _marginal_logpdf(w, m[..., sel], c[..., sel, :][..., sel], grid2)
    z = z.reshape(xx.shape)
    finite = z[np.isfinite(z)]
    floor = np.quantile(finite, 0.02) if finite.size else 0.0
    z = np.maximum(z, floor)
    cs = ax.contourf(xx, yy, z, levels=levels, cmap="viridis", alpha=0.8)
    ax.contour(xx, yy, z, levels=cs.levels, colors="k", linewidths=0.4)
    ax.figure.colorbar(cs, ax=ax, label="log density")
    if X is not None:
        ax.plot(X[:, i], X[:, j], "k.", ms=2)
    ax.set_xlabel(_label(model, i))
    ax.set_ylabel(_label(model, j))
    return ax


# -- uncertainty ------------------------------------------------------------------------------------
def uncertainty(model, X, measure: str = "1-max") -> np.ndarray:
    """Per-point assignment uncertainty, shape (n_samples,).

    ``"1-max"``: ``1 - max_k p_nk`` (mclust's uncertainty); ``"entropy"``: the entropy of
    ``p_n`` in nats; for a Posterior also ``"interval"``: the width of the credible interval
    (5%-95%) of the probability of the most probable component. ``p`` are the responsibilities of
    a GaussianMixture or the posterior mean assignment probabilities.
    """
    if measure not in ("1-max", "entropy", "interval"):
        raise ValueError(f"measure={measure!r} is not supported; use '1-max', 'entropy' or 'interval'.")
    if _is_posterior(model):
        a = model.assignment_probabilities(X)
        p = a.mean
        if measure == "interval":
            top = np.argmax(p, axis=1)
            rows = np.arange(p.shape[0])
            return a.upper[rows, top] - a.lower[rows, top]
    else:
        if measure == "interval":
            raise ValueError("measure='interval' needs a Posterior (a point estimate has no interval).")
        p = np.asarray(model.predict_proba(X), np.float64)
    if measure == "1-max":
        return 1.0 - np.max(p, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=1)


def plot_uncertainty(model, X=None, *, features=None, measure: str = "1-max", ax=None, cmap="magma_r"):
    """The data coloured (and sized) by their assignment uncertainty.

    Parameters
    ----------
    model : fitted GaussianMixture or Posterior
    X : array-like of shape (n_samples, n_features), optional
        Default: a Posterior's data (required for a GaussianMixture).
    features : (int or str, int or str), optional
    measure : {"1-max", "entropy", "interval"}, default="1-max"
        See :func:`uncertainty`.
    ax : matplotlib Axes, optional
    cmap : str, default="magma_r"

    Returns
    -------
    matplotlib.axes.Axes
        The points are ``ax.collections[0]`` (gid ``"points"``, drawn in order of increasing
        uncertainty); its ``get_array()`` holds the uncertainties.
    """
    ax = _axes(ax)
    i, j = _features(model, features)
    X = _check_X(model, X)
    if X is None:
        raise ValueError("plot_uncertainty needs the data X for a GaussianMixture.")
    u = uncertainty(model, X, measure)
    scale = float(np.max(u)) if np.max(u) > 0 else 1.0
    order = np.argsort(u)  # most uncertain on top
    sc = ax.scatter(X[order, i], X[order, j], c=u[order], s=8 + 60 * u[order] / scale, cmap=cmap,
                    edgecolors="k", linewidths=0.2)
    sc.set_gid("points")
    ax.figure.colorbar(sc, ax=ax, label=f"uncertainty ({measure})")
    ax.set_xlabel(_label(model, i))
    ax.set_ylabel(_label(model, j))
    return ax


# -- co-clustering ---------------------------------------------------------------------------------
def plot_coclustering(post, X=None, *, psm=None, partition=None, loss: str = "binder", ax=None, cmap="Blues"):
    """Heatmap of the posterior co-clustering matrix, points ordered by a partition.

    Parameters
    ----------
    post : bayesgmm.Posterior
    X : array-like of shape (n_samples, n_features), optional
        Default: the posterior's data.
    psm : ndarray of shape (n_samples, n_samples), optional
        A precomputed :meth:`Posterior.coclustering`.
    partition : Partition or array-like of int, optional
        Default: :meth:`Posterior.partition` with ``loss``.
    loss : {"binder", "vi"}, default="binder"
    ax : matplotlib Axes, optional
    cmap : str, default="Blues"

    Returns
    -------
    matplotlib.axes.Axes
        The image is ``ax.images[0]`` (its array: the matrix with rows and columns ordered by
        cluster); cluster boundaries are lines with ``gid`` ``"boundary"``.
    """
    ax = _axes(ax)
    if psm is None:
        psm = post.coclustering(X)
    psm = np.asarray(psm, np.float64)
    if partition is None:
        partition = post.partition(X, loss=loss, psm=psm if loss == "binder" else None)
    labels = np.asarray(getattr(partition, "labels", partition)).reshape(-1)
    if labels.shape[0] != psm.shape[0]:
        raise ValueError(f"the partition has {labels.shape[0]} points, the matrix {psm.shape[0]}.")
    # within a cluster: most "central" points (highest mean similarity to the cluster) first
    same = labels[:, None] == labels[None, :]
    centrality = np.sum(np.where(same, psm, 0.0), axis=1) / np.sum(same, axis=1)
    order = np.lexsort((-centrality, labels))
    im = ax.imshow(psm[np.ix_(order, order)], vmin=0.0, vmax=1.0, cmap=cmap, interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, label="Pr(same cluster)")
    edges = np.flatnonzero(np.diff(labels[order])) + 0.5
    for e in edges:
        ax.axhline(e, color="C3", lw=0.8).set_gid("boundary")
        ax.axvline(e, color="C3", lw=0.8).set_gid("boundary")
    ax.set_xlabel("point (ordered by cluster)")
    ax.set_ylabel("point (ordered by cluster)")
    ax.set_title(f"Co-clustering, {int(labels.max()) + 1} clusters")
    return ax


# -- model selection and comparison ------------------------------------------------------------------
def plot_criteria(selection, criterion: str | None = None, ax=None):
    """Criterion against ``n_components``, one line per covariance type, best marked.

    Parameters
    ----------
    selection : bayesgmm.selection.Selection
        The result of :func:`bayesgmm.select`.
    criterion : str, optional
        A column of ``selection.table`` (``"bic"``, ``"aic"``, ``"icl"``, ``"loo"``,
        ``"waic"``); default the selection's criterion. LOO/WAIC get error bars of one standard
        error (deviance scale).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        One line per covariance type with ``gid`` equal to it; the best point has ``gid`` "best".
    """
    ax = _axes(ax)
    criterion = selection.criterion if criterion is None else criterion
    ks = selection.column("n_components").astype(int)
    cts = selection.column("covariance_type").astype(str)
    try:
        values = selection.column(criterion).astype(np.float64)
    except KeyError:
        raise ValueError(f"criterion {criterion!r} is not in the table; compute it with select(...).") from None
    se = None
    if criterion in ("loo", "waic"):
        se = selection.column(f"{criterion}_se").astype(np.float64)
    for a, ct in enumerate(dict.fromkeys(cts)):
        sel = cts == ct
        if se is not None:
            cont = ax.errorbar(ks[sel], values[sel], yerr=se[sel], marker="o", capsize=3, label=ct, color=f"C{a}")
            cont.lines[0].set_gid(ct)
        else:
            (line,) = ax.plot(ks[sel], values[sel], "o-", label=ct, color=f"C{a}")
            line.set_gid(ct)
    if np.any(np.isfinite(values)):
        b = int(np.nanargmin(np.where(np.isfinite(values), values, np.nan)))
        (star,) = ax.plot([ks[b]], [values[b]], "*", ms=16, color="k", zorder=5,
                          label=f"best: K={ks[b]}, {cts[b]}")
        star.set_gid("best")
    ax.set_xlabel("n_components")
    ax.set_ylabel(f"{criterion.upper()} (lower is better)")
    ax.set_xticks(np.unique(ks))
    ax.legend(fontsize="small")
    return ax


def plot_comparison(comparison, ax=None):
    """Forest plot of :func:`bayesgmm.compare`: posterior HDIs and the MAP, per parameter entry.

    Every row is standardised by the first posterior (``(value - mean) / sd``) so that weights,
    means and covariances share one axis: a posterior's HDI is a bar, its mean a dot, the MAP a
    red cross (outside the bars = outside the HDI).

    Returns
    -------
    matplotlib.axes.Axes
        One ``LineCollection`` of HDI bars per posterior (``gid`` = its name); the MAP markers
        have ``gid`` ``"map"``.
    """
    ax = _axes(ax)
    params = comparison.column("parameter")
    ref = comparison.names[0]
    m0 = comparison.column(f"{ref}_mean").astype(np.float64)
    s0 = comparison.column(f"{ref}_sd").astype(np.float64)
    s0 = np.where(s0 > 0, s0, 1.0)
    y = np.arange(params.size)[::-1].astype(np.float64)
    n = len(comparison.names)
    for a, name in enumerate(comparison.names):
        off = (a - (n - 1) / 2) * 0.25
        lo = (comparison.column(f"{name}_hdi_lower") - m0) / s0
        hi = (comparison.column(f"{name}_hdi_upper") - m0) / s0
        mean = (comparison.column(f"{name}_mean") - m0) / s0
        lc = ax.hlines(y + off, lo, hi, color=f"C{a}", lw=2, label=f"{name} {comparison.hdi_prob:.0%} HDI")
        lc.set_gid(name)
        ax.plot(mean, y + off, "o", color=f"C{a}", ms=4)
    (marks,) = ax.plot((comparison.column("map") - m0) / s0, y, "x", color="C3", ms=7, mew=2, label="MAP")
    marks.set_gid("map")
    ax.axvline(0.0, color="0.7", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels([str(p) for p in params], fontsize="small")
    ax.set_xlabel(f"(value - {ref} mean) / {ref} sd")
    ax.legend(fontsize="small")
    return ax


# -- traces ----------------------------------------------------------------------------------------
def plot_trace(post, var_names=("weights",), kind: str = "trace", **kwargs):
    """Trace or rank plots of the relabelled draws, through ArviZ.

    Parameters
    ----------
    post : bayesgmm.Posterior
    var_names : sequence of str, default=("weights",)
        Variables of ``post.idata.posterior`` (``"weights"``, ``"means"``, ``"covariances"``, ...).
    kind : {"trace", "rank", "rank_bars", "rank_vlines"}, default="trace"
        ``"trace"``: densities and traces per chain; ``"rank"``: rank histograms per chain
        (``arviz.plot_rank``, uniform when chains mix); ``"rank_bars"`` / ``"rank_vlines"``:
        densities with rank plots.
    **kwargs
        Passed to ArviZ (``compact``, ``coords``; with ArviZ 0.2x also ``axes``, ...).

    Returns
    -------
    ndarray of matplotlib Axes or arviz_plots.PlotCollection
        What that ArviZ version's plots return: the Axes (ArviZ 0.2x, ``arviz.plot_trace``) or
        the ``PlotCollection`` (ArviZ >= 1, ``arviz_plots.plot_trace_dist`` / ``plot_rank`` /
        ``plot_rank_dist``). ``bayesgmm._arviz.figure_of(result)`` is the Figure on both.
    """
    from . import _arviz

    return _arviz.plot_trace(post.idata, var_names=var_names, kind=kind, **kwargs)
