"""The core: everything the fits and the posterior share, in JAX and numpy.

==================  ===========================================================================
:mod:`.params`      :class:`GMMParams`, the parameters pytree, and every conversion of its layout
                    (scikit-learn's covariance layouts, full matrices, standard deviations,
                    parameter counts, permutations of the components, data <-> standardised units)
:mod:`.layouts`     the same conversions on bare arrays in scikit-learn's layouts
:mod:`.units`       the standardisation ``(x - shift) / scale`` and its log-Jacobian (host, float64)
:mod:`.prior`       :class:`Prior`, its resolution from the data, the log prior
:mod:`.density`     log densities, responsibilities, the blocked E-step
:mod:`.logdensity`  the log posterior in natural parameters
:mod:`.init`        EM starting points (k-means, k-means++, random)
:mod:`.em`          the EM iteration (E-step statistics, M-step, convergence)
:mod:`.online`      stepwise online EM
:mod:`.programs`    the compiled EM programs, their compile options and the default dtype
:mod:`.sharding`    data parallelism over several devices
:mod:`.linalg`      small batched Cholesky factorisations and triangular solves
==================  ===========================================================================

Imports jax and numpy only (no numpyro, arviz, scikit-learn or matplotlib).
"""

from .density import component_log_prob, log_likelihood, responsibilities
from .em import EMInfo, EMState, em_init, em_step, m_step
from .logdensity import log_posterior
from .online import OnlineEMInfo, OnlineEMState, online_em_init, online_em_step
from .params import COVARIANCE_TYPES, GMMParams
from .programs import fit_em, run_em
from .prior import Prior, ResolvedPrior, log_prior, resolve_prior
from .sharding import data_mesh, sharded_estep

__all__ = [
    "COVARIANCE_TYPES",
    "EMInfo",
    "EMState",
    "GMMParams",
    "OnlineEMInfo",
    "OnlineEMState",
    "Prior",
    "ResolvedPrior",
    "component_log_prob",
    "data_mesh",
    "em_init",
    "em_step",
    "fit_em",
    "log_likelihood",
    "log_posterior",
    "log_prior",
    "m_step",
    "online_em_init",
    "online_em_step",
    "resolve_prior",
    "responsibilities",
    "run_em",
    "sharded_estep",
]
