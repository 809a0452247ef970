"""Compiled programs kept whole between processes: no tracing, lowering or compiling on a hit.

JAX's persistent compilation cache saves XLA's compile, but it is keyed by the lowered program, so
a new process still traces and lowers every program before it can look it up: on the BIC grid of
``bench/startup.py`` (four EM programs) that is 1.4 s of the 2.7 s a warm-cache grid took. This
module keys a compiled program by what determines it instead -- the function, its static
arguments, the shapes and dtypes of the others, bayesgmm's own source, the versions of JAX,
jaxlib, NumPyro and Python, the device, the CPU and JAX's settings -- and stores the executable
itself (``jax.experimental.serialize_executable``) in JAX's persistent cache, under JAX's own
size bound and file lock. A later process with the same key loads it and calls it directly.

It is on exactly when JAX's persistent cache is (:func:`bayesgmm._compile_cache.enable_compilation_cache`
turns that on at the first fit), on one device, outside of any trace; otherwise a program is
JAX's ordinary ``jax.jit``. An entry that cannot be read is compiled again and replaced. Entries
are executables, as JAX's own are: share a cache directory only with users you trust.

Events (``jax.monitoring``): :data:`HIT_EVENT` for every program loaded, :data:`STORE_EVENT` for
every program stored.

All use of JAX internals (the persistent cache's store, its switch, its files) is in
:func:`_jax_store`, :func:`_jax_cache_off` and :func:`_discard`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import functools
import hashlib
import importlib.metadata
import inspect
import os
import pickle
import platform
import sys
import threading
import weakref
from pathlib import Path

import jax
import numpy as np

__all__ = ["HIT_EVENT", "STORE_EVENT", "persistent_jit", "load_or_build", "clear_executables", "program_digest",
           "call_key", "storable"]

HIT_EVENT = "/bayesgmm/executable_cache/hit"
STORE_EVENT = "/bayesgmm/executable_cache/store"
#: bumped when the stored format changes
_FORMAT = "bayesgmm-executable-1"
#: compiled programs each jitted function holds in a process (least recently built dropped first)
_HELD = 64
#: JAX settings that do not change a program: where and how the caches work, logging
_IGNORED_SETTINGS = (
    "jax_compilation_cache", "jax_enable_compilation_cache", "jax_persistent_cache", "jax_raise_persistent_cache",
    "jax_explain_cache_misses", "jax_log_", "jax_logging", "jax_debug_log",
)


class _NotStorable(Exception):
    """A program that cannot be keyed across processes (a traced argument, an unnamed function)."""


_lock = threading.Lock()
_memo: dict = {}


def _environment() -> str:
    """Everything outside the call that determines a compiled program (computed once)."""
    with _lock:
        if "environment" not in _memo:
            _memo["environment"] = repr((
                _FORMAT, _source_digest(), _versions(), sys.version, platform.machine(), _cpu_flags(),
                os.environ.get("XLA_FLAGS", ""),
            ))
        return _memo["environment"]


def _source_digest() -> str:
    """A digest of bayesgmm's Python source: an edited module never loads an old program."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _versions() -> tuple:
    out = []
    for name in ("jax", "jaxlib", "numpyro", "numpy"):
        try:
            out.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            out.append((name, None))
    return tuple(out)


def _cpu_flags() -> str:
    """The CPU's instruction-set flags (XLA:CPU compiles for the host's): a cache directory shared
    between machines never hands one machine's code to another."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _device() -> tuple:
    devices = jax.devices()
    d = devices[0]
    return (d.platform, getattr(d, "device_kind", ""), getattr(d.client, "platform_version", ""), len(devices))


def _settings() -> tuple:
    """JAX's settings that can change a traced or compiled program (x64, matmul precision, ...)."""
    names = _memo.get("setting_names")
    if names is None:
        names = _memo["setting_names"] = tuple(
            sorted(n for n in jax.config.values if not n.startswith(_IGNORED_SETTINGS))
        )
    return tuple(getattr(jax.config, n, None) for n in names)


def _static_repr(value) -> str:
    """A repr of a static argument that is the same in every process (or :class:`_NotStorable`)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return type(value).__name__ + "(" + ",".join(_static_repr(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_static_repr(k)}:{_static_repr(v)}" for k, v in sorted(value.items())) + "}"
    qualname = getattr(value, "__qualname__", None)
    if callable(value) and qualname and "<" not in qualname and not hasattr(value, "__self__"):
        return f"{value.__module__}.{qualname}"
    text = repr(value)
    if " at 0x" in text or "<" in text:
        raise _NotStorable(text)
    return text


def _aval(leaf) -> str:
    if isinstance(leaf, jax.core.Tracer):
        raise _NotStorable("a traced argument")
    return str(jax.typeof(leaf))


def call_key(static: tuple, args) -> tuple:
    """The in-process key of a call: static values, the tree structure and leaf types of the
    traced arguments and JAX's settings (:class:`_NotStorable` when an argument is traced)."""
    leaves, treedef = jax.tree_util.tree_flatten(args)
    return static, treedef, tuple(_aval(leaf) for leaf in leaves), _settings()


def program_digest(name: str, key: tuple, options=None) -> str:
    """The cross-process digest of program ``name`` for the :func:`call_key` ``key`` compiled with
    XLA ``options`` (:class:`_NotStorable` when part of it is not the same in every process)."""
    static, treedef, avals, settings = key
    text = repr((
        _environment(), _device(), name, _static_repr(static), str(treedef), avals,
        _static_repr(tuple(sorted((options or {}).items()))), repr(settings),
    ))
    if " at 0x" in text:
        raise _NotStorable(text)
    return hashlib.sha256(text.encode()).hexdigest()


def _jax_store():
    """JAX's persistent cache (a key -> bytes store, bounded and locked), or None when it is off."""
    try:
        from jax._src import compilation_cache as cc

        if not cc.is_persistent_cache_enabled():
            return None
        cache = cc._get_cache(jax.devices()[0].client)  # None: JAX could not set up its cache
        return None if cache is None else (cache, cc.compress_executable, cc.decompress_executable)
    except Exception:  # noqa: BLE001 - a JAX release without these internals: no stored programs
        return None


@contextlib.contextmanager
def _jax_cache_off():
    """JAX's persistent cache neither read nor written in the block.

    An executable JAX loaded from its cache does not serialize whole (XLA:CPU drops its kernels:
    a program stored from one fails with "Function ... not found"), and a program stored here
    need not be stored twice. JAX decides once per process whether it uses its cache
    (``is_cache_used``), so the block sets that decision aside, and the outermost of several
    threads' blocks restores it. (Other compiles meanwhile also skip JAX's cache: they compile,
    correctly, and store nothing.)
    """
    try:
        from jax._src import compilation_cache as cc

        cc.is_cache_used(jax.devices()[0].client)  # settle the decision first
        with _off_lock:
            if _off["depth"] == 0:
                _off["saved"] = cc._cache_used
                cc._cache_used = False
            _off["depth"] += 1
    except Exception:  # noqa: BLE001 - other internals: the build may load from JAX's cache (see _hits)
        yield
        return
    try:
        yield
    finally:
        with _off_lock:
            _off["depth"] -= 1
            if _off["depth"] == 0:
                cc._cache_used = _off["saved"]


_off_lock = threading.Lock()
_off = {"depth": 0, "saved": None}
_local = threading.local()


def _count_hit(event, **kwargs):
    if event == "/jax/compilation_cache/cache_hits":
        _local.hits = getattr(_local, "hits", 0) + 1


def _hits() -> int:
    """JAX persistent-cache hits in this thread so far (a build that had one is not stored)."""
    with _lock:
        if not _memo.get("listening"):
            jax.monitoring.register_event_listener(_count_hit)
            _memo["listening"] = True
    return getattr(_local, "hits", 0)


def _entry_name(name: str, digest: str) -> str:
    return f"bayesgmm-{name}-{digest[:40]}"


def _load(name: str, digest: str):
    store = _jax_store()
    if store is None:
        return None
    cache, _, decompress = store
    try:
        data = cache.get(_entry_name(name, digest))
        if data is None:
            return None
        from jax.experimental.serialize_executable import deserialize_and_load

        payload, in_tree, out_tree = pickle.loads(decompress(data))
        compiled = deserialize_and_load(payload, in_tree, out_tree)
    except Exception:  # noqa: BLE001 - an unreadable entry is compiled again and replaced
        _discard(cache, _entry_name(name, digest))
        return None
    jax.monitoring.record_event(HIT_EVENT)
    return compiled


def _discard(cache, entry: str) -> None:
    """Delete an unreadable entry (JAX's store never overwrites one), best effort."""
    path = getattr(cache, "path", None)
    if path is None:
        return
    for suffix in ("-cache", "-atime"):
        try:
            (Path(path) / f"{entry}{suffix}").unlink()
        except OSError:
            pass


def _store(name: str, digest: str, compiled) -> None:
    store = _jax_store()
    if store is None:
        return
    cache, compress, _ = store
    try:
        from jax.experimental.serialize_executable import serialize

        data = compress(pickle.dumps(serialize(compiled), protocol=pickle.HIGHEST_PROTOCOL))
        cache.put(_entry_name(name, digest), data)
    except Exception:  # noqa: BLE001 - a program that cannot be stored is compiled again next time
        return
    jax.monitoring.record_event(STORE_EVENT)


def storable() -> bool:
    """Whether programs are kept whole now: JAX's persistent cache on, one device."""
    return jax.device_count() == 1 and _jax_store() is not None


def load_or_build(name: str, key: tuple, build, options=None, *, whole: bool = True):
    """The compiled program of ``key`` from the persistent cache, else ``build()``, stored.

    ``key``: a :func:`call_key` (or a tuple of its form) that with ``name`` and ``options``
    determines the program. ``whole``: ``build`` returns one ``jax.stages.Compiled``; it is then
    compiled past JAX's own persistent cache (see :func:`_jax_cache_off`) and stored here.
    Otherwise ``build()`` is returned as it is, JAX's cache keeping its parts.
    """
    digest = None
    if whole and storable():
        try:
            digest = program_digest(name, key, options)
        except _NotStorable:
            digest = None
    if digest is None:
        return build()
    compiled = _load(name, digest)
    if compiled is not None:
        return compiled
    hits = _hits()
    with _jax_cache_off():
        compiled = build()
    if isinstance(compiled, jax.stages.Compiled) and _hits() == hits:
        _store(name, digest, compiled)
    return compiled


_INSTANCES: weakref.WeakSet = weakref.WeakSet()


class _PersistentJit:
    """``jax.jit(fun, static_argnames=..., compiler_options=...)`` whose compiled programs are kept
    in the persistent cache whole (see the module docstring); ``lower`` is ``jax.jit``'s."""

    def __init__(self, fun, static_argnames, compiler_options, name):
        self._jit = jax.jit(fun, static_argnames=static_argnames, compiler_options=compiler_options)
        self._static = tuple(static_argnames)
        self._options = compiler_options
        self._name = name
        # only bayesgmm's own module-level functions: its source digest is part of their key
        self._keep = fun.__module__.startswith("bayesgmm") and "<" not in fun.__qualname__
        params = list(inspect.signature(fun).parameters)
        # positions of static arguments that may come positionally
        self._static_positions = {params.index(n): n for n in self._static if n in params}
        self._compiled: collections.OrderedDict = collections.OrderedDict()
        self._pending: dict = {}
        self._lock = threading.Lock()
        functools.update_wrapper(self, fun)  # __name__, __doc__, __wrapped__
        _INSTANCES.add(self)

    def lower(self, *args, **kwargs):
        return self._jit.lower(*args, **kwargs)

    def _cache_size(self) -> int:
        """The compiled programs this function holds (as ``jax.jit``'s ``_cache_size``)."""
        return len(self._compiled) + self._jit._cache_size()

    def _program(self, args, kwargs):
        """``(compiled, dynamic args, dynamic kwargs)`` for a call, or None for ``jax.jit``'s path
        (no persistent cache, several devices, ``jax.disable_jit()``, a traced argument, an
        unhashable static value).

        A program another thread is building is waited for, not built twice.
        """
        if not self._keep or jax.config.jax_disable_jit or not storable():
            return None
        if self._static_positions and len(args) > min(self._static_positions):
            kwargs = dict(kwargs)
            for i in sorted(self._static_positions, reverse=True):
                if i < len(args):
                    kwargs[self._static_positions[i]] = args[i]
                    args = args[:i] + args[i + 1 :]
        static = tuple((k, kwargs[k]) for k in self._static if k in kwargs)
        dynamic = {k: v for k, v in kwargs.items() if k not in self._static}
        try:
            key = call_key(static, (args, dynamic))
            hash(key)
        except (_NotStorable, TypeError):
            return None
        with self._lock:
            compiled = self._compiled.get(key)
            if compiled is not None:
                return compiled, args, dynamic
            pending = self._pending.get(key)
            owner = pending is None
            if owner:
                pending = self._pending[key] = concurrent.futures.Future()
        if not owner:
            return pending.result(), args, dynamic
        try:
            compiled = load_or_build(self._name, key, lambda: self._jit.lower(*args, **kwargs).compile(),
                                     self._options)
        except BaseException as err:
            with self._lock:
                del self._pending[key]
            pending.set_exception(err)
            raise
        with self._lock:
            self._compiled[key] = compiled
            del self._pending[key]
            while len(self._compiled) > _HELD:
                self._compiled.popitem(last=False)
        pending.set_result(compiled)
        return compiled, args, dynamic

    def prepare(self, *args, **kwargs) -> bool:
        """Build (or load) the program of this call without running it; whether it is now held
        (False on ``jax.jit``'s path, where nothing is prepared)."""
        return self._program(args, kwargs) is not None

    def __call__(self, *args, **kwargs):
        found = self._program(args, kwargs)
        if found is None:
            return self._jit(*args, **kwargs)
        compiled, args, dynamic = found
        return compiled(*args, **dynamic)


def persistent_jit(fun, *, static_argnames=(), compiler_options=None, name=None):
    """``jax.jit`` of ``fun`` whose compiled programs a later process loads whole (see above).

    Parameters
    ----------
    fun : callable
        A module-level function of bayesgmm (its name and bayesgmm's source are part of the key);
        any other function is compiled by ``jax.jit`` as usual and not kept.
    static_argnames : tuple of str, passed by keyword or by position
    compiler_options : dict, optional
    name : str, optional (default ``module.qualname`` of ``fun``)
    """
    return _PersistentJit(fun, tuple(static_argnames), compiler_options, name or f"{fun.__module__}.{fun.__qualname__}")


def clear_executables() -> None:
    """Forget the compiled programs this process holds (the persistent cache is untouched)."""
    for inst in list(_INSTANCES):
        inst._compiled.clear()
