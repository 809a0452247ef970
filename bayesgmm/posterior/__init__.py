"""Posterior summaries: relabelling of label-switched draws, diagnostics and the predictive.

The public names are re-exported here; the implementation modules are private-ish.
"""

from .posterior import Posterior, PosteriorWarning
from .relabel import RELABEL_METHODS, apply_permutations, relabel, solve_assignments

__all__ = [
    "RELABEL_METHODS",
    "Posterior",
    "PosteriorWarning",
    "apply_permutations",
    "relabel",
    "solve_assignments",
]
