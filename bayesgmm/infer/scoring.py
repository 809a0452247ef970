"""Scoring fitted parameters on host data: per row, the log responsibilities and the log density.

One compiled program serves every scoring method (``score_samples``, ``predict_proba``,
``predict``, ...: they read its columns), and a sharded twin splits the rows over several
devices. Host data are standardised and placed with :func:`bayesgmm.core.sharding.device_rows`;
small data are padded to a power of two and the components to the bucket of the fit's programs
(few compilations), large data are scored in host chunks of one size, so that only one chunk's
standardised copy exists at a time.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .._compile_cache import enable_compilation_cache
from ..core.density import _bucket, default_block_size, map_blocks, weighted_log_prob
from ..core.executables import persistent_jit
from ..core.missing import block_rows_conditional_means, block_rows_scores, pattern_blocks
from ..core.params import GMMParams
from ..core.programs import (
    CHEAP_COMPILE_WORK, CompiledAhead, ahead, component_bucket, compiler_options, default_dtype, estep_work,
    first_call, paused_gc,
)
from ..core.units import has_missing, standardise_rows
from ..core.sharding import allgather, data_mesh, device_params, device_rows, n_shards, sharded_map_blocks

__all__ = ["impute_rows", "score_rows"]

#: Rows per host chunk of the scoring methods on large ``X`` (rounded to whole blocks).
_SCORE_CHUNK_ROWS = 1 << 18


def _score_rows(params: GMMParams, x):
    """Per row, the log responsibilities and then the log density: shape (n, K + 1)."""
    lp = weighted_log_prob(params, x)
    lse = jax.scipy.special.logsumexp(lp, axis=-1, keepdims=True)
    return jnp.concatenate([lp - lse, lse], axis=-1)


def _apply_in_blocks(params, z, block):
    return map_blocks(lambda xb: _score_rows(params, xb), z, block)


def _apply_sharded(params, z, block, mesh):
    return sharded_map_blocks(lambda xb: _score_rows(params, xb), z, block, mesh)


@functools.lru_cache(maxsize=None)
def _scoring_programs():
    """The one scoring program (every scoring method reads its columns), and its sharded twin.

    Built at first use: the compile options depend on the backend, which import must not start.
    """
    enable_compilation_cache()
    opts = compiler_options("fast")
    return (
        persistent_jit(_apply_in_blocks, static_argnames=("block",), compiler_options=opts),
        jax.jit(_apply_sharded, static_argnames=("block", "mesh"), compiler_options=opts),
    )


def _padded_rows(n: int, block: int) -> int:
    """Rows to pad ``n`` to: a power of two below one block, else whole blocks (few compilations)."""
    if n <= block:
        return 1 << max(5, (n - 1).bit_length())
    return -(-n // block) * block


def _one_layout(params_z: GMMParams, n_rows: int) -> GMMParams:
    """``params_z`` in the full layout (:meth:`GMMParams.as_full`, exact) when the full layout's
    E-step work on ``n_rows`` rows stays within :data:`~bayesgmm.core.programs.CHEAP_COMPILE_WORK`
    (the small data of the shared component bucket), so that one scoring program serves all four
    covariance types; otherwise ``params_z`` itself (larger data keep the cheaper layouts)."""
    k, d = params_z.n_components, params_z.n_features
    k_full = component_bucket(k, n_rows, d, "full")
    if estep_work(n_rows, k_full, d, "full") <= CHEAP_COMPILE_WORK:
        return params_z.as_full()
    return params_z


def score_rows(params_z: GMMParams, X, shift, scale, part: str, devices=None) -> np.ndarray:
    """Score host rows ``X`` (data units) under parameters in the standardised frame ``(x - shift) / scale``.

    Parameters
    ----------
    params_z : GMMParams
        Host parameters in the standardised frame (float64, no batch axes).
    X : ndarray of shape (n, D)
        NaN cells are marginalised out (missing values; scored on one device).
    shift, scale : ndarrays of shape (D,)
    part : {"log_resp", "log_density"}
        ``"log_resp"``: log responsibilities (n, K); ``"log_density"``: log densities (n,) in the
        standardised frame (add ``log_jacobian(scale)`` for data units).
    devices : as ``GaussianMixture(devices=...)``

    Returns
    -------
    ndarray of float64 (only that part is copied out of the device's dtype)
    """
    k = params_z.n_components
    pick = (lambda o, n: o[:n, :k]) if part == "log_resp" else (lambda o, n: o[:n, -1])
    dtype = np.dtype(default_dtype())
    n, d = X.shape
    building_ahead = ahead()  # build the program of the small-X path below, run nothing
    if building_ahead and (has_missing(X) or data_mesh(devices) is not None):
        raise CompiledAhead
    if has_missing(X):
        cols = np.arange(k) if part == "log_resp" else np.array([-1])  # log resp, or the log density
        out = _masked_rows(_masked_programs()[0], params_z, X, shift, scale, cols)
        return out if part == "log_resp" else out[:, 0]
    block = default_block_size(k, d)
    mesh = data_mesh(devices)
    in_blocks, sharded = _scoring_programs()
    if mesh is not None:  # rows split over the devices, each passes over its share in blocks
        s = n_shards(mesh)
        local = min(block, _bucket(-(-n // s)))
        n_pad = -(-n // (s * local)) * s * local
        params = device_params(params_z, dtype)
        z = device_rows(X, shift, scale, dtype, n_pad, mesh)
        return pick(allgather(sharded(params, z, local, mesh)), n).astype(np.float64)
    chunk = block * max(1, _SCORE_CHUNK_ROWS // block)
    if building_ahead and n > chunk:
        raise CompiledAhead
    if n > chunk:
        # large X: host chunks of one size (one compilation), so that only one chunk's
        # standardised copy exists at a time
        params = device_params(params_z, dtype)
        out = np.empty((n, k) if part == "log_resp" else (n,), np.float64)
        for i in range(0, n, chunk):
            j = min(i + chunk, n)
            z = device_rows(X[i:j], shift, scale, dtype, chunk)
            out[i:j] = pick(np.asarray(in_blocks(params, z, block)), j - i)
        return out
    n_pad = _padded_rows(n, block)
    # small X: components padded to the bucket of the fit's programs (one scoring program
    # serves every n_components up to it), and every covariance type scored in the full layout
    # where that is small too (one program for a whole grid); zero padding rows are harmless
    # (the standardised origin) and cut off below
    params_z = _one_layout(params_z, n_pad)
    k_pad = component_bucket(k, n_pad, d, params_z.covariance_type)
    params = device_params(params_z.pad_components(k_pad), dtype)
    z = device_rows(X, shift, scale, dtype, n_pad)
    if building_ahead:
        with paused_gc():
            in_blocks.prepare(params, z, min(block, n_pad))
        raise CompiledAhead
    with paused_gc(first_call("score", (params, z), (min(block, n_pad),))):
        out = in_blocks(params, z, min(block, n_pad))
    return pick(np.asarray(out), n).astype(np.float64)


@functools.lru_cache(maxsize=None)
def _masked_programs():
    """The scoring and imputation programs of rows with missing cells (grouped by pattern)."""
    enable_compilation_cache()
    opts = compiler_options("fast")
    return (persistent_jit(block_rows_scores, compiler_options=opts),
            persistent_jit(block_rows_conditional_means, compiler_options=opts))


def _masked_rows(program, params_z: GMMParams, X, shift, scale, cols) -> np.ndarray:
    """``program`` (:func:`bayesgmm.core.missing.block_rows_scores` or ``..._conditional_means``)
    on host rows with NaN cells, laid out by pattern (:func:`~bayesgmm.core.missing.pattern_blocks`)
    in host chunks, and the columns ``cols`` of its per-row outputs, put back in row order."""
    n, d = X.shape
    k = params_z.n_components
    dtype = np.dtype(default_dtype())
    block = default_block_size(k, d)
    k_pad = component_bucket(k, min(n, _SCORE_CHUNK_ROWS), d, params_z.covariance_type)
    params = device_params(params_z.pad_components(k_pad), dtype)
    out = np.empty((n, len(cols)), np.float64)
    for i in range(0, n, _SCORE_CHUNK_ROWS):  # one chunk's standardised copy at a time
        j = min(i + _SCORE_CHUNK_ROWS, n)
        z = standardise_rows(X[i:j], shift, scale, dtype)
        mb, _, slots = pattern_blocks(z, np.ones(j - i), block, dtype, return_rows=True)
        mb = jax.device_put(mb)
        with paused_gc(first_call(f"masked-{program.__name__}", (params, mb))):
            res = np.asarray(program(params, mb))
        valid = slots >= 0
        out[i + slots[valid]] = res[valid][:, cols]
    return out


def impute_rows(params_z: GMMParams, X, shift, scale) -> np.ndarray:
    """Missing (NaN) cells of host rows ``X`` (data units) replaced by their conditional mean under
    parameters in the standardised frame ``(x - shift) / scale``; see
    :func:`bayesgmm.core.missing.conditional_mean`.

    Returns
    -------
    ndarray of shape (n, D), float64; the observed cells are ``X``'s own
    """
    out = np.array(X, np.float64)
    if not has_missing(X):
        return out
    filled = _masked_rows(_masked_programs()[1], params_z, X, shift, scale, np.arange(X.shape[1]))
    miss = np.isnan(out)
    out[miss] = (filled * scale + shift)[miss]
    return out
