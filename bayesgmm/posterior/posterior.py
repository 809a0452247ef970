"""The :class:`Posterior`: relabelled draws, diagnostics that say what to change, predictive.

A ``Posterior`` wraps the result of a NUTS or VI run (any object with the fields of
``bayesgmm.infer.state.SamplerResult``), relabels the draws against the MAP estimate,
diagnoses the run *before and after* relabelling (so that an R-hat of 2 caused only by label
switching is recognised as such), and answers the predictive questions of scikit-learn's
``GaussianMixture`` under the posterior: ``predict_proba``, ``score_samples``, ``sample``. Its
:attr:`Posterior.idata` is the ArviZ data of the installed ArviZ with named dims: an
``arviz.InferenceData`` under ArviZ 0.2x, an ``xarray.DataTree`` under ArviZ >= 1 (built lazily
by :mod:`bayesgmm._arviz`, the one module that talks to ArviZ).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_random_state

from .. import _arviz, anomaly
from .. import io as _io
from .._validation import check_finite, check_sample_weight, seed_from
from ..core.params import GMMParams, check_covariance_type
from ..core.units import has_missing, log_jacobian, row_log_jacobians, standardisation
from ..infer.state import SamplerResult
from . import clusters
from ._compute import DrawEvaluator, evenly_spaced, flatten_draws
from .relabel import RELABEL_METHODS, relabel as _relabel

__all__ = ["Posterior", "PosteriorWarning"]

#: Diagnostics are computed for these variables (before and after relabelling).
DIAGNOSED = ("weights", "means", "covariances")


class PosteriorWarning(ConvergenceWarning):
    """A posterior run looks unreliable; the message says what to change."""


def _n_positive(a) -> int:
    return int(np.sum(np.asarray(a)))


class Posterior:
    """Relabelled posterior draws of a Gaussian mixture, with diagnostics and the predictive.

    Parameters
    ----------
    result : SamplerResult-like
        Object with ``draws`` (GMMParams, data units, leading axes ``(chain, draw)``),
        ``sample_stats`` (dict of ``(chain, draw)`` arrays: ``diverging``, ``energy``,
        ``tree_depth``, ``n_steps``, ``step_size``, ``acceptance_rate``, ``lp``), ``method``
        (``"nuts"`` or ``"vi"``), ``info`` (dict; ``max_tree_depth`` is read from it, default 10),
        ``num_warmup``, ``num_samples``, ``num_chains``.
    x : array-like of shape (n_samples, n_features)
        The data the posterior was conditioned on (a DataFrame's columns become feature names).
        NaN marks a missing cell (``missing="marginalize"``): every density and assignment of
        such a row is that of its observed cells, and :meth:`impute` draws the missing ones.
    pivot : GMMParams
        Reference labelling without batch axes, normally the MAP estimate (data units).
    sample_weight : array-like of shape (n_samples,), optional
        Observation weights the posterior was conditioned on (used by Stephens' relabelling and
        stored in ``idata.constant_data``).
    feature_names : sequence of str, optional
        Names of the features (coordinates of the ``feature`` dim).
    relabel : {"pivot", "stephens"} or None, default="pivot"
        Relabelling method (:func:`bayesgmm.posterior.relabel`); None keeps the raw labels (e.g.
        with ordered means).
    max_iter : int, default=50
        Maximum Stephens iterations.
    warn : bool, default=True
        Emit :class:`PosteriorWarning` for divergences, tree-depth hits, R-hat and low ESS.

    Attributes
    ----------
    draws : GMMParams, leading axes (chain, draw)
        Relabelled draws, numpy float64.
    raw_draws : GMMParams, leading axes (chain, draw)
        Draws as the sampler returned them.
    permutations : ndarray of int64, shape (chain, draw, n_components)
        ``draws[c, s, k] = raw_draws[c, s, permutations[c, s, k]]``.
    method : str
        ``"nuts"`` or ``"vi"``.
    relabel_method : str or None
    sample_stats : dict of str -> ndarray of shape (chain, draw)
    """

    def __init__(
        self,
        result,
        x,
        pivot: GMMParams,
        *,
        sample_weight=None,
        feature_names: Sequence[str] | None = None,
        relabel: str | None = "pivot",
        max_iter: int = 50,
        warn: bool = True,
    ):
        if relabel is not None and relabel not in RELABEL_METHODS:
            raise ValueError(f"relabel={relabel!r} is not supported; use one of {RELABEL_METHODS} or None.")
        if feature_names is None and hasattr(x, "columns"):
            feature_names = [str(c) for c in x.columns]
        self.x = np.asarray(x, np.float64)
        if self.x.ndim != 2:
            raise ValueError(f"x must have shape (n_samples, n_features), got {self.x.shape}.")
        self.feature_names = None if feature_names is None else [str(f) for f in feature_names]
        self.sample_weight = None if sample_weight is None else check_sample_weight(
            np.reshape(sample_weight, -1), self.x.shape[0]
        )

        raw = result.draws.to_numpy()
        check_covariance_type(raw.covariance_type)
        if raw.means.ndim != 4:
            raise ValueError(
                "result.draws must have leading (chain, draw) axes: means of shape (chain, draw, K, D), "
                f"got {raw.means.shape}."
            )
        if raw.means.shape[-1] != self.x.shape[1]:
            raise ValueError(f"the draws have {raw.means.shape[-1]} features, x has {self.x.shape[1]}.")
        bad = [
            name
            for name in ("weights", "means", "scales", "corr_chol")
            if getattr(raw, name) is not None and not np.all(np.isfinite(getattr(raw, name)))
        ]
        if bad:
            raise ValueError(
                f"the posterior draws contain NaN or infinite values in {bad}: the sampler failed "
                "numerically. Standardise the data, strengthen the priors on the scales, or use fewer "
                "components."
            )
        num_chains, num_samples = (int(n) for n in raw.means.shape[:2])
        # the run, whole (raw draws on the host): what the attributes below read, what extend()
        # continues (sampler state, prior and standardisation: None for VI or a result without them)
        self._result = SamplerResult(
            draws=raw,
            sample_stats={
                name: np.asarray(v) for name, v in dict(getattr(result, "sample_stats", None) or {}).items()
            },
            method=str(getattr(result, "method", "nuts")),
            info=dict(getattr(result, "info", None) or {}),
            num_warmup=getattr(result, "num_warmup", None),
            num_samples=num_samples,
            num_chains=num_chains,
            **{name: getattr(result, name, None) for name in ("prior", "shift", "scale", "state")},
        )
        self.pivot = pivot.to_numpy()
        self.relabel_method = relabel
        self.max_iter = max_iter
        if relabel is None:
            k = raw.n_components
            self.permutations = np.broadcast_to(np.arange(k), raw.weights.shape).copy()
            self.draws = raw
        else:
            self.draws, self.permutations = _relabel(
                raw, self.pivot, relabel, x=self.x, max_iter=max_iter, sample_weight=self.sample_weight
            )
        self._shift, self._scale = standardisation(self.x, raw.covariance_type, self.sample_weight)
        self._diagnostics = self._compute_diagnostics()
        if warn:
            for message in self._diagnostics["warnings"]:
                warnings.warn(message, PosteriorWarning, stacklevel=2)

    # -- the run -----------------------------------------------------------------------------------
    @property
    def raw_draws(self) -> GMMParams:
        """Draws as the sampler returned them (GMMParams, leading axes (chain, draw), numpy)."""
        return self._result.draws

    @property
    def method(self) -> str:
        """``"nuts"`` or ``"vi"``."""
        return self._result.method

    @property
    def info(self) -> dict:
        """The run's info (timings, sampler settings; see ``bayesgmm.infer.state.SamplerResult``)."""
        return self._result.info

    @property
    def sample_stats(self) -> dict:
        """Sampler statistics, dict of str -> ndarray of shape (chain, draw)."""
        return self._result.sample_stats

    @property
    def num_chains(self) -> int:
        return self._result.num_chains

    @property
    def num_samples(self) -> int:
        """Draws per chain."""
        return self._result.num_samples

    @property
    def num_warmup(self):
        return self._result.num_warmup

    @property
    def sampler_state(self):
        """The final NUTS sampler state that :meth:`extend` continues (None for VI)."""
        return self._result.state

    # -- shapes -----------------------------------------------------------------------------------
    @property
    def covariance_type(self) -> str:
        return self.draws.covariance_type

    @property
    def n_components(self) -> int:
        return self.draws.n_components

    @property
    def n_features(self) -> int:
        return self.draws.n_features

    @property
    def n_draws(self) -> int:
        """Total number of draws ``chain * draw``."""
        return self.num_chains * self.num_samples

    # -- diagnostics --------------------------------------------------------------------------------
    def _compute_diagnostics(self):
        before = _arviz.rhat_ess(self.raw_draws, DIAGNOSED)
        after = _arviz.rhat_ess(self.draws, DIAGNOSED)
        stats = self.sample_stats
        n_div = _n_positive(stats["diverging"]) if "diverging" in stats else 0
        max_depth = int(self.info.get("max_tree_depth", 10))
        n_depth = int(np.sum(np.asarray(stats["tree_depth"]) >= max_depth)) if "tree_depth" in stats else 0
        identity = np.arange(self.n_components)
        diag = {
            "method": self.method,
            "relabel_method": self.relabel_method,
            "num_chains": self.num_chains,
            "num_samples": self.num_samples,
            "rhat_before": before["rhat"],
            "rhat_after": after["rhat"],
            "ess_bulk_before": before["ess_bulk"],
            "ess_bulk_after": after["ess_bulk"],
            "ess_tail_before": before["ess_tail"],
            "ess_tail_after": after["ess_tail"],
            "max_rhat_before": _nanmax(before["rhat"].values()),
            "max_rhat": _nanmax(after["rhat"].values()),
            "min_ess_bulk": _nanmin(after["ess_bulk"].values()),
            "min_ess_tail": _nanmin(after["ess_tail"].values()),
            "n_divergent": n_div,
            "n_max_tree_depth": n_depth,
            "max_tree_depth": max_depth,
            "n_relabelled": int(np.sum(np.any(self.permutations != identity, axis=-1))),
        }
        diag["warnings"] = self._warning_messages(diag)
        return diag

    def _warning_messages(self, d):
        out = []
        total = self.n_draws
        if d["n_divergent"]:
            ta = self.info.get("target_accept")
            now = f", now {float(ta):g}" if ta is not None else ""
            out.append(
                f"{d['n_divergent']} of {total} post-warmup NUTS transitions diverged "
                f"({d['n_divergent'] / total:.1%}); the draws may be biased. Increase target_accept "
                f"(e.g. 0.95 or 0.99{now}); if divergences persist, strengthen the priors on the scales "
                "or use fewer components."
            )
        if d["n_max_tree_depth"]:
            out.append(
                f"{d['n_max_tree_depth']} of {total} NUTS transitions hit the maximum tree depth "
                f"{d['max_tree_depth']} (trajectories cut short: slow mixing, not bias). Increase "
                f"max_tree_depth (e.g. {d['max_tree_depth'] + 2}) or run more warmup so that the step "
                "size and mass matrix adapt better."
            )
        if self.method == "vi":
            return out  # independent draws from the approximation: R-hat and ESS say nothing
        r, r0 = d["max_rhat"], d["max_rhat_before"]
        if np.isfinite(r) and r > 1.01:
            worst = max(d["rhat_after"], key=lambda v: _nan_to(d["rhat_after"][v], -np.inf))
            out.append(
                f"R-hat after relabelling is {r:.3f} > 1.01 (worst: {worst}; {r0:.3f} before): the "
                "chains do not agree. Run longer chains / more warmup (num_samples, num_warmup). If it "
                "stays high, multimodality survived relabelling -- the model may have too many "
                "components: reduce n_components or use a sparser weight_concentration."
            )
        thr = 100 * self.num_chains
        eb, et = d["min_ess_bulk"], d["min_ess_tail"]
        if (np.isfinite(eb) and eb < thr) or (np.isfinite(et) and et < thr):
            out.append(
                f"Effective sample size is low after relabelling (bulk {eb:.0f}, tail {et:.0f}; "
                f"want at least 100 per chain = {thr}): posterior means and intervals are noisy. "
                "Run more samples (num_samples) or longer warmup."
            )
        return out

    def diagnostics(self) -> dict:
        """Convergence diagnostics before and after relabelling.

        Returns
        -------
        dict
            ``rhat_before`` / ``rhat_after``: {variable: max rank-normalised split R-hat} for
            weights, means and covariances (before = the raw, label-switched draws);
            ``ess_bulk_before`` / ``ess_bulk_after``, ``ess_tail_before`` / ``ess_tail_after``:
            {variable: min ESS}; ``max_rhat_before``, ``max_rhat``, ``min_ess_bulk``,
            ``min_ess_tail``: the worst over variables (after relabelling unless named
            ``_before``); ``n_divergent``; ``n_max_tree_depth`` (transitions with
            ``tree_depth >= max_tree_depth``) and ``max_tree_depth``; ``n_relabelled`` (draws whose
            permutation is not the identity); ``method``, ``relabel_method``, ``num_chains``,
            ``num_samples``; ``warnings``: the messages emitted at construction.
        """
        out = dict(self._diagnostics)
        for key in ("rhat_before", "rhat_after", "ess_bulk_before", "ess_bulk_after", "ess_tail_before", "ess_tail_after"):
            out[key] = dict(out[key])
        out["warnings"] = list(out["warnings"])
        return out

    # -- ArviZ -------------------------------------------------------------------------------------
    def pointwise_log_likelihood(self, X=None) -> np.ndarray:
        """``log p(x_n | theta_{c,s})``, ndarray of shape (chain, draw, n_samples).

        Of the data the posterior was conditioned on (cached), or of the points ``X``
        (array-like of shape (n_samples, n_features)) when given. A row with missing (NaN) cells
        gets the log density of its observed cells (what LOO and WAIC then use).
        """
        if X is not None:
            X = self._check_X(X)
            ll = self._evaluator(self.draws, X).pointwise_log_likelihood() + self._log_jacobian(X)
            return ll.reshape(self.num_chains, self.num_samples, -1)
        if getattr(self, "_pointwise", None) is None:
            ev = self._evaluator(self.draws, self.x)
            ll = ev.pointwise_log_likelihood() + self._log_jacobian(self.x)
            self._pointwise = ll.reshape(self.num_chains, self.num_samples, -1)
        return self._pointwise

    @functools.cached_property
    def idata(self):
        """ArviZ data of the relabelled draws (groups: see :mod:`bayesgmm._arviz`).

        An ``arviz.InferenceData`` under ArviZ 0.2x, an ``xarray.DataTree`` (one child per
        group: ``idata.posterior``, ``idata["log_likelihood"]``, ...) under ArviZ >= 1.
        """
        return _arviz.to_inference_data(
            self.draws,
            raw_draws=self.raw_draws,
            permutations=self.permutations,
            sample_stats=self.sample_stats,
            log_likelihood=self.pointwise_log_likelihood(),
            observed=self.x,
            sample_weight=self.sample_weight,
            feature_names=self.feature_names,
            attrs={"inference_method": self.method, "relabel_method": str(self.relabel_method)},
        )

    def summary(self, var_names: Sequence[str] | None = _arviz.DEFAULT_VAR_NAMES, **kwargs):
        """ArviZ summary (pandas DataFrame) of the relabelled draws.

        Parameters
        ----------
        var_names : sequence of str, default=("weights", "means", "covariances")
            Also ``"scales"``, ``"corr_chol"``; None for all.
        **kwargs
            ``hdi_prob`` (the interval's probability, on every ArviZ version) and the keywords
            of ``arviz.summary`` (0.2x) or ``arviz_stats.summary`` (1.x): ``kind``,
            ``round_to``, ``coords``, ...

        Returns
        -------
        pandas.DataFrame
            See :func:`bayesgmm._arviz.summary` for the columns of each ArviZ version.
        """
        return _arviz.summary(self.idata, var_names=var_names, **kwargs)

    def loo(self, **kwargs):
        """PSIS-LOO (``arviz.loo``) from the pointwise log-likelihood, as ArviZ returns it.

        An ``ELPDData`` pandas Series (``elpd_loo``, ``se``, ``p_loo``, ``pareto_k``, ...) under
        ArviZ 0.2x; an ``arviz_stats.ELPDDataLOO`` (``elpd``, ``se``, ``p``, ``pareto_k``, ...)
        under ArviZ >= 1. Keyword arguments go to ArviZ (e.g. ``pointwise=True``).
        """
        return _arviz.loo(self.idata, **kwargs)

    def waic(self, **kwargs):
        """WAIC from the pointwise log-likelihood.

        ``arviz.waic`` under ArviZ 0.2x; ArviZ >= 1 has no WAIC, and the same quantity is
        computed by :func:`bayesgmm._arviz.waic` (an ``arviz_stats.ELPDData``).
        """
        return _arviz.waic(self.idata, **kwargs)

    # -- predictive ---------------------------------------------------------------------------------
    def _evaluator(self, draws: GMMParams, X) -> DrawEvaluator:
        flat = flatten_draws(draws, 2)
        return DrawEvaluator(flat.to_numpy().standardise(self._shift, self._scale), (X - self._shift) / self._scale)

    def _check_X(self, X):
        """``X`` as a float64 (n, D) array; NaN marks a missing cell (infinite values and rows
        with every cell missing are refused)."""
        X = np.asarray(X, np.float64)
        if X.ndim == 1:
            raise ValueError(
                f"Expected 2D array, got 1D array of shape {X.shape}; use X.reshape(-1, 1) for a single "
                "feature or X.reshape(1, -1) for a single sample."
            )
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must have shape (n_samples, {self.n_features}), got {X.shape}.")
        if not np.all(np.isfinite(X)):
            check_finite(X, "X", allow_nan=True)
        return X

    def _log_jacobian(self, X):
        """``log p_x - log p_z`` of each row of ``X`` (a float for complete rows; per row, over the
        observed cells, when ``X`` has missing cells)."""
        return row_log_jacobians(X, self._scale) if has_missing(X) else log_jacobian(self._scale)

    def predict_proba(self, X) -> np.ndarray:
        """Posterior-mean responsibilities ``mean_s p(z_n = k | x_n, theta_s)`` (relabelled draws).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NaN marks a missing cell: a row is assigned by its observed cells (their marginal
            densities), as in every method of the posterior that takes ``X``.

        Returns
        -------
        ndarray of shape (n_samples, n_components); rows sum to 1.
        """
        X = self._check_X(X)
        return self._evaluator(self.draws, X).mean_responsibilities()

    def predict(self, X) -> np.ndarray:
        """Most probable component under :meth:`predict_proba`, shape (n_samples,)."""
        return np.argmax(self.predict_proba(X), axis=1)

    def score_samples(self, X) -> np.ndarray:
        """Posterior predictive log density ``log mean_s p(x_n | theta_s)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NaN marks a missing cell: the row's density is that of its observed cells (the
            missing ones integrated out).

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        X = self._check_X(X)
        lse = self._evaluator(self.draws, X).logsumexp_log_likelihood()
        return lse - np.log(self.n_draws) + self._log_jacobian(X)

    def score(self, X) -> float:
        """Mean posterior predictive log density of ``X``."""
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples: int = 1, random_state=None):
        """Draw from the posterior predictive: a random draw, then a component, then a Gaussian.

        Parameters
        ----------
        n_samples : int, default=1
        random_state : int, numpy Generator / RandomState or None

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of int64, shape (n_samples,)
            The (relabelled) component each sample came from.
        """
        if isinstance(n_samples, (bool, np.bool_)) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ValueError(f"Invalid value for 'n_samples': {n_samples!r}; it must be a positive integer.")
        rng = random_state if isinstance(random_state, np.random.Generator) else check_random_state(random_state)
        p = flatten_draws(self.draws, 2)
        ct = p.covariance_type
        n, d = int(n_samples), self.n_features
        s = rng.integers(0, self.n_draws, size=n) if isinstance(rng, np.random.Generator) else rng.randint(0, self.n_draws, size=n)
        cum = np.cumsum(p.weights[s], axis=-1)
        u = rng.random(n) if isinstance(rng, np.random.Generator) else rng.random_sample(n)
        y = np.minimum(np.sum(cum < (u * cum[:, -1])[:, None], axis=-1), self.n_components - 1)
        eps = rng.standard_normal((n, d))
        mean = p.means[s, y]
        if ct == "full":
            chol = p.scales[s, y][:, :, None] * p.corr_chol[s, y]
            noise = np.einsum("nde,ne->nd", chol, eps)
        elif ct == "tied":
            chol = p.scales[s][:, :, None] * p.corr_chol[s]
            noise = np.einsum("nde,ne->nd", chol, eps)
        elif ct == "diag":
            noise = p.scales[s, y] * eps
        else:
            noise = p.scales[s, y][:, None] * eps
        return mean + noise, y.astype(np.int64)

    # -- missing values ------------------------------------------------------------------------------
    def _imputation_draws(self, X, n_draws, random_state) -> np.ndarray:
        """``(n_draws, n, D)`` draws of the missing cells of the rows ``X`` (data units), one per
        posterior draw picked by :func:`evenly_spaced`; observed cells are ``X``'s own."""
        picks = evenly_spaced(self.n_draws, n_draws)
        chosen = flatten_draws(self.draws, 2).to_numpy()[picks]
        ev = DrawEvaluator(chosen.standardise(self._shift, self._scale), (X - self._shift) / self._scale)
        out = ev.impute(seed_from(random_state)) * self._scale + self._shift
        obs = ~np.isnan(X)
        out[:, obs] = X[obs]  # exactly the observed values (no round trip through the device)
        return out

    def impute(self, X=None, n_draws: int = 100, *, random_state=None) -> np.ndarray:
        """Multiple imputation: completed data sets drawn from the posterior predictive of the
        missing (NaN) cells.

        For each of ``n_draws`` posterior draws ``theta_s`` (spread evenly over the chains and
        their draws), every row's missing cells are drawn from ``p(x_m | x_o, theta_s)``: a
        component from the responsibilities given the observed cells, then the component's
        conditional Gaussian (:func:`bayesgmm.core.missing.impute_draw`). Across the completed
        data sets the missing cells vary with both the parameters' uncertainty and the
        conditional spread -- what Rubin's rules for multiple imputation need. Observed cells
        are returned unchanged. :meth:`impute_summary` summarises the draws per missing cell;
        :meth:`bayesgmm.GaussianMixture.impute` gives point imputations (conditional means at
        the MAP).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), optional
            Rows with NaN marking missing cells; default: the data the posterior was conditioned
            on. Rows without a missing cell are copied.
        n_draws : int, default=100
            Completed data sets; posterior draws are reused (with new noise) when ``n_draws``
            exceeds their number.
        random_state : int, RandomState or None
            Seed of the draws (the same seed gives the same data sets).

        Returns
        -------
        ndarray of shape (n_draws, n_samples, n_features), float64, without NaN

        Examples
        --------
        >>> import numpy as np
        >>> from bayesgmm import GaussianMixture
        >>> rng = np.random.default_rng(0)
        >>> X = rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], 200)
        >>> X[:20, 1] = np.nan
        >>> gm = GaussianMixture(1, missing="marginalize", random_state=0).fit(X)
        >>> post = gm.fit_posterior(X, method="vi", num_steps=200, num_samples=100)
        >>> sets = post.impute(n_draws=5, random_state=0)
        >>> sets.shape, bool(np.isnan(sets).any()), bool(np.all(sets[:, 20:] == X[20:]))
        ((5, 200, 2), False, True)
        """
        n_draws = _check_n_draws(n_draws)
        X = self.x if X is None else self._check_X(X)
        out = np.broadcast_to(X, (n_draws,) + X.shape).copy()
        rows = np.flatnonzero(np.isnan(X).any(axis=1))
        if rows.size:
            out[:, rows] = self._imputation_draws(X[rows], n_draws, random_state)
        return out

    def impute_summary(self, X=None, *, interval=(0.05, 0.95), n_draws: int = 1000, random_state=None):
        """Per missing (NaN) cell: the posterior predictive mean, sd and an equal-tailed interval.

        Summaries of the draws of :meth:`impute` (the same draws for the same ``n_draws`` and
        ``random_state``), over the cells of ``X`` that are NaN.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), optional
            Default: the data the posterior was conditioned on.
        interval : (float, float), default=(0.05, 0.95)
            Lower and upper quantile of the interval (the default: the central 90%).
        n_draws : int, default=1000
            Imputation draws the summaries are computed from.
        random_state : int, RandomState or None

        Returns
        -------
        pandas.DataFrame (or dict of ndarray without pandas)
            One row per missing cell, in row-major order: ``row`` and ``column`` (indices into
            ``X``), ``feature`` (the feature's name, or its index as a string), ``mean``, ``sd``,
            ``lower`` and ``upper``.

        Examples
        --------
        >>> import numpy as np
        >>> from bayesgmm import GaussianMixture
        >>> rng = np.random.default_rng(0)
        >>> X = rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], 200)
        >>> X[:20, 1] = np.nan
        >>> gm = GaussianMixture(1, missing="marginalize", random_state=0).fit(X)
        >>> post = gm.fit_posterior(X, method="vi", num_steps=200, num_samples=100)
        >>> table = post.impute_summary(random_state=0)
        >>> len(table["row"]), list(table)
        (20, ['row', 'column', 'feature', 'mean', 'sd', 'lower', 'upper'])
        """
        lo, hi = clusters._check_interval(interval)
        n_draws = _check_n_draws(n_draws)
        X = self.x if X is None else self._check_X(X)
        rows = np.flatnonzero(np.isnan(X).any(axis=1))
        r, c = np.nonzero(np.isnan(X[rows]))
        cells = np.zeros((n_draws, 0))
        if rows.size:
            cells = self._imputation_draws(X[rows], n_draws, random_state)[:, r, c]  # (S, n_cells)
        q = np.quantile(cells, [lo, hi], axis=0) if cells.size else np.zeros((2, 0))
        names = self.feature_names or [str(j) for j in range(self.n_features)]
        return _table({
            "row": rows[r].astype(np.int64), "column": c.astype(np.int64),
            "feature": np.asarray([names[j] for j in c], dtype=object),
            "mean": cells.mean(axis=0), "sd": cells.std(axis=0, ddof=1) if cells.shape[0] > 1 else np.zeros(c.size),
            "lower": q[0], "upper": q[1],
        })

    # -- label-free cluster summaries (logic in bayesgmm.posterior.clusters) ------------------------
    def assignment_probabilities(self, X=None, *, interval=(0.05, 0.95)):
        """Assignment probabilities with credible intervals and entropies.

        See :func:`bayesgmm.posterior.clusters.assignment_probabilities`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), optional
            Default: the data the posterior was conditioned on.
        interval : (float, float), default=(0.05, 0.95)
            Quantiles over the draws.

        Returns
        -------
        AssignmentProbabilities
            ``mean``, ``lower``, ``upper`` of shape (n_samples, n_components); ``entropy`` and
            ``expected_entropy`` of shape (n_samples,).
        """
        return clusters.assignment_probabilities(self, X, interval=interval)

    def coclustering(self, X=None) -> np.ndarray:
        """Posterior co-clustering matrix ``Pr(z_i = z_j | data)``, shape (n_samples, n_samples).

        Symmetric with unit diagonal; O(S N^2 K) time and O(N^2) memory
        (:func:`bayesgmm.posterior.clusters.coclustering`).
        """
        return clusters.coclustering(self, X)

    def partition(self, X=None, loss: str = "binder", **kwargs):
        """Partition minimising the posterior expected ``"binder"`` or ``"vi"`` loss.

        Returns a :class:`bayesgmm.posterior.clusters.Partition` (``labels`` of shape
        (n_samples,), ``expected_loss``, ``n_clusters``, ...); keyword arguments as in
        :func:`bayesgmm.posterior.clusters.partition`.
        """
        return clusters.partition(self, X, loss, **kwargs)

    def n_occupied(self, random_state=None) -> np.ndarray:
        """Per draw, the number of components holding at least one data point, (chain, draw).

        Labels of the data the posterior was conditioned on are drawn from their conditional
        posterior given each draw (:func:`bayesgmm.posterior.clusters.n_occupied`); with a sparse
        Dirichlet prior this is the posterior of the number of clusters.
        """
        return clusters.n_occupied(self, random_state)

    def anomaly_probability(self, X=None, percentile: float = 4.0, *, return_thresholds: bool = False):
        """Posterior probability that a point's density is below the ``percentile`` threshold.

        The threshold is recomputed per draw from the training data
        (:func:`bayesgmm.anomaly.anomaly_probability`). Returns an ndarray of shape (n_samples,)
        (and the per-draw thresholds, shape (chain, draw), with ``return_thresholds=True``).
        """
        return anomaly.anomaly_probability(self, X, percentile, return_thresholds=return_thresholds)

    # -- long runs and persistence (logic in bayesgmm.infer.nuts and bayesgmm.io) ------------------
    def extend(self, num_samples: int = 500, *, progress_bar: bool = False, warn: bool = True) -> "Posterior":
        """Continue the NUTS chains for ``num_samples`` more draws each, without a new warm-up.

        Each chain restarts from its final state with the step size and mass matrix adapted in
        the original warm-up (:func:`bayesgmm.infer.nuts.extend_nuts`). On CPU the result is
        bit-identical to a single run with ``num_samples`` more draws and the same seed. Works on
        a posterior loaded with :func:`bayesgmm.load_posterior` (in a new process too).

        Parameters
        ----------
        num_samples : int, default=500
            Additional draws per chain.
        progress_bar : bool, default=False
        warn : bool, default=True
            Emit :class:`PosteriorWarning` for the diagnostics of the combined draws.

        Returns
        -------
        Posterior
            A new posterior holding the old and the new draws (``num_samples`` grows; the
            relabelling is redone on all draws); this one is unchanged.
        """
        from ..infer.nuts import extend_nuts  # NumPyro: imported only when a run is extended

        if self.method != "nuts" or self.sampler_state is None or self._result.prior is None:
            raise ValueError(
                "only a NUTS posterior that kept its sampler state can be extended (this one has "
                f"method={self.method!r}"
                + ("" if self.sampler_state is not None else " and no sampler state")
                + "); run fit_posterior(X, method='nuts', ...) or load one saved with Posterior.save."
            )
        new = extend_nuts(self._result, self.x, sample_weight=self.sample_weight, num_samples=num_samples,
                          progress_bar=progress_bar)
        cat = lambda a, b: np.concatenate([np.asarray(a), np.asarray(b, np.asarray(a).dtype)], axis=1)  # noqa: E731
        draws = GMMParams(
            weights=cat(self.raw_draws.weights, new.draws.weights),
            means=cat(self.raw_draws.means, new.draws.means),
            scales=cat(self.raw_draws.scales, new.draws.scales),
            corr_chol=None if self.raw_draws.corr_chol is None else cat(self.raw_draws.corr_chol, new.draws.corr_chol),
            covariance_type=self.covariance_type,
        )
        stats = {name: cat(v, new.sample_stats[name]) for name, v in self.sample_stats.items() if name in new.sample_stats}
        info = dict(self.info)
        for key in ("compile_seconds", "sampling_seconds", "postprocess_seconds", "total_seconds"):
            info[key] = float(info.get(key, 0.0)) + float(new.info[key])
        info["cache_hit"] = new.info["cache_hit"]
        info["n_divergent"] = int(np.sum(stats["diverging"])) if "diverging" in stats else 0
        combined = SamplerResult(
            draws=draws, sample_stats=stats, method="nuts", info=info, num_warmup=self.num_warmup,
            num_samples=self.num_samples + new.num_samples, num_chains=self.num_chains,
            prior=new.prior, shift=new.shift, scale=new.scale, state=new.state,
        )
        return Posterior(
            combined, self.x, self.pivot, sample_weight=self.sample_weight, feature_names=self.feature_names,
            relabel=self.relabel_method, max_iter=self.max_iter, warn=warn,
        )

    def save(self, path):
        """Save the posterior to ``path``: a netCDF-4 file that ArviZ opens, plus what extend needs.

        The file holds the groups of :attr:`idata` (relabelled and raw draws, permutations,
        sampler statistics, pointwise log-likelihood, the data and weights) and a ``bayesgmm``
        group with the MAP pivot, the final NUTS sampler state, the run info and a JSON spec with
        a format version and a SHA-256 checksum (see :mod:`bayesgmm.io`). No pickle. Load it
        with :func:`bayesgmm.load_posterior`; ``arviz.from_netcdf(path)`` reads it too.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        str
            The path written (written to a temporary file in the same folder, then moved).
        """
        return _io.save_posterior(self, path)

    def _state(self) -> dict:
        """Everything the posterior is, as plain values: what :meth:`save` stores beyond
        :attr:`idata` and :meth:`_from_state` restores (the keys of :meth:`_from_state`)."""
        r = self._result
        return dict(
            raw_draws=r.draws, draws=self.draws, permutations=self.permutations, x=self.x, pivot=self.pivot,
            sample_weight=self.sample_weight, feature_names=self.feature_names, method=r.method,
            info=r.info, num_warmup=r.num_warmup, sample_stats=r.sample_stats,
            relabel_method=self.relabel_method, max_iter=self.max_iter, sampler_state=r.state,
            prior=r.prior, shift=r.shift, scale=r.scale,
        )

    @classmethod
    def _from_state(cls, state: dict) -> "Posterior":
        """A Posterior from the parts of :meth:`_state`, without relabelling again (used by bayesgmm.io)."""
        self = cls.__new__(cls)
        self.x = state["x"]
        self.feature_names = state["feature_names"]
        self.sample_weight = state["sample_weight"]
        raw = state["raw_draws"]
        self._result = SamplerResult(
            draws=raw, sample_stats=state["sample_stats"], method=state["method"], info=state["info"],
            num_warmup=state["num_warmup"], num_samples=int(raw.means.shape[1]),
            num_chains=int(raw.means.shape[0]), prior=state["prior"], shift=state["shift"],
            scale=state["scale"], state=state["sampler_state"],
        )
        self.pivot = state["pivot"]
        self.relabel_method = state["relabel_method"]
        self.max_iter = state["max_iter"]
        self.permutations = state["permutations"]
        self.draws = state["draws"]
        self._shift, self._scale = standardisation(self.x, raw.covariance_type, self.sample_weight)
        self._diagnostics = self._compute_diagnostics()
        return self

    # -- display ------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        d = self._diagnostics
        parts = [
            f"method={self.method!r}",
            f"covariance_type={self.covariance_type!r}",
            f"n_components={self.n_components}",
            f"n_features={self.n_features}",
            f"chains={self.num_chains}",
            f"draws={self.num_samples}",
            f"relabel={self.relabel_method!r} ({d['n_relabelled']} draws permuted)",
            f"max_rhat={d['max_rhat']:.3f} (before relabelling {d['max_rhat_before']:.3f})",
            f"min_ess_bulk={d['min_ess_bulk']:.0f}",
        ]
        if self.method == "nuts":
            parts.append(f"divergences={d['n_divergent']}")
        return "Posterior(" + ", ".join(parts) + ")"


def _check_n_draws(n) -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n_draws must be a positive integer, got {n!r}.")
    return int(n)


def _table(columns: dict):
    """A pandas DataFrame when pandas is importable, else the dict of arrays."""
    try:
        import pandas as pd
    except ImportError:  # pandas is optional (a test extra)
        return columns
    return pd.DataFrame(columns)


def _nan_to(v, fill):
    return fill if not np.isfinite(v) else v


def _nanmax(values) -> float:
    v = np.asarray(list(values), np.float64)
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else float("nan")


def _nanmin(values) -> float:
    v = np.asarray(list(values), np.float64)
    v = v[np.isfinite(v)]
    return float(v.min()) if v.size else float("nan")
