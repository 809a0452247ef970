"""The one place where bayesgmm relies on NumPyro's internals (private or unstable names).

The samplers use NumPyro's public modelling and inference API (``numpyro.handlers``, ``SVI``, the
autoguides, ``biject_to``) directly. What they need beyond it lives here, behind small functions,
and nowhere else in bayesgmm: the functional NUTS kernel (``numpyro.infer.hmc.hmc``), the
adaptation windows of its warm-up (``numpyro.infer.hmc_util.build_adaptation_schedule``, swapped
while a kernel is traced so that the warm-up's length is traced too), the fields of its
``HMCState``, ``potential_energy`` and ``log_density``, the progress-bar decorator of
``numpyro.util``, the private optimiser base class ``numpyro.optim._NumPyroOptim``,
``init_to_value``, an ``ELBO`` that overrides ``loss_with_mutable_state``, a
``numpyro.primitives.Messenger`` that edits sample messages, and the substitution of a
subsampling plate's indices. ``tests/test_numpyro_bridge.py`` checks that each of them still
exists with the signature, fields and behaviour used here, so that a NumPyro release that changes
one fails there, naming this module, rather than somewhere inside a sampler.
"""

from __future__ import annotations

import contextlib
import threading
from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro import handlers
from numpyro.infer import ELBO
from numpyro.infer import hmc_util as _hmc_util
from numpyro.infer.hmc import hmc
from numpyro.infer.initialization import init_to_value
from numpyro.infer.util import log_density, potential_energy

__all__ = [
    "NUTSKernel",
    "NUTSRecord",
    "WarmupSchedule",
    "nuts_kernel",
    "warmup_schedule",
    "nuts_record",
    "state_position",
    "state_rng_key",
    "state_potential_energy",
    "state_num_steps",
    "state_inverse_mass_matrix",
    "position_path",
    "fori_loop_with_progress_bar",
    "scan_with_progress_bar",
    "is_numpyro_optimizer",
    "init_at",
    "OrderedTraceELBO",
    "GlobalLatents",
    "with_replacement",
]


# ---------------------------------------------------------------------------------------------
# the functional NUTS kernel and its state (numpyro.infer.hmc.hmc, HMCState, HMCAdaptState)
# ---------------------------------------------------------------------------------------------
class NUTSKernel(NamedTuple):
    """NumPyro's NUTS kernel for one model and fixed sampler settings.

    ``init(z0, rng_key, data, warmup)`` is the state of one chain at the unconstrained point
    ``z0`` (a dict of site arrays) and ``step(state, data)`` its next transition; ``data`` are the
    model's keyword arguments and ``warmup`` a :func:`warmup_schedule` (traced or not). NumPyro's
    ``init_kernel`` sets the warm-up length and the adaptation closures that ``sample_kernel``
    reads, so ``init`` must be traced in every program that calls ``step``.
    """

    init: Callable
    step: Callable


class WarmupSchedule(NamedTuple):
    """A warm-up's length and NumPyro's adaptation windows of it, as arrays, so that they can be
    arguments of a compiled program (:func:`warmup_schedule`). Only the number of windows --
    ``windows.shape[0]``, 1 for fewer than 20 transitions, then 3 to 8 up to 2000 -- shapes the
    program."""

    num_warmup: Any  # int32 scalar
    windows: Any  # int32 (n_windows, 2): NumPyro's AdaptWindow (start, end) of each window


def warmup_schedule(num_warmup: int) -> WarmupSchedule:
    """The :class:`WarmupSchedule` of a warm-up of ``num_warmup`` transitions: the windows are
    NumPyro's own (``build_adaptation_schedule``: Stan's start buffer, doubling windows of
    mass-matrix adaptation, end buffer)."""
    windows = [tuple(w) for w in _hmc_util.build_adaptation_schedule(int(num_warmup))]
    return WarmupSchedule(np.asarray(num_warmup, np.int32), np.asarray(windows, np.int32).reshape(-1, 2))


#: serialises the swap of NumPyro's schedule builder while a kernel's init is traced
_SCHEDULE_LOCK = threading.Lock()


@contextlib.contextmanager
def _windows_of(warmup: WarmupSchedule):
    """NumPyro's ``warmup_adapter`` (called by ``init_kernel``) builds its windows from a Python
    number; in this block it gets those of ``warmup`` instead, traced values included, so that
    the warm-up length is an argument of the program rather than part of it. The adapter uses the
    windows as numbers (``t == windows[i, 1]``) and their count as a Python int, the length of the
    list, which is static (the shape of ``warmup.windows``)."""
    windows = [_hmc_util.AdaptWindow(w[0], w[1]) for w in warmup.windows]
    tracing = threading.get_ident()
    with _SCHEDULE_LOCK:
        builder = _hmc_util.build_adaptation_schedule
        # (another thread building NumPyro's own kernel meanwhile gets NumPyro's windows)
        _hmc_util.build_adaptation_schedule = (
            lambda num_steps: windows if threading.get_ident() == tracing else builder(num_steps)
        )
        try:
            yield
        finally:
            _hmc_util.build_adaptation_schedule = builder


def nuts_kernel(model, *, dense_mass, target_accept, max_tree_depth) -> NUTSKernel:
    """The :class:`NUTSKernel` of ``model`` (called as ``model(**data)``) on its potential energy.

    The first ``warmup.num_warmup`` transitions (``init``'s :class:`WarmupSchedule`) adapt the
    step size (towards the acceptance statistic ``target_accept``) and the (dense or diagonal)
    inverse mass matrix.

    ``data`` may hold ``position_scale``, a positive scalar ``c`` that is not passed to the model:
    the chain's position is then ``z = c * u`` for the model's unconstrained point ``u`` (the
    potential energy is ``U(z / c)``, the same values).
    """

    def pe_gen(position_scale=None, **data):
        pe = partial(potential_energy, model, (), data)
        if position_scale is None:
            return pe
        return lambda z: pe(jax.tree_util.tree_map(lambda a: a / position_scale, z))

    init_kernel, sample_kernel = hmc(potential_fn_gen=pe_gen, algo="NUTS")

    def init(z0, rng_key, data, warmup: WarmupSchedule):
        with _windows_of(warmup):
            return init_kernel(
                z0, warmup.num_warmup, dense_mass=dense_mass, target_accept_prob=target_accept,
                max_tree_depth=max_tree_depth, model_kwargs=data, rng_key=rng_key,
            )

    def step(state, data):
        return sample_kernel(state, model_kwargs=data)

    return NUTSKernel(init, step)


class NUTSRecord(NamedTuple):
    """What is kept of each NUTS transition: the position and the transition's statistics."""

    z: Any  # {site: unconstrained value}
    potential_energy: Any
    energy: Any
    num_steps: Any  # leapfrog steps
    accept_prob: Any
    diverging: Any
    step_size: Any


def nuts_record(state) -> NUTSRecord:
    """The :class:`NUTSRecord` of a NUTS state (an ``HMCState``)."""
    return NUTSRecord(state.z, state.potential_energy, state.energy, state.num_steps,
                      state.accept_prob, state.diverging, state.adapt_state.step_size)


def state_position(state):
    """The unconstrained position ``{site: value}`` of a NUTS state."""
    return state.z


def state_rng_key(state):
    """The PRNG key of a NUTS state."""
    return state.rng_key


def state_potential_energy(state):
    """The potential energy (minus the unconstrained log joint) at a NUTS state's position."""
    return state.potential_energy


def state_num_steps(state):
    """The leapfrog steps of the transition that led to a NUTS state."""
    return state.num_steps


def state_inverse_mass_matrix(state):
    """The adapted inverse mass matrix of a NUTS state (over the flattened unconstrained sites)."""
    return state.adapt_state.inverse_mass_matrix


def position_path(site: str) -> str:
    """The ``jax.tree_util.keystr`` path of a site's position leaf in a flattened NUTS state."""
    return f".z['{site}']"


# ---------------------------------------------------------------------------------------------
# progress bars (numpyro.util.progress_bar_factory, host callbacks)
# ---------------------------------------------------------------------------------------------
def _progress_bars(num_iterations, num_bars):
    from numpyro.util import progress_bar_factory

    return progress_bar_factory(num_iterations, num_bars, max(1, num_iterations // 20))


def fori_loop_with_progress_bar(num_iterations, num_bars, body, carry):
    """``jax.lax.fori_loop(0, num_iterations, body, carry)`` advancing tqdm bars.

    ``num_bars`` bars are opened; each traced copy of the loop (a chain) takes the next free one.
    """
    pbody = _progress_bars(num_iterations, num_bars)(body)
    carry, _ = jax.lax.fori_loop(0, num_iterations, pbody, (carry, -1))
    return carry


def scan_with_progress_bar(num_iterations, body, carry):
    """``jax.lax.scan(body, carry, jnp.arange(num_iterations))`` advancing one tqdm bar."""
    advance = _progress_bars(num_iterations, 1)(lambda i, s: body(s, i))

    def pbody(carry, i):
        (s, y), bar = advance(i, (carry[0], carry[1]))
        return ((s, bar), y)

    (carry, _), ys = jax.lax.scan(lambda c, i: pbody(c, i), (carry, -1), jnp.arange(num_iterations))
    return carry, ys


# ---------------------------------------------------------------------------------------------
# SVI: optimisers, guide starts, the ELBO, messengers, minibatches
# ---------------------------------------------------------------------------------------------
def is_numpyro_optimizer(obj) -> bool:
    """Whether ``obj`` is a ``numpyro.optim`` optimiser (their private base class)."""
    return isinstance(obj, numpyro.optim._NumPyroOptim)


def init_at(values: dict):
    """An ``init_loc_fn`` (of autoguides) starting every site at its value in ``values``."""
    return init_to_value(values=values)


def autoguide(guide_cls, model, *, init_scale=None, **kwargs):
    """``guide_cls(model, **kwargs)`` (a NumPyro autoguide) starting its scales at ``init_scale``.

    ``init_scale`` may be a traced value, so that one compiled SVI program serves data of every
    size (the scale is set from the data's weight): NumPyro's autoguides check it at construction
    and read it (``self._init_scale``) only in ``jnp.full`` / a product when the guide first runs,
    so the guide is built with the default and its scale set afterwards. None: the default.
    """
    guide = guide_cls(model, **kwargs)
    if init_scale is not None:
        guide._init_scale = init_scale
    return guide


class OrderedTraceELBO(ELBO):
    """Single-particle ``Trace_ELBO``: ``log p(x, z) - log q(z)`` at one draw ``z ~ q``.

    The same objective as NumPyro's ``Trace_ELBO``, but its terms are summed in the traces'
    order: NumPyro's iterates a ``set`` of site names, whose order changes with Python's hash
    seed, so every process traced a different program (the persistent compilation cache never
    matched it) and summed the ELBO in a different order. Overrides
    ``ELBO.loss_with_mutable_state``, which ``SVI`` calls.
    """

    def loss_with_mutable_state(self, rng_key, param_map, model, guide, *args, **kwargs):
        model_seed, guide_seed = jax.random.split(rng_key)
        guide_lp, guide_trace = log_density(handlers.seed(guide, guide_seed), args, kwargs, param_map)
        replayed = handlers.replay(handlers.seed(model, model_seed), guide_trace)
        model_lp, _ = log_density(replayed, args, kwargs, param_map)
        return {"loss": -(model_lp - guide_lp), "mutable_state": None}


class GlobalLatents(numpyro.primitives.Messenger):
    """Drop the plate frames of the latent sites (all global parameters of the model).

    The model enters its ``component`` plate at dim -2 for the ``(K, D)`` sites and at dim -1 for
    the ``(K,)``-batched ones (so that site values are exactly the GMMParams fields), which
    NumPyro's autoguides reject as inconsistent plates. For global latents the frames carry no
    information an autoguide needs (no subsampling, no enumeration): the distributions are
    already expanded by the plates, and ``Trace_ELBO`` sums every site's log density. The
    likelihood factor (observed, in the subsampled ``obs`` plate) keeps its frames.
    """

    def process_message(self, msg):
        if msg["type"] == "sample" and not msg.get("is_observed", False):
            msg["cond_indep_stack"] = []


def with_replacement(model, n, m, plate="obs"):
    """``model`` whose ``plate`` minibatch is ``m`` indices drawn uniformly *with* replacement.

    NumPyro draws minibatch indices without replacement, which on a CPU is a sequential scan of
    ``m`` swaps over an ``n``-array and on an accelerator a permutation of all ``n`` rows, at
    every step; drawing with replacement costs O(m) and the ``n / m``-scaled minibatch
    log-likelihood stays an unbiased estimate of the full one. The indices are substituted for
    the subsampling plate's own (``handlers.substitute`` acts on ``plate`` messages).
    """

    def wrapped(*args, **kwargs):
        key = numpyro.prng_key()
        if key is None:  # not seeded (e.g. tracing for shapes): the model's own subsampling
            return model(*args, **kwargs)
        idx = jax.random.randint(key, (m,), 0, n)
        with handlers.substitute(data={plate: idx}):
            return model(*args, **kwargs)

    return wrapped
