"""bayesgmm: Bayesian Gaussian mixtures on JAX and NumPyro.

One model -- Dirichlet weights, Normal means, LKJ correlations with scale priors -- fitted three ways
with the same prior: a jitted MAP-EM (:class:`GaussianMixture`), NUTS and variational inference
(:meth:`GaussianMixture.fit_posterior`, returning a relabelled :class:`Posterior`).
"""

from ._version import __version__
from .core.logdensity import log_posterior
from .core.params import GMMParams
from .core.prior import Prior
from .comparison import compare
from .estimator import CollapsedComponentWarning, GaussianMixture
from .io import load, load_posterior
from .selection import select

__all__ = [
    "CollapsedComponentWarning", "GaussianMixture", "GMMParams", "Posterior", "Prior", "compare", "load",
    "load_posterior", "log_posterior", "select", "__version__",
]


def __getattr__(name):
    # ArviZ is imported only when posterior summaries are used
    if name == "Posterior":
        from .posterior import Posterior

        return Posterior
    raise AttributeError(f"module 'bayesgmm' has no attribute {name!r}")
