"""Variational inference: fit a NumPyro autoguide to the posterior by SVI (:func:`run_svi`).

The model runs on standardised data (:mod:`bayesgmm.infer.problem`) with its latent sites freed
of their plate frames (:class:`~bayesgmm.infer._numpyro.GlobalLatents`), so that NumPyro's
autoguides accept it, and optionally on minibatches drawn with replacement. The guide starts at a
point estimate (normally the MAP) and is fitted with a single-particle ELBO summed in a fixed
order (:class:`~bayesgmm.infer._numpyro.OrderedTraceELBO`). Guide set-up, optimisation, the
draws from the fitted guide and their log posteriors run in one ahead-of-time compiled program,
cached per :class:`SVIConfig` and argument shapes (:mod:`bayesgmm.infer.programs`), with the
start, the number of steps and draws and the default optimiser's learning rate arguments (runs of
nearby lengths share a program, see :func:`~bayesgmm.infer.problem.draw_slots`); draws are
returned in data units with leading axes ``(1, num_samples)``.
"""

from __future__ import annotations

import math
import time
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import SVI
from numpyro.infer.autoguide import (
    AutoDelta,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
)

from . import _numpyro
from ..core.logdensity import log_posterior
from ..core.params import GMMParams
from ..core.prior import Prior
from ..core.units import log_jacobian
from ..models.gmm import gmm_model, params_from_sample
from .problem import _check_finite_draws, _check_int, _fold_draws, _prepare, draw_slots
from .programs import cached_program, program_key, svi_compile_options
from .state import SamplerResult

__all__ = ["SVIConfig", "run_svi", "GUIDES"]

#: VI guide names -> NumPyro autoguide classes.
GUIDES = {
    "normal": AutoNormal,
    "multivariate_normal": AutoMultivariateNormal,
    "low_rank": AutoLowRankMultivariateNormal,
    "delta": AutoDelta,
}

#: The default VI optimiser is Adam with a cosine decay from ``learning_rate`` to this fraction of it.
_FINAL_LR_FRACTION = 0.01
#: Rows x draws below which run_svi computes the draws' log posteriors by default.
_DRAW_LOG_DENSITY_BUDGET = 20_000_000


def _default_optimizer(learning_rate, num_steps):
    """Adam with the step size decayed from ``learning_rate`` to :data:`_FINAL_LR_FRACTION` of it
    over ``num_steps`` on a cosine (``optax.cosine_decay_schedule``'s formula, with traced
    ``learning_rate`` and ``num_steps``, which optax's own schedule takes as numbers only).

    The final iterate of a constant-step stochastic optimiser jitters by about the step size
    around the optimum, which for large data is many posterior sds: hence the decay.
    """
    import optax

    alpha, decay_steps = _FINAL_LR_FRACTION, jnp.asarray(num_steps, jnp.result_type(learning_rate))

    def schedule(count):
        count = jnp.minimum(count, decay_steps)
        cosine_decay = 0.5 * (1 + jnp.cos(jnp.pi * count / decay_steps))
        return learning_rate * ((1 - alpha) * cosine_decay**1.0 + alpha)

    return optax.adam(schedule)


class SVIConfig(NamedTuple):
    """Everything static in an SVI program with the default optimiser (the key of its cache)."""

    n_components: int
    covariance_type: str
    guide: str
    # the buffers of the ELBO trace and of the draws from the fitted guide (problem.draw_slots of
    # the steps and draws asked for; how many run is an argument of the program)
    step_slots: int
    draw_slots: int
    batch_size: int | None
    n_rows: int  # rows of the program's data (a full batch: padded, see problem.sampler_rows)
    log_density: bool
    missing: bool = False  # the data have NaN cells, marginalised out (the model's ``missing``)


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
    x : array-like of shape (n_samples, n_features)
        Finite, except NaN for missing cells: each row's likelihood is then the marginal density
        of its observed cells (missing at random); minibatches work the same way. A full batch
        runs on the rows padded with rows of weight 0 to
        :func:`bayesgmm.infer.problem.sampler_rows` (left out exactly), so that data of nearby
        sizes share one compiled program; minibatches are drawn from the real rows.
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
    elif not _numpyro.is_numpyro_optimizer(optimizer):
        import optax

        if not isinstance(optimizer, optax.GradientTransformation):
            raise TypeError(
                "optimizer must be an optax.GradientTransformation or a numpyro.optim optimiser, "
                f"got {type(optimizer).__name__}."
            )

    t_start = time.perf_counter()
    # full batch: the rows padded (one program for nearby sizes); a minibatch draws real rows
    problem = _prepare(x, n_components, covariance_type, prior, init, sample_weight, "run_svi", batch_size)
    n = problem.n_rows
    if batch_size is not None and batch_size >= n:
        batch_size = None
    if log_density is None:
        log_density = batch_size is None and num_samples * n <= _DRAW_LOG_DENSITY_BUDGET
    log_density = bool(log_density)
    model = partial(gmm_model, n_components=problem.k, covariance_type=covariance_type,
                    subsample_size=batch_size, missing=problem.missing)
    if batch_size is not None:
        model = _numpyro.with_replacement(model, n, batch_size)
    model = _numpyro.GlobalLatents(model)
    # about the posterior sd of a mean in standardised units, so that few steps are spent
    # shrinking the guide's scales on large data
    init_scale = float(np.clip(1.0 / math.sqrt(max(problem.total_weight / problem.k, 1.0)), 1e-3, 0.1))
    site_names = tuple(problem.init_sites)

    # the buffers of the ELBO trace and the draws (progress bars: the exact lengths, which their
    # bars need as numbers)
    step_slots = num_steps if progress_bar else draw_slots(num_steps)
    sample_slots = num_samples if progress_bar else draw_slots(num_samples)

    def make_svi(init_sites, init_scale, learning_rate, num_steps):
        # the start, the guide's initial scale, the learning rate and the steps enter the program
        # as arguments, so that another start (another MAP) of the same shapes, data of another
        # size, another learning rate or a run of nearby length reuse the program
        guide_obj = _numpyro.autoguide(GUIDES[guide], model, init_loc_fn=_numpyro.init_at(init_sites),
                                       init_scale=None if guide == "delta" else init_scale)
        opt = user_optimizer if user_optimizer is not None else _default_optimizer(learning_rate, num_steps)
        return guide_obj, SVI(model, guide_obj, opt, _numpyro.OrderedTraceELBO())

    def program(rng_key, init_sites, data, shift, scale, init_scale, learning_rate, num_steps):
        # one program: guide set-up, optimisation, draws and their log posterior (the guide's
        # set-up stores traced values on the guide object, so they must share one trace)
        guide_obj, svi = make_svi(init_sites, init_scale, learning_rate, num_steps)
        key_init, key_draw = jax.random.split(rng_key)
        state = svi.init(key_init, **data)

        if progress_bar:
            state, losses = _numpyro.scan_with_progress_bar(
                step_slots, lambda s, i: svi.stable_update(s, **data), state
            )
        else:
            def body(i, carry):
                s, losses = carry
                s, loss = svi.stable_update(s, **data)
                return s, jax.lax.dynamic_update_index_in_dim(losses, loss.astype(losses.dtype), i, 0)

            losses = jnp.zeros((step_slots,), jnp.result_type(data["x"]))
            state, losses = jax.lax.fori_loop(0, num_steps, body, (state, losses))
        params = svi.get_params(state)
        # the buffer of draws; the host keeps the first num_samples (the same draws as a run of
        # exactly that many: JAX's partitionable random bits depend on an element's index only)
        sites = guide_obj.sample_posterior(
            jax.random.fold_in(key_draw, 0), params, sample_shape=(sample_slots,), **data
        )
        sites = {name: sites[name][None] for name in site_names}
        draws_z = params_from_sample(sites, covariance_type)
        if not log_density:
            return params, losses, draws_z.unstandardise(shift, scale), None
        lp_z = jax.lax.map(
            lambda p: log_posterior(p, data["x"], data["prior"], data["sample_weight"],
                                    missing=problem.missing),
            draws_z[0],
        )
        return params, losses, draws_z.unstandardise(shift, scale), lp_z[None]

    args = (rng_key, problem.init_sites, problem.data, np.asarray(problem.shift, problem.dtype),
            np.asarray(problem.scale, problem.dtype), np.asarray(init_scale, problem.dtype),
            np.asarray(learning_rate if user_optimizer is None else 0.0, problem.dtype),
            np.asarray(num_steps, np.int32))
    cache_key = None
    if not progress_bar and user_optimizer is None:
        cfg = SVIConfig(problem.k, covariance_type, guide, step_slots, sample_slots, batch_size, problem.z.shape[0],
                        log_density, problem.missing)
        cache_key = program_key("svi", cfg, args)
    t0 = time.perf_counter()

    def build():
        # (no host callbacks in the program, so that the persistent compilation cache keeps it)
        return jax.jit(program).lower(*args).compile(compiler_options=svi_compile_options())

    compiled, cache_hit = cached_program(cache_key, build)
    t_compile = time.perf_counter() - t0
    t_call = time.perf_counter()
    params, losses, draws, lp_z = jax.block_until_ready(compiled(*args))
    t_fit = time.perf_counter() - t_call  # the optimisation and the draws (one program)
    # the steps and draws run (the rest of their buffers is unused)
    losses = np.asarray(losses)[:num_steps]
    draws = jax.tree_util.tree_map(lambda a: np.asarray(a)[:, :num_samples], draws)
    lp_z = None if lp_z is None else np.asarray(lp_z)[:, :num_samples]

    t0 = time.perf_counter()
    if not all(np.all(np.isfinite(np.asarray(v))) for v in jax.tree_util.tree_leaves(params)):
        raise FloatingPointError(
            "SVI diverged (non-finite guide parameters); lower learning_rate, use a larger "
            "batch_size, or start from the MAP."
        )
    draws = jax.tree_util.tree_map(np.asarray, draws)
    if problem.fold:
        draws = _fold_draws(draws)
    if lp_z is not None:
        offset = log_jacobian(problem.scale, problem.jacobian_weight, draws[0, 0])
        lp = np.asarray(lp_z, np.float64) + offset
    else:
        lp = None
    _check_finite_draws(draws, lp, "SVI", "lower learning_rate or use guide='normal'")
    # ELBO in data units: the evidence changes by the data Jacobian only; AutoDelta's objective
    # is the log joint, which changes by the prior's Jacobian as well.
    elbo_offset = log_jacobian(problem.scale, problem.jacobian_weight, draws[0, 0] if guide == "delta" else None)
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
