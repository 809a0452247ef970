"""The scikit-learn compatible front: ``bayesgmm.GaussianMixture``.

Validates on the host, dispatches to the runners in :mod:`bayesgmm.infer`, stores fitted attributes
with scikit-learn's names and shapes. ``prior=None`` makes it a drop-in replacement for
``sklearn.mixture.GaussianMixture``; the default ``prior="default"`` fits the MAP of the Bayesian
model that NUTS and VI explore.
"""

from __future__ import annotations

import functools
import warnings

import jax
import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, check_random_state

from . import anomaly, criteria
from . import io as _io
from ._validation import (
    check_data,
    check_params,
    check_rank,
    check_sample_weight,
    check_scales,
    resolve_prior_arg,
    seed_from,
)
from .core.init import INIT_METHODS
from .core.layouts import (
    covariances_from_precisions, covariances_shape, full_covariances, n_parameters, standardise_covariances,
)
from .core.online import online_state_arrays, online_state_from_arrays
from .core.params import GMMParams
from .core.units import has_missing, log_jacobian, row_log_jacobians
from .infer.map_em import MAPResult, fit_map
from .infer.online_em import online_em_start, online_em_update
from .infer.scoring import impute_rows, score_rows

__all__ = ["GaussianMixture", "CollapsedComponentWarning"]


#: The fitted attributes that are the estimator's state (:meth:`GaussianMixture._get_state`): arrays
#: stored as they are (float64 / strings) and scalars.
_STATE_ARRAYS = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
                 "lower_bounds_", "collapsed_components_", "feature_names_in_", "_shift", "_scale")
_STATE_SCALARS = ("converged_", "n_iter_", "lower_bound_", "n_empty_", "n_features_in_", "n_steps_",
                  "_fit_weight")
#: The fields of ``map_result_`` that are state (all but ``params``, ``prior`` and ``info``).
_MAP_ARRAYS = ("history", "restart_objectives", "shift", "scale", "collapsed", "pruned")
_MAP_SCALARS = ("objective", "log_likelihood", "converged", "n_iter", "n_empty", "best_index")


class CollapsedComponentWarning(UserWarning):
    """A mixture component collapsed during EM and was pruned (see ``collapsed_components_``)."""


def _rollback_on_error(method):
    """Run ``method``; on any exception (KeyboardInterrupt included) restore the estimator and re-raise.

    The snapshot is shallow (fitting replaces attributes, it never mutates fitted arrays in
    place); a ``RandomState`` given as ``random_state``, which a fit advances, is restored too.
    """

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        snapshot = dict(self.__dict__)
        rs = self.__dict__.get("random_state")
        rs_state = rs.get_state() if isinstance(rs, np.random.RandomState) else None
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(snapshot)
            if rs_state is not None:
                rs.set_state(rs_state)
            raise

    return wrapper


@_io._loads_into("GaussianMixture")
class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by MAP-EM (default) or maximum-likelihood EM.

    The same model -- Dirichlet weights, Normal means, LKJ correlations with scale priors -- is
    later explored by NUTS and VI with :meth:`fit_posterior`; this estimator finds its MAP with a
    jitted EM in JAX, with ``n_init`` restarts batched by ``vmap``.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components ``K``.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Structure of the component covariances.
    prior : "default", Prior or None, default="default"
        ``"default"`` is ``bayesgmm.Prior()`` (weakly informative, data-derived; see
        :class:`bayesgmm.Prior`); a ``Prior`` sets the hyperparameters; ``None`` gives plain
        maximum likelihood with ``reg_covar``, i.e. scikit-learn's algorithm.
    tol : float, default=1e-3
        Convergence threshold on the change of the objective per sample (log posterior, or
        log-likelihood with ``prior=None``).
    reg_covar : float, default=1e-6
        Non-negative value added to the covariance diagonals in maximum-likelihood mode. With a
        prior, the prior keeps covariances positive definite and ``reg_covar`` is not used: its
        counterpart there is ``Prior.covariance_floor`` (default ``1e-4`` of each feature's
        variance, added to each component's scatter matrix), which is part of the model.
    max_iter : int, default=100
        Maximum number of EM iterations per start.
    n_init : int, default=1
        Number of starts; the best objective is kept. They run in one compiled program:
        vectorised, or in turn on a CPU when the data are small or span several blocks.
    init_params : {"kmeans", "k-means++", "random", "random_from_data", "hc"}, default="kmeans"
        How starts are drawn (responsibilities from k-means, k-means++ seeds, random
        responsibilities, or random data points). Each k-means and k-means++ start clusters
        two views of the data -- the standardised features, where every feature counts alike,
        and the data's own scale (scikit-learn's start) -- runs 20 EM iterations from each and
        continues the better (the "emEM" strategy of Biernacki, Celeux & Govaert 2003): the two
        views often lead EM to different optima. ``n_iter_`` counts the continued run's
        iterations.
        ``"hc"`` starts the first start from mclust's model-based hierarchical agglomeration
        (``hc`` with the unconstrained "VVV" criterion, on the standardised features; Fraley
        1998) -- deterministic, so ``random_state`` does not change it -- and starts 1, 2, ...
        exactly as ``"kmeans"`` does. The agglomeration needs O(m^2) memory and runs on at most
        2000 rows (``bayesgmm.core.hc.HC_MAX_ROWS``; larger data are subsampled and the other
        rows join their likeliest group); it merges rows unweighted (``sample_weight`` weights
        the subsample and the partition's parameters).
    weights_init : array-like of shape (n_components,), optional
    means_init : array-like of shape (n_components, n_features), optional
    precisions_init : array-like, optional
        User-provided start, in scikit-learn's layout for the covariance type.
    random_state : int, RandomState instance or None, default=None
        Seed of the initialisation; the same seed gives identical results on CPU.
    warm_start : bool, default=False
        Start ``fit`` from the last solution (``n_init`` is then ignored).
    verbose : int, default=0
        Print a summary of each fit when > 0.
    devices : None, int, sequence of jax devices or jax.sharding.Mesh, default=None
        Devices that ``fit``, ``partial_fit`` and the scoring methods split the samples over
        (data parallel: each device passes over its share of the rows, the sufficient statistics
        are summed across devices). ``None`` means all local devices; an int ``n`` the first
        ``n`` local devices; after ``jax.distributed.initialize()``, ``jax.devices()`` spans
        several hosts. With a single device the data are not sharded.
    learning_decay : float, default=0.6
        ``kappa`` of the step sizes ``rho_t = (t + learning_offset) ** (-kappa)`` of
        :meth:`partial_fit` (stepwise online EM), in ``(0.5, 1]``; ``1`` with
        ``learning_offset=1`` averages all chunks equally, smaller values forget early chunks
        (whose statistics were computed at worse parameters) faster.
    learning_offset : float, default=1.0
        ``t0 >= 0`` of the step-size schedule of :meth:`partial_fit`; larger values make the
        first updates smaller.
    missing : {"error", "marginalize"}, default="error"
        What NaN in ``X`` means. ``"error"``: NaN is refused with an error. ``"marginalize"``: NaN
        marks a missing cell, missing at random. A row's likelihood is then the mixture of the
        marginal densities of its observed cells: EM uses the expected sufficient statistics of
        the missing cells (Ghahramani & Jordan 1994), ``fit_posterior`` samples the same
        marginal likelihood, the scoring methods (``score_samples``, ``predict_proba``, ``bic``,
        ...) score the observed cells, and :meth:`impute` fills the missing ones. Rows with every
        cell missing and infinite values are refused. Data with missing cells are fitted on one
        device, and :meth:`partial_fit` updates (after the first chunk) need complete chunks.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        (K, D, D) full, (D, D) tied, (K, D) diag, (K,) spherical.
    precisions_ : ndarray, same shape as ``covariances_``
    precisions_cholesky_ : ndarray, same shape as ``covariances_``
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Objective per unit of sample weight at the returned parameters: the mean log-likelihood
        with ``prior=None`` (as scikit-learn), the log posterior divided by ``n_samples``
        otherwise.
    lower_bounds_ : ndarray of shape ``(n_iter_ + 1,)``
        ``lower_bound_`` after 0, 1, ..., ``n_iter_`` M-steps (never decreases).
    n_empty_ : int
        Components emptied by a sparse Dirichlet prior (``weight_concentration < 1``).
    collapsed_components_ : ndarray of int
        Components that collapsed (a covariance singular at the ``reg_covar`` floor or below
        1e-10 of the data's variance; under the prior's covariance floor, a covariance that is
        the floor alone in every direction, i.e. a point mass on duplicated points; or less than
        half a sample's weight). They are pruned --
        weight exactly 0, EM re-run with the others -- and a
        :class:`CollapsedComponentWarning` says so; empty when nothing collapsed.
    map_result_ : bayesgmm.infer.MAPResult
        Everything the EM run reported (all restarts); after :meth:`partial_fit`, that of the
        fit of the first chunk. After :func:`bayesgmm.load` its ``info`` (per-restart
        diagnostics in standardised units) is None; everything else is restored.
    n_steps_ : int
        Chunks processed by :meth:`partial_fit` (0 after ``fit``).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape ``(n_features_in_,)``
        Defined when ``X`` has string column names.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import GaussianMixture
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(-2, 0.5, (200, 2)), rng.normal(2, 0.5, (100, 2))])
    >>> gm = GaussianMixture(n_components=2, random_state=0).fit(X)
    >>> np.round(np.sort(gm.means_[:, 0]), 1)
    array([-2.,  2.])
    >>> gm.predict(X[:3])
    array([0, 0, 0])
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        prior="default",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        devices=None,
        learning_decay=0.6,
        learning_offset=1.0,
        missing="error",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.prior = prior
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.devices = devices
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.missing = missing

    # ------------------------------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "marginalize"
        return tags

    def _check_init_arrays(self, d):
        k = self.n_components
        ct = self.covariance_type
        out = {}
        if self.weights_init is not None:
            w = np.asarray(self.weights_init, np.float64)
            if w.shape != (k,) or np.any(w < 0) or not np.isclose(w.sum(), 1.0, atol=1e-6):
                raise ValueError(
                    f"weights_init must have shape ({k},), be >= 0 and sum to 1; got shape {w.shape} "
                    f"summing to {w.sum():.6g}."
                )
            out["weights_init"] = w / w.sum()
        if self.means_init is not None:
            m = np.asarray(self.means_init, np.float64)
            if m.shape != (k, d) or not np.all(np.isfinite(m)):
                raise ValueError(f"means_init must be finite with shape ({k}, {d}); got shape {m.shape}.")
            out["means_init"] = m
        if self.precisions_init is not None:
            p = np.asarray(self.precisions_init, np.float64)
            shape = covariances_shape(ct, k, d)
            if p.shape != shape:
                raise ValueError(
                    f"precisions_init for covariance_type={ct!r} must have shape {shape}; got {p.shape}."
                )
            if ct in ("full", "tied"):
                try:
                    np.linalg.cholesky(p)
                except np.linalg.LinAlgError:
                    raise ValueError("precisions_init must be symmetric positive definite.") from None
            elif np.any(p <= 0):
                raise ValueError("precisions_init must be > 0.")
            out["covariances_init"] = covariances_from_precisions(p, ct)
        return out

    @_rollback_on_error
    def fit(self, X, y=None, sample_weight=None):
        """Fit the mixture by MAP-EM (or ML-EM when ``prior=None``).

        If the call raises (including ``KeyboardInterrupt``), the estimator is left exactly as
        it was before the call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data: numpy array, list of lists or pandas DataFrame; integer and boolean dtypes are
            cast to float.
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights; an integer weight acts as repeating the row.

        Returns
        -------
        self : GaussianMixture
        """
        self._fit(X, sample_weight)
        return self

    @_rollback_on_error
    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the component labels of ``X``, shape (n_samples,) (rolled back on error)."""
        X = self._fit(X, sample_weight)
        return self._predict_checked(X)

    def partial_fit(self, X, y=None, sample_weight=None):
        """Update the mixture with one chunk of data by stepwise online EM.

        The first call (on an unfitted estimator) fits the chunk with :meth:`fit` -- its
        initialisation, ``n_init`` restarts and prior, which is resolved from that chunk -- and
        its standardisation becomes the frame of all later updates. Each later call takes one
        stepwise-EM step (Cappé & Moulines 2009; Liang & Klein 2009; see
        :mod:`bayesgmm.core.online`): the running sufficient statistics per unit weight move
        towards the chunk's by ``rho_t = (t + learning_offset) ** (-learning_decay)``,
        ``t = 1, 2, ...``, then one M-step with the same prior (MAP) or maximum likelihood
        (``prior=None``) weighs them by all the sample weight seen so far. After :meth:`fit`,
        the first call continues from the fitted parameters, counting the fit's data as seen.

        Chunks can come from a generator or from slices of a ``numpy.memmap``
        (``gm.partial_fit(mm[i:i + chunk])``); only the current chunk is held in memory.
        Chunks of one size share one compilation. After an update, ``lower_bound_`` is the
        chunk's mean log-likelihood at the parameters before the update, and ``n_steps_``
        counts the chunks seen; ``converged_`` and ``n_iter_`` remain those of the first fit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One chunk; ``n_features`` must be the same for every chunk.
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self : GaussianMixture
        """
        kappa, t0 = self.learning_decay, self.learning_offset
        for name, value, ok, rule in (
            ("learning_decay", kappa, lambda v: 0.5 < v <= 1.0, "in (0.5, 1]"),
            ("learning_offset", t0, lambda v: v >= 0.0, ">= 0"),
        ):
            if (
                isinstance(value, (bool, np.bool_))
                or not isinstance(value, (int, float, np.integer, np.floating))
                or not np.isfinite(value)
                or not ok(float(value))
            ):
                raise ValueError(
                    f"{name} must be a number {rule} (the step sizes of partial_fit are "
                    f"(t + learning_offset) ** -learning_decay), got {value!r}."
                )
        if not hasattr(self, "weights_"):
            self._fit(X, sample_weight)
            self.n_steps_ = 1
            return self
        X = self._check_X(X)
        if has_missing(X):
            raise ValueError(
                "partial_fit's online-EM updates need complete chunks, and this chunk has missing "
                "(NaN) cells. Fit data with missing cells in one call with fit(), impute the chunk "
                "first (gm.impute(chunk)), or drop its incomplete rows."
            )
        n = X.shape[0]
        w = check_sample_weight(sample_weight, n)
        w = np.ones(n) if w is None else w
        if getattr(self, "_online", None) is None:
            self._online = online_em_start(self._std_params(), self._fit_weight)
        step = online_em_update(
            self._online, X, w, shift=self._shift, scale=self._scale, prior=self.map_result_.prior,
            reg_covar=self.reg_covar, t0=t0, kappa=kappa, devices=self.devices,
        )
        self._online = step.state
        params = step.params
        self.weights_ = np.asarray(params.weights, np.float64)
        self.means_ = np.asarray(params.means, np.float64)
        self.covariances_ = np.asarray(params.covariances(), np.float64)
        self.precisions_cholesky_ = np.asarray(params.precisions_cholesky(), np.float64)
        self.precisions_ = np.asarray(params.precisions(), np.float64)
        # mean log-likelihood of this chunk at the parameters before the update (data units)
        self.lower_bound_ = step.mean_log_likelihood
        self.n_steps_ = getattr(self, "n_steps_", 0) + 1
        return self

    def _fit(self, X, sample_weight):
        check_params(self, INIT_METHODS)
        prior = resolve_prior_arg(self.prior)
        X = check_data(self, X, reset=True, min_samples=1)
        n, d = X.shape
        if n < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = {self.n_components}, "
                f"n_samples = {n} (rows of X). Use fewer components or more data."
            )
        if prior is not None and n < 2 and (prior.mean_scale is None or prior.scale_scale is None):
            raise ValueError(
                f"The default prior derives its scales from the data and needs n_samples >= 2 "
                f"(got n_samples = {n} rows of X). Pass more data, explicit Prior(mean_scale=..., "
                "scale_scale=...), or prior=None."
            )
        w = check_sample_weight(sample_weight, n)
        check_scales(X, w, with_prior=prior is not None)
        check_rank(X, w, covariance_type=self.covariance_type, with_prior=prior is not None)
        inits = self._check_init_arrays(d)
        n_init = self.n_init
        if self.warm_start and hasattr(self, "weights_") and getattr(self, "n_features_in_", d) == d:
            inits = {
                "weights_init": self.weights_,
                "means_init": self.means_,
                "covariances_init": self.covariances_,
            }
            n_init = 1
        result = fit_map(seed_from(self.random_state), X, sample_weight=w, **self._fit_map_options(prior, n_init, inits))
        self._store(result, n if w is None else float(w.sum()))
        self.n_steps_ = 0
        self._online = None  # a later partial_fit continues from this fit
        if not result.converged:
            warnings.warn(
                f"EM did not converge within max_iter={self.max_iter} iterations "
                f"(best of n_init={n_init} starts). Increase max_iter, loosen tol (now {self.tol}), "
                "or try more starts (n_init) or another init_params.",
                ConvergenceWarning,
                stacklevel=3,
            )
        if result.n_empty:
            warnings.warn(
                f"{result.n_empty} of {self.n_components} components were emptied (pruned): they "
                "hold no data and have weight exactly 0, either removed by a sparse Dirichlet "
                "prior (weight_concentration < 1) or never reached by the data from their start. "
                f"The fit uses the other {self.n_components - result.n_empty}; consider fewer "
                "components, or more restarts (n_init) if the start was poor.",
                UserWarning,
                stacklevel=3,
            )
        self._warn_collapsed(result, prior is None)
        if self.verbose:
            print(
                f"bayesgmm: n_init={n_init}, best start {result.best_index}: converged={result.converged} "
                f"after {result.n_iter} iterations, objective {result.objective:.6g}"
            )
        return X

    def _fit_map_options(self, prior, n_init, inits) -> dict:
        """The options of :func:`bayesgmm.infer.map_em.fit_map` for this estimator's fit."""
        return dict(
            n_components=self.n_components, covariance_type=self.covariance_type, prior=prior, tol=self.tol,
            max_iter=self.max_iter, reg_covar=self.reg_covar, n_init=n_init, init_params_method=self.init_params,
            devices=self.devices, **inits,
        )

    def _warn_collapsed(self, result, ml: bool):
        collapsed = [int(i) for i in result.collapsed]
        if not collapsed:
            return
        pruned = [int(i) for i in result.pruned]
        kept = sorted(set(collapsed) - set(pruned))
        what = (
            f"Component(s) {collapsed} of {self.n_components} collapsed during EM: a covariance "
            "became singular (the component sat on tied or duplicated points) or its weight fell "
            "below half a sample."
        )
        if pruned:
            what += (
                f" Pruned {pruned}: their weight is now exactly 0 and EM was re-run with the other "
                f"{self.n_components - len(pruned)} components."
            )
        if kept:
            what += f" Kept {kept} (every component collapsed, or the re-run failed)."
        fix = (
            f"increase reg_covar (now {self.reg_covar}), fit with the default prior "
            "(prior='default'), use fewer components, or deduplicate the data"
            if ml
            else "use fewer components, deduplicate the data, or a prior with a larger "
            "Prior(covariance_floor=...) (a spike on duplicated points then gains less)"
        )
        warnings.warn(
            f"{what} collapsed_components_ lists them. To avoid it, {fix}.",
            CollapsedComponentWarning,
            stacklevel=4,
        )

    def _store(self, result, total_weight):
        p = result.params
        self.map_result_ = result
        self.weights_ = np.asarray(p.weights, np.float64)
        self.means_ = np.asarray(p.means, np.float64)
        self.covariances_ = np.asarray(p.covariances(), np.float64)
        self.precisions_cholesky_ = np.asarray(p.precisions_cholesky(), np.float64)
        self.precisions_ = np.asarray(p.precisions(), np.float64)
        self.converged_ = bool(result.converged)
        self.n_iter_ = int(result.n_iter)
        self.lower_bound_ = float(result.objective / total_weight)
        self.lower_bounds_ = np.asarray(result.history, np.float64) / total_weight
        self.n_empty_ = int(result.n_empty)
        self.collapsed_components_ = np.asarray(result.collapsed, dtype=int)
        self._fit_weight = float(total_weight)
        # scoring runs in the standardised frame of the fit (float32 safety)
        self._shift = np.asarray(result.shift, np.float64)
        self._scale = np.asarray(result.scale, np.float64)

    # ------------------------------------------------------------------------------------------
    def save(self, path):
        """Save the fitted estimator to ``path`` (an ``.npz`` archive; no pickle).

        Stores ``get_params()`` (a :class:`~bayesgmm.Prior` by its fields, a ``RandomState`` by its
        state) and every fitted attribute bit for bit, with a format version and a SHA-256
        checksum (see :mod:`bayesgmm.io`); ``bayesgmm.load(path)`` gives an estimator whose
        predictions are identical, and the state of :meth:`partial_fit`, so that streaming goes
        on exactly as it would have. ``map_result_.info`` (per-restart EM diagnostics) is not
        stored, nor is ``devices`` when it names particular devices (a placement on this
        machine; the loaded estimator has ``devices=None``). The file is written to a temporary
        file next to ``path`` and moved into place, so ``path`` never holds a partial file; no
        suffix is added to ``path``.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        str
            The path written.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            The estimator is not fitted.
        TypeError
            A parameter cannot be saved (e.g. ``random_state`` a ``numpy.random.Generator``).
        """
        return _io.save_estimator(self, path)

    def _get_state(self) -> dict:
        """The fitted state as plain values: what :meth:`save` writes and :meth:`_from_state` restores.

        ``{"scalars": {name: bool | int | float}, "arrays": {name: ndarray}, "map_result": None |
        {"params": GMMParams, "prior": ResolvedPrior | None, "scalars": {...}, "arrays": {...}},
        "online": None | {"params": GMMParams, "arrays": {...}}}``, keyed by attribute and field
        names (feature names as a ``str`` array). :mod:`bayesgmm.io` decides only how they are
        laid out in a file.
        """
        check_is_fitted(self, msg=(
            "This %(name)s instance is not fitted yet, so there is nothing to save. Call 'fit' first."
        ))
        scalars = {}
        for name in _STATE_SCALARS:
            if hasattr(self, name):
                v = getattr(self, name)
                scalars[name] = bool(v) if isinstance(v, (bool, np.bool_)) else (
                    int(v) if isinstance(v, (int, np.integer)) else float(v))
        arrays = {}
        for name in _STATE_ARRAYS:
            if hasattr(self, name):
                v = np.asarray(getattr(self, name))
                arrays[name] = v.astype(str) if v.dtype.kind == "O" else v  # feature names: str, no pickle
        state = {"scalars": scalars, "arrays": arrays, "map_result": None, "online": None}
        mr = getattr(self, "map_result_", None)
        if mr is not None:
            state["map_result"] = {
                "params": mr.params, "prior": mr.prior,
                "scalars": {name: (bool(getattr(mr, name)) if name == "converged" else
                                   float(getattr(mr, name)) if name in ("objective", "log_likelihood") else
                                   int(getattr(mr, name))) for name in _MAP_SCALARS},
                "arrays": {name: np.asarray(getattr(mr, name)) for name in _MAP_ARRAYS},
            }
        online = getattr(self, "_online", None)
        if online is not None:
            state["online"] = {"params": online.params, "arrays": online_state_arrays(online)}
        return state

    @classmethod
    def _from_state(cls, params: dict, state: dict) -> "GaussianMixture":
        """An estimator with ``get_params() == params`` and the fitted ``state`` of :meth:`_get_state`."""
        est = cls(**params)
        for name, v in state["scalars"].items():
            setattr(est, name, v)
        for name, v in state["arrays"].items():
            setattr(est, name, v.astype(object) if name == "feature_names_in_" else v)
        m = state["map_result"]
        if m is not None:
            est.map_result_ = MAPResult(params=m["params"], prior=m["prior"], info=None, **m["scalars"], **m["arrays"])
        est._online = None  # as after fit: no partial_fit step taken yet
        if state["online"] is not None:
            est._online = online_state_from_arrays(state["online"]["params"], state["online"]["arrays"])
        return est

    _NUTS_OPTIONS = (
        "num_warmup", "num_samples", "num_chains", "chain_method", "dense_mass", "target_accept",
        "max_tree_depth", "init_jitter",
    )
    _VI_OPTIONS = ("guide", "num_steps", "learning_rate", "optimizer", "batch_size", "num_samples", "log_density")

    @_rollback_on_error
    def fit_posterior(
        self, X, method="nuts", *, sample_weight=None, random_state=None, progress_bar=False,
        relabel="pivot", resume=None, **options,
    ):
        """Sample the posterior of the same model (same prior) whose MAP this estimator holds.

        The fitted MAP (fitted first if needed) is the starting point of every chain / of the
        variational guide and the pivot of the relabelling. If the call raises (including
        ``KeyboardInterrupt``), the estimator is left exactly as it was before the call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            With ``missing="marginalize"``, NaN marks a missing cell: NUTS and VI then sample the
            posterior under the marginal likelihood of the observed cells (the one EM
            maximises), and :meth:`Posterior.impute <bayesgmm.Posterior.impute>` draws the
            missing cells from their posterior predictive (multiple imputation).
        method : {"nuts", "vi"}, default="nuts"
        sample_weight : array-like of shape (n_samples,), optional
            Likelihood weights (an integer weight acts as repeating the row).
        random_state : int, RandomState or None
            Seed of the sampler; defaults to the estimator's ``random_state``.
        progress_bar : bool, default=False
            NumPyro's progress bars (one per chain for NUTS). They run through host callbacks,
            and JAX does not keep programs with callbacks in the persistent compilation cache:
            with bars the sampler is compiled again in every process (several seconds).
        relabel : {"pivot", "stephens"} or None, default="pivot"
            How draws are aligned to the MAP labelling before summaries and diagnostics.
        resume : Posterior, str or os.PathLike, optional
            Continue a NUTS run instead of starting one: a :class:`~bayesgmm.Posterior` or the
            path of one saved with :meth:`Posterior.save` (e.g. by another process). Its chains
            go on for ``num_samples`` more draws from their final state, without a new warm-up
            (:meth:`Posterior.extend`); ``X`` and ``sample_weight`` must be the run's data, the
            only other option is ``num_samples``, and the estimator is neither used nor changed
            (it need not be fitted). Returns the posterior with the old and the new draws.
        **options
            NUTS: ``num_warmup=500``, ``num_samples=500``, ``num_chains=4``,
            ``chain_method="auto"`` (sequential on a CPU, vectorized on an accelerator),
            ``dense_mass=False``, ``target_accept=0.8``,
            ``max_tree_depth=10``, ``init_jitter=0.05``.
            VI: ``guide="normal"`` (or "multivariate_normal", "low_rank", "delta"),
            ``num_steps=2000``, ``learning_rate=0.01``, ``optimizer=None``,
            ``batch_size=None`` (minibatches), ``num_samples=1000``, ``log_density=None`` (the
            draws' log posteriors, computed by default only when cheap; see
            :func:`bayesgmm.infer.svi.run_svi`).

        Returns
        -------
        bayesgmm.Posterior
        """
        from .infer.nuts import run_nuts
        from .infer.svi import run_svi
        from .posterior import Posterior

        if method not in ("nuts", "vi"):
            raise ValueError(f"method={method!r} is not supported; use 'nuts' or 'vi'.")
        if resume is not None:
            return self._resume_posterior(X, method, sample_weight, progress_bar, resume, options)
        allowed = self._NUTS_OPTIONS if method == "nuts" else self._VI_OPTIONS
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise TypeError(
                f"fit_posterior(method={method!r}) got unknown option(s) {unknown}; valid options: "
                f"{', '.join(allowed)}."
            )
        prior = resolve_prior_arg(self.prior)
        if prior is None:
            raise ValueError(
                "fit_posterior needs a prior, but this estimator has prior=None (maximum "
                "likelihood). Use prior='default' or a bayesgmm.Prior(...)."
            )
        if not hasattr(self, "weights_"):
            self.fit(X, sample_weight=sample_weight)
        X = self._check_X(X)
        w = check_sample_weight(sample_weight, X.shape[0])
        seed = seed_from(self.random_state if random_state is None else random_state)
        runner = run_nuts if method == "nuts" else run_svi
        result = runner(
            jax.random.key(seed), X, n_components=self.n_components,
            covariance_type=self.covariance_type, prior=prior, init=self.params_,
            sample_weight=w, progress_bar=progress_bar, **options,
        )
        names = getattr(self, "feature_names_in_", None)
        return Posterior(
            result, X, self.params_, sample_weight=w,
            feature_names=None if names is None else list(names), relabel=relabel,
        )

    @staticmethod
    def _resume_posterior(X, method, sample_weight, progress_bar, resume, options):
        import os

        from .posterior import Posterior

        if method != "nuts":
            raise ValueError(f"resume continues a NUTS run; got method={method!r}.")
        unknown = sorted(set(options) - {"num_samples"})
        if unknown:
            raise TypeError(
                f"fit_posterior(resume=...) only takes num_samples (the sampler settings are the "
                f"saved run's); got {unknown}."
            )
        if isinstance(resume, (str, os.PathLike)):
            resume = _io.load_posterior(resume)
        if not isinstance(resume, Posterior):
            raise TypeError(
                f"resume must be a bayesgmm.Posterior or the path of a saved one, got {type(resume).__name__}."
            )
        x = np.asarray(X, np.float64)
        if x.shape != resume.x.shape or not np.array_equal(x, resume.x, equal_nan=True):
            raise ValueError(
                f"X (shape {x.shape}) is not the data the resumed run was conditioned on (shape "
                f"{resume.x.shape}); pass the same X to continue the run."
            )
        w = None if sample_weight is None else np.asarray(sample_weight, np.float64)
        same_w = (w is None and resume.sample_weight is None) or (
            w is not None and resume.sample_weight is not None and np.array_equal(w, resume.sample_weight)
        )
        if not same_w:
            raise ValueError("sample_weight differs from the resumed run's; pass the same weights (or None).")
        return resume.extend(options.get("num_samples", 500), progress_bar=progress_bar)

    @property
    def params_(self) -> GMMParams:
        """The fitted parameters as a :class:`bayesgmm.GMMParams` (data units, float64 numpy)."""
        check_is_fitted(self)
        return GMMParams.from_covariances(
            self.weights_, self.means_, self.covariances_, self.covariance_type, xp=np
        )

    def _std_params(self, n_components=None):
        """The fitted parameters in the standardised frame of the fit (host float64), padded with
        zero-weight components to ``n_components``."""
        shift, scale = self._shift, self._scale
        ct = self.covariance_type
        cov = standardise_covariances(self.covariances_, ct, scale)
        means = (self.means_ - shift) / scale
        p = GMMParams.from_covariances(self.weights_, means, cov, ct, xp=np)
        return p if n_components is None else p.pad_components(n_components)

    def _blocks(self, X, part):
        """``part="log_resp"``: log responsibilities (n, K); ``"log_density"``: log densities (n,) in
        the standardised frame (float64; see :func:`bayesgmm.infer.scoring.score_rows`)."""
        return score_rows(self._std_params(), X, self._shift, self._scale, part, self.devices)

    def _check_X(self, X):
        check_is_fitted(self)
        return check_data(self, X, reset=False)

    def score_samples(self, X):
        """Log density ``log p(x_n)`` of each sample under the fitted mixture.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        X = self._check_X(X)
        jac = row_log_jacobians(X, self._scale) if has_missing(X) else log_jacobian(self._scale)
        return self._blocks(X, "log_density") + jac

    def score(self, X, y=None, sample_weight=None):
        """(Weighted) mean log density of ``X``, a float."""
        s = self.score_samples(X)
        if sample_weight is None:
            return float(np.mean(s))
        w = check_sample_weight(sample_weight, s.shape[0])
        return float(np.sum(w * s) / np.sum(w))

    def impute(self, X):
        """Fill the missing (NaN) cells of ``X`` with their conditional expectation under the fit.

        For each row, ``E[x_m | x_o] = sum_k r_k (mu_k,m + Sigma_k,mo Sigma_k,oo^-1 (x_o - mu_k,o))``,
        the components' conditional means weighted by the responsibilities given the observed
        cells ``x_o``; observed cells are returned unchanged. A point estimate at the fitted
        (MAP) parameters: for draws that carry the posterior uncertainty, see
        :meth:`bayesgmm.Posterior.impute`. Needs ``missing="marginalize"``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), NaN for missing cells

        Returns
        -------
        ndarray of shape (n_samples, n_features), float64, without NaN

        Examples
        --------
        >>> import numpy as np
        >>> from bayesgmm import GaussianMixture
        >>> rng = np.random.default_rng(0)
        >>> X = rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], 500)
        >>> gm = GaussianMixture(1, missing="marginalize", random_state=0).fit(X)
        >>> filled = gm.impute([[2.0, np.nan]])
        >>> bool(abs(filled[0, 1] - 0.9 * 2.0) < 0.3)  # the regression of x2 on x1
        True
        """
        if self.missing != "marginalize":
            raise ValueError(
                "impute needs missing='marginalize' (NaN marks a missing cell); this estimator has "
                f"missing={self.missing!r}. Set gm.set_params(missing='marginalize') (the fit "
                "itself does not change on complete data)."
            )
        X = self._check_X(X)
        return impute_rows(self._std_params(), X, self._shift, self._scale)

    def predict_proba(self, X):
        """Posterior component probabilities (responsibilities), shape (n_samples, n_components)."""
        X = self._check_X(X)
        return np.exp(self._blocks(X, "log_resp"))

    def predict(self, X):
        """Most probable component of each sample, shape (n_samples,)."""
        X = self._check_X(X)
        return self._predict_checked(X)

    def _predict_checked(self, X):
        return np.argmax(self._blocks(X, "log_resp"), axis=1)

    def sample(self, n_samples=1):
        """Draw samples from the fitted mixture.

        Parameters
        ----------
        n_samples : int, default=1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,), the component of each sample
        """
        check_is_fitted(self)
        if isinstance(n_samples, (bool, np.bool_)) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples!r}. The sampling requires at least one sample."
            )
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        k, d = self.means_.shape
        covs = full_covariances(self.covariances_, self.covariance_type, k, d)
        xs = [rng.multivariate_normal(mean, cov, int(c)) for mean, cov, c in zip(self.means_, covs, counts)]
        y = np.concatenate([np.full(c, k, dtype=int) for k, c in enumerate(counts)])
        return np.vstack(xs), y

    def _n_parameters(self):
        return n_parameters(self.covariance_type, self.n_components, self.means_.shape[1])

    def bic(self, X):
        """Bayesian information criterion at the fitted parameters (lower is better).

        ``-2 log p(X | theta) + n_parameters * log(n_samples)``, scikit-learn's sign convention
        (mclust reports the negative). With a prior, ``theta`` is the MAP. See
        :mod:`bayesgmm.criteria`.
        """
        X = self._check_X(X)
        return criteria.bic(self.score(X) * X.shape[0], self._n_parameters(), X.shape[0])

    def aic(self, X):
        """Akaike information criterion ``-2 log p(X | theta) + 2 n_parameters`` (lower is better)."""
        X = self._check_X(X)
        return criteria.aic(self.score(X) * X.shape[0], self._n_parameters())

    def icl(self, X):
        """Integrated completed likelihood ``BIC + 2 * entropy`` of the responsibilities (lower is better).

        ``entropy = -sum_n sum_k r_nk log r_nk`` penalises overlapping components; scikit-learn's
        sign like :meth:`bic` (see :mod:`bayesgmm.criteria`; mclust reports the opposite sign).
        """
        return criteria.icl(self.bic(X), self.predict_proba(X))

    def detect_anomalies(self, X, percentile=4.0, *, X_train=None):
        """Flag points whose log density falls below the ``percentile``-th percentile of the training data.

        ``score_samples(X) < np.percentile(score_samples(X_train), percentile)`` (``X_train``
        defaults to ``X``); see :mod:`bayesgmm.anomaly`. Returns a bool ndarray of shape (n_samples,).
        """
        return anomaly.detect_anomalies(self, X, percentile, X_train=X_train)
