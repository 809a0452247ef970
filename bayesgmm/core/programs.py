"""The compiled EM programs, and the host loop that drives them.

Compile time is user-facing time: a fresh process pays for every program it compiles. So a fit is
one program call in the common case -- initialisation, up to ``SEGMENT`` EM iterations and the pass
that scores the result, fused (:func:`em_start`) -- and the set of programs stays small:

* **Components are padded to a bucket** on small and medium data (:func:`component_bucket`): one
  program serves every ``n_components`` up to the bucket, the padding having weight exactly 0 (it
  takes no part in the likelihood, the prior or the EM; results are those of the unpadded fit up
  to rounding). On small data a BIC grid over ``n_components = 1..8`` compiles one program per
  covariance type.
* **Numbers are traced**: ``tol``, ``max_iter``, ``reg_covar``, the prior's values, the number of
  real components and the first restart's index never recompile.
* **Small problems compile cheaply** (:func:`compile_profile`): XLA:CPU's optimisation passes are
  turned down for programs whose run time is negligible, which cuts their compile time about
  threefold; larger problems are compiled for speed.

A continuation program (:func:`em_continue`) runs the segments of fits longer than ``SEGMENT``
iterations and the EM restarted after a collapsed component was pruned; it compiles only when used.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import gc
import threading
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .density import estep_stats
from .executables import persistent_jit
from .em import SEGMENT, EMInfo, EMRun, EMState, em_continue, em_init, em_report, em_segment, restarts_one_at_a_time
from .init import init_params
from .missing import MaskedBlocks
from .params import GMMParams

__all__ = [
    "TRACE_COUNTS",
    "default_dtype",
    "paused_gc",
    "component_bucket",
    "compile_profile",
    "em_start",
    "fit_em",
    "run_em",
    "StartValues",
    "CompiledAhead",
    "ahead",
    "compiling_ahead",
]

#: Number of times each jitted EM program (:func:`em_start`, the continuation) has been traced,
#: i.e. compiled; tests and bench/em_scaling.py read it to count recompilations.
TRACE_COUNTS = {"em_start": 0, "em_continue": 0}

#: Below this many E-step units (padded rows x components x features x (features + 1 for full and
#: tied)), the component axis is padded to :func:`component_bucket`: the extra work costs less
#: than the programs it saves.
PAD_WORK = 1 << 22
#: Below this many units a program is compiled with XLA's cheap profile (its run time is then a
#: few milliseconds at most; compiling it fully costs about a second more), and ``n_components``
#: up to 8 share one program. (1 << 18 before: then 10k rows x 2 features with K = 4 were padded
#: to 8 components and compiled cheaply, and an EM iteration took 1.8 ms instead of 1.0 ms.)
CHEAP_COMPILE_WORK = 1 << 17

#: XLA:CPU options of the compile profiles (no options on other backends).
_CPU_OPTIONS = {
    "cheap": {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 0},
    "fast": {"xla_cpu_use_fusion_emitters": False},
    # XLA's own kernels instead of YNNPACK fusions for the dots and reductions: in the NUTS
    # gradient (thin (n, D + 1) @ (D + 1, K * D) products and reductions over D) the YNNPACK
    # kernels made a leapfrog step 2-2.5x slower, at N = 1000 and at N = 100k alike
    # (measured side by side with bench/nuts_speed.py, jaxlib 0.10; jaxlib versions without the
    # option drop it, see compiler_options)
    "nuts": {"xla_cpu_experimental_ynn_fusion_type": ""},
}


def default_dtype():
    """The float dtype of the compiled programs: float64 when JAX's x64 mode is on, else float32."""
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


@contextlib.contextmanager
def paused_gc(when: bool = True):
    """Python's cyclic garbage collector off for the block (restored after, also on error).

    Tracing and lowering a program allocate hundreds of thousands of small objects, and every
    full collection then walks all of the process's objects (JAX's, numpy's, scikit-learn's):
    about 0.2 s of a first fit's 2 s. Use it around calls that build a program (``when``, see
    :func:`first_call`), not around every run: the block's cyclic garbage waits for its end.
    """
    was_enabled = gc.isenabled()
    if when:
        gc.disable()
    try:
        yield
    finally:
        if when and was_enabled:
            gc.enable()


_SEEN_CALLS: set = set()


def first_call(name: str, args, static=()) -> bool:
    """Whether this process has not yet called program ``name`` with arguments of these shapes,
    dtypes and static values (the call will then trace and compile, or load, the program)."""
    leaves, treedef = jax.tree_util.tree_flatten(args)
    key = (name, treedef, tuple((np.shape(a), str(getattr(a, "dtype", type(a)))) for a in leaves), tuple(static))
    if key in _SEEN_CALLS:
        return False
    _SEEN_CALLS.add(key)
    return True


def estep_work(n_rows: int, n_components: int, n_features: int, covariance_type: str) -> int:
    """A size measure of one E-step pass (the units of :data:`PAD_WORK`)."""
    per = n_features * (n_features + 1 if covariance_type in ("full", "tied") else 1)
    return int(n_rows) * int(n_components) * per


def component_bucket(n_components: int, n_rows: int, n_features: int, covariance_type: str) -> int:
    """The number of components a program is compiled for.

    On small data (at most :data:`CHEAP_COMPILE_WORK` E-step units with 8 components), the next
    power of two, at least 8, so that ``n_components = 1..8`` share one program; on medium data
    (at most :data:`PAD_WORK` units) the next power of two, so that padding at most doubles the
    work of an iteration and a power of two costs none (10k rows x 2 features, K = 4: 8
    components made an iteration 2.1x slower); on larger data ``n_components`` itself, so that no
    run time is spent on padding.
    """
    k = int(n_components)
    pow2 = 1 << (k - 1).bit_length()
    bucket = max(8, pow2)
    if estep_work(n_rows, bucket, n_features, covariance_type) <= CHEAP_COMPILE_WORK:
        return bucket
    if estep_work(n_rows, pow2, n_features, covariance_type) <= PAD_WORK:
        return pow2
    return k


def compile_profile(n_rows: int, n_components: int, n_features: int, covariance_type: str) -> str:
    """``"cheap"`` for programs whose run time is negligible, else ``"fast"``."""
    work = estep_work(n_rows, n_components, n_features, covariance_type)
    return "cheap" if work <= CHEAP_COMPILE_WORK else "fast"


def compiler_options(profile: str) -> dict | None:
    """XLA compile options of a profile on the default backend (None: XLA's defaults).

    Only the options this jaxlib's XLA accepts are returned: their names change between releases
    (jaxlib 0.12 dropped ``xla_cpu_use_fusion_emitters``), and an unknown one fails the compile.
    """
    if jax.default_backend() != "cpu":
        return None
    return _accepted_options(_CPU_OPTIONS[profile])


#: option name -> whether this process's XLA accepts it (probed once, see _accepted_options).
_ACCEPTED: dict[str, bool] = {}
#: guards _ACCEPTED and the programs' cache (a grid builds programs from two threads)
_programs_lock = threading.RLock()


def _accepted_options(options: dict) -> dict:
    """The entries of ``options`` that XLA accepts, probed by compiling a one-operation program
    (a few milliseconds, once per process and option; all at once when all are accepted)."""
    with _programs_lock:  # probed once, also when threads ask at once
        unknown = [name for name in options if name not in _ACCEPTED]
        if unknown and not _compiles({name: options[name] for name in unknown}):
            for name in unknown:
                _ACCEPTED[name] = _compiles({name: options[name]})
        else:
            _ACCEPTED.update(dict.fromkeys(unknown, True))
        return {name: value for name, value in options.items() if _ACCEPTED[name]}


def _compiles(options: dict) -> bool:
    try:
        jax.jit(lambda x: x + 1).lower(np.zeros(1, np.float32)).compile(compiler_options=options)
    except Exception as err:  # XLA raises a runtime error naming the option: "No such compile option"
        if "compile option" not in str(err):
            raise
        return False
    return True


_AHEAD: contextvars.ContextVar = contextvars.ContextVar("bayesgmm_compile_ahead", default=False)


class CompiledAhead(Exception):
    """Raised by :func:`fit_em` under :func:`compiling_ahead`: the fit's program is built (or
    loaded) and held; nothing ran."""


def ahead() -> bool:
    """Whether this thread is in a :func:`compiling_ahead` block."""
    return _AHEAD.get()


@contextlib.contextmanager
def compiling_ahead():
    """Fits in the block (this thread) stop at :func:`fit_em` after building their first program,
    and scoring at :func:`bayesgmm.infer.scoring.score_rows` after building its program, with
    :class:`CompiledAhead`: a thread can build the programs that later calls will run (see
    :func:`bayesgmm.selection.select`). Only programs kept whole are built
    (:mod:`bayesgmm.core.executables`); otherwise nothing is."""
    token = _AHEAD.set(True)
    try:
        yield
    finally:
        _AHEAD.reset(token)


class StartValues(NamedTuple):
    """User-given starting values in standardised units, padded to the program's components;
    ``None`` for a field the initialisation provides. ``scales`` and ``corr_chol`` come together."""

    weights: Any = None
    means: Any = None
    scales: Any = None
    corr_chol: Any = None


#: Short EM runs from two views of the data (the "emEM" strategy of Biernacki, Celeux & Govaert
#: 2003): with a ``feature_scale``, every k-means restart seeds k-means twice from its key -- on
#: the standardised features, where every feature counts alike, and on the data's own scale,
#: scikit-learn's start -- runs EM for this many iterations from each, and continues the better
#: (:func:`em_start`). On some data the two views lead EM to different optima, and restarts of one
#: view alone all reach the same one (issue 16: mclust's diabetes data, as shipped and corrected,
#: each defeat one of the views). ``0``: no short runs; restarts 0, 2, ... start from the
#: standardised view and 1, 3, ... from the data's scale (the default before; ``bench/starts.py``
#: compares the two).
#:
#: Biernacki, C., Celeux, G. and Govaert, G. (2003). Choosing starting values for the EM algorithm
#: for getting the highest likelihood in multivariate Gaussian mixture models. Computational
#: Statistics & Data Analysis 41, 561-575.
SHORT_RUN = 20


def em_start(
    key, first, xb, wb, prior, reg_covar, tol, max_iter, n_active, start: StartValues, feature_scale=None,
    partition: GMMParams | None = None, *,
    n_restarts: int, n_components: int, covariance_type: str, method: str,
    estep=estep_stats, block_sum=None, batching: str = "vmap", short_run: int = SHORT_RUN,
) -> EMRun:
    """Initialise ``n_restarts`` restarts and run their first EM segment (one program).

    Restart ``r`` starts from ``init_params(fold_in(key, first + r), ...)``, so the restarts of
    ``n_init`` are the same whether they run together or one at a time.

    The ``"kmeans"`` and ``"k-means++"`` starts explore two views of the data: with
    ``feature_scale`` (the data's feature scales relative to the standardised ``xb``), each
    restart clusters the standardised features and the data on their own scale, runs
    :data:`SHORT_RUN` EM iterations from each start and goes on from the one with the higher
    objective; its history and ``n_iter`` are those of the run it continued. The short runs share
    one traced EM loop with the continuation (a ``lax.scan`` over the three phases), so the
    program is no larger than one restart's.

    With ``method="hc"`` restart 0 starts from ``partition`` (the Gaussians of mclust's
    model-based hierarchical agglomeration, :mod:`bayesgmm.core.hc`: deterministic, and data, not
    structure, so that it compiles no program per data set); every other restart starts exactly as
    restart ``r`` of ``method="kmeans"`` does, so that the restarts of ``n_init > 1`` explore.

    Parameters
    ----------
    key : PRNG key (uint32 key data of shape (2,))
    first : int (traced), the index of the first restart
    xb, wb : data blocks, see :func:`bayesgmm.core.density.to_blocks`
    prior : ResolvedPrior (standardised units, ``weight_concentration`` padded) or None
    reg_covar : array of shape (D,)
    tol, max_iter : numbers (traced)
    n_active : int (traced), the components of the model; the others up to ``n_components``
        are padding
    start : StartValues
    feature_scale : array of shape (D,), optional
        See above; None: every restart clusters ``xb`` as it is.
    partition : GMMParams, optional
        The start of restart 0 for ``method="hc"`` (standardised units, ``n_components``
        components); required with it, ignored otherwise.
    n_restarts, n_components, covariance_type, method : static structure
    batching : {"vmap", "map"}
        How the restarts share the program: vmapped (in lock-step; it pays when the E-step has
        real work) or one after another with ``lax.map`` (small data: the program is traced and
        compiled unbatched, several times faster to build).
    short_run : int
        The iterations of each view's short run (:data:`SHORT_RUN`, which :func:`fit_em` reads
        at every call; static, so that a program is keyed by it).

    Returns
    -------
    EMRun with a leading ``(n_restarts,)`` axis
    """
    TRACE_COUNTS["em_start"] += 1
    mask = jnp.arange(n_components) < n_active
    index = first + jnp.arange(n_restarts)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(index)
    passes = {} if block_sum is None else {"block_sum": block_sum}

    restart_method = "kmeans" if method == "hc" else method
    if method == "hc" and partition is None:
        raise ValueError("method='hc' needs the partition's parameters")

    # a start the user gave whole (weights, means and covariances) leaves k-means nothing to do
    given = start.weights is not None and start.means is not None and start.scales is not None
    views = feature_scale is not None and restart_method in ("kmeans", "k-means++") and not given
    # data with missing cells start from their cells at 0 (the standardised column means):
    # k-means and the first M-step see complete rows
    x_init = xb.x if isinstance(xb, MaskedBlocks) else xb

    def one(k_i):
        k, i = k_i

        def start_with(m, scale=None):
            return functools.partial(
                init_params, k, x_init, wb, n_components, covariance_type, m, prior, reg_covar,
                estep=estep, n_active=n_active, scale=scale, partition=partition if m == "hc" else None, **passes,
            )

        def initial(scale=None):
            if method == "hc":
                # vmapped restarts evaluate both branches; one restart, or restarts in turn, only one
                p = jax.lax.cond(i == 0, start_with("hc"), start_with(restart_method, scale))
            else:
                p = start_with(method, scale)()
            p = p.replace(**{f: jnp.asarray(v, p.means.dtype) for f, v in start._asdict().items() if v is not None})
            return em_init(p)

        if not views:
            return em_continue(initial(), xb, wb, prior, reg_covar, tol, max_iter, mask, estep)
        scale = jnp.asarray(feature_scale, xb.dtype)
        if short_run <= 0:
            return em_continue(initial(jnp.where(i % 2 == 1, scale, 1.0)), xb, wb, prior, reg_covar, tol, max_iter,
                               mask, estep)
        # one component, or hc's restart 0, starts the same in both views
        distinct = (n_active > 1) & ((i != 0) if method == "hc" else True)
        return _two_view_run(initial, scale, distinct, xb, wb, prior, reg_covar, tol, max_iter, mask, estep,
                             short_run, covariance_type)

    return _batched(one, (keys, index), batching)


def _blank_state(n_components: int, n_features: int, covariance_type: str, dtype) -> EMState:
    """An EMState of zeros of the structure :func:`em_init` gives (the scan's first carry; built
    directly, as tracing the initialisation for its shapes would cost a second trace of it)."""
    return em_init(GMMParams.zeros(n_components, n_features, covariance_type, dtype))


def _two_view_run(initial, scale, distinct, xb, wb, prior, reg_covar, tol, max_iter, mask, estep,
                  short_run, covariance_type) -> EMRun:
    """Phases 0 and 1: ``short_run`` EM iterations from ``initial(1)`` (the standardised view)
    and ``initial(scale)`` (the data's scale); phase 2: the rest of the segment from the better
    (the higher objective; a finite one over a non-finite one; a tie keeps the standardised view).
    Where the views are not ``distinct`` (traced bool), phase 1 goes on with phase 0's run. One
    ``lax.scan``, so that the EM loop is traced once."""
    views = jnp.stack([jnp.ones_like(scale), scale])
    blank = _blank_state(mask.shape[0], scale.shape[0], covariance_type, scale.dtype)
    nan_hist = jnp.full((SEGMENT,), jnp.nan, scale.dtype)

    def phase(carry, v):
        best, best_hist = carry
        fresh = (v == 0) | ((v == 1) & distinct)
        state = jax.lax.cond(fresh, lambda: initial(views[jnp.minimum(v, 1)]), lambda: best)
        cap = jnp.where(v < 2, jnp.minimum(max_iter, short_run), max_iter)
        state, hist = em_segment(state, xb, wb, prior, reg_covar, tol, cap, mask, estep,
                                 resume=(jnp.where(fresh, nan_hist, best_hist), 0))
        obj = state.prev_objective
        take = (v != 1) | ~fresh | (jnp.isfinite(obj) & ~(best.prev_objective >= obj))
        keep = lambda new, old: jnp.where(take, new, old)  # noqa: E731
        return (jax.tree_util.tree_map(keep, state, best), keep(hist, best_hist)), None

    (state, hist), _ = jax.lax.scan(phase, (blank, nan_hist), jnp.arange(3))
    return em_report(state, hist, xb, wb, prior, mask, estep)


def _batched(fn, xs, batching: str):
    """``fn`` over the leading axis of ``xs``: ``vmap``, or ``lax.map`` for ``batching="map"``; a
    batch of one is traced without either (batching a program's loops doubles its tracing)."""
    first = jax.tree_util.tree_leaves(xs)[0]
    if first.shape[0] == 1:
        return jax.tree_util.tree_map(lambda a: a[None], fn(jax.tree_util.tree_map(lambda a: a[0], xs)))
    if batching == "map":
        return jax.lax.map(fn, xs)
    return jax.vmap(fn)(xs)


def _continue_batched(state, xb, wb, prior, reg_covar, tol, max_iter, n_active, *, estep=estep_stats,
                      batching: str = "vmap"):
    TRACE_COUNTS["em_continue"] += 1
    mask = jnp.arange(state.params.n_components) < n_active
    return _batched(lambda s: em_continue(s, xb, wb, prior, reg_covar, tol, max_iter, mask, estep), state, batching)


@functools.lru_cache(maxsize=None)
def _programs(options_key):
    """The jitted start and continuation programs for one set of compile options."""
    options = dict(options_key) if options_key else None
    start = persistent_jit(
        em_start,
        static_argnames=("n_restarts", "n_components", "covariance_type", "method", "estep", "block_sum", "batching",
                         "short_run"),
        compiler_options=options,
    )
    cont = persistent_jit(_continue_batched, static_argnames=("estep", "batching"), compiler_options=options,
                          name="em_continue")
    return start, cont


def _batching(profile: str) -> str:
    """Restarts of small problems run in turn inside the program (see :func:`em_start`)."""
    return "map" if profile == "cheap" else "vmap"


def programs(profile: str):
    """``(start, continuation)`` jitted programs compiled with ``profile``'s options."""
    options = compiler_options(profile)
    with _programs_lock:  # one pair per profile, also when threads ask at once
        return _programs(tuple(sorted(options.items())) if options else None)


def _host(run: EMRun) -> EMRun:
    return jax.tree_util.tree_map(np.asarray, run)


def _finish(run: EMRun, cont, args, max_iter: int):
    """Run continuation segments until every restart has stopped; ``(last run, histories)``."""
    histories = [np.asarray(run.history)]
    while True:
        st = run.state
        done = (
            np.asarray(st.converged)
            | (np.asarray(st.n_iter) >= max_iter)
            | ~np.isfinite(np.asarray(st.prev_objective))
        )
        if done.all():
            return run, histories
        run = cont(run.state, *args)
        histories.append(np.asarray(run.history))


def _info(run: EMRun, histories) -> EMInfo:
    """EMInfo (host) from the last segment and the histories of all segments."""
    run = _host(run)
    n_iter = run.state.n_iter
    hist = np.concatenate(histories, axis=1)
    width = int(n_iter.max()) + 1
    history = np.full((hist.shape[0], width), np.nan, dtype=hist.dtype)
    for i in range(hist.shape[0]):
        history[i, : n_iter[i]] = hist[i, : n_iter[i]]
        history[i, n_iter[i]] = run.objective[i]
    return EMInfo(run.objective, run.log_likelihood, n_iter, run.state.converged, history, run.n_empty, run.finite)


def _stack(parts):
    """One ``(params, EMInfo)`` from several restart batches (histories NaN-padded)."""
    if len(parts) == 1:
        return parts[0]
    params = jax.tree_util.tree_map(lambda *a: np.concatenate(a), *[p for p, _ in parts])
    infos = [i for _, i in parts]
    width = max(i.history.shape[1] for i in infos)
    history = np.full((sum(i.history.shape[0] for i in infos), width), np.nan, dtype=infos[0].history.dtype)
    r = 0
    for i in infos:
        history[r : r + i.history.shape[0], : i.history.shape[1]] = i.history
        r += i.history.shape[0]
    cat = {f: np.concatenate([getattr(i, f) for i in infos]) for f in EMInfo._fields if f != "history"}
    return params, EMInfo(history=history, **cat)


def fit_em(
    key, xb, wb, prior, reg_covar, tol, max_iter, *, n_init: int, n_components: int, n_active: int,
    covariance_type: str, method: str, start: StartValues = StartValues(), profile: str = "fast",
    estep=None, block_sum=None, feature_scale=None, partition: GMMParams | None = None,
):
    """Initialise and run ``n_init`` EM restarts to convergence (host loop over the programs).

    ``partition``: the start of restart 0 for ``method="hc"`` (see :func:`em_start`).

    The restarts run vmapped together, one after another through the one-restart program (as
    :func:`bayesgmm.core.em.restarts_one_at_a_time` decides), or -- small data, the ``"cheap"``
    profile -- one after another inside one program (``lax.map``); each stops at its own
    convergence either way.

    Returns
    -------
    params : GMMParams (host arrays) with a leading ``(n_init,)`` axis and ``n_components``
        components (padding included)
    info : EMInfo
    """
    start_prog, cont = programs(profile)
    dtype = xb.dtype
    tol = np.asarray(tol, dtype)
    max_iter_a = np.asarray(max_iter, np.int32)
    reg_covar = np.asarray(reg_covar, dtype)
    n_act = np.asarray(n_active, np.int32)
    static = dict(n_components=n_components, covariance_type=covariance_type, method=method, short_run=SHORT_RUN)
    if estep is not None:
        static["estep"] = estep
    if block_sum is not None:
        static["block_sum"] = block_sum
    batches = (
        [(i, 1) for i in range(n_init)] if restarts_one_at_a_time(n_init, xb.shape[0]) else [(0, n_init)]
    )
    static["batching"] = _batching(profile)
    cont_kw = {"batching": static["batching"]} if estep is None else {"estep": estep, "batching": static["batching"]}
    cont_f = functools.partial(cont, **cont_kw)
    parts = []
    feature_scale = None if feature_scale is None else np.asarray(feature_scale, dtype)
    if partition is not None:
        partition = jax.tree_util.tree_map(lambda a: np.asarray(a, dtype), partition)
    call_args = (key, xb, wb, prior, reg_covar, tol, start, feature_scale, partition)
    def start_call(first, r):
        args = (key, np.int32(first), xb, wb, prior, reg_covar, tol, max_iter_a, n_act, start, feature_scale, partition)
        return args, dict(n_restarts=r, **static)

    if ahead():
        args, kwargs = start_call(*batches[0])
        with paused_gc():
            start_prog.prepare(*args, **kwargs)
        raise CompiledAhead
    with paused_gc(first_call("em_start", call_args, sorted(static.items()) + [("r", batches[0][1])])):
        for first, r in batches:
            args, kwargs = start_call(first, r)
            run = start_prog(*args, **kwargs)
            run, histories = _finish(run, cont_f, (xb, wb, prior, reg_covar, tol, max_iter_a, n_act), int(max_iter))
            parts.append((_host(run.state.params), _info(run, histories)))
    return _stack(parts)


def run_em(params0: GMMParams, xb, wb, prior, reg_covar, tol, max_iter, *, n_active=None, profile: str = "fast",
           estep=None):
    """Run EM from given (batched) starting parameters until convergence or ``max_iter``.

    Parameters
    ----------
    params0 : GMMParams with a leading ``(n_restarts,)`` axis
    xb, wb : data blocks, see :func:`bayesgmm.core.density.to_blocks`
    prior : ResolvedPrior or None
    reg_covar : array (D,)
    tol, max_iter : numbers (traced)
    n_active : int, optional
        Components of the model (default all); the others are padding.
    estep : callable, optional
        The pass over the blocks (default :func:`bayesgmm.core.density.estep_stats`; for
        blocks sharded over devices ``bayesgmm.core.sharding.sharded_estep(mesh)``).

    Returns
    -------
    params : GMMParams (host arrays) with the leading axis
    info : EMInfo
    """
    _, cont = programs(profile)
    dtype = xb.dtype
    r = params0.means.shape[0]
    params0 = jax.tree_util.tree_map(lambda a: np.asarray(a, dtype), params0)
    state = EMState(params0, np.full(r, -np.inf, dtype), np.zeros(r, np.int32), np.zeros(r, bool))
    n_act = np.int32(params0.n_components if n_active is None else n_active)
    args = (xb, wb, prior, np.asarray(reg_covar, dtype), np.asarray(tol, dtype), np.int32(max_iter), n_act)
    cont_kw = {"batching": _batching(profile)} if estep is None else {"estep": estep, "batching": _batching(profile)}
    cont_f = functools.partial(cont, **cont_kw)
    with paused_gc(first_call("em_continue", (state,) + args, sorted(cont_kw.items()))):
        run = cont_f(state, *args)
        run, histories = _finish(run, cont_f, args, int(max_iter))
    return _host(run.state.params), _info(run, histories)
