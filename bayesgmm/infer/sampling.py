"""Posterior runners: NUTS (exact) and SVI (variational), both ``(rng_key, x, spec) -> SamplerResult``.

Both run the NumPyro model :func:`bayesgmm.models.gmm_model` on *standardised* data (the per-feature
affine map of :mod:`bayesgmm.infer._standardize`, under which the model is equivariant, with the
prior mapped along), start at a point estimate (normally the MAP of :func:`~bayesgmm.infer.fit_map`)
and return draws in *data units* as a :class:`~bayesgmm.core.params.GMMParams` with leading axes
``(chain, draw)`` (VI: ``chain = 1``).

NUTS is driven through NumPyro's functional kernel (``numpyro.infer.hmc.hmc``) rather than the
``MCMC`` class: warm-up and sampling run in one loop of one ahead-of-time compiled program (the NUTS
kernel is compiled once, where ``MCMC.warmup`` + ``MCMC.run`` compile it twice and ``MCMC.run``
recompiles on every call), compilation is timed apart from running, and the compiled program is
cached per model structure, sampler settings and data shape, so refitting a same-shaped data set
(replicated data sets, cross-validation, the estimator refitting) does not recompile. Data and
prior values are arguments of the program, not constants baked into it. SVI's program (guide
set-up, optimisation and draws) is cached the same way, with the start as an argument too.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import time
import types
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro import handlers
from numpyro.distributions import biject_to
from numpyro.infer import ELBO, SVI
from numpyro.infer.autoguide import (
    AutoDelta,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
)
from numpyro.infer.hmc import hmc
from numpyro.infer.initialization import init_to_value
from numpyro.infer.util import log_density, potential_energy

from .._compile_cache import enable_compilation_cache
from ..core.logdensity import log_posterior
from ..core.params import GMMParams, check_covariance_type
from ..core.programs import compiler_options, paused_gc
from ..core.prior import Prior, ResolvedPrior, resolve_prior
from ..models.gmm import gmm_model, params_from_sample, sample_from_params
from ._standardize import from_std, log_jacobian, standardisation, to_std
from .map_em import default_dtype

__all__ = ["SamplerResult", "FlatState", "run_nuts", "extend_nuts", "flatten_state", "run_svi", "CHAIN_METHODS", "GUIDES"]

CHAIN_METHODS = ("auto", "vectorized", "parallel", "sequential")

#: VI guide names -> NumPyro autoguide classes.
GUIDES = {
    "normal": AutoNormal,
    "multivariate_normal": AutoMultivariateNormal,
    "low_rank": AutoLowRankMultivariateNormal,
    "delta": AutoDelta,
}

#: Weights of the start are clipped to at least this (then renormalised): a component emptied by a
#: sparse prior has weight exactly 0, which is -inf in the unconstrained (stick-breaking) space.
_MIN_INIT_WEIGHT = 1e-4
#: The default VI optimiser is Adam with a cosine decay from ``learning_rate`` to this fraction of it.
_FINAL_LR_FRACTION = 0.01


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
        sampling in one program: its run time is split between them by their leapfrog steps. NUTS: ``n_divergent``, ``chain_method``,
        ``dense_mass``, ``target_accept``, ``max_tree_depth``, ``init_jitter``, ``cache_hit``
        (the programs were already compiled), ``inverse_mass_matrix`` (standardised
        unconstrained space, per chain). VI: ``elbo`` (ndarray (num_steps,), data units;
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
        :func:`extend_nuts` continues the chains. None for VI.
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


# ---------------------------------------------------------------------------------------------
# shared set-up: validation, standardisation, site transforms
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Problem:
    z: Any  # standardised data, (N, D) in dtype
    w: Any  # sample weights in dtype or None
    zprior: ResolvedPrior
    rprior: ResolvedPrior
    shift: np.ndarray
    scale: np.ndarray
    total_weight: float
    init_sites: dict  # constrained site values of the start, standardised units
    k: int
    d: int
    covariance_type: str
    dtype: Any


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _prepare(x, n_components, covariance_type, prior, init, sample_weight, caller) -> _Problem:
    check_covariance_type(covariance_type)
    k = _check_int("n_components", n_components, 1)
    if not isinstance(prior, Prior):
        raise TypeError(
            f"{caller} needs a proper prior: pass prior=bayesgmm.Prior(...) (got {prior!r}); "
            "maximum likelihood (prior=None) is only available for the MAP/EM fit."
        )
    x64 = np.asarray(x, dtype=np.float64)
    if x64.ndim != 2 or x64.shape[0] < 1:
        raise ValueError(f"x must have shape (n_samples, n_features), got {x64.shape}.")
    if not np.all(np.isfinite(x64)):
        raise ValueError("x contains NaN or infinite values; remove or impute them first.")
    n, d = x64.shape
    if sample_weight is None:
        w64 = np.ones(n)
    else:
        w64 = np.asarray(sample_weight, dtype=np.float64)
        if w64.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), got {w64.shape}.")
        if not np.all(np.isfinite(w64)) or np.any(w64 < 0) or w64.sum() <= 0:
            raise ValueError("sample_weight must be finite, >= 0 and not all zero.")
    dtype = default_dtype()
    # resolved and mapped in float64 on the host (data units never pass through float32)
    rprior = resolve_prior(prior, x64, k, covariance_type, w64, "host")
    shift, scale = standardisation(x64, w64, covariance_type)
    # host arrays of the compute dtype (jnp.asarray would compile a small program per shape)
    np_dtype = np.dtype(dtype)
    zprior = jax.tree_util.tree_map(lambda a: np.asarray(a, np_dtype), rprior.affine(shift, scale))
    z = jax.device_put(((x64 - shift) / scale).astype(np_dtype))
    w = None if sample_weight is None else jax.device_put(w64.astype(np_dtype))

    init = _check_init(init, k, d, covariance_type)
    if prior.ordered_means:  # the ordered model's support: increasing first-feature means
        init = _permute_components(init, np.argsort(init.means[:, 0], kind="stable"))
    wts = np.maximum(init.weights, _MIN_INIT_WEIGHT)
    init = init.replace(weights=wts / wts.sum())
    sites = _std_sites(init, shift, scale, dtype, prior.ordered_means)
    return _Problem(z, w, zprior, rprior, shift, scale, float(w64.sum()), sites, k, d,
                    covariance_type, dtype)


def _std_sites(params: GMMParams, shift, scale, dtype, ordered_means) -> dict:
    """Constrained site values of ``params`` (data units, no batch axes) in standardised units."""
    init_z = jax.tree_util.tree_map(lambda a: np.asarray(a, np.dtype(dtype)), to_std(params, shift, scale))
    sites = sample_from_params(init_z, ordered_means=ordered_means)  # host arrays: nothing compiled
    if params.means.shape[-1] == 1:
        sites.pop("corr_chol", None)  # a deterministic site for D == 1
    return sites


def _check_init(init, k, d, covariance_type) -> GMMParams:
    if not isinstance(init, GMMParams):
        raise TypeError(
            "init must be a GMMParams in data units (e.g. fit_map(...).params), "
            f"got {type(init).__name__}."
        )
    if init.covariance_type != covariance_type:
        raise ValueError(
            f"init has covariance_type={init.covariance_type!r}, expected {covariance_type!r}."
        )
    init = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), init)
    if init.means.shape != (k, d):
        raise ValueError(
            f"init.means has shape {init.means.shape}; expected ({k}, {d}) (no batch axes)."
        )
    leaves = jax.tree_util.tree_leaves(init)
    if not all(np.all(np.isfinite(a)) for a in leaves):
        raise ValueError("init contains non-finite values.")
    if np.any(init.weights < 0) or np.any(init.scales <= 0):
        raise ValueError("init must have weights >= 0 and scales > 0.")
    return init


def _permute_components(p: GMMParams, order) -> GMMParams:
    """``p`` (numpy, no batch axes) with its components in the given order."""
    ct = p.covariance_type
    return p.replace(
        weights=p.weights[order],
        means=p.means[order],
        scales=p.scales if ct == "tied" else p.scales[order],
        corr_chol=p.corr_chol[order] if ct == "full" else p.corr_chol,
    )


def _site_transforms(problem: _Problem) -> dict:
    """``{site: bijection unconstrained -> support}`` for the latent sites of the model."""
    model = partial(gmm_model, n_components=problem.k, covariance_type=problem.covariance_type)
    supports = {}

    def trace(init_sites, zprior):
        # substitute the start so that nothing is sampled; traced abstractly (eval_shape), since
        # run eagerly the distributions' constructors and checks compile dozens of small programs
        tr = handlers.trace(handlers.substitute(model, data=init_sites)).get_trace(
            x=None, prior=zprior, n_features=problem.d
        )
        for name, site in tr.items():
            if site["type"] == "sample" and not site["is_observed"]:
                supports[name] = site["fn"].support  # parameter-free constraints (static)
        return 0

    jax.eval_shape(trace, problem.init_sites, problem.zprior)
    return {name: biject_to(support) for name, support in supports.items()}


def _constrain(transforms, u):
    """Constrained site values and ``sum log|det J|`` of one unconstrained point ``u``."""
    out, ladj = {}, 0.0
    for name, t in transforms.items():
        v = t(u[name])
        out[name] = v
        ladj = ladj + jnp.sum(t.log_abs_det_jacobian(u[name], v))
    return out, ladj


# ---------------------------------------------------------------------------------------------
# NUTS
# ---------------------------------------------------------------------------------------------
def _COMPILE_OPTIONS():
    """XLA options of the NUTS programs: XLA's defaults.

    (The ``"fast"`` profile compiles about 30% quicker, but it fuses a run's program and its
    continuation's differently, and an extended run must be bit-identical to one longer run.)
    """
    return None


def _SVI_COMPILE_OPTIONS():
    """XLA options of the SVI programs: the ``"fast"`` profile (same run time, less compile)."""
    return compiler_options("fast")


#: Rows x draws below which run_svi computes the draws' log posteriors by default.
_DRAW_LOG_DENSITY_BUDGET = 20_000_000

#: compiled NUTS, NUTS-extension and SVI programs, least recently used first
_PROGRAM_CACHE: collections.OrderedDict = collections.OrderedDict()
_PROGRAM_CACHE_SIZE = 16


def _cached_program(cache_key, build):
    """``(program, cache_hit)``: the compiled program for ``cache_key``, built on a miss.

    ``cache_key=None`` (progress bars, a user's optimiser object) always builds and stores nothing.
    """
    if cache_key is not None and cache_key in _PROGRAM_CACHE:
        _PROGRAM_CACHE.move_to_end(cache_key)
        return _PROGRAM_CACHE[cache_key], True
    enable_compilation_cache()
    with paused_gc():  # tracing allocates heavily (see bayesgmm.core.programs.paused_gc)
        program = build()
    if cache_key is not None:
        _PROGRAM_CACHE[cache_key] = program
        while len(_PROGRAM_CACHE) > _PROGRAM_CACHE_SIZE:
            _PROGRAM_CACHE.popitem(last=False)
    return program, False


def _nuts_parts(cfg, transforms):
    """The NUTS pieces shared by a fresh run (:func:`_compile_nuts`) and a continuation.

    Returns a namespace with ``starts``, ``init_one`` (one chain), ``init_b`` / ``step`` (batched
    over chains when vectorized, else one chain), ``stats_of`` (what is recorded per draw) and
    ``finish`` (recorded buffer -> draws in data units, standardised log posterior, stats).
    ``init_one`` must be traced in every program that calls ``step``: NumPyro's ``init_kernel``
    sets the warm-up length and adaptation closures that ``sample_kernel`` reads.
    """
    (k, ct, num_chains, chain_method, num_warmup, num_samples, dense_mass, target_accept,
     max_tree_depth) = cfg
    model = partial(gmm_model, n_components=k, covariance_type=ct)
    vectorized = chain_method == "vectorized"
    names = sorted(transforms)

    def pe_gen(**data):
        return partial(potential_energy, model, (), data)

    init_kernel, sample_kernel = hmc(potential_fn_gen=pe_gen, algo="NUTS")

    def starts(init_sites, rng_key, jitter):
        """Per-chain unconstrained starts: init plus N(0, jitter^2) noise; per-chain keys."""
        key_jitter, key_chains = jax.random.split(rng_key)
        z0 = {}
        for name, kj in zip(names, jax.random.split(key_jitter, len(names))):
            u = transforms[name].inv(init_sites[name])
            eps = jax.random.normal(kj, (num_chains,) + jnp.shape(u), u.dtype)
            z0[name] = u[None] + jitter * eps
        return z0, jax.random.split(key_chains, num_chains)

    def init_one(z0, key, data):
        return init_kernel(
            z0, num_warmup, dense_mass=dense_mass, target_accept_prob=target_accept,
            max_tree_depth=max_tree_depth, model_kwargs=data, rng_key=key,
        )

    # vectorized: the loop runs outside a vmap over chains (as in NumPyro's MCMC); otherwise one
    # program per chain, mapped over the chains with lax.map or pmap
    if vectorized:
        init_b = jax.vmap(init_one, in_axes=(0, 0, None))
        step = jax.vmap(lambda s, data: sample_kernel(s, model_kwargs=data), in_axes=(0, None))
    else:
        init_b = init_one
        step = lambda s, data: sample_kernel(s, model_kwargs=data)  # noqa: E731

    def stats_of(s):
        return (s.z, s.potential_energy, s.energy, s.num_steps, s.accept_prob, s.diverging,
                s.adapt_state.step_size)

    def finish(buf, shift, scale):
        zs, pe, *rest = buf
        sites, ladj = jax.vmap(jax.vmap(lambda u: _constrain(transforms, u)))(zs)
        draws = from_std(params_from_sample(sites, ct), shift, scale)
        # -potential energy is the log joint in the unconstrained space; removing the
        # transforms' Jacobian gives the density of the natural parameters
        return draws, -pe - ladj, tuple(rest)

    return types.SimpleNamespace(
        starts=starts, init_one=init_one, init_b=init_b, step=step, stats_of=stats_of,
        finish=finish, vectorized=vectorized,
    )


def _compile_nuts(cfg, transforms, progress_bar, args):
    """Compile ``execute(init_sites, rng_key, jitter, data, shift, scale)`` for ``args``.

    ``execute`` returns ``(last_state, initial_pe, warmup_steps, draws, lp_std, stats)`` with
    chains on the leading axis: ``warmup_steps`` the leapfrog steps of each chain's warm-up,
    ``draws`` a GMMParams in data units ``(chain, draw, ...)``, ``lp_std`` the log posterior in
    standardised units and ``stats`` ``(energy, n_steps, accept_prob, diverging, step_size)``,
    each ``(chain, draw)``.

    One loop runs warm-up and sampling (the NUTS kernel is compiled once) and writes the
    post-warm-up draws into a buffer of ``num_samples``. The program has no host callbacks, so
    the persistent compilation cache can keep it (JAX does not store programs with callbacks);
    the run time is split between warm-up and sampling by their leapfrog steps
    (:func:`_split_times`). ``cfg`` holds everything static (model structure, sampler settings);
    data, prior values, the start and the jitter are traced.
    """
    (k, ct, num_chains, chain_method, num_warmup, num_samples, dense_mass, target_accept,
     max_tree_depth) = cfg
    parts = _nuts_parts(cfg, transforms)
    vectorized, init_b, step, stats_of = parts.vectorized, parts.init_b, parts.step, parts.stats_of
    starts, finish = parts.starts, parts.finish

    def run_chain(z0, keys, data):
        state = init_b(z0, keys, data)
        pe0 = state.potential_energy
        buf = jax.tree_util.tree_map(
            lambda a: jnp.zeros((num_samples,) + a.shape, a.dtype), stats_of(state)
        )

        def body(i, carry):
            s, buf, warm = carry
            s = step(s, data)
            j = jnp.maximum(i - num_warmup, 0)
            buf = jax.tree_util.tree_map(
                lambda b, v: jax.lax.dynamic_update_index_in_dim(b, v, j, 0), buf, stats_of(s)
            )
            warm = warm + jnp.where(i < num_warmup, s.num_steps, 0)
            return s, buf, warm

        total = num_warmup + num_samples
        carry = (state, buf, jnp.zeros_like(state.num_steps))
        if progress_bar:
            from numpyro.util import progress_bar_factory

            bars = 1 if vectorized else num_chains
            pbody = progress_bar_factory(total, bars, max(1, total // 20))(body)
            (state, buf, warm), _ = jax.lax.fori_loop(0, total, pbody, (carry, -1))
        else:
            state, buf, warm = jax.lax.fori_loop(0, total, body, carry)
        if vectorized:  # (draw, chain, ...) -> (chain, draw, ...)
            buf = jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), buf)
        return state, pe0, warm, buf

    if chain_method == "parallel":
        prep = jax.jit(starts).lower(*args[:3]).compile(compiler_options=_COMPILE_OPTIONS())
        z0, keys = jax.eval_shape(starts, *args[:3])
        pmapped = jax.pmap(run_chain, in_axes=(0, 0, None))
        sampler = pmapped.lower(z0, keys, args[3]).compile(compiler_options=_COMPILE_OPTIONS())
        buf = jax.eval_shape(pmapped, z0, keys, args[3])[3]
        post = jax.jit(finish).lower(buf, *args[4:]).compile(compiler_options=_COMPILE_OPTIONS())

        def execute(init_sites, rng_key, jitter, data, shift, scale):
            state, pe0, warm, buf = sampler(*prep(init_sites, rng_key, jitter), data)
            buf = jax.device_put(buf, jax.devices()[0])  # gather the chains for one program
            return (state, pe0, warm, *post(buf, shift, scale))

        return execute

    def program(init_sites, rng_key, jitter, data, shift, scale):
        z0, keys = starts(init_sites, rng_key, jitter)
        if vectorized:
            state, pe0, warm, buf = run_chain(z0, keys, data)
        else:
            state, pe0, warm, buf = jax.lax.map(lambda a: run_chain(a[0], a[1], data), (z0, keys))
        return (state, pe0, warm, *finish(buf, shift, scale))

    return jax.jit(program).lower(*args).compile(compiler_options=_COMPILE_OPTIONS())


def _compile_nuts_extend(cfg, transforms, progress_bar, args):
    """Compile ``execute(state, data, shift, scale)``: ``num_samples`` more NUTS transitions.

    Continues every chain from its final ``state`` (a NumPyro ``HMCState`` with a leading chain
    axis) with the adapted step size and mass matrix; ``state.i >= num_warmup``, so the kernel
    does not adapt. Each transition is the kernel of :func:`_compile_nuts` applied to the same
    state with the same PRNG key, so the draws continue a chain exactly as a longer run would.
    Returns ``(last_state, draws, lp_std, stats)`` as :func:`_compile_nuts` does.
    """
    num_chains, chain_method, num_samples = cfg[2], cfg[3], cfg[5]
    parts = _nuts_parts(cfg, transforms)

    def run_chain(state, data):
        # NumPyro's init_kernel sets the warm-up length and the adaptation closures that
        # sample_kernel reads; its result is unused and compiled away
        parts.init_b(state.z, state.rng_key, data)
        buf = jax.tree_util.tree_map(
            lambda a: jnp.zeros((num_samples,) + a.shape, a.dtype), parts.stats_of(state)
        )

        def body(i, carry):
            s, buf = carry
            s = parts.step(s, data)
            buf = jax.tree_util.tree_map(
                lambda b, v: jax.lax.dynamic_update_index_in_dim(b, v, i, 0), buf, parts.stats_of(s)
            )
            return s, buf

        if progress_bar:
            from numpyro.util import progress_bar_factory

            bars = 1 if parts.vectorized else num_chains
            pbody = progress_bar_factory(num_samples, bars, max(1, num_samples // 20))(body)
            (state, buf), _ = jax.lax.fori_loop(0, num_samples, pbody, ((state, buf), -1))
        else:
            state, buf = jax.lax.fori_loop(0, num_samples, body, (state, buf))
        if parts.vectorized:
            buf = jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), buf)
        return state, buf

    def program(state, data, shift, scale):
        if parts.vectorized:
            state, buf = run_chain(state, data)
        else:  # sequential and parallel runs continue chain by chain
            state, buf = jax.lax.map(lambda s: run_chain(s, data), state)
        return (state, *parts.finish(buf, shift, scale))

    return jax.jit(program).lower(*args).compile(compiler_options=_COMPILE_OPTIONS())


def _split_times(seconds, warmup_steps, sampling_steps, chain_method):
    """Warm-up and sampling seconds: a run's ``seconds`` split by the leapfrog steps of each phase.

    A leapfrog step (one gradient) costs the same in both phases, so the share of steps is the
    share of time; chains side by side (``"parallel"``) take as long as the slowest.
    """
    warm = np.asarray(warmup_steps, np.float64).reshape(-1)
    samp = np.asarray(sampling_steps, np.float64).reshape(len(warm), -1).sum(axis=1)
    if chain_method == "parallel":
        c = int(np.argmax(warm + samp))
        warm, samp = warm[c : c + 1], samp[c : c + 1]
    total = float(warm.sum() + samp.sum())
    share = float(warm.sum()) / total if total > 0 else 0.0
    return seconds * share, seconds * (1.0 - share)


def _avals(tree):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple((np.shape(a), str(jnp.result_type(a))) for a in leaves)


def run_nuts(
    rng_key,
    x,
    *,
    n_components: int,
    covariance_type: str,
    prior: Prior,
    init: GMMParams,
    sample_weight=None,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 4,
    chain_method: str = "auto",
    dense_mass: bool = False,
    target_accept: float = 0.8,
    max_tree_depth: int = 10,
    init_jitter: float = 0.05,
    progress_bar: bool = False,
) -> SamplerResult:
    """Sample the posterior of the Gaussian mixture with NUTS, warm-started at ``init``.

    Parameters
    ----------
    rng_key : jax PRNG key
    x : array-like of shape (n_samples, n_features), finite
    n_components : int
    covariance_type : {"full", "tied", "diag", "spherical"}
    prior : Prior
        The prior (data units; defaults resolved from ``x`` and ``sample_weight``).
    init : GMMParams
        Start of every chain in data units, without batch axes (normally the MAP,
        ``fit_map(...).params``). Weights are clipped to at least ``1e-4`` and renormalised;
        with ``prior.ordered_means`` the components are sorted by their first-feature mean.
    sample_weight : array-like of shape (n_samples,), optional
    num_warmup, num_samples : int
        Warm-up (step size and mass matrix adaptation) and kept draws per chain.
    num_chains : int, default=4
    chain_method : {"auto", "vectorized", "parallel", "sequential"}
        ``"sequential"`` runs the chains one by one in one program; ``"vectorized"`` vmaps them
        (every step then waits for the chain with the longest trajectory, and the batched
        while-loops of NUTS take longer to compile); ``"parallel"`` maps them over devices with
        ``pmap`` (falls back to ``"sequential"`` with a warning when there are fewer devices
        than chains). ``"auto"`` (default): ``"sequential"`` on a CPU, where it compiles and
        runs faster, ``"vectorized"`` on an accelerator.
    dense_mass : bool, default=False
        Adapt a dense (instead of diagonal) mass matrix.
    target_accept : float in (0, 1), default=0.8
        Target acceptance statistic of the step-size adaptation; raise it (0.9, 0.95) when there
        are divergences.
    max_tree_depth : int, default=10
    init_jitter : float, default=0.05
        Standard deviation of the independent Normal noise added to the start of each chain in
        the standardised unconstrained space, so that chains are not identical.
    progress_bar : bool, default=False
        Show tqdm progress bars (disables the compiled-program cache for this call).

    Returns
    -------
    SamplerResult
        ``method="nuts"``; ``draws`` with leading axes ``(num_chains, num_samples)``.

    Examples
    --------
    >>> import jax, numpy as np
    >>> from bayesgmm import Prior
    >>> from bayesgmm.infer import fit_map
    >>> from bayesgmm.infer.sampling import run_nuts
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(-3, 1, (50, 1)), rng.normal(3, 1, (50, 1))])
    >>> m = fit_map(jax.random.PRNGKey(0), x, n_components=2, covariance_type="diag", prior=Prior())
    >>> r = run_nuts(jax.random.PRNGKey(1), x, n_components=2, covariance_type="diag",
    ...              prior=Prior(), init=m.params, num_warmup=100, num_samples=50, num_chains=2)
    >>> r.draws.means.shape
    (2, 50, 2, 1)
    """
    num_warmup = _check_int("num_warmup", num_warmup, 0)
    num_samples = _check_int("num_samples", num_samples, 1)
    num_chains = _check_int("num_chains", num_chains, 1)
    max_tree_depth = _check_int("max_tree_depth", max_tree_depth, 1)
    if chain_method not in CHAIN_METHODS:
        raise ValueError(
            f"chain_method={chain_method!r} is not supported; use one of "
            f"{', '.join(repr(c) for c in CHAIN_METHODS)}."
        )
    if not (isinstance(target_accept, (float, int)) and 0.0 < float(target_accept) < 1.0):
        raise ValueError(f"target_accept must be a number in (0, 1), got {target_accept!r}.")
    if not (isinstance(init_jitter, (float, int)) and math.isfinite(init_jitter) and init_jitter >= 0):
        raise ValueError(f"init_jitter must be a finite number >= 0, got {init_jitter!r}.")
    if not isinstance(dense_mass, (bool, np.bool_)):
        raise TypeError(f"dense_mass must be a bool, got {dense_mass!r}.")
    if chain_method == "auto":
        chain_method = "sequential" if jax.default_backend() == "cpu" else "vectorized"
    if chain_method == "parallel" and jax.local_device_count() < num_chains:
        import warnings

        warnings.warn(
            f"chain_method='parallel' needs {num_chains} devices but JAX sees "
            f"{jax.local_device_count()}; running the chains sequentially instead "
            "(use chain_method='vectorized' to run them together on one device).",
            UserWarning,
            stacklevel=2,
        )
        chain_method = "sequential"

    t_start = time.perf_counter()
    problem = _prepare(x, n_components, covariance_type, prior, init, sample_weight, "run_nuts")
    transforms = _site_transforms(problem)
    data = {"x": problem.z, "prior": problem.zprior, "sample_weight": problem.w}
    args = (
        {name: problem.init_sites[name] for name in transforms},
        rng_key,
        np.asarray(init_jitter, problem.dtype),
        data,
        np.asarray(problem.shift, problem.dtype),
        np.asarray(problem.scale, problem.dtype),
    )

    cfg = (problem.k, covariance_type, num_chains, chain_method, num_warmup, num_samples,
           bool(dense_mass), float(target_accept), max_tree_depth)
    cache_key = None if progress_bar else (cfg, _avals(args))
    t0 = time.perf_counter()

    execute, cache_hit = _cached_program(
        cache_key, lambda: _compile_nuts(cfg, transforms, progress_bar, args)
    )
    t_compile = time.perf_counter() - t0

    t_call = time.perf_counter()
    out = jax.block_until_ready(execute(*args))
    t_run = time.perf_counter() - t_call
    last_state, pe0, warm_steps, draws, lp_std, (energy, n_steps, accept, diverging, step_size) = out
    t_warm, t_sample = _split_times(t_run, warm_steps, n_steps, chain_method)
    if not np.all(np.isfinite(np.asarray(pe0))):
        raise ValueError(
            "The log posterior is not finite at the start of some chain: init must be a valid "
            "parameter value for this prior (e.g. the MAP of the same prior); or lower "
            "init_jitter."
        )

    t0 = time.perf_counter()
    draws = jax.tree_util.tree_map(np.asarray, draws)
    sample_stats = _nuts_stats(draws, lp_std, energy, n_steps, accept, diverging, step_size,
                               problem.scale, problem.total_weight)
    t_post = time.perf_counter() - t0
    info = {
        "compile_seconds": t_compile,
        "warmup_seconds": t_warm,
        "sampling_seconds": t_sample,
        "postprocess_seconds": t_post,
        "total_seconds": time.perf_counter() - t_start,
        "cache_hit": bool(cache_hit),
        "n_divergent": int(sample_stats["diverging"].sum()),
        "chain_method": chain_method,
        "dense_mass": bool(dense_mass),
        "target_accept": float(target_accept),
        "max_tree_depth": max_tree_depth,
        "init_jitter": float(init_jitter),
        "inverse_mass_matrix": jax.tree_util.tree_map(
            np.asarray, last_state.adapt_state.inverse_mass_matrix
        ),
    }
    return SamplerResult(
        draws=draws,
        sample_stats=sample_stats,
        method="nuts",
        info=info,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        prior=problem.rprior,
        shift=problem.shift,
        scale=problem.scale,
        state=last_state,
    )


class FlatState(collections.namedtuple("FlatState", "paths leaves is_key key_impl")):
    """A NUTS sampler state as plain arrays (for saving): leaf paths, leaves, which leaves are keys.

    ``leaves`` are numpy arrays in the flattening order of NumPyro's ``HMCState``; PRNG key
    leaves are stored as their ``uint32`` key data with the key implementation's name.
    :func:`extend_nuts` accepts a ``FlatState`` as ``result.state``.
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


def unflatten_state(flat: FlatState, cfg, transforms, data):
    """Rebuild the ``HMCState`` pytree of ``flat`` from NumPyro's structure for this problem."""
    num_chains = cfg[2]
    parts = _nuts_parts(cfg, transforms)
    z0 = {name: jnp.zeros((num_chains,) + tuple(np.shape(flat.leaves[flat.paths.index(f".z['{name}']")]))[1:],
                          jnp.result_type(data["x"]))
          for name in transforms}
    keys = jax.random.split(jax.random.key(0), num_chains)
    template = jax.eval_shape(jax.vmap(parts.init_one, in_axes=(0, 0, None)), z0, keys, data)
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


def _extension_setup(result, x, sample_weight, num_samples):
    """Static configuration, site transforms and traced data of a run to be continued."""
    draws = result.draws
    ct = draws.covariance_type
    k, d = int(draws.means.shape[-2]), int(draws.means.shape[-1])
    x64 = np.asarray(x, dtype=np.float64)
    if x64.ndim != 2 or x64.shape[1] != d:
        raise ValueError(f"x must have shape (n_samples, {d}) like the run's data, got {x64.shape}.")
    if not np.all(np.isfinite(x64)):
        raise ValueError("x contains NaN or infinite values; remove or impute them first.")
    dtype = default_dtype()
    w64 = None if sample_weight is None else np.asarray(sample_weight, np.float64)
    if w64 is not None and w64.shape != (x64.shape[0],):
        raise ValueError(f"sample_weight must have shape ({x64.shape[0]},), got {w64.shape}.")
    shift, scale = np.asarray(result.shift, np.float64), np.asarray(result.scale, np.float64)
    rprior = result.prior
    zprior = rprior.affine(jnp.asarray(shift, dtype), jnp.asarray(scale, dtype))
    z = jnp.asarray((x64 - shift) / scale, dtype)
    w = None if w64 is None else jnp.asarray(w64, dtype)
    total_weight = float(x64.shape[0] if w64 is None else w64.sum())
    last = jax.tree_util.tree_map(lambda a: np.asarray(a[0, -1], np.float64), draws)
    sites = _std_sites(last, shift, scale, dtype, rprior.ordered_means)
    problem = types.SimpleNamespace(k=k, d=d, covariance_type=ct, init_sites=sites, zprior=zprior)
    transforms = _site_transforms(problem)
    info = dict(result.info)
    cfg = (k, ct, int(result.num_chains), info.get("chain_method", "vectorized"), int(result.num_warmup),
           num_samples, bool(info.get("dense_mass", False)), float(info.get("target_accept", 0.8)),
           int(info.get("max_tree_depth", 10)))
    data = {"x": z, "prior": zprior, "sample_weight": w}
    return cfg, transforms, data, shift, scale, total_weight


def extend_nuts(
    result: SamplerResult, x, *, sample_weight=None, num_samples: int = 500, progress_bar: bool = False,
) -> SamplerResult:
    """Continue the chains of a NUTS run for ``num_samples`` more draws, without a new warm-up.

    Every chain restarts from its final state in ``result.state`` with the step size and mass
    matrix adapted in the original warm-up. On CPU the continuation is exact: a run of
    ``num_warmup`` + ``S1`` draws extended by ``S2`` gives bit-identical draws and statistics to
    one run of ``num_warmup`` + ``S1 + S2`` draws with the same key (both apply the same compiled
    transition to the same state and PRNG key). Runs with ``chain_method="parallel"`` continue
    chain by chain on one device (the same transitions; equal up to floating-point rounding).

    Parameters
    ----------
    result : SamplerResult
        A NUTS result with ``state`` (from :func:`run_nuts`, an earlier ``extend_nuts``, or a
        loaded :class:`~bayesgmm.Posterior`).
    x : array-like of shape (n_samples, n_features)
        The same data the run was conditioned on.
    sample_weight : array-like of shape (n_samples,), optional
        The same weights as the run (None if it had none).
    num_samples : int, default=500
        Additional draws per chain.
    progress_bar : bool, default=False

    Returns
    -------
    SamplerResult
        The new draws only (``num_samples`` per chain), their statistics and the new final
        ``state``; ``num_warmup`` is the original one.
    """
    if getattr(result, "method", None) != "nuts" or getattr(result, "state", None) is None:
        raise ValueError(
            "only a NUTS run with its final sampler state can be extended (VI draws are "
            "independent: draw more from the fit instead, or run NUTS)."
        )
    num_samples = _check_int("num_samples", num_samples, 1)
    t_start = time.perf_counter()
    cfg, transforms, data, shift, scale, total_weight = _extension_setup(result, x, sample_weight, num_samples)
    dtype = default_dtype()
    state = result.state
    if isinstance(state, FlatState):
        state = unflatten_state(state, cfg, transforms, data)
    state = jax.tree_util.tree_map(jnp.asarray, state)
    state_dtype = jnp.result_type(state.potential_energy)
    if state_dtype != dtype:
        raise ValueError(
            f"the run was sampled in {np.dtype(state_dtype).name} but JAX now computes in "
            f"{np.dtype(dtype).name}; extend it with the same setting of jax_enable_x64."
        )
    info = dict(result.info)
    rprior = result.prior
    args = (state, data, jnp.asarray(shift, dtype), jnp.asarray(scale, dtype))
    cache_key = None if progress_bar else (("extend",) + cfg, _avals(args))
    t0 = time.perf_counter()
    execute, cache_hit = _cached_program(
        cache_key, lambda: _compile_nuts_extend(cfg, transforms, progress_bar, args)
    )
    t_compile = time.perf_counter() - t0
    t_call = time.perf_counter()
    last_state, new_draws, lp_std, (energy, n_steps, accept, diverging, step_size) = (
        jax.block_until_ready(execute(*args))
    )
    t_sample = time.perf_counter() - t_call
    t0 = time.perf_counter()
    new_draws = jax.tree_util.tree_map(np.asarray, new_draws)
    sample_stats = _nuts_stats(new_draws, lp_std, energy, n_steps, accept, diverging, step_size,
                               scale, total_weight)
    t_post = time.perf_counter() - t0
    info.update(
        compile_seconds=t_compile, warmup_seconds=0.0, sampling_seconds=t_sample,
        postprocess_seconds=t_post, total_seconds=time.perf_counter() - t_start,
        cache_hit=bool(cache_hit), n_divergent=int(sample_stats["diverging"].sum()),
    )
    return SamplerResult(
        draws=new_draws, sample_stats=sample_stats, method="nuts", info=info,
        num_warmup=int(result.num_warmup), num_samples=num_samples, num_chains=cfg[2],
        prior=rprior, shift=shift, scale=scale, state=last_state,
    )


def _nuts_stats(draws, lp_std, energy, n_steps, accept, diverging, step_size, scale, total_weight):
    """``sample_stats`` of NUTS draws (data units), after checking that they are finite."""
    offset = log_jacobian(draws[0, 0], scale, total_weight, True)
    lp = np.asarray(lp_std, np.float64) + offset
    n_steps = np.asarray(n_steps)
    sample_stats = {
        "lp": lp,
        "diverging": np.asarray(diverging, bool),
        "energy": np.asarray(energy),
        # a tree of depth j has between 2**(j-1) and 2**j - 1 leapfrog steps
        "tree_depth": np.floor(np.log2(np.maximum(n_steps, 1))).astype(np.int64) + 1,
        "n_steps": n_steps,
        "step_size": np.asarray(step_size),
        "acceptance_rate": np.asarray(accept),
    }
    _check_finite_draws(draws, lp, "NUTS", "raise target_accept (e.g. 0.95), use a stronger prior "
                        "or fewer components")
    return sample_stats


def _to_data_units(draws_z: GMMParams, problem: _Problem) -> GMMParams:
    host = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), draws_z)
    return from_std(host, np.asarray(problem.shift, np.float64), np.asarray(problem.scale, np.float64))


def _check_finite_draws(draws: GMMParams, lp, method, fix):
    leaves = jax.tree_util.tree_leaves(draws)
    if not all(np.all(np.isfinite(a)) for a in leaves) or (lp is not None and not np.all(np.isfinite(lp))):
        raise FloatingPointError(
            f"{method} produced non-finite draws (a covariance became singular or a weight "
            f"vanished); {fix}, or rescale the data."
        )


# ---------------------------------------------------------------------------------------------
# SVI
# ---------------------------------------------------------------------------------------------
def run_svi(
    rng_key,
    x,
    *,
    n_components: int,
    covariance_type: str,
    prior: Prior,
    init: GMMParams,
    sample_weight=None,
    guide: str = "normal",
    num_steps: int = 2000,
    learning_rate: float = 0.01,
    optimizer=None,
    batch_size: int | None = None,
    num_samples: int = 1000,
    log_density: bool | None = None,
    progress_bar: bool = False,
) -> SamplerResult:
    """Fit a variational approximation of the posterior by SVI, started at ``init``.

    Parameters
    ----------
    rng_key : jax PRNG key
    x : array-like of shape (n_samples, n_features), finite
    n_components : int
    covariance_type : {"full", "tied", "diag", "spherical"}
    prior : Prior
    init : GMMParams
        Location of the guide at the start, data units, no batch axes (normally the MAP).
    sample_weight : array-like of shape (n_samples,), optional
    guide : {"normal", "multivariate_normal", "low_rank", "delta"}, default="normal"
        NumPyro autoguide in the (standardised) unconstrained space: mean-field ``AutoNormal``,
        full-rank ``AutoMultivariateNormal``, ``AutoLowRankMultivariateNormal`` or ``AutoDelta``
        (a point estimate: the MAP in natural parameters, by gradient ascent).
    num_steps : int, default=2000
        Optimisation steps.
    learning_rate : float, default=0.01
        Initial step size of the default optimiser, Adam with a cosine decay of the step size to
        1% of it over ``num_steps`` (so that the final iterate settles at the optimum instead of
        jittering around it). Ignored when ``optimizer`` is given.
    optimizer : optax.GradientTransformation or numpyro.optim optimiser, optional
        E.g. ``optax.adam(optax.cosine_decay_schedule(0.01, num_steps))`` for minibatches.
    batch_size : int, optional
        Minibatch size M for the likelihood (the model's ``subsample_size``; the minibatch
        log-likelihood is scaled by ``N / M``). Each step draws its M rows uniformly with
        replacement (O(M) per step, unlike NumPyro's without-replacement draw, which is O(N)).
        ``None`` or ``>= n_samples``: full batch.
    num_samples : int, default=1000
        Draws from the fitted guide.
    log_density : bool, optional
        Compute the log posterior of every draw (``sample_stats["lp"]``, a diagnostic of the
        approximation): one full pass over the data per draw. ``None`` (default): only when
        that is cheap -- full-batch fits with ``num_samples * n_samples <= 2e7`` -- so that a
        large or minibatch fit is not dominated by it (at N = 10M, 1000 draws take minutes).
    progress_bar : bool, default=False
        Show a tqdm progress bar (the timings then include compilation, and the compiled
        program is not cached; it is not cached either when ``optimizer`` is given).

    Returns
    -------
    SamplerResult
        ``method="vi"``; ``draws`` with leading axes ``(1, num_samples)``; ``info["elbo"]``
        of shape (num_steps,); ``info["cache_hit"]``: whether a compiled program was reused;
        ``sample_stats["lp"]`` only when the draws' log posteriors were computed.
    """
    if guide not in GUIDES:
        raise ValueError(
            f"guide={guide!r} is not supported; use one of {', '.join(repr(g) for g in GUIDES)}."
        )
    num_steps = _check_int("num_steps", num_steps, 1)
    num_samples = _check_int("num_samples", num_samples, 1)
    if batch_size is not None:
        batch_size = _check_int("batch_size", batch_size, 1)
    user_optimizer = optimizer
    if optimizer is None:
        if not (isinstance(learning_rate, (float, int)) and learning_rate > 0):
            raise ValueError(f"learning_rate must be a number > 0, got {learning_rate!r}.")
        import optax

        # the final iterate of a constant-step stochastic optimiser jitters by about the step
        # size around the optimum, which for large data is many posterior sds: decay it
        optimizer = optax.adam(
            optax.cosine_decay_schedule(float(learning_rate), num_steps, alpha=_FINAL_LR_FRACTION)
        )
    elif not isinstance(optimizer, numpyro.optim._NumPyroOptim):
        import optax

        if not isinstance(optimizer, optax.GradientTransformation):
            raise TypeError(
                "optimizer must be an optax.GradientTransformation or a numpyro.optim optimiser, "
                f"got {type(optimizer).__name__}."
            )

    t_start = time.perf_counter()
    problem = _prepare(x, n_components, covariance_type, prior, init, sample_weight, "run_svi")
    n = problem.z.shape[0]
    if batch_size is not None and batch_size >= n:
        batch_size = None
    if log_density is None:
        log_density = batch_size is None and num_samples * n <= _DRAW_LOG_DENSITY_BUDGET
    log_density = bool(log_density)
    model = partial(gmm_model, n_components=problem.k, covariance_type=covariance_type,
                    subsample_size=batch_size)
    if batch_size is not None:
        model = _with_replacement(model, n, batch_size)
    model = _GlobalLatents(model)
    # about the posterior sd of a mean in standardised units, so that few steps are spent
    # shrinking the guide's scales on large data
    init_scale = float(np.clip(1.0 / math.sqrt(max(problem.total_weight / problem.k, 1.0)), 1e-3, 0.1))
    data = {"x": problem.z, "prior": problem.zprior, "sample_weight": problem.w}
    site_names = tuple(problem.init_sites)

    def make_svi(init_sites):
        # the start enters the program as an argument, so that another start (another MAP) of the
        # same shapes reuses the compiled program
        guide_kw = {"init_loc_fn": init_to_value(values=init_sites)}
        if guide != "delta":
            guide_kw["init_scale"] = init_scale
        guide_obj = GUIDES[guide](model, **guide_kw)
        return guide_obj, SVI(model, guide_obj, optimizer, _OrderedTraceELBO())

    def program(rng_key, init_sites, data, shift, scale):
        # one program: guide set-up, optimisation, draws and their log posterior (the guide's
        # set-up stores traced values on the guide object, so they must share one trace)
        guide_obj, svi = make_svi(init_sites)
        key_init, key_draw = jax.random.split(rng_key)
        state = svi.init(key_init, **data)

        def body(s, i):
            return svi.stable_update(s, **data)

        if progress_bar:
            from numpyro.util import progress_bar_factory

            advance = progress_bar_factory(num_steps, 1, max(1, num_steps // 20))(
                lambda i, s: body(s, i)
            )

            def pbody(carry, i):
                (s, loss), chain = advance(i, (carry[0], carry[1]))
                return ((s, chain), loss)

            (state, _), losses = jax.lax.scan(
                lambda c, i: pbody(c, i), (state, -1), jnp.arange(num_steps)
            )
        else:
            state, losses = jax.lax.scan(body, state, jnp.arange(num_steps))
        params = svi.get_params(state)
        sites = guide_obj.sample_posterior(
            jax.random.fold_in(key_draw, 0), params, sample_shape=(num_samples,), **data
        )
        sites = {name: sites[name][None] for name in site_names}
        draws_z = params_from_sample(sites, covariance_type)
        if not log_density:
            return params, losses, from_std(draws_z, shift, scale), None
        lp_z = jax.lax.map(
            lambda p: log_posterior(p, data["x"], data["prior"], data["sample_weight"]),
            draws_z[0],
        )
        return params, losses, from_std(draws_z, shift, scale), lp_z[None]

    args = (rng_key, problem.init_sites, data, np.asarray(problem.shift, problem.dtype),
            np.asarray(problem.scale, problem.dtype))
    cache_key = None
    if not progress_bar and user_optimizer is None:
        cfg = ("svi", problem.k, covariance_type, guide, num_steps, num_samples, batch_size, n,
               float(learning_rate), init_scale, log_density)
        cache_key = (cfg, _avals(args))
    t0 = time.perf_counter()

    def build():
        # (no host callbacks in the program, so that the persistent compilation cache keeps it)
        return jax.jit(program).lower(*args).compile(compiler_options=_SVI_COMPILE_OPTIONS())

    compiled, cache_hit = _cached_program(cache_key, build)
    t_compile = time.perf_counter() - t0
    t_call = time.perf_counter()
    params, losses, draws, lp_z = jax.block_until_ready(compiled(*args))
    t_fit = time.perf_counter() - t_call  # the optimisation and the draws (one program)

    t0 = time.perf_counter()
    if not all(np.all(np.isfinite(np.asarray(v))) for v in jax.tree_util.tree_leaves(params)):
        raise FloatingPointError(
            "SVI diverged (non-finite guide parameters); lower learning_rate, use a larger "
            "batch_size, or start from the MAP."
        )
    draws = jax.tree_util.tree_map(np.asarray, draws)
    if lp_z is not None:
        offset = log_jacobian(draws[0, 0], problem.scale, problem.total_weight, True)
        lp = np.asarray(lp_z, np.float64) + offset
    else:
        lp = None
    _check_finite_draws(draws, lp, "SVI", "lower learning_rate or use guide='normal'")
    # ELBO in data units: the evidence changes by the data Jacobian only; AutoDelta's objective
    # is the log joint, which changes by the prior's Jacobian as well.
    elbo_offset = log_jacobian(draws[0, 0], problem.scale, problem.total_weight, guide == "delta")
    t_post = time.perf_counter() - t0
    info = {
        "compile_seconds": t_compile,
        "warmup_seconds": 0.0,
        "sampling_seconds": t_fit,
        "postprocess_seconds": t_post,
        "total_seconds": time.perf_counter() - t_start,
        "elbo": -np.asarray(losses, np.float64) + elbo_offset,
        "guide": guide,
        "guide_params": jax.tree_util.tree_map(np.asarray, params),
        "num_steps": num_steps,
        "batch_size": batch_size,
        "learning_rate": float(learning_rate),
        "cache_hit": bool(cache_hit),
    }
    return SamplerResult(
        draws=draws,
        sample_stats={} if lp is None else {"lp": lp},
        method="vi",
        info=info,
        num_warmup=0,
        num_samples=num_samples,
        num_chains=1,
        prior=problem.rprior,
        shift=problem.shift,
        scale=problem.scale,
    )


def _with_replacement(model, n, m):
    """``model`` whose ``obs`` minibatch is ``m`` indices drawn uniformly *with* replacement.

    NumPyro draws minibatch indices without replacement, which on a CPU is a sequential scan of
    ``m`` swaps over an ``n``-array and on an accelerator a permutation of all ``n`` rows, at
    every step; drawing with replacement costs O(m) and the ``n / m``-scaled minibatch
    log-likelihood stays an unbiased estimate of the full one.
    """

    def wrapped(*args, **kwargs):
        key = numpyro.prng_key()
        if key is None:  # not seeded (e.g. tracing for shapes): the model's own subsampling
            return model(*args, **kwargs)
        idx = jax.random.randint(key, (m,), 0, n)
        with handlers.substitute(data={"obs": idx}):
            return model(*args, **kwargs)

    return wrapped


class _OrderedTraceELBO(ELBO):
    """Single-particle ``Trace_ELBO``: ``log p(x, z) - log q(z)`` at one draw ``z ~ q``.

    The same objective as NumPyro's ``Trace_ELBO``, but its terms are summed in the traces'
    order: NumPyro's iterates a ``set`` of site names, whose order changes with Python's hash
    seed, so every process traced a different program (the persistent compilation cache never
    matched it) and summed the ELBO in a different order.
    """

    def loss_with_mutable_state(self, rng_key, param_map, model, guide, *args, **kwargs):
        model_seed, guide_seed = jax.random.split(rng_key)
        guide_lp, guide_trace = log_density(handlers.seed(guide, guide_seed), args, kwargs, param_map)
        replayed = handlers.replay(handlers.seed(model, model_seed), guide_trace)
        model_lp, _ = log_density(replayed, args, kwargs, param_map)
        return {"loss": -(model_lp - guide_lp), "mutable_state": None}


class _GlobalLatents(numpyro.primitives.Messenger):
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
