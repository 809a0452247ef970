"""NUTS: sample the posterior (:func:`run_nuts`) and continue a run's chains (:func:`extend_nuts`).

NUTS is driven through NumPyro's functional kernel (wrapped in :mod:`bayesgmm.infer._numpyro`)
rather than the ``MCMC`` class: warm-up and sampling run in one loop of one ahead-of-time
compiled program (the NUTS kernel is compiled once, where ``MCMC.warmup`` + ``MCMC.run`` compile
it twice and ``MCMC.run`` recompiles on every call), compilation is timed apart from running, and
the compiled program is cached per :class:`NUTSConfig` and argument shapes
(:mod:`bayesgmm.infer.programs`). Data, prior values, the start, the jitter and the number of
draws are arguments of the program, not constants baked into it: runs whose lengths share a
bucket (:func:`~bayesgmm.infer.problem.draw_slots`) share a program. A fresh run and a
continuation share one chain loop (:func:`_chain_loop`), so a run extended by ``S2`` draws is
bit-identical to one run of ``S1 + S2`` draws. The model runs on standardised data
(:mod:`bayesgmm.infer.problem`); draws are returned in data units, with leading axes
``(chain, draw)``.
"""

from __future__ import annotations

import math
import time
from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _numpyro
from .._validation import check_sample_weight
from ..core.params import GMMParams
from ..core.prior import Prior
from ..core.programs import default_dtype
from ..core.units import log_jacobian, observed_weight
from ..models.gmm import gmm_model, params_from_sample
from .problem import (
    _check_data, _check_finite_draws, _check_int, _constrain, _device_rows, _fold_draws, _folds, _prepare, _Problem,
    _site_transforms, _std_sites, draw_slots,
)
from .programs import cached_program, nuts_compile_options, program_key
from .state import FlatState, SamplerResult, unflatten_state

__all__ = ["NUTSConfig", "run_nuts", "extend_nuts", "CHAIN_METHODS"]

CHAIN_METHODS = ("auto", "vectorized", "parallel", "sequential")


class NUTSConfig(NamedTuple):
    """Everything static in a NUTS program (the rest -- data, prior values, start -- is traced).

    Part of the key of the compiled-program cache (:mod:`bayesgmm.infer.programs`).
    """

    n_components: int
    covariance_type: str
    num_chains: int
    chain_method: str  # "vectorized", "parallel" or "sequential" (resolved)
    # NumPyro's adaptation windows in the warm-up (1 below 20 transitions, 3 from 20 to 199, 4 to
    # 299, 5 to 499, 6 to 899, ...): the warm-up's length and its windows are arguments of the
    # program (an _numpyro.WarmupSchedule), so that warm-ups of similar length share it
    warmup_windows: int
    # draws per chain the program's buffer holds (problem.draw_slots of the draws asked for; an
    # extension: of the new draws); how many it records is an argument of the program
    draw_slots: int
    dense_mass: bool
    target_accept: float
    max_tree_depth: int
    missing: bool = False  # the data have NaN cells, marginalised out (the model's ``missing``)


class NUTSStats(NamedTuple):
    """Per-draw statistics of a NUTS program's run, each ``(chain, draw)``."""

    energy: jax.Array
    num_steps: jax.Array
    accept_prob: jax.Array
    diverging: jax.Array
    step_size: jax.Array


class _Chains(NamedTuple):
    """The NUTS kernel of a :class:`NUTSConfig` applied to one chain or to all of them."""

    init_one: Callable  # (z0, key, data, warmup schedule) -> state of one chain
    init: Callable  # the same, batched over chains when vectorized
    step: Callable  # (state, data) -> next state; batched over chains when vectorized
    vectorized: bool


def _chains(cfg: NUTSConfig) -> _Chains:
    """The NUTS kernel of the model and sampler settings of ``cfg``, for its ``chain_method``."""
    model = partial(gmm_model, n_components=cfg.n_components, covariance_type=cfg.covariance_type,
                    missing=cfg.missing)
    kernel = _numpyro.nuts_kernel(
        model, dense_mass=cfg.dense_mass, target_accept=cfg.target_accept, max_tree_depth=cfg.max_tree_depth,
    )
    # vectorized: the loop runs outside a vmap over chains (as in NumPyro's MCMC); otherwise one
    # program per chain, mapped over the chains with lax.map or pmap
    if cfg.chain_method == "vectorized":
        return _Chains(kernel.init, jax.vmap(kernel.init, in_axes=(0, 0, None, None)),
                       jax.vmap(kernel.step, in_axes=(0, None)), True)
    return _Chains(kernel.init, kernel.init, kernel.step, False)


def _chain_loop(cfg: NUTSConfig, chains: _Chains, state, data, warmup: bool, progress_bar: bool, num_samples,
                num_warmup=None):
    """Run NUTS transitions from ``state``, recording ``num_samples`` of them (a traced int, at
    most ``cfg.draw_slots``; with ``progress_bar``, whose bars need a length when traced, the
    static ``cfg.draw_slots`` instead, which is then the number asked for).

    ``warmup``: a fresh run, whose first ``num_warmup`` transitions (the warm-up, a traced int;
    with ``progress_bar`` a number: NumPyro's kernel adapts while ``state.i < num_warmup``) are
    not recorded and whose leapfrog steps are counted; otherwise (a continuation) every
    transition is recorded. Returns ``(state, buf,
    warm)``: the last state, the :class:`~bayesgmm.infer._numpyro.NUTSRecord` of the recorded
    transitions in a buffer of ``cfg.draw_slots`` (leading axes ``(chain, slot)`` when
    vectorized, ``(slot,)`` for one chain; the slots past ``num_samples`` hold zeros), and the
    warm-up's leapfrog steps (None for a continuation).
    """
    if progress_bar:
        num_samples = cfg.draw_slots
    buf = jax.tree_util.tree_map(
        lambda a: jnp.zeros((cfg.draw_slots,) + a.shape, a.dtype), _numpyro.nuts_record(state)
    )

    def body(i, carry):
        s, buf, warm = carry
        s = chains.step(s, data)
        j = jnp.maximum(i - num_warmup, 0) if warmup else i
        buf = jax.tree_util.tree_map(
            lambda b, v: jax.lax.dynamic_update_index_in_dim(b, v, j, 0), buf, _numpyro.nuts_record(s)
        )
        if warmup:
            warm = warm + jnp.where(i < num_warmup, _numpyro.state_num_steps(s), 0)
        return s, buf, warm

    total = num_warmup + num_samples if warmup else num_samples
    carry = (state, buf, jnp.zeros_like(_numpyro.state_num_steps(state)) if warmup else None)
    if progress_bar:
        bars = 1 if chains.vectorized else cfg.num_chains
        state, buf, warm = _numpyro.fori_loop_with_progress_bar(total, bars, body, carry)
    else:
        state, buf, warm = jax.lax.fori_loop(0, total, body, carry)
    if chains.vectorized:  # (draw, chain, ...) -> (chain, draw, ...)
        buf = jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), buf)
    return state, buf, warm


def _position_scale(total_weight: float) -> float:
    """The factor ``c`` of the chains' positions ``z = c * u`` (``u`` the model's unconstrained
    point, standardised units): ``sqrt(total weight)``, at least 1.

    The posterior's spread in ``u`` shrinks like ``1 / sqrt(N)``; NumPyro's mass-matrix adaptation
    shrinks each window's variance estimate towards ``1e-3`` (Stan's regularisation, an absolute
    number), which at large N swamps variances of ``1e-5``-``1e-7`` and leaves the adapted metric
    close to the identity: at N = 100k (D = 4, K = 4, 100 warm-up draws) NUTS took 54 leapfrog
    steps per draw. In ``z`` the variances are of order 1 and the same run takes 15 steps per draw
    for 7x the ESS per gradient; at N = 1000 it changes nothing (bench/RESULTS.md, NUTS notes).
    """
    return float(max(1.0, math.sqrt(max(float(total_weight), 0.0))))


def _nuts_data(problem: _Problem, position_scale):
    """The NUTS programs' ``data``: the model's arguments and the ``position_scale`` (absent for a
    run started before positions were scaled, whose chains continue unscaled)."""
    data = dict(problem.data)
    if position_scale is not None:
        data["position_scale"] = np.asarray(position_scale, problem.dtype)
    return data


def _finish(cfg: NUTSConfig, transforms, buf, shift, scale, position_scale=None):
    """Recorded transitions (a :class:`~bayesgmm.infer._numpyro.NUTSRecord` as a plain tuple) ->
    ``(draws, lp_std, stats)``: draws in data units, the standardised log posterior and the
    fields of :class:`NUTSStats` as a plain tuple. ``position_scale``: the ``c`` of the recorded
    positions ``z = c * u`` (None: 1).

    (The programs return plain tuples, not named ones: the names of a program's outputs are part
    of its key in the persistent compilation cache.)
    """
    buf = _numpyro.NUTSRecord(*buf)
    z = buf.z if position_scale is None else jax.tree_util.tree_map(lambda a: a / position_scale, buf.z)
    sites, ladj = jax.vmap(jax.vmap(lambda u: _constrain(transforms, u)))(z)
    draws = params_from_sample(sites, cfg.covariance_type).unstandardise(shift, scale)
    # -potential energy is the log joint in the unconstrained space; removing the
    # transforms' Jacobian gives the density of the natural parameters
    stats = (buf.energy, buf.num_steps, buf.accept_prob, buf.diverging, buf.step_size)
    return draws, -buf.potential_energy - ladj, stats


def _compile_run(cfg: NUTSConfig, transforms, progress_bar, args):
    """Compile ``execute(init_sites, rng_key, jitter, data, shift, scale, num_samples, warmup)``
    for ``args`` (``warmup`` an :class:`~bayesgmm.infer._numpyro.WarmupSchedule`).

    ``execute`` returns ``(last_state, initial_pe, warmup_steps, draws, lp_std, stats)`` with
    chains on the leading axis: ``warmup_steps`` the leapfrog steps of each chain's warm-up,
    ``draws`` a GMMParams in data units ``(chain, draw, ...)``, ``lp_std`` the log posterior in
    standardised units and ``stats`` the fields of a :class:`NUTSStats`.

    One loop runs warm-up and sampling (the NUTS kernel is compiled once) and writes the
    ``num_samples`` post-warm-up draws (an int32 argument, at most ``cfg.draw_slots``; with
    ``progress_bar`` it is ``cfg.draw_slots`` whatever the argument) into a buffer of
    ``cfg.draw_slots``, which ``draws``, ``lp_std`` and ``stats`` keep (cut off on the host).
    The program has no host callbacks, so the persistent compilation cache can keep it (JAX does
    not store programs with callbacks); the run time is split between warm-up and sampling by
    their leapfrog steps (:func:`_split_times`). ``cfg`` holds everything static (model
    structure, sampler settings); data, prior values, the start, the jitter and the number of
    draws are traced, and so are the warm-up's length and windows (only their number is static).
    """
    chains = _chains(cfg)
    names = sorted(transforms)
    # a progress bar needs the loop's length as a number (such runs are never cached)
    bar_warmup = int(np.asarray(args[7].num_warmup)) if progress_bar else None

    def starts(init_sites, rng_key, jitter, c):
        """Per-chain starts ``z = c * u``: ``u`` the unconstrained init plus N(0, jitter^2) noise;
        per-chain keys."""
        key_jitter, key_chains = jax.random.split(rng_key)
        z0 = {}
        for name, kj in zip(names, jax.random.split(key_jitter, len(names))):
            u = transforms[name].inv(init_sites[name])
            eps = jax.random.normal(kj, (cfg.num_chains,) + jnp.shape(u), u.dtype)
            z0[name] = c * (u[None] + jitter * eps)
        return z0, jax.random.split(key_chains, cfg.num_chains)

    def run_chain(z0, keys, data, n, warmup):
        state = chains.init(z0, keys, data, warmup)
        pe0 = _numpyro.state_potential_energy(state)
        num_warmup = bar_warmup if progress_bar else warmup.num_warmup
        state, buf, warm = _chain_loop(cfg, chains, state, data, True, progress_bar, n, num_warmup)
        return state, pe0, warm, tuple(buf)

    def finish(buf, shift, scale, c):
        return _finish(cfg, transforms, buf, shift, scale, c)

    options = nuts_compile_options()
    if cfg.chain_method == "parallel":
        c = args[3]["position_scale"]
        prep = jax.jit(starts).lower(*args[:3], c).compile(compiler_options=options)
        z0, keys = jax.eval_shape(starts, *args[:3], c)
        pmapped = jax.pmap(run_chain, in_axes=(0, 0, None, None, None))
        sampler = pmapped.lower(z0, keys, args[3], args[6], args[7]).compile(compiler_options=options)
        buf = jax.eval_shape(pmapped, z0, keys, args[3], args[6], args[7])[3]
        post = jax.jit(finish).lower(buf, *args[4:6], c).compile(compiler_options=options)

        def execute(init_sites, rng_key, jitter, data, shift, scale, n, warmup):
            c = data["position_scale"]
            state, pe0, warm, buf = sampler(*prep(init_sites, rng_key, jitter, c), data, n, warmup)
            buf = jax.device_put(buf, jax.devices()[0])  # gather the chains for one program
            return (state, pe0, warm, *post(buf, shift, scale, c))

        return execute

    def program(init_sites, rng_key, jitter, data, shift, scale, n, warmup):
        c = data["position_scale"]
        z0, keys = starts(init_sites, rng_key, jitter, c)
        if chains.vectorized:
            state, pe0, warm, buf = run_chain(z0, keys, data, n, warmup)
        else:
            state, pe0, warm, buf = jax.lax.map(lambda a: run_chain(a[0], a[1], data, n, warmup), (z0, keys))
        return (state, pe0, warm, *finish(buf, shift, scale, c))

    return jax.jit(program).lower(*args).compile(compiler_options=options)


def _compile_extension(cfg: NUTSConfig, transforms, progress_bar, args):
    """Compile ``execute(state, data, shift, scale, num_samples, warmup)``: ``num_samples`` more
    NUTS transitions (an int32 argument, recorded in a buffer of ``cfg.draw_slots`` as in
    :func:`_compile_run`; ``warmup`` the original run's
    :class:`~bayesgmm.infer._numpyro.WarmupSchedule`).

    Continues every chain from its final ``state`` (a NumPyro ``HMCState`` with a leading chain
    axis) with the adapted step size and mass matrix; ``state.i >= num_warmup``, so the kernel
    does not adapt. Each transition is the kernel of :func:`_compile_run` applied to the same
    state with the same PRNG key (the same :func:`_chain_loop`), so the draws continue a chain
    exactly as a longer run would. Returns ``(last_state, draws, lp_std, stats)`` as
    :func:`_compile_run` does.
    """
    chains = _chains(cfg)

    def run_chain(state, data, n, warmup):
        # NumPyro's init_kernel sets the warm-up length and the adaptation closures that
        # sample_kernel reads; its result is unused and compiled away
        chains.init(_numpyro.state_position(state), _numpyro.state_rng_key(state), data, warmup)
        state, buf, _ = _chain_loop(cfg, chains, state, data, False, progress_bar, n)
        return state, tuple(buf)

    def program(state, data, shift, scale, n, warmup):
        if chains.vectorized:
            state, buf = run_chain(state, data, n, warmup)
        else:  # sequential and parallel runs continue chain by chain
            state, buf = jax.lax.map(lambda s: run_chain(s, data, n, warmup), state)
        return (state, *_finish(cfg, transforms, buf, shift, scale, data.get("position_scale")))

    return jax.jit(program).lower(*args).compile(compiler_options=nuts_compile_options())


def _recorded_draws(out: tuple, first: int, num_samples: int) -> tuple:
    """A NUTS program's outputs with ``out[first:]`` (draws, log posteriors, statistics: the
    buffer of ``draw_slots``, axes ``(chain, slot, ...)``) cut to the ``num_samples`` recorded."""
    cut = jax.tree_util.tree_map(lambda a: np.asarray(a)[:, :num_samples], out[first:])
    return (*out[:first], *cut)


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


def _nuts_stats(draws, lp_std, stats: NUTSStats, scale, total_weight):
    """``sample_stats`` of NUTS draws (data units, ArviZ names), after checking that they are finite."""
    offset = log_jacobian(scale, total_weight, draws[0, 0])
    lp = np.asarray(lp_std, np.float64) + offset
    n_steps = np.asarray(stats.num_steps)
    sample_stats = {
        "lp": lp,
        "diverging": np.asarray(stats.diverging, bool),
        "energy": np.asarray(stats.energy),
        # a tree of depth j has between 2**(j-1) and 2**j - 1 leapfrog steps
        "tree_depth": np.floor(np.log2(np.maximum(n_steps, 1))).astype(np.int64) + 1,
        "n_steps": n_steps,
        "step_size": np.asarray(stats.step_size),
        "acceptance_rate": np.asarray(stats.accept_prob),
    }
    _check_finite_draws(draws, lp, "NUTS", "raise target_accept (e.g. 0.95), use a stronger prior "
                        "or fewer components")
    return sample_stats


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
    x : array-like of shape (n_samples, n_features)
        Finite, except NaN for missing cells: each row's likelihood is then the marginal density
        of its observed cells (missing at random; ``sample_stats["lp"]`` is
        :func:`bayesgmm.log_posterior` on the same data). The program runs on the rows padded
        with rows of weight 0 to :func:`bayesgmm.infer.problem.sampler_rows` (they are left out
        exactly), so that data of nearby sizes share one compiled program.
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
    >>> from bayesgmm.infer.nuts import run_nuts
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
    position_scale = _position_scale(problem.total_weight)
    args = (
        {name: problem.init_sites[name] for name in transforms},
        rng_key,
        np.asarray(init_jitter, problem.dtype),
        _nuts_data(problem, position_scale),
        np.asarray(problem.shift, problem.dtype),
        np.asarray(problem.scale, problem.dtype),
        np.asarray(num_samples, np.int32),
        _numpyro.warmup_schedule(num_warmup),
    )

    # runs of nearby lengths share a program (progress bars: the exact length, see _chain_loop)
    slots = num_samples if progress_bar else draw_slots(num_samples)
    cfg = NUTSConfig(problem.k, covariance_type, num_chains, chain_method, args[-1].windows.shape[0], slots,
                     bool(dense_mass), float(target_accept), max_tree_depth, problem.missing)
    cache_key = None if progress_bar else program_key("nuts", cfg, args)
    t0 = time.perf_counter()

    execute, cache_hit = cached_program(
        cache_key, lambda: _compile_run(cfg, transforms, progress_bar, args), whole=chain_method != "parallel"
    )
    t_compile = time.perf_counter() - t0

    t_call = time.perf_counter()
    out = jax.block_until_ready(execute(*args))
    t_run = time.perf_counter() - t_call
    last_state, pe0, warm_steps, draws, lp_std, stats = _recorded_draws(out, 3, num_samples)
    stats = NUTSStats(*stats)
    t_warm, t_sample = _split_times(t_run, warm_steps, stats.num_steps, chain_method)
    if not np.all(np.isfinite(np.asarray(pe0))):
        raise ValueError(
            "The log posterior is not finite at the start of some chain: init must be a valid "
            "parameter value for this prior (e.g. the MAP of the same prior); or lower "
            "init_jitter."
        )

    t0 = time.perf_counter()
    draws = jax.tree_util.tree_map(np.asarray, draws)
    if problem.fold:
        draws = _fold_draws(draws)
    sample_stats = _nuts_stats(draws, lp_std, stats, problem.scale, problem.jacobian_weight)
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
        "position_scale": position_scale,
        "inverse_mass_matrix": jax.tree_util.tree_map(
            np.asarray, _numpyro.state_inverse_mass_matrix(last_state)
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


def _extension_setup(
    result: SamplerResult, x, sample_weight, slots: int,
) -> tuple[NUTSConfig, _Problem, _numpyro.WarmupSchedule]:
    """The configuration of a run to be continued with a buffer of ``slots`` draws per chain
    (``NUTSConfig.draw_slots``), its problem (started at the run's last draw of chain 0, which
    only fixes the site shapes) and its warm-up's :class:`~bayesgmm.infer._numpyro.WarmupSchedule`."""
    draws = result.draws
    ct = draws.covariance_type
    k, d = int(draws.means.shape[-2]), int(draws.means.shape[-1])
    x64 = np.asarray(x, dtype=np.float64)
    if x64.ndim != 2 or x64.shape[1] != d:
        raise ValueError(f"x must have shape (n_samples, {d}) like the run's data, got {x64.shape}.")
    missing = _check_data(x64)
    dtype = default_dtype()
    w64 = check_sample_weight(sample_weight, x64.shape[0])
    shift, scale = np.asarray(result.shift, np.float64), np.asarray(result.scale, np.float64)
    rprior = result.prior
    zprior = rprior.affine(jnp.asarray(shift, dtype), jnp.asarray(scale, dtype))
    # a run saved before ordered priors were sampled unordered continues on the ordered model
    fold = _folds(rprior) and not _has_site(result.state, "means_first")
    if fold:
        zprior = zprior.replace(ordered_means=False)
    # the rows padded as the run's were (its program, and the same draws as one longer run)
    z, w = _device_rows((x64 - shift) / scale, w64, dtype, pad=True)
    total_weight = float(x64.shape[0] if w64 is None else w64.sum())
    last = jax.tree_util.tree_map(lambda a: np.asarray(a[0, -1], np.float64), draws)
    sites = _std_sites(last, shift, scale, dtype, zprior.ordered_means)
    problem = _Problem(z, w, zprior, rprior, shift, scale, total_weight, sites, k, d, ct, dtype, fold,
                       missing, observed_weight(x64, w64) if missing else None, x64.shape[0])
    info = dict(result.info)
    warmup = _numpyro.warmup_schedule(int(result.num_warmup))
    cfg = NUTSConfig(k, ct, int(result.num_chains), info.get("chain_method", "vectorized"),
                     warmup.windows.shape[0], slots, bool(info.get("dense_mass", False)),
                     float(info.get("target_accept", 0.8)), int(info.get("max_tree_depth", 10)), missing)
    return cfg, problem, warmup


def _has_site(state, site: str) -> bool:
    """Whether a NUTS state (live or a :class:`FlatState`) has a position for ``site``."""
    if isinstance(state, FlatState):
        return _numpyro.position_path(site) in state.paths
    return site in _numpyro.state_position(state)


def _state_template(flat: FlatState, cfg: NUTSConfig, transforms, data, warmup):
    """The abstract NUTS state (all chains) that the installed NumPyro builds for this problem
    (``warmup`` its :class:`~bayesgmm.infer._numpyro.WarmupSchedule`), with the position shapes
    of the saved state ``flat``."""
    chains = _chains(cfg)
    z0 = {}
    for name in transforms:
        saved = flat.leaves[flat.paths.index(_numpyro.position_path(name))]
        z0[name] = jnp.zeros((cfg.num_chains,) + tuple(np.shape(saved))[1:], jnp.result_type(data["x"]))
    keys = jax.random.split(jax.random.key(0), cfg.num_chains)
    return jax.eval_shape(jax.vmap(chains.init_one, in_axes=(0, 0, None, None)), z0, keys, data, warmup)


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
    cfg, problem, warmup = _extension_setup(result, x, sample_weight,
                                            num_samples if progress_bar else draw_slots(num_samples))
    transforms = _site_transforms(problem)
    # a run from before positions were scaled has no position_scale: its chains continue unscaled
    data = _nuts_data(problem, result.info.get("position_scale"))
    shift, scale = problem.shift, problem.scale
    dtype = default_dtype()
    state = result.state
    if isinstance(state, FlatState):
        state = unflatten_state(state, _state_template(state, cfg, transforms, data, warmup))
    state = jax.tree_util.tree_map(jnp.asarray, state)
    state_dtype = jnp.result_type(_numpyro.state_potential_energy(state))
    if state_dtype != dtype:
        raise ValueError(
            f"the run was sampled in {np.dtype(state_dtype).name} but JAX now computes in "
            f"{np.dtype(dtype).name}; extend it with the same setting of jax_enable_x64."
        )
    info = dict(result.info)
    args = (state, data, jnp.asarray(shift, dtype), jnp.asarray(scale, dtype), np.asarray(num_samples, np.int32),
            warmup)
    cache_key = None if progress_bar else program_key("nuts-extension", cfg, args)
    t0 = time.perf_counter()
    execute, cache_hit = cached_program(
        cache_key, lambda: _compile_extension(cfg, transforms, progress_bar, args)
    )
    t_compile = time.perf_counter() - t0
    t_call = time.perf_counter()
    last_state, new_draws, lp_std, stats = _recorded_draws(jax.block_until_ready(execute(*args)), 1, num_samples)
    stats = NUTSStats(*stats)
    t_sample = time.perf_counter() - t_call
    t0 = time.perf_counter()
    new_draws = jax.tree_util.tree_map(np.asarray, new_draws)
    if problem.fold:
        new_draws = _fold_draws(new_draws)
    sample_stats = _nuts_stats(new_draws, lp_std, stats, scale, problem.jacobian_weight)
    t_post = time.perf_counter() - t0
    info.update(
        compile_seconds=t_compile, warmup_seconds=0.0, sampling_seconds=t_sample,
        postprocess_seconds=t_post, total_seconds=time.perf_counter() - t_start,
        cache_hit=bool(cache_hit), n_divergent=int(sample_stats["diverging"].sum()),
    )
    return SamplerResult(
        draws=new_draws, sample_stats=sample_stats, method="nuts", info=info,
        num_warmup=int(result.num_warmup), num_samples=num_samples, num_chains=cfg.num_chains,
        prior=result.prior, shift=shift, scale=scale, state=last_state,
    )
