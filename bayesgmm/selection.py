"""Model selection over ``n_components`` x ``covariance_type``: BIC, AIC, ICL, PSIS-LOO, WAIC.

:func:`select` fits a :class:`bayesgmm.GaussianMixture` for every point of the grid and tabulates
every EM criterion; PSIS-LOO and WAIC, which need a posterior fit per grid point, are computed only
when asked for.

Sign conventions -- **lower is better for every column**:

The formulas of BIC, AIC and ICL are in :mod:`bayesgmm.criteria`.

* ``bic = -2 log p(X | theta) + n_parameters log(n_samples)`` and
  ``aic = -2 log p(X | theta) + 2 n_parameters``, scikit-learn's sign (``theta`` is the MAP with a
  prior, the maximum-likelihood estimate with ``prior=None``). mclust (R) reports
  ``2 log L - n_parameters log n``, the *negative*, and picks the maximum.
* ``icl = bic + 2 * entropy``, ``entropy = -sum_n sum_k r_nk log r_nk`` of the responsibilities at
  ``theta`` (Biernacki, Celeux & Govaert 2000; McLachlan & Peel 2000, "ICL-BIC"): BIC plus a
  penalty for overlapping components, so ICL favours well-separated clusters over a good density
  fit. mclust's ``icl`` has the opposite sign and uses hard labels
  (``BIC_mclust + 2 sum_n log max_k r_nk``), which is never below ours once the sign is flipped.
* ``loo = -2 elpd_loo`` and ``waic = -2 elpd_waic`` (the *deviance* scale), from the pointwise
  log-likelihood of a posterior fit through ArviZ; ``loo_se`` / ``waic_se`` are on the same
  scale (``2 se``). ArviZ's own ``elpd_loo`` is higher-is-better; ``elpd_loo = -loo / 2``.
  PSIS-LOO is reliable only when the Pareto shape ``k`` of every point is below ArviZ's
  threshold (0.7 for large ``S``): ``loo_n_bad_k`` counts the points above it and :func:`select`
  warns about them.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from . import criteria
from ._compile_cache import enable_compilation_cache
from ._validation import check_data, check_params, check_scales, resolve_prior_arg
from .core import executables
from .core.init import INIT_METHODS
from .core.programs import CompiledAhead, compiling_ahead
from .core.params import COVARIANCE_TYPES, GMMParams, check_covariance_type
from .estimator import GaussianMixture
from .infer.map_em import fit_map
from .infer.scoring import score_rows
from .plotting import plot_criteria

__all__ = ["CRITERIA", "Selection", "icl", "select"]

#: Criteria of :func:`select`; all lower-is-better.
CRITERIA = ("bic", "aic", "icl", "loo", "waic")
POSTERIOR_CRITERIA = ("loo", "waic")


def icl(estimator, X) -> float:
    """Integrated completed likelihood (ICL-BIC) of a fitted mixture, scikit-learn's sign.

    ``icl = estimator.bic(X) + 2 * entropy``, ``entropy = -sum_n sum_k r_nk log r_nk`` with
    ``r = estimator.predict_proba(X)``; lower is better (mclust: the negative, with hard labels).

    Parameters
    ----------
    estimator : fitted bayesgmm.GaussianMixture
    X : array-like of shape (n_samples, n_features)

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import GaussianMixture
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(-3, 1, (100, 1)), rng.normal(3, 1, (100, 1))])
    >>> gm = GaussianMixture(2, random_state=0).fit(X)
    >>> gm.icl(X) >= gm.bic(X)
    True
    """
    r = np.asarray(estimator.predict_proba(X), np.float64)
    return criteria.icl(estimator.bic(X), r)


# -- results ------------------------------------------------------------------------------------------
def _table(columns: dict):
    """A pandas DataFrame when pandas is importable, else the dict of arrays."""
    try:
        import pandas as pd
    except ImportError:  # pandas is optional (a test extra)
        return columns
    return pd.DataFrame(columns)


@dataclasses.dataclass
class Selection:
    """Result of :func:`select`.

    Attributes
    ----------
    table : pandas.DataFrame (or dict of ndarray without pandas)
        One row per grid point, ordered by ``n_components`` then ``covariance_type``: columns
        ``n_components``, ``covariance_type``, ``n_parameters``, ``log_likelihood`` (at the fit),
        ``bic``, ``aic``, ``icl``, ``converged``, ``n_empty`` (components emptied by the EM),
        ``error`` (the message of a failed fit, else ""), and when requested ``loo``, ``loo_se``,
        ``p_loo``, ``loo_n_bad_k``, ``loo_max_k`` and/or ``waic``, ``waic_se``, ``p_waic``,
        ``waic_warning``; with a posterior also ``posterior_warnings`` (count of
        :class:`~bayesgmm.posterior.PosteriorWarning` messages). Lower is better for every
        criterion.
    criterion : str
        The criterion that chose the best model.
    best_params_ : dict
        ``{"n_components": int, "covariance_type": str}``.
    best_estimator_ : bayesgmm.GaussianMixture
        The fitted estimator of the best grid point.
    best_posterior_ : bayesgmm.Posterior or None
        Its posterior when LOO/WAIC were computed.
    estimators_ : dict of (int, str) -> GaussianMixture
        Every fitted estimator (None for a failed fit).
    posteriors_ : dict of (int, str) -> Posterior
        Every posterior (only when LOO/WAIC were computed).
    """

    table: object
    criterion: str
    best_params_: dict
    best_estimator_: object
    best_posterior_: object
    estimators_: dict
    posteriors_: dict

    def column(self, name: str) -> np.ndarray:
        """One column of :attr:`table` as an ndarray (works with and without pandas)."""
        col = self.table[name]
        return np.asarray(col.to_numpy() if hasattr(col, "to_numpy") else col)

    def plot(self, criterion: str | None = None, ax=None):
        """Criterion curves over ``n_components``, one per covariance type (see
        :func:`bayesgmm.plotting.plot_criteria`); returns the axes."""
        return plot_criteria(self, criterion=criterion, ax=ax)

    def __repr__(self) -> str:
        return (
            f"Selection(criterion={self.criterion!r}, best_params_={self.best_params_!r}, "
            f"grid={len(self.estimators_)} fits)"
        )


# -- progress ---------------------------------------------------------------------------------------
class _Progress:
    """tqdm when installed, else a one-line counter on stderr; silent when disabled."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.i = total, enabled, 0
        self._bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, desc="select", leave=False)

    def update(self, text: str):
        self.i += 1
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.update(1)
        else:
            sys.stderr.write(f"\rselect: {self.i}/{self.total} {text:<40}")
            sys.stderr.flush()

    def close(self):
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        else:
            sys.stderr.write("\n")
            sys.stderr.flush()


# -- the grid -----------------------------------------------------------------------------------------
def _check_grid(n_components, covariance_types):
    if isinstance(n_components, (int, np.integer)) and not isinstance(n_components, bool):
        n_components = [n_components]
    ks = [int(k) for k in n_components]
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"n_components must be positive integers, got {list(n_components)!r}.")
    if isinstance(covariance_types, str):
        covariance_types = [covariance_types]
    cts = [check_covariance_type(c) for c in covariance_types]
    if not cts:
        raise ValueError("covariance_types is empty.")
    return sorted(set(ks)), list(dict.fromkeys(cts))


#: threads of :class:`_CompileAhead` (at most the CPU count + 1: tracing holds Python's lock,
#: compiling does not, so one more thread than cores keeps the cores compiling). Measured on the
#: 2-core machine, faithful BIC grid (4 fit programs, and 4 scoring programs at the time; one
#: since the scoring of small data is shared by the covariance types), empty cache, two fresh
#: processes each: 6.2 and 7.0 s with no thread, 5.1 and 5.0 s with one, 4.8 and 4.8 s with three.
_AHEAD_THREADS = 3


class _CompileAhead:
    """Threads that build the EM and scoring programs of the grid's later fits while it runs its first.

    A fresh process spends most of a small grid compiling one program per covariance type (and per
    ``n_components`` on larger data). XLA compiles without holding Python's lock, so on a machine
    with two or more cores the next fits' programs are built while the current fit traces or
    runs; the grid points are split between :data:`_AHEAD_THREADS` threads. A thread stops at each
    fit's program and at its scoring program (:func:`bayesgmm.core.programs.compiling_ahead`) and
    runs nothing; a fit that reaches a program being built waits for it rather than building it
    twice (:mod:`bayesgmm.core.executables`). Results are unchanged: the fits themselves run in the
    grid's order as before. The threads call the fit's inner function on the data ``select``
    already checked, so they warn about nothing; an error is left for the grid's own fit to report.
    Off on one core, and where programs are not kept whole (several devices, the cache off), where
    it could build nothing for later.
    """

    def __init__(self, X, grid, make_estimator):
        self._stopped = threading.Event()
        self._threads = []
        enable_compilation_cache()
        if not grid or (os.cpu_count() or 1) < 2 or not executables.storable():
            return
        n = min(_AHEAD_THREADS, (os.cpu_count() or 1) + 1)
        self._threads = [
            threading.Thread(target=self._run, args=(X, grid[i::n], make_estimator), name="bayesgmm-compile-ahead",
                             daemon=True)
            for i in range(n)
        ]
        for t in self._threads:
            t.start()

    def _run(self, X, grid, make_estimator):
        with compiling_ahead():
            for k, ct in grid:
                if self._stopped.is_set():
                    return
                try:
                    est = make_estimator(k, ct)
                    check_params(est, INIT_METHODS)
                    if est.n_components > X.shape[0]:
                        continue
                    options = est._fit_map_options(resolve_prior_arg(est.prior), est.n_init,
                                                   est._check_init_arrays(X.shape[1]))
                    # any seed: it is data of the program (a RandomState's draws are the grid's own)
                    fit_map(0, X, **options)
                except CompiledAhead:
                    pass
                except Exception:  # noqa: BLE001 - the grid's own fit reports it
                    continue
                try:  # the scoring program of the criteria (the values of the parameters do not matter)
                    params = GMMParams.zeros(k, X.shape[1], ct, xp=np)
                    score_rows(params, X, np.zeros(X.shape[1]), np.ones(X.shape[1]), "log_density", est.devices)
                except CompiledAhead:
                    pass
                except Exception:  # noqa: BLE001 - the grid's own scoring reports it
                    continue

    def stop(self):
        """Stop building (a program being built is finished) and wait for the threads."""
        self._stopped.set()
        for t in self._threads:
            t.join()


def select(
    X,
    n_components: Iterable[int] = range(1, 9),
    covariance_types: Sequence[str] = COVARIANCE_TYPES,
    criterion: str = "bic",
    *,
    posterior_criteria: Sequence[str] | None = None,
    posterior_method: str = "nuts",
    posterior_options: dict | None = None,
    prior="default",
    n_init: int = 1,
    random_state=None,
    progress_bar: bool = True,
    **estimator_params,
) -> Selection:
    """Fit every ``(n_components, covariance_type)`` and pick the best by a criterion.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_components : iterable of int, default=range(1, 9)
    covariance_types : sequence of {"full", "tied", "diag", "spherical"}, default=all four
    criterion : {"bic", "aic", "icl", "loo", "waic"}, default="bic"
        The column minimised to choose the best model (all are lower-is-better; see the module
        docstring for the signs and mclust's opposite convention). ``"loo"`` and ``"waic"``
        need a posterior fit per grid point.
    posterior_criteria : sequence of {"loo", "waic"}, optional
        Posterior criteria to tabulate; default ``(criterion,)`` when ``criterion`` is one of them,
        else none.
    posterior_method : {"nuts", "vi"}, default="nuts"
        How the posterior of each grid point is fitted (:meth:`GaussianMixture.fit_posterior`).
    posterior_options : dict, optional
        Options of :meth:`GaussianMixture.fit_posterior` (``num_warmup``, ``num_samples``,
        ``num_chains``, ``num_steps``, ...).
    prior : "default", Prior or None, default="default"
        As in :class:`GaussianMixture`; LOO/WAIC need a prior.
    n_init : int, default=1
        EM starts per grid point.
    random_state : int or None
        Seed of every fit (the same for each grid point).
    progress_bar : bool, default=True
        Progress over the grid on stderr (tqdm when installed).
    **estimator_params
        Other :class:`GaussianMixture` parameters (``max_iter``, ``tol``, ``init_params``,
        ``missing="marginalize"`` for data with NaN cells: the criteria then use the observed
        cells' log-likelihood, ...).

    Returns
    -------
    Selection
        ``.table``, ``.best_params_``, ``.best_estimator_``, ``.plot()``.

    Warns
    -----
    UserWarning
        When fits fail or do not converge, and when PSIS-LOO has points with a high Pareto ``k``
        (the LOO estimate of those fits is unreliable).

    Examples
    --------
    >>> import numpy as np
    >>> import bayesgmm
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(-3, 1, (150, 2)), rng.normal(3, 1, (150, 2))])
    >>> sel = bayesgmm.select(X, n_components=[1, 2, 3], covariance_types=["spherical", "full"],
    ...                       random_state=0, progress_bar=False)
    >>> sel.best_params_
    {'n_components': 2, 'covariance_type': 'spherical'}
    >>> sorted(sel.table.columns[:7])
    ['aic', 'bic', 'covariance_type', 'icl', 'log_likelihood', 'n_components', 'n_parameters']
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion={criterion!r} is not supported; use one of {CRITERIA}.")
    if posterior_criteria is None:
        posterior_criteria = (criterion,) if criterion in POSTERIOR_CRITERIA else ()
    if isinstance(posterior_criteria, str):
        posterior_criteria = (posterior_criteria,)
    posterior_criteria = tuple(dict.fromkeys(posterior_criteria))
    bad = [c for c in posterior_criteria if c not in POSTERIOR_CRITERIA]
    if bad:
        raise ValueError(f"posterior_criteria must be among {POSTERIOR_CRITERIA}, got {bad}.")
    if criterion in POSTERIOR_CRITERIA and criterion not in posterior_criteria:
        posterior_criteria = posterior_criteria + (criterion,)
    if posterior_criteria and prior is None:
        raise ValueError("LOO and WAIC need a posterior, hence a prior; prior=None is maximum likelihood.")
    posterior_options = dict(posterior_options or {})
    ks, cts = _check_grid(n_components, covariance_types)
    # bad data is the caller's error, not one failed grid point per fit: refuse it up front
    probe = GaussianMixture(missing=estimator_params.get("missing", "error"))
    Xc = check_data(probe, X, reset=True)
    check_scales(Xc, with_prior=prior is not None)
    grid = [(k, ct) for k in ks for ct in cts]

    def estimator(k, ct):
        return GaussianMixture(
            n_components=k, covariance_type=ct, prior=prior, n_init=n_init, random_state=random_state,
            **estimator_params,
        )

    rows = {
        name: []
        for name in (
            "n_components", "covariance_type", "n_parameters", "log_likelihood", "bic", "aic",
            "icl", "converged", "n_empty", "error",
        )
    }
    for c in posterior_criteria:
        extra = ("loo", "loo_se", "p_loo", "loo_n_bad_k", "loo_max_k") if c == "loo" else (
            "waic", "waic_se", "p_waic", "waic_warning")
        rows.update({name: [] for name in extra})
    if posterior_criteria:
        rows["posterior_warnings"] = []

    estimators, posteriors = {}, {}
    failed, not_converged, bad_k = [], [], []
    progress = _Progress(len(grid), bool(progress_bar))
    ahead = _CompileAhead(Xc, grid[1:], estimator)
    try:
        for k, ct in grid:
            rows["n_components"].append(k)
            rows["covariance_type"].append(ct)
            est = estimator(k, ct)
            error = ""
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # recorded in the table: converged, n_empty
                    est.fit(X)
                    x = est._check_X(X)
                    # one pass for the log-likelihood, one for the responsibilities; the same
                    # numbers as est.bic / est.aic / est.icl
                    n, n_par = x.shape[0], criteria.n_parameters(ct, k, x.shape[1])
                    loglik = float(np.sum(est.score_samples(x)))
                    bic = criteria.bic(loglik, n_par, n)
                    aic = criteria.aic(loglik, n_par)
                    icl_ = criteria.icl(bic, est.predict_proba(x))
            except Exception as exc:  # noqa: BLE001 -- one failed grid point must not lose the others
                error = f"{type(exc).__name__}: {exc}"
                failed.append((k, ct, error))
                est = None
            estimators[(k, ct)] = est
            d = None if est is None else est.n_features_in_
            rows["n_parameters"].append(np.nan if est is None else criteria.n_parameters(ct, k, d))
            rows["log_likelihood"].append(np.nan if est is None else loglik)
            rows["bic"].append(np.nan if est is None else bic)
            rows["aic"].append(np.nan if est is None else aic)
            rows["icl"].append(np.nan if est is None else icl_)
            rows["converged"].append(False if est is None else bool(est.converged_))
            rows["n_empty"].append(-1 if est is None else int(est.n_empty_))
            rows["error"].append(error)
            if est is not None and not est.converged_:
                not_converged.append((k, ct))

            if posterior_criteria:
                post, n_warn = None, 0
                if est is not None:
                    try:
                        with warnings.catch_warnings(record=True) as caught:
                            warnings.simplefilter("always")
                            post = est.fit_posterior(
                                X, method=posterior_method, random_state=random_state,
                                progress_bar=False, **posterior_options,
                            )
                        n_warn = sum(1 for w in caught if w.category.__name__ == "PosteriorWarning")
                    except Exception as exc:  # noqa: BLE001 -- recorded in the table and warned about
                        rows["error"][-1] = f"posterior: {type(exc).__name__}: {exc}"
                        failed.append((k, ct, rows["error"][-1]))
                posteriors[(k, ct)] = post
                rows["posterior_warnings"].append(n_warn)
                for c in posterior_criteria:
                    res = None
                    if post is not None:
                        from . import _arviz

                        res = _arviz.information_criterion(post.idata, c)
                    if c == "loo":
                        rows["loo"].append(np.nan if res is None else res["deviance"])
                        rows["loo_se"].append(np.nan if res is None else res["deviance_se"])
                        rows["p_loo"].append(np.nan if res is None else res["p"])
                        rows["loo_n_bad_k"].append(-1 if res is None else res["n_bad_k"])
                        rows["loo_max_k"].append(np.nan if res is None else float(np.max(res["pareto_k"])))
                        if res is not None and res["n_bad_k"]:
                            bad_k.append((k, ct, res["n_bad_k"], res["good_k"]))
                    else:
                        rows["waic"].append(np.nan if res is None else res["deviance"])
                        rows["waic_se"].append(np.nan if res is None else res["deviance_se"])
                        rows["p_waic"].append(np.nan if res is None else res["p"])
                        rows["waic_warning"].append(False if res is None else res["warning"])
            progress.update(f"K={k} {ct}")
    finally:
        ahead.stop()
        progress.close()

    if failed:
        warnings.warn(
            f"{len(failed)} of {len(grid)} fits failed and have NaN criteria (see table['error']): "
            + "; ".join(f"K={k} {ct}: {msg}" for k, ct, msg in failed[:3])
            + ("; ..." if len(failed) > 3 else ""),
            UserWarning,
            stacklevel=2,
        )
    if not_converged:
        warnings.warn(
            f"EM did not converge for {', '.join(f'K={k} {ct}' for k, ct in not_converged)}; "
            "pass max_iter=... (more iterations) or n_init=... (more starts).",
            UserWarning,
            stacklevel=2,
        )
    if bad_k:
        warnings.warn(
            "PSIS-LOO is unreliable for "
            + ", ".join(f"K={k} {ct} ({nb} points with Pareto k > {gk:.2f})" for k, ct, nb, gk in bad_k)
            + ": those points are influential (often outliers or a component with few points). "
            "Compare with WAIC or K-fold cross-validation, or run longer chains.",
            UserWarning,
            stacklevel=2,
        )

    columns = {}
    for name, values in rows.items():
        if name in ("covariance_type", "error"):
            columns[name] = np.asarray(values, dtype=object)
        else:
            columns[name] = np.asarray(values)
    scores = np.asarray(columns[criterion], np.float64)
    if not np.any(np.isfinite(scores)):
        raise ValueError(f"no fit of the grid produced a finite {criterion}; see the errors above.")
    best = int(np.nanargmin(np.where(np.isfinite(scores), scores, np.nan)))
    best_key = grid[best]
    return Selection(
        table=_table(columns),
        criterion=criterion,
        best_params_={"n_components": best_key[0], "covariance_type": best_key[1]},
        best_estimator_=estimators[best_key],
        best_posterior_=posteriors.get(best_key),
        estimators_=estimators,
        posteriors_=posteriors,
    )
