"""NumPyro models of the Bayesian Gaussian mixture (NUTS, VI) and conversions to/from GMMParams."""

from .gmm import PARAM_SITES, gmm_model, model_for, params_from_sample, sample_from_params

__all__ = ["PARAM_SITES", "gmm_model", "model_for", "params_from_sample", "sample_from_params"]
