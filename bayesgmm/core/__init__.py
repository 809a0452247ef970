"""Pure-JAX core: parameters, priors, log densities, EM and its compiled programs, initialisation.

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
