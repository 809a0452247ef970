"""Shared fixtures: known-truth mixtures and an x64 switch (CPU, fixed seeds)."""

import os
import shutil
import tempfile

import jax
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.stats import special_ortho_group

from bayesgmm.core.layouts import full_covariances


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
