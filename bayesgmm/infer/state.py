"""Sampler results and NUTS sampler state as plain arrays: what is kept, saved and restored.

:class:`SamplerResult` is what :func:`~bayesgmm.infer.nuts.run_nuts`,
:func:`~bayesgmm.infer.nuts.extend_nuts` and :func:`~bayesgmm.infer.svi.run_svi` return. A NUTS
result carries the final sampler state of its chains (a NumPyro ``HMCState`` pytree); for saving
(:mod:`bayesgmm.io`) :func:`flatten_state` turns it into a :class:`FlatState` of numpy arrays with
their tree paths, and :func:`unflatten_state` rebuilds the pytree from one, checked against the
structure the installed NumPyro uses. This module imports jax and numpy only (not NumPyro), so
that saving and loading do not import the samplers.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core.params import GMMParams
from ..core.prior import ResolvedPrior

__all__ = ["SamplerResult", "FlatState", "flatten_state", "unflatten_state"]


@dataclasses.dataclass(frozen=True)
class SamplerResult:
    """Draws from the posterior (NUTS) or from a variational approximation (VI), immutable.

    Attributes
    ----------
    draws : GMMParams
        Parameter draws in data units with leading axes ``(chain, draw)``: ``weights``
        ``(C, S, K)``, ``means`` ``(C, S, K, D)``, ``scales`` and ``corr_chol`` with the trailing
        shapes of the covariance type. VI has ``C = 1`` and ``S = num_samples``. Labels are raw
        (not relabelled).
    sample_stats : dict of str -> ndarray of shape (chain, draw)
        ``lp``: the log posterior ``log_posterior(draw, x, prior, sample_weight)`` in data units
        (both methods). NUTS adds ``diverging`` (bool), ``energy`` (Hamiltonian, standardised
        units), ``tree_depth``, ``n_steps`` (leapfrog steps), ``step_size`` and
        ``acceptance_rate`` (ArviZ names).
    method : {"nuts", "vi"}
    info : dict
        Timings in seconds: ``compile_seconds``, ``warmup_seconds`` (NUTS; 0 for VI),
        ``sampling_seconds`` (NUTS: the post-warm-up draws; VI: the optimisation and the draws
        from the guide), ``postprocess_seconds``, ``total_seconds``. NUTS runs warm-up and
        sampling in one program: its run time is split between them by their leapfrog steps.
        NUTS: ``n_divergent``, ``chain_method``, ``dense_mass``, ``target_accept``,
        ``max_tree_depth``, ``init_jitter``, ``cache_hit``
        (the programs were already compiled), ``position_scale`` (the chains move in
        ``z = position_scale * u``, ``u`` the standardised unconstrained space;
        ``sqrt(total sample weight)``, so that NUTS adapts to a posterior of spread ~1 at any
        N), ``inverse_mass_matrix`` (of ``z``, per chain). VI: ``elbo`` (ndarray (num_steps,), data units;
        minibatch estimates when ``batch_size`` is set), ``guide``, ``guide_params`` (final
        guide parameters, standardised units, numpy), ``num_steps``, ``batch_size``,
        ``learning_rate``.
    num_warmup, num_samples, num_chains : int
        For VI: ``0``, ``num_samples`` and ``1``.
    prior : ResolvedPrior
        The prior in data units.
    shift, scale : ndarray of shape (n_features,)
        The standardisation ``(x - shift) / scale`` the sampler ran in.
    state : numpyro HMCState or None
        NUTS only: the final sampler state of every chain (leading axis ``chain``; position,
        gradient, adapted step size and inverse mass matrix, PRNG keys), from which
        :func:`~bayesgmm.infer.nuts.extend_nuts` continues the chains. None for VI.
    """

    draws: GMMParams
    sample_stats: dict
    method: str
    info: dict
    num_warmup: int
    num_samples: int
    num_chains: int
    prior: ResolvedPrior | None = None
    shift: np.ndarray = dataclasses.field(repr=False, default=None)
    scale: np.ndarray = dataclasses.field(repr=False, default=None)
    state: Any = dataclasses.field(repr=False, default=None)


class FlatState(collections.namedtuple("FlatState", "paths leaves is_key key_impl")):
    """A NUTS sampler state as plain arrays (for saving): leaf paths, leaves, which leaves are keys.

    ``leaves`` are numpy arrays in the flattening order of NumPyro's ``HMCState``; PRNG key
    leaves are stored as their ``uint32`` key data with the key implementation's name.
    :func:`~bayesgmm.infer.nuts.extend_nuts` accepts a ``FlatState`` as ``result.state``.
    """


def flatten_state(state) -> FlatState:
    """The :class:`FlatState` of a NUTS state pytree (or the argument, if already flat)."""
    if isinstance(state, FlatState):
        return state
    flat, _ = jax.tree_util.tree_flatten_with_path(state)
    paths, leaves, is_key, impl = [], [], [], ""
    for path, leaf in flat:
        paths.append(jax.tree_util.keystr(path))
        key = jax.dtypes.issubdtype(jnp.result_type(leaf), jax.dtypes.prng_key)
        if key:
            impl = str(jax.random.key_impl(leaf))
            leaf = jax.random.key_data(leaf)
        leaves.append(np.asarray(leaf))
        is_key.append(bool(key))
    return FlatState(tuple(paths), tuple(leaves), tuple(is_key), impl)


def unflatten_state(flat: FlatState, template):
    """Rebuild the state pytree of ``flat`` with the structure of ``template``.

    ``template`` is a state of the same problem (abstract values suffice, e.g. from
    ``jax.eval_shape``), as the installed NumPyro builds it. A saved state whose leaf paths,
    shapes or dtypes differ from the template's cannot be continued: ``ValueError``.
    """
    tflat, treedef = jax.tree_util.tree_flatten_with_path(template)
    paths = tuple(jax.tree_util.keystr(p) for p, _ in tflat)
    if paths != tuple(flat.paths):
        raise ValueError(
            "the saved NUTS state does not have the structure this NumPyro version uses "
            f"(saved leaves {list(flat.paths)}, expected {list(paths)}); it cannot be extended."
        )
    leaves = []
    for (_, t), leaf, key in zip(tflat, flat.leaves, flat.is_key):
        leaf = jax.random.wrap_key_data(jnp.asarray(leaf), impl=flat.key_impl) if key else jnp.asarray(leaf)
        if tuple(leaf.shape) != tuple(t.shape) or leaf.dtype != t.dtype:
            raise ValueError(
                f"the saved NUTS state has a leaf of shape {leaf.shape} and dtype {leaf.dtype} where "
                f"{t.shape} {t.dtype} is expected; it cannot be extended."
            )
        leaves.append(leaf)
    return jax.tree_util.tree_unflatten(treedef, leaves)
