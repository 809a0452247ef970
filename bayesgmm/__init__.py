"""bayesgmm: Bayesian Gaussian mixtures on JAX and NumPyro."""

from .core.logdensity import log_posterior
from .core.params import GMMParams
from .core.prior import Prior
from .estimator import GaussianMixture

__version__ = "0.1.0"
__all__ = ["GaussianMixture", "GMMParams", "Prior", "log_posterior", "__version__"]
