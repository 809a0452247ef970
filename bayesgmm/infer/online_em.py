"""Stepwise online EM runner: one host chunk -> one update of an :class:`~bayesgmm.core.online.OnlineEMState`.

Host-side orchestration of :func:`bayesgmm.core.online.online_em_step` for
:meth:`bayesgmm.GaussianMixture.partial_fit`: the chunk is standardised into the frame of the first
fit and laid out in blocks (:func:`bayesgmm.core.sharding.device_blocks`, sharded over the
devices when there are several), the prior is mapped into that frame, and one compiled step (per
chunk shape) updates the running statistics and takes the M-step.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core.density import default_block_size
from ..core.online import OnlineEMState, online_em_init, online_em_step
from ..core.params import GMMParams
from ..core.programs import default_dtype
from ..core.sharding import data_mesh, device_blocks, device_params, sharded_estep
from ..core.units import log_jacobian

__all__ = ["OnlineUpdate", "online_em_start", "online_em_update"]


@functools.partial(jax.jit, static_argnames=("estep",))
def _online_step(state, xb, wb, prior, reg_covar, t0, kappa, estep=None):
    if estep is None:
        return online_em_step(state, xb, wb, prior, reg_covar, t0, kappa)
    return online_em_step(state, xb, wb, prior, reg_covar, t0, kappa, estep=estep)


class OnlineUpdate(NamedTuple):
    """What :func:`online_em_update` returns."""

    state: OnlineEMState  # the new running state (standardised frame, on the device)
    params: GMMParams  # its parameters in data units
    mean_log_likelihood: float  # of the chunk at the parameters before the step, data units


def online_em_start(params_z: GMMParams, n_seen) -> OnlineEMState:
    """The running state of a fit's parameters (standardised frame, host) that saw weight ``n_seen``."""
    return online_em_init(device_params(params_z, default_dtype()), n_seen)


def online_em_update(state: OnlineEMState, x, w, *, shift, scale, prior, reg_covar, t0, kappa,
                     devices=None) -> OnlineUpdate:
    """One stepwise-EM step of ``state`` on the host chunk ``x`` (data units) with weights ``w``.

    ``shift``/``scale``: the standardisation of the first fit (the frame of ``state``);
    ``prior``: the :class:`~bayesgmm.core.prior.ResolvedPrior` in data units, or None (maximum
    likelihood with ``reg_covar``); ``t0``, ``kappa``: the step sizes ``(t + t0) ** (-kappa)``.
    Raises ``FloatingPointError`` when the step gives non-finite parameters.
    """
    n, d = x.shape
    dtype = default_dtype()
    shift_j = jnp.asarray(shift, dtype)
    scale_j = jnp.asarray(scale, dtype)
    zprior = None if prior is None else prior.affine(shift_j, scale_j)
    reg_z = jnp.asarray(np.full(d, float(reg_covar)) / scale**2, dtype)
    block = default_block_size(state.params.n_components, d)
    mesh = data_mesh(devices)
    xb, wb = device_blocks(x, w, shift, scale, block, mesh, np.dtype(dtype))
    new, info = _online_step(
        state, xb, wb, zprior, reg_z, jnp.asarray(t0, dtype), jnp.asarray(kappa, dtype),
        estep=None if mesh is None else sharded_estep(mesh),
    )
    leaves = jax.tree_util.tree_leaves(new.params)
    if not all(bool(jnp.all(jnp.isfinite(a))) for a in leaves):
        raise FloatingPointError(
            "partial_fit produced non-finite parameters (a covariance became singular). "
            "Use larger chunks, a larger learning_offset (smaller first steps), fewer "
            "components, or the default prior instead of prior=None."
        )
    return OnlineUpdate(
        new, new.params.unstandardise(shift_j, scale_j),
        float(info.log_likelihood / info.chunk_weight) + log_jacobian(scale),
    )
