"""NumPyro models of the Bayesian Gaussian mixture (assignments marginalised) for NUTS and VI.

One model function, :func:`gmm_model`, covers the four covariance types. Its sample sites are
named after the fields of :class:`~bayesgmm.core.params.GMMParams` and carry exactly the prior
of :func:`bayesgmm.core.prior.log_prior`, so that for every parameter value

``numpyro.infer.util.log_density(gmm_model, (), kwargs, sample_from_params(p))[0]
== bayesgmm.core.logdensity.log_posterior(p, x, prior, sample_weight)``

(natural parameters, no unconstrained-space Jacobian, no subsampling; the difference is exactly 0, not a
constant). The sites are

==============  ============================================  =================  ================
site            distribution                                  shape              plates
==============  ============================================  =================  ================
``weights``     ``Dirichlet(weight_concentration)``           (K,)               --
``means``       ``Normal(mean_loc, mean_scale)``              (K, D)             component x feature
``scales``      half_normal / half_cauchy / log_normal        full, diag (K, D)  component x feature
                                                              tied (D,)          feature
                                                              spherical (K,)     component
``corr_chol``   ``LKJCholesky(D, lkj_concentration)``         full (K, D, D)     component
                                                              tied (D, D)        --
``covariance_   ``numpyro.factor`` ``-tr(Psi Sigma_k^-1) / 2``  ()                 --
floor``         summed over components (absent when
                ``prior.covariance_floor`` is None)
``obs_loglik``  ``numpyro.factor`` of the weighted            (N,) or (M,)       obs (subsampled)
                pointwise mixture log-likelihood
==============  ============================================  =================  ================

The ``covariance_floor`` factor is the prior's inverse-Wishart-type term (see
:func:`bayesgmm.core.prior.covariance_floor_log_density`); it is computed by the same function
as in ``log_prior``. Prior predictive draws (``x=None``) come from the sample sites only, i.e.
without this factor (a factor ``<= 1``).

Plate dims: ``feature`` is dim -1; ``component`` is dim -2 for the ``(K, D)`` sites and dim -1 for
the ``(K,)``-batched sites (spherical ``scales``, full ``corr_chol``), i.e. the plate named
``component`` is entered at the dim that makes the site's value exactly the GMMParams field.

Special cases
-------------
* ``D == 1`` with ``full``/``tied``: ``LKJCholesky`` needs a dimension of at least 2 and the only
  1x1 correlation Cholesky factor is ``[[1]]``, so ``corr_chol`` is a ``numpyro.deterministic`` site
  equal to ``ones((K, 1, 1))`` (full) or ``ones((1, 1))`` (tied) and contributes no density (the
  core :func:`~bayesgmm.core.prior.lkj_cholesky_log_density` is 0 for ``D == 1`` too).
* ``prior.ordered_means``: the first feature's component means are restricted to increasing order
  (an identifiability constraint). ``means`` is then a *deterministic* site built from two sample
  sites:

  - ``means_first`` of shape (K,): the first column, support ``ordered_vector`` (NUTS/VI work in
    the unconstrained space of NumPyro's ordered transform). Its ``log_prob`` is the product
    Normal density ``sum_k log N(m_k | mean_loc[0], mean_scale[0])`` on the ordered region (and
    ``-inf`` outside), i.e. the *unnormalised* restriction exactly as in the core ``log_prior``;
    the normalised density would add ``log(K!)``. Sampling it (prior predictive) sorts K iid
    Normal draws, which is the normalised restricted distribution.
  - ``means_rest`` of shape (K, D - 1) (absent when ``D == 1``): the other columns,
    ``Normal(mean_loc[1:], mean_scale[1:])``, in the plate ``component`` (the feature axis is an
    event axis here, not the ``feature`` plate).

  Parameter dictionaries for this form come from ``sample_from_params(p, ordered_means=True)``.

Passing ``x=None`` gives the prior (``n_features`` is then required); with ``n_samples`` as well,
an ``x`` site of shape (n_samples, D) is drawn from the mixture (prior/posterior predictive).
"""

from __future__ import annotations

import math
from functools import partial

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax import random
from numpyro.distributions import constraints

from bayesgmm.core.density import mixture_log_likelihood
from bayesgmm.core.missing import masked_log_likelihood
from bayesgmm.core.params import GMMParams, check_covariance_type
from bayesgmm.core.prior import LOG_NORMAL_SIGMA, ResolvedPrior, covariance_floor_log_density

__all__ = ["gmm_model", "model_for", "params_from_sample", "sample_from_params", "PARAM_SITES"]

#: Names of the parameter sites (the GMMParams fields); ``corr_chol`` only for full and tied.
PARAM_SITES = ("weights", "means", "scales", "corr_chol")

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class _OrderedNormal(dist.Distribution):
    """K iid ``Normal(loc, scale)`` restricted to increasing order (unnormalised log density).

    ``log_prob`` is ``sum_k log N(v_k | loc, scale)`` for ordered ``v`` (``v_1 <= ... <= v_K``) and
    ``-inf`` otherwise; it omits the ``log(K!)`` of the normalised order-statistics density, so
    that it equals the core ``log_prior`` term. ``sample`` sorts K iid Normal draws.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.ordered_vector
    reparametrized_params = ["loc", "scale"]
    pytree_data_fields = ("loc", "scale")
    pytree_aux_fields = ("n",)

    def __init__(self, loc, scale, n: int, *, validate_args=None):
        self.loc = jnp.asarray(loc)
        self.scale = jnp.asarray(scale)
        self.n = int(n)
        super().__init__(batch_shape=(), event_shape=(self.n,), validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        z = random.normal(key, tuple(sample_shape) + (self.n,), dtype=jnp.result_type(self.loc))
        return jnp.sort(self.loc + self.scale * z, axis=-1)

    def log_prob(self, value):
        z = (value - self.loc) / self.scale
        lp = jnp.sum(-_HALF_LOG_2PI - jnp.log(self.scale) - 0.5 * z * z, axis=-1)
        ordered = jnp.all(value[..., 1:] >= value[..., :-1], axis=-1)
        return jnp.where(ordered, lp, -jnp.inf)


def _scale_dist(prior: ResolvedPrior):
    """The scale prior of ``prior.scale_prior`` with batch shape ``prior.scale_scale.shape``."""
    family = prior.scale_prior
    ss = prior.scale_scale
    if family == "half_normal":
        return dist.HalfNormal(ss)
    if family == "half_cauchy":
        return dist.HalfCauchy(ss)
    if family == "log_normal":
        return dist.LogNormal(jnp.log(ss), LOG_NORMAL_SIGMA)
    raise ValueError(f"unknown scale prior {family!r}")


def _component_dist(params: GMMParams):
    """Component distributions with batch shape (K,) and event shape (D,)."""
    ct = params.covariance_type
    if ct in ("full", "tied"):
        chol = params.cov_chol()
        chol = jnp.broadcast_to(chol, params.means.shape + params.means.shape[-1:])
        return dist.MultivariateNormal(params.means, scale_tril=chol)
    scales = params.scales if ct == "diag" else params.scales[..., None]
    return dist.Normal(params.means, scales).to_event(1)


def gmm_model(
    x,
    prior: ResolvedPrior,
    n_components: int,
    covariance_type: str,
    sample_weight=None,
    subsample_size: int | None = None,
    *,
    n_features: int | None = None,
    n_samples: int | None = None,
    missing: bool = False,
):
    """NumPyro model of a Bayesian Gaussian mixture with the assignments marginalised.

    Parameters
    ----------
    x : array of shape (n_samples, n_features) or None
        Data. ``None`` gives the prior (and, with ``n_samples``, a predictive ``x`` site).
    prior : ResolvedPrior
        Resolved prior (:func:`bayesgmm.core.prior.resolve_prior`); its dtype sets the model's.
    n_components : int
        Number of components K.
    covariance_type : {"full", "tied", "diag", "spherical"}
    sample_weight : array of shape (n_samples,), optional
        Multiplies each pointwise log-likelihood ``log p(x_n | theta)``.
    subsample_size : int, optional
        Size M of a random minibatch of rows for the likelihood (SVI); the ``obs`` plate scales
        the minibatch log-likelihood by ``N / M`` so that its expectation is the full one. Needs
        a PRNG key (``handlers.seed``); NUTS does not support it. The indices can be fixed by
        substituting the plate ``obs`` (``{"obs": idx}``).
    n_features : int, optional
        D, required when ``x`` is None (otherwise taken from ``x``).
    n_samples : int, optional
        With ``x=None``: draw a site ``x`` of shape (n_samples, D) from the mixture.
    missing : bool, default=False
        NaN in ``x`` marks a missing cell: each row's likelihood is the marginal density of its
        observed cells (:func:`bayesgmm.core.missing.masked_log_likelihood`, missing at random).
        Static: ``False`` keeps the complete-data likelihood (with its closed-form gradient) and
        its compiled program unchanged.

    Returns
    -------
    None
        Sites: ``weights`` (K,), ``means`` (K, D), ``scales``, ``corr_chol`` (full/tied),
        ``obs_loglik`` (factor), see the module docstring; with ``prior.ordered_means`` also
        ``means_first`` (K,) and ``means_rest`` (K, D-1), ``means`` being deterministic.
    """
    check_covariance_type(covariance_type)
    k = int(n_components)
    dtype = jnp.result_type(prior.mean_loc)
    if x is not None:
        x = jnp.asarray(x, dtype)
        if x.ndim != 2:
            raise ValueError(f"x must have shape (n_samples, n_features), got {x.shape}.")
        d = x.shape[1]
    elif n_features is None:
        raise ValueError("gmm_model(x=None, ...) needs n_features.")
    else:
        d = int(n_features)

    if k == 1:
        # a Dirichlet over one component is the point mass w = (1,) (log density 0): no latent site
        # (a zero-dimensional unconstrained site breaks NumPyro's autoguides)
        weights = jnp.ones((1,), dtype)
    else:
        weights = numpyro.sample("weights", dist.Dirichlet(prior.weight_concentration))

    # -- means ----------------------------------------------------------------------------------
    if prior.ordered_means:
        first = numpyro.sample(
            "means_first", _OrderedNormal(prior.mean_loc[0], prior.mean_scale[0], k)
        )
        cols = [first[..., None]]
        if d > 1:
            with numpyro.plate("component", k, dim=-1):
                rest = numpyro.sample(
                    "means_rest", dist.Normal(prior.mean_loc[1:], prior.mean_scale[1:]).to_event(1)
                )
            cols.append(rest)
        means = numpyro.deterministic("means", jnp.concatenate(cols, axis=-1))
    else:
        with numpyro.plate("component", k, dim=-2), numpyro.plate("feature", d, dim=-1):
            means = numpyro.sample("means", dist.Normal(prior.mean_loc, prior.mean_scale))

    # -- scales ---------------------------------------------------------------------------------
    scale_dist = _scale_dist(prior)
    if covariance_type in ("full", "diag"):
        with numpyro.plate("component", k, dim=-2), numpyro.plate("feature", d, dim=-1):
            scales = numpyro.sample("scales", scale_dist)
    elif covariance_type == "tied":
        with numpyro.plate("feature", d, dim=-1):
            scales = numpyro.sample("scales", scale_dist)
    else:
        with numpyro.plate("component", k, dim=-1):
            scales = numpyro.sample("scales", scale_dist)

    # -- correlations ---------------------------------------------------------------------------
    corr_chol = None
    if covariance_type in ("full", "tied"):
        shape = (k, d, d) if covariance_type == "full" else (d, d)
        if d == 1:
            corr_chol = numpyro.deterministic("corr_chol", jnp.ones(shape, dtype))
        elif covariance_type == "full":
            with numpyro.plate("component", k, dim=-1):
                corr_chol = numpyro.sample(
                    "corr_chol", dist.LKJCholesky(d, prior.lkj_concentration)
                )
        else:
            corr_chol = numpyro.sample("corr_chol", dist.LKJCholesky(d, prior.lkj_concentration))

    params = GMMParams(weights, means, scales, corr_chol, covariance_type)
    if prior.covariance_floor is not None:  # the prior's covariance factor (one definition)
        numpyro.factor("covariance_floor", covariance_floor_log_density(params, prior.covariance_floor))

    # -- likelihood -----------------------------------------------------------------------------
    if x is not None:
        n = x.shape[0]
        w = None if sample_weight is None else jnp.asarray(sample_weight, dtype)
        with numpyro.plate("obs", n, subsample_size=subsample_size, dim=-1):
            xs = numpyro.subsample(x, event_dim=1)
            if missing:  # NaN cells marginalised out (autodiff gradient)
                ll = masked_log_likelihood(params, xs)
            else:
                ll = mixture_log_likelihood(params, xs)  # closed-form gradient (one E-step pass)
            if w is not None:
                ws = numpyro.subsample(w, event_dim=0)
                ll = jnp.where(ws != 0, ws * ll, 0.0)
            numpyro.factor("obs_loglik", ll)
    elif n_samples is not None:
        mixture = dist.MixtureSameFamily(dist.Categorical(probs=weights), _component_dist(params))
        with numpyro.plate("obs", int(n_samples), dim=-1):
            numpyro.sample("x", mixture)


def model_for(covariance_type: str):
    """:func:`gmm_model` with ``covariance_type`` bound (keyword), for a fixed covariance type.

    Returns
    -------
    callable ``model(x, prior, n_components, sample_weight=None, subsample_size=None, **kw)``
    """
    check_covariance_type(covariance_type)
    return partial(gmm_model, covariance_type=covariance_type)


def params_from_sample(sample: dict, covariance_type: str) -> GMMParams:
    """Build GMMParams from NumPyro site values (e.g. ``mcmc.get_samples()``).

    Parameters
    ----------
    sample : dict
        Site values with any leading batch axes ``(...)``: ``weights`` (..., K) (absent for K == 1); ``means``
        (..., K, D), or ``means_first`` (..., K) and ``means_rest`` (..., K, D-1) of the
        ordered-means model; ``scales``; ``corr_chol`` (full/tied; filled with ones for D == 1
        when absent). Extra keys (``obs_loglik``, ``x``, ...) are ignored.
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    GMMParams with batch shape ``(...)``
    """
    check_covariance_type(covariance_type)
    if "means" in sample:
        means = jnp.asarray(sample["means"])
    else:
        cols = [jnp.asarray(sample["means_first"])[..., None]]
        if "means_rest" in sample:
            cols.append(jnp.asarray(sample["means_rest"]))
        means = jnp.concatenate(cols, axis=-1)
    if "weights" in sample:
        weights = jnp.asarray(sample["weights"])
    elif means.shape[-2] == 1:  # one component: the model has no weights site
        weights = jnp.ones(means.shape[:-1], means.dtype)
    else:
        raise KeyError("sample has no 'weights' (only a one-component model may omit it).")
    scales = jnp.asarray(sample["scales"])
    corr_chol = None
    if covariance_type in ("full", "tied"):
        if "corr_chol" in sample:
            corr_chol = jnp.asarray(sample["corr_chol"])
        elif means.shape[-1] == 1:
            batch = means.shape[:-2] if covariance_type == "tied" else means.shape[:-1]
            corr_chol = jnp.ones(batch + (1, 1), means.dtype)
        else:
            raise KeyError(f"sample has no 'corr_chol' (needed for covariance_type={covariance_type!r}).")
    return GMMParams(weights, means, scales, corr_chol, covariance_type)


def sample_from_params(params: GMMParams, ordered_means: bool = False) -> dict:
    """Site values of :func:`gmm_model` for ``params`` (the inverse of :func:`params_from_sample`).

    Parameters
    ----------
    params : GMMParams, possibly with leading batch axes
    ordered_means : bool, default=False
        Return the sites of the ordered-means model (``means_first`` (..., K), ``means_rest``
        (..., K, D-1) when D > 1) instead of ``means``.

    Returns
    -------
    dict
        ``weights``, ``means`` (or ``means_first``/``means_rest``), ``scales`` and, for full and
        tied, ``corr_chol``; usable as the ``params`` of ``numpyro.infer.util.log_density`` or
        with ``init_to_value``.
    """
    out = {"scales": params.scales}
    if params.n_components > 1:  # one component: no weights site (see gmm_model)
        out["weights"] = params.weights
    if ordered_means:
        out["means_first"] = params.means[..., 0]
        if params.n_features > 1:
            out["means_rest"] = params.means[..., 1:]
    else:
        out["means"] = params.means
    if params.covariance_type in ("full", "tied"):
        out["corr_chol"] = params.corr_chol
    return out
