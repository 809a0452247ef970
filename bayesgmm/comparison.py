"""The EM estimate next to the posterior: :func:`compare`.

For every parameter entry (weights, means, the distinct covariance entries of the covariance type)
the table holds the MAP (or ML) value of a fitted :class:`bayesgmm.GaussianMixture`, and for each
posterior (NUTS, VI, ...) its mean, standard deviation and highest-density interval (through
ArviZ), whether the MAP lies inside the interval, and the standardised difference
``(MAP - mean) / sd``. A second table says how far the EM clustering agrees with each posterior:
the adjusted Rand index between the EM labels and the posterior's point partition, and the share
of points whose EM label has posterior probability below a threshold.

Components are matched to the estimator's labels first (by the overlap of the EM responsibilities
with the posterior's assignment probabilities), so a posterior relabelled to another pivot still
lines up.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import linear_sum_assignment

from .core import layouts
from .plotting import plot_comparison

__all__ = ["Comparison", "compare", "full_covariances"]


@dataclasses.dataclass
class Comparison:
    """Result of :func:`compare`.

    Attributes
    ----------
    table : pandas.DataFrame (a dict of ndarray if pandas were missing; ArviZ needs it anyway)
        One row per parameter entry, indexed by ``parameter`` (e.g. ``"means[1,0]"``; a column in
        the dict form). Columns: ``variable``, ``map`` and, for every posterior name ``p``,
        ``p_mean``, ``p_sd``, ``p_hdi_lower``, ``p_hdi_upper``, ``p_map_in_hdi`` (bool),
        ``p_std_diff`` (``(map - p_mean) / p_sd``).
    agreement : pandas.DataFrame (or dict of ndarray)
        One row per posterior (index / column ``posterior``): ``ari`` (adjusted Rand index of
        the EM labels and the posterior partition), ``share_uncertain`` (share of points whose
        EM label has posterior probability below ``threshold``), ``partition_clusters``,
        ``partition_expected_loss``, ``n_outside_hdi`` (parameter entries whose MAP lies outside
        the HDI).
    names : list of str
        Posterior names, in order.
    hdi_prob : float
    threshold : float
    """

    table: object
    agreement: object
    names: list
    hdi_prob: float
    threshold: float

    def column(self, name: str, table: str = "table") -> np.ndarray:
        """A column of :attr:`table` (or of :attr:`agreement`) as an ndarray."""
        t = getattr(self, table)
        col = t.index if (hasattr(t, "index") and name == getattr(t.index, "name", None)) else t[name]
        return np.asarray(col.to_numpy() if hasattr(col, "to_numpy") else col)

    def plot(self, ax=None):
        """Forest plot of the table (see :func:`bayesgmm.plotting.plot_comparison`)."""
        return plot_comparison(self, ax=ax)


def _names(posteriors, names):
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != len(posteriors):
            raise ValueError(f"names has {len(names)} entries for {len(posteriors)} posteriors.")
        if len(set(names)) != len(names):
            raise ValueError(f"names must be unique, got {names}.")
        return names
    out, seen = [], {}
    for p in posteriors:
        base = str(getattr(p, "name", None) or getattr(p, "method", "posterior"))
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}{seen[base]}")
    if len(set(out)) != len(out):  # e.g. "nuts", "nuts2" given as a name
        out = [f"{n}_{i}" for i, n in enumerate(out)]
    return out


def _match(em_resp, post_proba):
    """``perm`` with posterior component ``perm[a]`` matched to EM component ``a``."""
    overlap = em_resp.T @ post_proba
    rows, cols = linear_sum_assignment(-overlap)
    return cols[np.argsort(rows)]


def full_covariances(covariances, covariance_type: str, n_components: int, n_features: int) -> np.ndarray:
    """Covariances in scikit-learn's layout -> full matrices of shape (K, D, D), numpy float64.

    ``tied`` is repeated for every component, ``diag`` and ``spherical`` variances are put on the
    diagonals (:func:`bayesgmm.core.layouts.full_covariances`; a fitted mixture's
    :class:`~bayesgmm.GMMParams` gives the same with :meth:`~bayesgmm.GMMParams.full_covariances`).

    Parameters
    ----------
    covariances : array-like, ``covariances_`` of a fitted mixture: (K, D, D) full, (D, D) tied,
        (K, D) diag, (K,) spherical
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_components, n_features : int

    Returns
    -------
    ndarray of shape (K, D, D), float64
    """
    c = np.asarray(covariances, np.float64)
    return layouts.full_covariances(c, covariance_type, n_components, n_features)


def _entries(weights, means, cov, covariance_type, feature_names):
    """``{name: (variable, values of shape batch)}`` of the distinct parameter entries.

    ``weights (..., K)``, ``means (..., K, D)``, ``cov (..., K, D, D)`` full matrices.
    """
    ct = covariance_type
    k, d = means.shape[-2:]
    feats = [str(f) for f in feature_names] if feature_names is not None else [str(i) for i in range(d)]
    out = {}
    for a in range(k):
        out[f"weights[{a}]"] = ("weights", weights[..., a])
    for a in range(k):
        for i in range(d):
            out[f"means[{a},{feats[i]}]"] = ("means", means[..., a, i])
    if ct == "tied":
        for i in range(d):
            for j in range(i + 1):
                out[f"covariances[{feats[i]},{feats[j]}]"] = ("covariances", cov[..., 0, i, j])
    elif ct == "spherical":
        for a in range(k):
            out[f"covariances[{a}]"] = ("covariances", cov[..., a, 0, 0])
    else:  # full: the lower triangle; diag: the variances
        for a in range(k):
            for i in range(d):
                for j in (range(i + 1) if ct == "full" else (i,)):
                    out[f"covariances[{a},{feats[i]},{feats[j]}]"] = ("covariances", cov[..., a, i, j])
    return out


def compare(
    estimator,
    *posteriors,
    X=None,
    names=None,
    hdi_prob: float = 0.94,
    threshold: float = 0.9,
    partition_loss: str | None = "binder",
) -> Comparison:
    """Lay a fitted EM estimate next to one or more posteriors of the same model.

    Parameters
    ----------
    estimator : fitted bayesgmm.GaussianMixture
        The point estimate (MAP, or ML with ``prior=None``).
    *posteriors : bayesgmm.Posterior
        E.g. a NUTS and a VI posterior (``estimator.fit_posterior(X, method=...)``), with the
        estimator's ``n_components`` and ``covariance_type``.
    X : array-like of shape (n_samples, n_features), optional
        Data for the assignment agreement (and the matching of components); default: the data the
        first posterior was conditioned on.
    names : sequence of str, optional
        Column prefixes; default each posterior's ``name`` attribute if set, else its ``method``
        (``"nuts"``, ``"vi"``), numbered when repeated (``"nuts"``, ``"nuts2"``). Set
        ``posterior.name = "..."`` to label a posterior.
    hdi_prob : float, default=0.94
        Probability of the highest-density intervals (ArviZ's default).
    threshold : float, default=0.9
        ``share_uncertain`` counts points whose EM label has posterior probability below it.
    partition_loss : {"binder", "vi"} or None, default="binder"
        Loss of the posterior partition compared with the EM labels
        (:meth:`bayesgmm.Posterior.partition`, O(S N^2) for Binder); None uses the posterior's
        most probable components (:meth:`bayesgmm.Posterior.predict`) instead.

    Returns
    -------
    Comparison
        ``.table`` (per parameter entry), ``.agreement`` (per posterior), ``.plot()``.

    Examples
    --------
    >>> import numpy as np
    >>> import bayesgmm
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(-3, 1, (100, 2)), rng.normal(3, 1, (100, 2))])
    >>> gm = bayesgmm.GaussianMixture(2, random_state=0).fit(X)
    >>> nuts = gm.fit_posterior(X, num_warmup=100, num_samples=100, num_chains=2)
    >>> vi = gm.fit_posterior(X, method="vi", num_steps=500)
    >>> cmp = bayesgmm.compare(gm, nuts, vi)
    >>> list(cmp.table.columns[:4])
    ['variable', 'map', 'nuts_mean', 'nuts_sd']
    >>> cmp.agreement["ari"].tolist()  # both posteriors cluster the data as the MAP does
    [1.0, 1.0]
    """
    from . import _arviz  # imports ArviZ

    if not posteriors:
        raise ValueError("compare needs at least one posterior (estimator.fit_posterior(X)).")
    if not hasattr(estimator, "weights_"):
        raise ValueError("the estimator is not fitted; call estimator.fit(X) first.")
    if not 0.0 < float(hdi_prob) < 1.0:
        raise ValueError(f"hdi_prob must be in (0, 1), got {hdi_prob!r}.")
    if not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}.")
    if partition_loss not in (None, "binder", "vi"):
        raise ValueError(f"partition_loss={partition_loss!r} is not supported; use 'binder', 'vi' or None.")
    k, ct = estimator.n_components, estimator.covariance_type
    for p in posteriors:
        if p.n_components != k or p.covariance_type != ct:
            raise ValueError(
                f"every posterior must have the estimator's n_components={k} and covariance_type={ct!r}; "
                f"got n_components={p.n_components}, covariance_type={p.covariance_type!r}."
            )
    names = _names(posteriors, names)
    X = posteriors[0].x if X is None else estimator._check_X(X)
    em_resp = np.asarray(estimator.predict_proba(X), np.float64)
    em_labels = np.argmax(em_resp, axis=1)
    feature_names = getattr(posteriors[0], "feature_names", None)

    map_entries = _entries(
        np.asarray(estimator.weights_, np.float64),
        np.asarray(estimator.means_, np.float64),
        full_covariances(estimator.covariances_, ct, k, estimator.means_.shape[1]),
        ct,
        feature_names,
    )
    keys = list(map_entries)
    columns = {
        "parameter": np.asarray(keys, dtype=object),
        "variable": np.asarray([map_entries[q][0] for q in keys], dtype=object),
        "map": np.asarray([float(map_entries[q][1]) for q in keys]),
    }
    agree = {name: [] for name in (
        "posterior", "ari", "share_uncertain", "partition_clusters", "partition_expected_loss", "n_outside_hdi")}
    from sklearn.metrics import adjusted_rand_score

    for name, p in zip(names, posteriors):
        proba = p.predict_proba(X)
        perm = _match(em_resp, proba)
        draws = p.draws.permute(perm)
        entries = _entries(draws.weights, draws.means, draws.full_covariances(), ct, feature_names)
        samples = np.stack([np.asarray(entries[q][1], np.float64) for q in keys], axis=-1)  # (C, S, E)
        mean = samples.mean(axis=(0, 1))
        flat = samples.reshape(-1, samples.shape[-1])
        sd = flat.std(axis=0, ddof=1) if flat.shape[0] > 1 else np.zeros(len(keys))
        hdi = _arviz.hdi(samples, hdi_prob)
        inside = (columns["map"] >= hdi[:, 0]) & (columns["map"] <= hdi[:, 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            std_diff = np.where(sd > 0, (columns["map"] - mean) / np.where(sd > 0, sd, 1.0), np.nan)
        columns[f"{name}_mean"] = mean
        columns[f"{name}_sd"] = sd
        columns[f"{name}_hdi_lower"] = hdi[:, 0]
        columns[f"{name}_hdi_upper"] = hdi[:, 1]
        columns[f"{name}_map_in_hdi"] = inside
        columns[f"{name}_std_diff"] = std_diff

        if partition_loss is None:
            labels, n_clusters, loss = np.argmax(proba, axis=1), int(np.unique(np.argmax(proba, axis=1)).size), np.nan
        else:
            part = p.partition(X, loss=partition_loss)
            labels, n_clusters, loss = part.labels, part.n_clusters, part.expected_loss
        p_em = proba[:, perm][np.arange(X.shape[0]), em_labels]
        agree["posterior"].append(name)
        agree["ari"].append(float(adjusted_rand_score(em_labels, labels)))
        agree["share_uncertain"].append(float(np.mean(p_em < threshold)))
        agree["partition_clusters"].append(n_clusters)
        agree["partition_expected_loss"].append(float(loss))
        agree["n_outside_hdi"].append(int(np.sum(~inside)))

    agree = {n: np.asarray(v, dtype=object if n == "posterior" else None) for n, v in agree.items()}
    try:
        import pandas as pd
    except ImportError:  # pandas is optional
        table, agreement = columns, agree
    else:
        table = pd.DataFrame(columns).set_index("parameter")
        agreement = pd.DataFrame(agree).set_index("posterior")
    return Comparison(table=table, agreement=agreement, names=names, hdi_prob=float(hdi_prob), threshold=float(threshold))
