"""Stepwise online EM for data that arrive in chunks (pure JAX), as an ``init`` / ``step`` pair.

Stepwise EM (Cappé & Moulines 2009; Liang & Klein 2009) keeps a running average ``s`` of the
expected sufficient statistics *per unit of sample weight*,

    s_t = (1 - rho_t) s_{t-1} + rho_t s(chunk_t; theta_{t-1}) / w(chunk_t),
    rho_t = (t + t0) ** (-kappa),    t = 1, 2, ...

and after every chunk takes the M-step of :func:`bayesgmm.core.em.m_step` from ``n_seen * s``
(``n_seen`` the total weight seen so far), so that the prior (MAP) weighs against all the data seen,
as it would in a full-batch fit; ``prior=None`` is maximum likelihood. With ``0.5 < kappa <= 1``
the schedule satisfies Robbins-Monro (``sum rho = inf``, ``sum rho^2 < inf``).

The statistics are raw moments ``sum r``, ``sum r x``, ``sum r x x^T`` (diag: the diagonal,
spherical: the trace, tied: summed over components) in the caller's frame, which should be a
standardised one (the estimator uses the standardisation of the first chunk, or of the data of a
previous ``fit``), so that these moments are O(1) and float32 stays accurate. They are converted
to and from the whitened, centred :class:`bayesgmm.core.density.EStepStats` the rest of the core
uses, at the current parameters.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .density import EStepStats, estep_stats
from .em import m_step
from .linalg import solve_lower
from .params import GMMParams

__all__ = [
    "OnlineEMState",
    "OnlineEMInfo",
    "online_em_init",
    "online_em_step",
    "online_state_arrays",
    "online_state_from_arrays",
    "step_size",
    "raw_moments",
    "whitened_stats",
    "model_moments",
]


class OnlineEMState(NamedTuple):
    """Carried state of stepwise EM.

    Attributes
    ----------
    params : GMMParams, current parameters
    s0 : (K,) running ``E[r]`` per unit weight
    s1 : (K, D) running ``E[r x]``
    s2 : (K, D, D) full, (D, D) tied (summed over components), (K, D) diag, (K,) spherical:
         running ``E[r x x^T]`` (or its diagonal / trace)
    n_seen : () total sample weight seen
    n_steps : () int32, chunk updates taken (``t``)
    """

    params: GMMParams
    s0: jax.Array
    s1: jax.Array
    s2: jax.Array
    n_seen: jax.Array
    n_steps: jax.Array


def online_state_arrays(state: OnlineEMState) -> dict:
    """The running statistics of ``state`` as host arrays by field name (all fields but ``params``)."""
    return {name: np.asarray(getattr(state, name)) for name in OnlineEMState._fields if name != "params"}


def online_state_from_arrays(params: GMMParams, arrays: dict) -> OnlineEMState:
    """The :class:`OnlineEMState` of ``params`` and the arrays of :func:`online_state_arrays`."""
    return OnlineEMState(params, *(arrays[name] for name in OnlineEMState._fields if name != "params"))


class OnlineEMInfo(NamedTuple):
    """What one step reports."""

    log_likelihood: jax.Array  # sum_n w_n log p(x_n) of the chunk, at the parameters before the step
    chunk_weight: jax.Array
    rho: jax.Array


def step_size(t, t0, kappa):
    """The step size ``rho_t = (t + t0) ** (-kappa)`` of update ``t = 1, 2, ...``."""
    return (t + t0) ** (-kappa)


def model_moments(params: GMMParams):
    """Raw moments per unit weight implied by the mixture itself: ``(s0, s1, s2)``.

    ``s0 = w``, ``s1 = w mu``, ``s2 = w (Sigma + mu mu^T)`` (diag / trace / summed as in
    :class:`OnlineEMState`): the fixed point of maximum-likelihood EM on an infinite sample.
    """
    ct = params.covariance_type
    w, mu = params.weights, params.means
    s1 = w[:, None] * mu
    if ct == "full":
        s2 = w[:, None, None] * (params.covariances() + jnp.einsum("kd,ke->kde", mu, mu))
    elif ct == "tied":
        s2 = params.covariances() * jnp.sum(w) + jnp.einsum("k,kd,ke->de", w, mu, mu)
    elif ct == "diag":
        s2 = w[:, None] * (params.scales**2 + mu * mu)
    else:
        d = mu.shape[-1]
        s2 = w * (d * params.scales**2 + jnp.sum(mu * mu, axis=-1))
    return w, s1, s2


def raw_moments(params: GMMParams, stats: EStepStats):
    """Whitened statistics computed at ``params`` -> raw moments ``(s0, s1, s2)`` (sums, not means)."""
    ct = params.covariance_type
    nk, mu = stats.nk, params.means
    if ct == "full":
        u = params.cov_chol()
        s1c = jnp.einsum("kde,ke->kd", u, stats.t1)
        m = u @ stats.t2 @ jnp.swapaxes(u, -1, -2)
        mm = jnp.einsum("kd,ke->kde", s1c, mu)
        s2 = m + mm + jnp.swapaxes(mm, -1, -2) + nk[:, None, None] * jnp.einsum("kd,ke->kde", mu, mu)
    elif ct == "tied":
        u = params.cov_chol()
        s1c = stats.t1 @ u.T
        m = u @ stats.t2 @ u.T
        mm = s1c.T @ mu
        s2 = m + mm + mm.T + (mu * nk[:, None]).T @ mu
    elif ct == "diag":
        s = params.scales
        s1c = s * stats.t1
        s2 = s * s * stats.t2 + 2 * mu * s1c + nk[:, None] * mu * mu
    else:
        s = params.scales
        s1c = s[:, None] * stats.t1
        s2 = s * s * stats.t2 + jnp.sum(2 * mu * s1c + nk[:, None] * mu * mu, axis=-1)
    return nk, s1c + nk[:, None] * mu, s2


def whitened_stats(params: GMMParams, s0, s1, s2, loglik=None) -> EStepStats:
    """Raw moments (sums) -> the whitened statistics at ``params`` that :func:`m_step` takes."""
    ct = params.covariance_type
    mu = params.means
    s1c = s1 - s0[:, None] * mu
    if ct == "full":
        u = params.cov_chol()
        mm = jnp.einsum("kd,ke->kde", s1, mu)
        m = s2 - mm - jnp.swapaxes(mm, -1, -2) + s0[:, None, None] * jnp.einsum("kd,ke->kde", mu, mu)
        t1 = solve_lower(u, s1c[..., None])[..., 0]
        a = solve_lower(u, m)
        t2 = solve_lower(u, jnp.swapaxes(a, -1, -2))
    elif ct == "tied":
        u = params.cov_chol()
        mm = s1.T @ mu
        m = s2 - mm - mm.T + (mu * s0[:, None]).T @ mu
        t1 = solve_lower(u, s1c.T).T
        a = solve_lower(u, m)
        t2 = solve_lower(u, a.T)
    elif ct == "diag":
        s = params.scales
        t1 = s1c / s
        t2 = (s2 - 2 * mu * s1 + s0[:, None] * mu * mu) / (s * s)
    else:
        s = params.scales
        t1 = s1c / s[:, None]
        t2 = (s2 - jnp.sum(2 * mu * s1 - s0[:, None] * mu * mu, axis=-1)) / (s * s)
    t2 = 0.5 * (t2 + jnp.swapaxes(t2, -1, -2)) if ct in ("full", "tied") else t2
    loglik = jnp.zeros((), mu.dtype) if loglik is None else loglik
    return EStepStats(s0, t1, t2, loglik)


def online_em_init(params: GMMParams, n_seen) -> OnlineEMState:
    """Start stepwise EM at ``params`` as if ``n_seen`` weight of data had been seen.

    The running statistics start at the moments the mixture implies (:func:`model_moments`), so a
    previous fit (or the fit of a first chunk) counts as the first step.
    """
    s0, s1, s2 = model_moments(params)
    dtype = params.means.dtype
    return OnlineEMState(params, s0, s1, s2, jnp.asarray(n_seen, dtype), jnp.asarray(0, jnp.int32))


def online_em_step(state: OnlineEMState, xb, wb, prior, reg_covar, t0, kappa, estep=estep_stats):
    """One stepwise-EM update from a chunk of data blocks.

    Parameters
    ----------
    state : OnlineEMState
    xb : array of shape (n_blocks, block, D), the chunk (in the state's frame)
    wb : array of shape (n_blocks, block), its weights (0 for padding)
    prior : ResolvedPrior or None (maximum likelihood), in the state's frame
    reg_covar : array of shape (D,), maximum-likelihood regularisation
    t0, kappa : step-size schedule ``rho_t = (t + t0) ** (-kappa)`` (traced)
    estep : the pass over the blocks (default :func:`estep_stats`; a sharded one for data split
        over devices)

    Returns
    -------
    state : OnlineEMState
    info : OnlineEMInfo
    """
    params = state.params
    stats = estep(params, xb, wb)
    w = jnp.sum(wb)
    c0, c1, c2 = raw_moments(params, stats)
    t = state.n_steps + 1
    rho = step_size(t.astype(params.means.dtype), t0, kappa)
    mix = lambda old, new: (1 - rho) * old + rho * new / w  # noqa: E731
    s0, s1, s2 = mix(state.s0, c0), mix(state.s1, c1), mix(state.s2, c2)
    n_seen = state.n_seen + w
    total = whitened_stats(params, n_seen * s0, n_seen * s1, n_seen * s2, stats.loglik)
    new_params = m_step(params, total, prior, reg_covar)
    new_state = OnlineEMState(new_params, s0, s1, s2, n_seen, t)
    return new_state, OnlineEMInfo(stats.loglik, w, rho)
