"""Shared fixtures and stand-ins (CPU, fixed seeds).

Known-truth mixtures (:func:`true_mixture`, :func:`sample_mixture`, :func:`match_components`),
parameters from covariances (:func:`params_from_cov`), iid posterior draws around known parameters
(:func:`synthetic_draws`) wrapped as the samplers' own result type (:func:`sampler_result`, a real
``bayesgmm.infer.state.SamplerResult``) or as a ``Posterior`` (:func:`posterior_around`), the
unconstrained parametrisation of a MAP (:func:`unconstrained`) and an x64 switch.
"""

import os
import shutil
import tempfile

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.stats import special_ortho_group

from bayesgmm.core.layouts import full_covariances
from bayesgmm.core.params import GMMParams
from bayesgmm.infer.state import SamplerResult


def pytest_configure(config):
    """One temporary compilation cache for the whole run, shared by the xdist workers (they start
    after this hook and inherit the environment), so that a program is compiled once per run; the
    user's own cache directory is never touched."""
    if hasattr(config, "workerinput") or "BAYESGMM_COMPILATION_CACHE" in os.environ:
        return
    config._bayesgmm_cache = tempfile.mkdtemp(prefix="bayesgmm-test-xla-")
    os.environ["BAYESGMM_COMPILATION_CACHE"] = config._bayesgmm_cache


def pytest_unconfigure(config):
    path = getattr(config, "_bayesgmm_cache", None)
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.environ.pop("BAYESGMM_COMPILATION_CACHE", None)


def _n_memory_mappings():
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:  # not Linux
        return 0


@pytest.fixture(autouse=True)
def _release_compiled_programs():
    """Drop JAX's compiled programs once the process holds many memory mappings.

    Every XLA:CPU executable keeps its own memory mappings; one process running the whole suite
    compiles thousands of programs and would otherwise reach the kernel's per-process mapping limit
    (``vm.max_map_count``, 65530 by default), which crashes XLA mid-compile (SIGSEGV / SIGABRT).
    """
    yield
    if _n_memory_mappings() > 15_000:
        from bayesgmm.infer import programs

        programs.clear_program_cache()
        jax.clear_caches()


@pytest.fixture
def x64():
    """Run the test body with JAX's 64-bit mode (restored afterwards)."""
    with jax.enable_x64(True):
        yield


def true_mixture(covariance_type, n_components, n_features, seed, separation=6.0):
    """A well-separated mixture of the given covariance structure (weights, means, covariances)."""
    rng = np.random.default_rng(seed)
    k, d = n_components, n_features
    weights = rng.dirichlet(np.full(k, 8.0))
    # means on a spread-out grid so that components are well separated
    means = rng.normal(size=(k, d))
    means = means / np.linalg.norm(means, axis=1, keepdims=True) * separation
    means[:, 0] += separation * np.arange(k)

    def rand_cov():
        if d == 1:
            return np.array([[rng.uniform(0.5, 1.5) ** 2]])
        q = special_ortho_group.rvs(d, random_state=rng.integers(1 << 31)) if d > 1 else np.eye(1)
        ev = rng.uniform(0.3, 1.5, d) ** 2
        return (q * ev) @ q.T

    if covariance_type == "full":
        covs = np.stack([rand_cov() for _ in range(k)])
    elif covariance_type == "tied":
        covs = rand_cov()
    elif covariance_type == "diag":
        covs = rng.uniform(0.4, 1.4, (k, d)) ** 2
    else:
        covs = rng.uniform(0.4, 1.4, k) ** 2
    return weights, means, covs


def full_covs(covariance_type, covs, k, d):
    """Full (K, D, D) matrices from covariances in scikit-learn's layout (tests/test_layouts.py
    checks the conversion against the per-type formulas)."""
    return full_covariances(np.asarray(covs), covariance_type, k, d)


def sample_mixture(weights, means, covs_full, n, seed):
    rng = np.random.default_rng(seed)
    z = rng.choice(len(weights), size=n, p=weights)
    x = np.empty((n, means.shape[1]))
    for k in range(len(weights)):
        idx = z == k
        x[idx] = rng.multivariate_normal(means[k], covs_full[k], idx.sum())
    return x, z


def match_components(est_means, true_means):
    """Permutation ``perm`` with est[perm[k]] matching true component k."""
    cost = ((true_means[:, None, :] - est_means[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return cols[np.argsort(rows)]


# -- posterior stand-ins: iid draws around known parameters, no sampler ---------------------------
def params_from_cov(weights, means, covs, ct) -> GMMParams:
    """NumPy float64 version of GMMParams.from_covariances (no trip through float32)."""
    weights, means, covs = (np.asarray(a, np.float64) for a in (weights, means, covs))
    if ct in ("full", "tied"):
        scales = np.sqrt(np.diagonal(covs, axis1=-2, axis2=-1))
        corr = covs / (scales[..., :, None] * scales[..., None, :])
        return GMMParams(weights, means, scales, np.linalg.cholesky(corr), ct)
    return GMMParams(weights, means, np.sqrt(covs), None, ct)


def make_pivot(ct, k=3, d=2, seed=0, separation=6.0) -> GMMParams:
    """The float64 parameters of :func:`true_mixture`."""
    w, m, c = true_mixture(ct, k, d, seed, separation=separation)
    return params_from_cov(w, m, c, ct)


def synthetic_draws(pivot: GMMParams, chains=4, draws=200, seed=0, noise=0.03, concentration=2000.0) -> GMMParams:
    """Well-mixed iid ``(chain, draw)`` draws around ``pivot`` (weights, means and covariances all
    perturbed), numpy float64: weights ~ Dirichlet(concentration * pivot.weights)."""
    rng = np.random.default_rng(seed)
    ct = pivot.covariance_type
    b = (chains, draws)
    k, d = pivot.n_components, pivot.n_features
    weights = rng.dirichlet(np.asarray(pivot.weights) * concentration, size=b)
    means = pivot.means + noise * rng.standard_normal(b + (k, d))
    if ct in ("full", "tied"):
        u = np.asarray(pivot.scales)[..., :, None] * np.asarray(pivot.corr_chol)
        cov = u @ np.swapaxes(u, -1, -2)
    else:
        cov = np.asarray(pivot.scales) ** 2
    if ct in ("full", "tied"):
        shape = b + cov.shape[:-2] + (d, d)
        a = np.eye(d) + noise * rng.standard_normal(shape)
        covs = a @ cov @ np.swapaxes(a, -1, -2)
    else:
        covs = cov * np.exp(2 * noise * rng.standard_normal(b + cov.shape))
    return params_from_cov(weights, means, covs, ct)


def sampler_result(draws: GMMParams, method="nuts", sample_stats=None, info=None, num_warmup=0) -> SamplerResult:
    """The samplers' own result type around ``draws`` (leading axes ``(chain, draw)``); ``prior``,
    ``shift``, ``scale`` and ``state`` are left at None, as for a result without a sampler."""
    c, s = np.shape(draws.weights)[:2]
    return SamplerResult(draws, dict(sample_stats or {}), method, dict(info or {}), num_warmup, s, c)


def posterior_around(truth: GMMParams, x, pivot=None, method="nuts", chains=2, draws=100, noise=0.05, seed=0,
                     concentration=2000.0, shift=None, **posterior_kwargs):
    """A ``Posterior`` of :func:`synthetic_draws` around ``truth`` (means moved by ``shift``),
    relabelled against ``pivot`` (default ``truth``), warnings silenced."""
    from bayesgmm.posterior import Posterior

    d = synthetic_draws(truth, chains, draws, seed=seed, noise=noise, concentration=concentration)
    if shift is not None:
        d = d.replace(means=d.means + shift)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Posterior(sampler_result(d, method), x, truth if pivot is None else pivot, **posterior_kwargs)


def value_and_grad_for_scipy(fun):
    """``fun``'s value and gradient for ``scipy.optimize.minimize(..., jac=True)``, as float64
    NumPy: one compiled program for both (a jitted function and a jitted gradient compile the
    objective twice)."""
    both = jax.jit(jax.value_and_grad(fun))

    def call(v):
        f, g = both(v)
        return float(f), np.asarray(g, np.float64)

    return call


def unconstrained(params: GMMParams):
    """``(flat, unpack)``: the MAP's unconstrained coordinates (log weights, means, log scales,
    CorrCholesky-inverse correlations) as one vector, and the function that maps a vector back
    to ``GMMParams`` (softmax weights)."""
    from numpyro.distributions.transforms import CorrCholeskyTransform

    t = CorrCholeskyTransform()

    def to_flat(p):
        parts = [jnp.log(p.weights), p.means.ravel(), jnp.log(p.scales).ravel()]
        if p.corr_chol is not None:
            parts.append(t.inv(p.corr_chol).ravel())
        return jnp.concatenate(parts)

    shapes = [np.shape(p) for p in (params.weights, params.means, params.scales)]
    cshape = None if params.corr_chol is None else jax.eval_shape(t.inv, params.corr_chol).shape
    flat = jax.jit(to_flat)(params)  # one program (op by op, each operation compiles its own)

    def unpack(v):
        i = 0
        out = []
        for s in shapes:
            size = int(np.prod(s))
            out.append(v[i : i + size].reshape(s))
            i += size
        logw, mu, logs = out
        corr = None
        if cshape is not None:
            corr = t(v[i:].reshape(cshape))
        w = jax.nn.softmax(logw)
        return GMMParams(w, mu, jnp.exp(logs), corr, params.covariance_type)

    return flat, unpack
