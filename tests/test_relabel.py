"""Relabelling: permuted draws come back exactly (pivot and Stephens), assignment solvers, costs."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import full_covs, make_pivot, sample_mixture, synthetic_draws, true_mixture
from scipy.optimize import linear_sum_assignment

from bayesgmm.core.params import COVARIANCE_TYPES, GMMParams
from bayesgmm.posterior import apply_permutations, relabel, solve_assignments
from bayesgmm.posterior.relabel import pivot_costs

K, D = 3, 2


def random_perms(batch, k, seed):
    rng = np.random.default_rng(seed)
    return np.argsort(rng.random(tuple(batch) + (k,)), axis=-1)


def inverse_perms(perms):
    return np.argsort(perms, axis=-1)


def assert_params_equal(a: GMMParams, b: GMMParams):
    assert a.covariance_type == b.covariance_type
    for name in ("weights", "means", "scales", "corr_chol"):
        x, y = getattr(a, name), getattr(b, name)
        if x is None:
            assert y is None
        else:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)


# -- apply_permutations --------------------------------------------------------------------------
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_apply_permutations_matches_one_permutation_per_draw(ct):
    pivot = make_pivot(ct)
    draws = synthetic_draws(pivot, chains=2, draws=5, seed=1)
    perms = random_perms((2, 5), K, seed=2)
    out = apply_permutations(draws, perms)
    assert isinstance(out.means, np.ndarray) and out.means.dtype == np.float64
    for c, s in itertools.product(range(2), range(5)):
        expected = draws[c, s].permute(jnp.asarray(perms[c, s]))
        got = out[c, s]
        for name in ("weights", "means", "scales", "corr_chol"):
            e, g = getattr(expected, name), getattr(got, name)
            if e is None:
                assert g is None
            else:
                np.testing.assert_allclose(g, np.asarray(e), rtol=1e-6, err_msg=name)
    if ct == "tied":  # no component axis: untouched
        assert out.scales is draws.scales and out.corr_chol is draws.corr_chol
    # inverse permutations undo it exactly
    assert_params_equal(apply_permutations(out, inverse_perms(perms)), draws)


def test_apply_permutations_jax_arrays_and_shape_check():
    pivot = make_pivot("full")
    draws = synthetic_draws(pivot, chains=1, draws=3).astype(jnp.float32)
    perms = random_perms((1, 3), K, seed=0)
    out = apply_permutations(draws, perms)
    assert isinstance(out.means, type(jnp.zeros(1)))
    np.testing.assert_array_equal(np.asarray(out.means)[0, 1], np.asarray(draws.means)[0, 1][perms[0, 1]])
    with pytest.raises(ValueError, match="perms must have shape"):
        apply_permutations(draws, perms[0])


# -- exact recovery ------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["pivot", "stephens"])
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_permuted_draws_relabel_back_exactly(ct, method):
    pivot = make_pivot(ct, seed=3)
    clean = synthetic_draws(pivot, chains=2, draws=60, seed=4)
    pi = random_perms((2, 60), K, seed=5)
    raw = apply_permutations(clean, pi)  # raw[k] = clean[pi[k]]
    x = None
    if method == "stephens":
        w, m, c = true_mixture(ct, K, D, 3)
        x, _ = sample_mixture(w, m, full_covs(ct, c, K, D), 300, seed=6)
    out, perms = relabel(raw, pivot, method, x=x)
    assert perms.shape == (2, 60, K) and perms.dtype == np.int64
    np.testing.assert_array_equal(perms, inverse_perms(pi))
    assert_params_equal(out, clean)


@pytest.mark.parametrize("ct", ["full", "spherical"])
def test_pivot_exact_for_large_k_scipy_path(ct):
    k = 8  # above the brute-force limit: scipy's linear_sum_assignment
    pivot = make_pivot(ct, k=k, d=3, seed=7, separation=8.0)
    clean = synthetic_draws(pivot, chains=2, draws=20, seed=8, noise=0.02)
    pi = random_perms((2, 20), k, seed=9)
    out, perms = relabel(apply_permutations(clean, pi), pivot)
    np.testing.assert_array_equal(perms, inverse_perms(pi))
    assert_params_equal(out, clean)


def test_single_component_is_identity():
    pivot = make_pivot("diag", k=1)
    draws = synthetic_draws(pivot, chains=2, draws=4)
    out, perms = relabel(draws, pivot)
    np.testing.assert_array_equal(perms, np.zeros((2, 4, 1)))
    assert_params_equal(out, draws)


def test_stephens_repairs_a_partly_wrong_labelling():
    ct = "full"
    pivot = make_pivot(ct, seed=10)
    clean = synthetic_draws(pivot, chains=2, draws=100, seed=11)
    pi = random_perms((2, 100), K, seed=12)
    raw = apply_permutations(clean, pi)
    init = inverse_perms(pi).copy()
    wrong = np.random.default_rng(13).random((2, 100)) < 0.3  # 30% of draws start mislabelled
    init[wrong] = init[wrong][:, [1, 2, 0]]
    w, m, c = true_mixture(ct, K, D, 10)
    x, _ = sample_mixture(w, m, full_covs(ct, c, K, D), 200, seed=14)
    out, perms = relabel(raw, pivot, "stephens", x=x, init_permutations=init)
    np.testing.assert_array_equal(perms, inverse_perms(pi))
    assert_params_equal(out, clean)


def test_stephens_sample_weight_and_errors():
    pivot = make_pivot("diag", seed=0)
    raw = synthetic_draws(pivot, chains=1, draws=10)
    with pytest.raises(ValueError, match="needs the data"):
        relabel(raw, pivot, "stephens")
    with pytest.raises(ValueError, match="not a relabelling method"):
        relabel(raw, pivot, "ecr")
    with pytest.raises(ValueError, match="covariance_type"):
        relabel(raw, make_pivot("full"), "pivot")
    with pytest.raises(ValueError, match="no batch axes"):
        relabel(raw, raw[0], "pivot")
    w, m, c = true_mixture("diag", K, D, 0)
    x, _ = sample_mixture(w, m, full_covs("diag", c, K, D), 100, seed=0)
    out, perms = relabel(raw, pivot, "stephens", x=x, sample_weight=np.linspace(0.5, 2, 100))
    np.testing.assert_array_equal(perms, np.broadcast_to(np.arange(K), (1, 10, K)))


def test_stephens_small_budget_blocks_match():
    """Blocking over draws and rows does not change the result."""
    pivot = make_pivot("tied", seed=1)
    clean = synthetic_draws(pivot, chains=1, draws=13, seed=2, noise=0.3)
    raw = apply_permutations(clean, random_perms((1, 13), K, seed=3))
    w, m, c = true_mixture("tied", K, D, 1)
    x, _ = sample_mixture(w, m, full_covs("tied", c, K, D), 301, seed=4)
    _, p_big = relabel(raw, pivot, "stephens", x=x)
    _, p_small = relabel(raw, pivot, "stephens", x=x, budget=500)  # many draw and row blocks
    np.testing.assert_array_equal(p_big, p_small)


# -- assignment and costs ------------------------------------------------------------------------
@pytest.mark.parametrize("k", [2, 3, 4, 5, 6, 7])
def test_solve_assignments_is_optimal(k):
    costs = np.random.default_rng(k).random((50, k, k))
    perms = solve_assignments(costs)
    assert sorted(perms[0]) == list(range(k))
    got = np.take_along_axis(costs, perms[:, :, None], axis=2)[..., 0].sum(-1)
    best = []
    for c in costs:
        r, col = linear_sum_assignment(c)
        best.append(c[r, col].sum())
    np.testing.assert_allclose(got, best, rtol=1e-12)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_pivot_cost_zero_on_match_and_affine_invariant(ct):
    pivot = make_pivot(ct, seed=2)
    draws = synthetic_draws(pivot, chains=1, draws=4, seed=3, noise=0.1)[0]
    c = pivot_costs(draws, pivot)
    assert c.shape == (4, K, K) and np.all(c >= -1e-4)
    same = pivot_costs(GMMParams(*(None if a is None else np.asarray(a)[None] for a in
                                   (pivot.weights, pivot.means, pivot.scales, pivot.corr_chol)), ct), pivot)[0]
    np.testing.assert_allclose(np.diag(same), 0.0, atol=1e-4)
    assert np.all(same[~np.eye(K, dtype=bool)] > 1.0)
    # data units x -> a * x + b (a common for spherical): the cost is unchanged
    a = np.array([3.0, 3.0]) if ct == "spherical" else np.array([10.0, 0.1])
    b = np.array([1000.0, -5.0])

    def move(p):
        s = a if ct != "spherical" else a[0]
        return p.replace(means=np.asarray(p.means) * a + b, scales=np.asarray(p.scales) * s)

    np.testing.assert_allclose(pivot_costs(move(draws), move(pivot)), c, rtol=2e-3, atol=2e-3)
