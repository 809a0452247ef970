"""The compiled sampler programs: the in-process program cache, its keys and the compile options.

The NUTS, NUTS-extension and SVI programs are compiled ahead of time and kept, least recently
used first, in one cache per process keyed by :func:`program_key`: the program's kind, its static
configuration (a :class:`~bayesgmm.infer.nuts.NUTSConfig` or
:class:`~bayesgmm.infer.svi.SVIConfig`: model structure and sampler settings) and the shapes and
dtypes of its arguments (data, prior values, start, sampler state), so that refitting a
same-shaped data set (replicated data sets, cross-validation, the estimator refitting) does not
recompile. Compiling also turns on the persistent compilation cache
(:mod:`bayesgmm._compile_cache`), which keeps the programs between processes.
"""

from __future__ import annotations

import collections

import jax

from .._compile_cache import enable_compilation_cache
from ..core.executables import call_key, clear_executables, load_or_build
from ..core.programs import compiler_options, paused_gc

__all__ = ["program_key", "cached_program", "clear_program_cache", "nuts_compile_options",
           "svi_compile_options"]

#: compiled NUTS, NUTS-extension and SVI programs, least recently used first
_PROGRAM_CACHE: collections.OrderedDict = collections.OrderedDict()
_PROGRAM_CACHE_SIZE = 16


def nuts_compile_options():
    """XLA options of the NUTS programs: the ``"nuts"`` profile (no YNNPACK fusions on CPU).

    (The ``"fast"`` profile compiles about 30% quicker, but it fuses a run's program and its
    continuation's differently, and an extended run must be bit-identical to one longer run.)
    """
    return compiler_options("nuts")


def svi_compile_options():
    """XLA options of the SVI programs: the ``"fast"`` profile (same run time, less compile)."""
    return compiler_options("fast")


def program_key(kind: str, config: tuple, args) -> tuple:
    """The cache key of the ``kind`` program with static ``config`` compiled for ``args``: the
    kind and configuration, the tree structure and leaf types of ``args`` and JAX's settings."""
    return call_key((kind, config), args)


def cached_program(cache_key, build, *, whole: bool = True):
    """``(program, cache_hit)``: the compiled program for ``cache_key``, built on a miss.

    A miss first looks in the persistent cache (:mod:`bayesgmm.core.executables`), which keeps
    the ``jax.stages.Compiled`` that ``build`` returns (``whole``; otherwise a program of several
    compiled parts, kept by JAX's cache part by part) for later processes. ``cache_key=None``
    (progress bars, a user's optimiser object) always builds and stores nothing.
    """
    if cache_key is not None and cache_key in _PROGRAM_CACHE:
        _PROGRAM_CACHE.move_to_end(cache_key)
        return _PROGRAM_CACHE[cache_key], True
    enable_compilation_cache()
    with paused_gc():  # tracing allocates heavily (see bayesgmm.core.programs.paused_gc)
        program = build() if cache_key is None else load_or_build(cache_key[0][0], cache_key, build, whole=whole)
    if cache_key is not None:
        _PROGRAM_CACHE[cache_key] = program
        while len(_PROGRAM_CACHE) > _PROGRAM_CACHE_SIZE:
            _PROGRAM_CACHE.popitem(last=False)
    return program, False


def clear_program_cache():
    """Forget every compiled sampler and EM program this process holds (the persistent cache on
    disk is untouched)."""
    _PROGRAM_CACHE.clear()
    clear_executables()
