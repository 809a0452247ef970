"""Runners: ``(rng_key, data, spec) -> immutable result``."""

from .map_em import MAPResult, fit_map

__all__ = ["MAPResult", "fit_map"]
