"""The persistent compilation cache: compiled XLA programs kept on disk between processes.

A fresh process (a new notebook kernel, a script, the command line) would otherwise compile every
program again. :func:`enable_compilation_cache` points JAX's persistent cache at a directory of the
user's cache folder the first time bayesgmm compiles anything (never at import), so the second
process that fits the same shapes loads its programs instead of compiling them.

Where it goes, following each platform's convention:

* Linux and other Unix: ``$XDG_CACHE_HOME/bayesgmm/xla`` (default ``~/.cache/bayesgmm/xla``)
* macOS: ``~/Library/Caches/bayesgmm/xla``
* Windows: ``%LOCALAPPDATA%\\bayesgmm\\Cache\\xla``

The environment variable ``BAYESGMM_COMPILATION_CACHE`` moves it (a directory) or turns it off
(``0``, ``off``, ``false``, ``no`` or an empty value). ``BAYESGMM_COMPILATION_CACHE_SIZE`` bounds it
(bytes, or with a ``K``/``M``/``G`` suffix; default ``1G``): past the bound the least recently used
programs are deleted. Several processes may share the directory: JAX guards every read and write
of a bounded cache with a file lock.

bayesgmm's own programs (EM, scoring, NUTS, SVI) are kept in the same cache *whole*
(:mod:`bayesgmm.core.executables`): a later process loads them without tracing or lowering them,
which JAX's cache alone needs to find a program.

If you configured JAX's own cache (``JAX_COMPILATION_CACHE_DIR`` / ``jax_compilation_cache_dir``,
or ``jax_enable_compilation_cache=False``), bayesgmm leaves it exactly as you set it (its whole
programs then go to your directory, or nowhere). Otherwise enabling the cache is a JAX-wide
setting of the process: other JAX programs compiled after the first fit are cached in the same
directory.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from pathlib import Path

__all__ = ["cache_directory", "enable_compilation_cache"]

ENV_DIR = "BAYESGMM_COMPILATION_CACHE"
ENV_SIZE = "BAYESGMM_COMPILATION_CACHE_SIZE"
_OFF = ("0", "off", "false", "no", "none", "")
_DEFAULT_SIZE = 1 << 30

_lock = threading.Lock()
_state: dict = {"done": False, "directory": None}


def _default_directory() -> Path:
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "bayesgmm" / "xla"
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / "bayesgmm" / "Cache" / "xla"
    base = os.environ.get("XDG_CACHE_HOME") or str(home / ".cache")
    return Path(base) / "bayesgmm" / "xla"


def cache_directory() -> Path | None:
    """The directory bayesgmm's compilation cache uses (or would use), None when turned off."""
    value = os.environ.get(ENV_DIR)
    if value is None:
        return _default_directory()
    if value.strip().lower() in _OFF:
        return None
    return Path(value).expanduser()


def _size_limit() -> int:
    value = os.environ.get(ENV_SIZE, "").strip()
    if not value:
        return _DEFAULT_SIZE
    factor = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(value[-1].lower(), 1)
    number = value[:-1] if factor > 1 else value
    try:
        size = int(float(number) * factor)
    except ValueError:
        raise ValueError(
            f"{ENV_SIZE}={value!r} is not a size; use bytes or a number with K, M or G (e.g. 500M)."
        ) from None
    if size <= 0:
        raise ValueError(f"{ENV_SIZE}={value!r} must be positive; set {ENV_DIR}=0 to turn the cache off.")
    return size


def enable_compilation_cache() -> Path | None:
    """Turn on the persistent compilation cache (once per process; later calls return at once).

    Returns
    -------
    Path or None
        The directory in use, or None when the cache is off (turned off, configured by the user
        for JAX directly -- then JAX's own settings apply -- or not writable).
    """
    if _state["done"]:
        return _state["directory"]
    with _lock:
        if _state["done"]:
            return _state["directory"]
        _state["directory"] = _configure()
        _state["done"] = True
        return _state["directory"]


def _configure() -> Path | None:
    import jax

    if jax.config.jax_compilation_cache_dir or not jax.config.jax_enable_compilation_cache:
        return None  # the user's own choice
    directory = cache_directory()
    if directory is None:
        return None
    size = _size_limit()
    try:
        import filelock  # noqa: F401  (JAX needs it to bound the cache and lock it)
    except ImportError:  # pragma: no cover - filelock is a dependency
        warnings.warn(
            "bayesgmm's compilation cache is off: the 'filelock' package is missing "
            "(pip install filelock).",
            UserWarning,
            stacklevel=3,
        )
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        warnings.warn(
            f"bayesgmm's compilation cache is off: cannot write to {directory} ({err}). Set "
            f"{ENV_DIR} to a writable directory, or to 0 to silence this.",
            UserWarning,
            stacklevel=3,
        )
        return None
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_compilation_cache_max_size", size)
    # bayesgmm's programs are built to compile in well under JAX's default threshold of 1 s
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return directory
