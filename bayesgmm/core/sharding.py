"""Data parallelism over several devices (pure JAX): a 1-D mesh, sharded data blocks, reduced passes.

Samples are split across the devices of a one-axis :class:`jax.sharding.Mesh` (axis ``"data"``):
the blocks ``xb`` of shape ``(n_blocks, block, D)`` are sharded along ``n_blocks``, each device scans
its own blocks with the ordinary single-device pass (:func:`bayesgmm.core.density.estep_stats`),
and the sufficient statistics -- a few arrays of shape ``(K, D, D)`` at most -- are summed across
devices with ``psum``. Parameters are replicated. The same works across hosts once
``jax.distributed.initialize()`` has run and the mesh holds the global devices.

With one device none of this is used: callers keep today's unsharded code path.
"""

from __future__ import annotations

import functools
import numbers

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .density import _bucket, estep_stats
from .units import standardise_rows

__all__ = [
    "DATA_AXIS",
    "allgather",
    "block_layout",
    "data_mesh",
    "device_blocks",
    "device_params",
    "device_rows",
    "n_shards",
    "shard_blocks_from_rows",
    "shard_rows",
    "sharded_estep",
    "sharded_block_sum",
    "sharded_map_blocks",
]

#: Name of the mesh axis the samples are split along.
DATA_AXIS = "data"


def data_mesh(devices=None) -> Mesh | None:
    """A one-axis mesh over ``devices``, or ``None`` when that is a single device.

    Parameters
    ----------
    devices : None, int, sequence of jax devices, or jax.sharding.Mesh
        ``None``: all local devices (``jax.local_devices()``); an int ``n``: the first ``n``
        local devices; a sequence: those devices (after ``jax.distributed.initialize()``,
        ``jax.devices()`` spans every host); a ``Mesh``: its devices, flattened into one axis.

    Returns
    -------
    Mesh with the single axis ``"data"``, or None (one device: the unsharded path).
    """
    if devices is None:
        devs = list(jax.local_devices())
    elif isinstance(devices, Mesh):
        devs = list(np.asarray(devices.devices).reshape(-1))
    elif isinstance(devices, numbers.Integral) and not isinstance(devices, bool):
        local = jax.local_devices()
        if not 1 <= int(devices) <= len(local):
            raise ValueError(
                f"devices={devices} asks for {devices} devices but {len(local)} local device(s) "
                "exist; pass an int between 1 and that, a list of jax devices, a Mesh, or None "
                "(all local devices)."
            )
        devs = list(local[: int(devices)])
    else:
        try:
            devs = list(devices)
        except TypeError:
            raise TypeError(
                "devices must be None (all local devices), an int, a sequence of jax devices or a "
                f"jax.sharding.Mesh; got {type(devices).__name__}."
            ) from None
        if not devs or not all(isinstance(d, jax.Device) for d in devs):
            raise TypeError(
                "devices must be a non-empty sequence of jax devices (e.g. jax.devices()[:2]); "
                f"got {devices!r}."
            )
        if len(set(devs)) != len(devs):
            raise ValueError(f"devices lists a device more than once: {devs!r}.")
    if len(devs) == 1:
        return None
    return Mesh(np.asarray(devs, dtype=object), (DATA_AXIS,))


def n_shards(mesh: Mesh | None) -> int:
    """Number of devices the data are split over (1 without a mesh)."""
    return 1 if mesh is None else int(mesh.devices.size)


def _global_array(host, mesh: Mesh):
    """A global array sharded along axis 0 from a host array that every process holds.

    Each process materialises only the slices of its own devices, so this also works across hosts.
    """
    sharding = NamedSharding(mesh, P(DATA_AXIS))
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


def block_layout(n: int, block_size: int, shards: int = 1):
    """``(block, n_blocks)`` of ``n`` rows over ``shards`` devices, ``n_blocks`` a multiple of ``shards``.

    With one shard this is the layout of :func:`bayesgmm.core.density.to_blocks`.
    """
    per = -(-int(n) // shards)
    block = max(1, min(int(block_size), _bucket(per)))
    return block, shards * -(-per // block)


# ---------------------------------------------------------------------------------------------
# the host-side data layout: every pass over data (fit, partial_fit, scoring) places it with these
# ---------------------------------------------------------------------------------------------
def device_blocks(x, w, shift, scale, block_size: int, mesh: Mesh | None, dtype):
    """Host rows, standardised and zero padded, in blocks on the devices: the input of the EM passes.

    ``(x - shift) / scale`` (:func:`bayesgmm.core.units.standardise_rows`: in float64, then cast to
    ``dtype``) in the layout of :func:`block_layout` (with one shard: that of
    :func:`bayesgmm.core.density.to_blocks`); the padding rows, at the end, are zeros of weight 0.
    Without a mesh the blocks go to the default device (``jax.device_put``, which compiles nothing,
    unlike ``jnp.asarray``); with one, each process standardises only the rows of its own devices
    (:func:`shard_blocks_from_rows`).

    Parameters
    ----------
    x : array of shape (n, D) (host; any float dtype or a memmap)
    w : ndarray of shape (n,)
    shift, scale : ndarrays of shape (D,)
    block_size : rows per block (at most)
    mesh : Mesh or None
    dtype : the float dtype of the passes

    Returns
    -------
    xb : array of shape (n_blocks, block, D); wb : array of shape (n_blocks, block)
    """
    if mesh is not None:
        return shard_blocks_from_rows(x, w, shift, scale, block_size, mesh, dtype)
    dtype = np.dtype(dtype)
    n, d = x.shape
    block, n_blocks = block_layout(n, block_size)
    z = standardise_rows(x, shift, scale, dtype, n_blocks * block)
    wp = np.zeros(n_blocks * block, dtype)
    wp[:n] = w
    return jax.device_put(z.reshape(n_blocks, block, d)), jax.device_put(wp.reshape(n_blocks, block))


def device_rows(x, shift, scale, dtype, n_rows: int, mesh: Mesh | None = None):
    """Host rows, standardised and zero padded to ``n_rows``, on the devices: the input of scoring.

    As :func:`device_blocks`, but rows (``(n_rows, D)``; a program splits them into blocks itself):
    on the default device without a mesh, sharded along it with one (``n_rows`` a multiple of the
    device count).
    """
    z = standardise_rows(x, shift, scale, dtype, n_rows)
    return jax.device_put(z) if mesh is None else shard_rows(z, n_rows, mesh)


def device_params(params, dtype):
    """Host parameters (a pytree of arrays) on the default device in ``dtype`` (nothing is compiled)."""
    return jax.device_put(jax.tree_util.tree_map(lambda a: np.asarray(a, dtype), params))


def shard_blocks_from_rows(x, w, shift, scale, block_size: int, mesh: Mesh, dtype):
    """The blocks of :func:`device_blocks` sharded over the mesh; each process standardises only the rows of its own devices.

    ``(x - shift) / scale`` is computed (:func:`bayesgmm.core.units.standardise_rows`: in float64,
    then cast to ``dtype``) slice by slice inside the callback of
    :func:`jax.make_array_from_callback`, so no process ever holds more than its share of the
    standardised data -- ``x`` can be a ``numpy.memmap`` that each host opens.

    Parameters
    ----------
    x : array of shape (n, D) (host; any float dtype or a memmap)
    w : ndarray of shape (n,)
    shift, scale : ndarrays of shape (D,)
    block_size : rows per block (at most)
    mesh : Mesh
    dtype : the float dtype of the passes

    Returns
    -------
    xb : global array (n_blocks, block, D); wb : global array (n_blocks, block)
    """
    n, d = x.shape
    block, n_blocks = block_layout(n, block_size, n_shards(mesh))
    sharding = NamedSharding(mesh, P(DATA_AXIS))
    dtype = np.dtype(dtype)

    def rows_of(idx):
        b = idx[0]
        start, stop = (b.start or 0) * block, (n_blocks if b.stop is None else b.stop) * block
        return start, stop

    def x_cb(idx):
        start, stop = rows_of(idx)
        out = standardise_rows(x[start : max(start, min(stop, n))], shift, scale, dtype, stop - start)
        return out.reshape(-1, block, d)[(slice(None),) + tuple(idx[1:])]

    def w_cb(idx):
        start, stop = rows_of(idx)
        out = np.zeros(stop - start, dtype)
        hi = min(stop, n)
        if hi > start:
            out[: hi - start] = w[start:hi]
        return out.reshape(-1, block)[(slice(None),) + tuple(idx[1:])]

    xb = jax.make_array_from_callback((n_blocks, block, d), sharding, x_cb)
    wb = jax.make_array_from_callback((n_blocks, block), sharding, w_cb)
    return xb, wb


def allgather(a) -> np.ndarray:
    """A global array (possibly spanning several hosts) as a numpy array on every process.

    Arrays whose shards are all addressable by this process (one host) are simply copied to the
    host; otherwise every process receives the whole array (``process_allgather``, tiled).
    """
    if getattr(a, "is_fully_addressable", True):
        return np.asarray(a)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(a, tiled=True))


def shard_rows(z, n_rows: int, mesh: Mesh):
    """Pad host rows ``z`` (n, ...) with zeros to ``n_rows`` and shard them along axis 0."""
    if z.shape[0] != n_rows:
        zp = np.zeros((n_rows,) + z.shape[1:], z.dtype)
        zp[: z.shape[0]] = z
        z = zp
    return _global_array(z, mesh)


def _shard_map(fn, mesh, in_specs, out_specs):
    # check_vma=False: the per-device scans start from replicated zeros and accumulate varying
    # values, which is exactly what the psum at the end reduces
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)


@functools.lru_cache(maxsize=None)
def sharded_estep(mesh: Mesh):
    """``estep_stats`` over blocks sharded along ``mesh``: per-device scans, then a ``psum``.

    Returns
    -------
    callable ``(params, xb, wb, resp_fn=None) -> EStepStats`` with the signature and meaning of
    :func:`bayesgmm.core.density.estep_stats`; ``resp_fn`` receives global block indices.
    """

    def estep(params, xb, wb, resp_fn=None):
        def local(params, xb, wb):
            fn = None
            if resp_fn is not None:
                offset = jax.lax.axis_index(DATA_AXIS) * xb.shape[0]
                fn = lambda i, x: resp_fn(i + offset, x)  # noqa: E731
            stats = estep_stats(params, xb, wb, resp_fn=fn)
            return jax.lax.psum(stats, DATA_AXIS)

        return _shard_map(local, mesh, (P(), P(DATA_AXIS), P(DATA_AXIS)), P())(params, xb, wb)

    return estep


@functools.lru_cache(maxsize=None)
def sharded_block_sum(mesh: Mesh):
    """A block reduction ``(fn, init, xb, wb) -> sum_i fn(x_i, w_i)`` sharded along ``mesh``.

    ``fn(x, w)`` maps one block to a pytree; the result is ``init`` plus the sum over all blocks.
    """

    def block_sum(fn, init, xb, wb):
        def local(xb, wb):
            def body(carry, blk):
                return jax.tree_util.tree_map(jnp.add, carry, fn(*blk)), None

            zero = jax.tree_util.tree_map(jnp.zeros_like, init)
            out, _ = jax.lax.scan(body, zero, (xb, wb))
            return jax.lax.psum(out, DATA_AXIS)

        part = _shard_map(local, mesh, (P(DATA_AXIS), P(DATA_AXIS)), P())(xb, wb)
        return jax.tree_util.tree_map(jnp.add, init, part)

    return block_sum


def local_block_sum(fn, init, xb, wb):
    """The single-device block reduction (a ``lax.scan``), same contract as ``sharded_block_sum``."""

    def body(carry, blk):
        return jax.tree_util.tree_map(jnp.add, carry, fn(*blk)), None

    out, _ = jax.lax.scan(body, init, (xb, wb))
    return out


def sharded_map_blocks(fn, z, block: int, mesh: Mesh):
    """Row-wise ``fn`` over rows sharded along ``mesh``, each device in blocks of ``block`` rows.

    ``z`` has ``n_rows`` a multiple of ``block * n_devices`` (see :func:`shard_rows`).
    """

    def local(z):
        xb = z.reshape((-1, block) + z.shape[1:])
        out = jax.lax.map(fn, xb)
        return out.reshape((-1,) + out.shape[2:])

    return _shard_map(local, mesh, P(DATA_AXIS), P(DATA_AXIS))(z)
