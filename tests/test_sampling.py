"""Tests of the posterior runners (NUTS and SVI): recovery, exact log densities, calibration.

Checks are scaled by posterior standard deviations (not magic tolerances); labels are matched to a
pivot (the MAP, itself matched to the truth) draw by draw. Sized for a 2-core CI machine: the NUTS
programs are compiled once per shape and reused (the runner caches them), so the replicated-data
calibration pays one compilation.
"""

import dataclasses
import itertools
import re

from bayesgmm import _arviz
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.stats import binomtest

from bayesgmm import Prior, log_posterior
from bayesgmm.core.params import GMMParams
from bayesgmm.infer import fit_map
from bayesgmm.infer.nuts import run_nuts
from bayesgmm.infer._numpyro import state_position
from bayesgmm.infer.state import SamplerResult
from bayesgmm.infer.svi import GUIDES, run_svi
from conftest import full_covs, match_components, sample_mixture, true_mixture

K, D, N = 3, 2, 600
# R-hat <= 1.01 over 21 entries needs about 1000 draws per chain to hold with a margin (with 300
# its own noise crosses 1.01 for some seeds); sampling them costs ~1 s, compilation dominates
NW, NS = 500, 1000


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _align(draws: GMMParams, pivot_means):
    """Match the labels of every draw to a pivot.

    ``draws`` has leading axes (chain, draw); each draw's permutation minimises the squared
    distance between its means and ``pivot_means`` (K, D) over all K! permutations (K small).

    Returns
    -------
    weights (C, S, K), means (C, S, K, D), covariances (C, S, K, D, D) relabelled, and the
    permutations (C, S, K).
    """
    w = np.asarray(draws.weights)
    m = np.asarray(draws.means)
    c = np.asarray(draws.covariances())
    perms = np.array(list(itertools.permutations(range(m.shape[-2]))))  # (P, K)
    cost = ((m[..., perms, :] - pivot_means) ** 2).sum((-2, -1))  # (C, S, P)
    best = perms[np.argmin(cost, axis=-1)]  # (C, S, K)

    def take(a):
        return np.take_along_axis(a, best.reshape(best.shape + (1,) * (a.ndim - 3)), axis=2)

    return take(w), take(m), take(c), best


def _summary(a):
    """Posterior mean and sd over (chain, draw)."""
    return a.mean(axis=(0, 1)), a.std(axis=(0, 1), ddof=1)


def _rhat(a):
    """Rank-normalised split R-hat of every entry of ``a`` (chain, draw, ...)."""
    return _arviz.rhat({"v": a}, var_names=None)["v"]


@pytest.fixture(scope="module")
def problem():
    """Well-separated K=3, D=2 full-covariance data, its truth (labels of the truth) and MAP."""
    weights, means, covs = true_mixture("full", K, D, seed=3)
    x, _ = sample_mixture(weights, means, full_covs("full", covs, K, D), N, seed=4)
    fit = fit_map(jax.random.PRNGKey(0), x, n_components=K, covariance_type="full", prior=Prior())
    perm = match_components(np.asarray(fit.params.means), means)
    pivot = np.asarray(fit.params.means)[perm]  # MAP means in the truth's order
    return dict(x=x, weights=weights, means=means, covs=covs, fit=fit, pivot=pivot)


@pytest.fixture(scope="module")
def nuts(problem):
    return run_nuts(
        jax.random.PRNGKey(1), problem["x"], n_components=K, covariance_type="full",
        prior=Prior(), init=problem["fit"].params, num_warmup=NW, num_samples=NS,
        num_chains=4,
    )


# ----------------------------------------------------------------------------------------------
# NUTS
# ----------------------------------------------------------------------------------------------
def test_nuts_result_shapes_and_stats(nuts):
    assert isinstance(nuts, SamplerResult) and nuts.method == "nuts"
    assert (nuts.num_chains, nuts.num_warmup, nuts.num_samples) == (4, NW, NS)
    d = nuts.draws
    assert d.weights.shape == (4, NS, K) and d.means.shape == (4, NS, K, D)
    assert d.scales.shape == (4, NS, K, D) and d.corr_chol.shape == (4, NS, K, D, D)
    for name in ("lp", "diverging", "energy", "tree_depth", "n_steps", "step_size",
                 "acceptance_rate"):
        assert nuts.sample_stats[name].shape == (4, NS), name
    assert nuts.sample_stats["diverging"].dtype == bool
    n_steps, depth = nuts.sample_stats["n_steps"], nuts.sample_stats["tree_depth"]
    assert np.all((2 ** (depth - 1) <= n_steps) & (n_steps <= 2**depth - 1))
    # one step size per chain after warm-up
    assert np.all(nuts.sample_stats["step_size"] == nuts.sample_stats["step_size"][:, :1])
    for key in ("compile_seconds", "warmup_seconds", "sampling_seconds"):
        assert nuts.info[key] >= 0.0
    np.testing.assert_allclose(d.weights.sum(-1), 1.0, rtol=1e-5)


def test_nuts_recovers_truth(nuts, problem):
    """Every weight, mean and covariance entry within 4 posterior sd of the truth; no switching."""
    w, m, c, perms = _align(nuts.draws, problem["pivot"])
    # with a MAP start and well-separated clusters no chain permutes the labels
    assert np.all(perms == perms[0, 0]), "label switching in a well-separated problem"
    true_cov = problem["covs"]
    for est, truth, name in ((w, problem["weights"], "weights"), (m, problem["means"], "means"),
                             (c, true_cov, "covariances")):
        mean, sd = _summary(est)
        z = np.abs(mean - truth) / sd
        assert np.all(z < 4.0), f"{name}: |posterior mean - truth| / sd = {z}"


def test_nuts_converged(nuts, problem):
    w, m, c, _ = _align(nuts.draws, problem["pivot"])
    for est, name in ((w, "weights"), (m, "means"), (c, "covariances")):
        rhat = _rhat(est)
        assert np.all(rhat <= 1.01), f"{name}: R-hat {rhat}"
    assert nuts.info["n_divergent"] == 0
    assert not nuts.sample_stats["diverging"].any()


def test_nuts_lp_is_log_posterior_float32(nuts, problem):
    """``lp`` (float32 run) against the float64 log posterior in data units."""
    with jax.enable_x64(True):
        for c, s in [(0, 0), (1, 17), (3, NS - 1)]:
            draw = nuts.draws[c, s].astype(np.float64)
            ref = float(log_posterior(draw, problem["x"], Prior()))
            np.testing.assert_allclose(nuts.sample_stats["lp"][c, s], ref, rtol=2e-5)


# ----------------------------------------------------------------------------------------------
# small ordered-means problems (shared by the exact-lp, reproducibility and calibration tests:
# same shapes and settings, so one compilation)
# ----------------------------------------------------------------------------------------------
SMALL_PRIOR = Prior(weight_concentration=3.0, mean_loc=0.0, mean_scale=3.0, scale_scale=1.0,
                    ordered_means=True)
SMALL_N = 60
SMALL_RUN = dict(n_components=2, covariance_type="diag", prior=SMALL_PRIOR, num_warmup=300,
                 num_samples=300, num_chains=4)


def _small_data(seed):
    """Truth drawn from SMALL_PRIOR (sorted means), then N=60 points from it."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet([3.0, 3.0])
    means = np.sort(rng.normal(0.0, 3.0, 2))[:, None]
    scales = np.exp(rng.normal(0.0, 1.0, (2, 1)))
    z = rng.choice(2, SMALL_N, p=weights)
    x = means[z] + scales[z] * rng.normal(size=(SMALL_N, 1))
    return x, means[:, 0]


def _small_nuts(key, x):
    fit = fit_map(jax.random.PRNGKey(0), x, n_components=2, covariance_type="diag",
                  prior=SMALL_PRIOR, n_init=3)
    return run_nuts(key, x, init=fit.params, **SMALL_RUN)


def test_nuts_lp_is_log_posterior_x64():
    with jax.enable_x64(True):
        x, _ = _small_data(0)
        r = _small_nuts(jax.random.PRNGKey(5), x)
        assert r.draws.means.dtype == np.float64
        for c, s in [(0, 0), (2, 100), (3, 299)]:
            ref = float(log_posterior(r.draws[c, s], x, SMALL_PRIOR))
            np.testing.assert_allclose(r.sample_stats["lp"][c, s], ref, rtol=1e-10)
        # the ordered model keeps the first feature's means increasing in every draw
        assert np.all(np.diff(r.draws.means[..., 0], axis=-1) >= 0)


def test_nuts_reproducible_and_cached():
    with jax.enable_x64(True):
        x, _ = _small_data(1)
        a = _small_nuts(jax.random.PRNGKey(7), x)
        b = _small_nuts(jax.random.PRNGKey(7), x)
        c = _small_nuts(jax.random.PRNGKey(8), x)
    assert b.info["cache_hit"] and b.info["compile_seconds"] < 0.05
    np.testing.assert_array_equal(a.draws.means, b.draws.means)
    np.testing.assert_array_equal(a.sample_stats["lp"], b.sample_stats["lp"])
    assert not np.array_equal(a.draws.means, c.draws.means)


def test_nuts_programs_compile_without_ynnpack_fusions():
    """The NUTS programs use XLA's own CPU kernels, not YNNPACK fusions, which made a leapfrog
    step 2-2.5x slower (bench/RESULTS.md, "NUTS: where the time goes"); a jaxlib without the option
    compiles with its defaults."""
    from bayesgmm.core.programs import _accepted_options
    from bayesgmm.infer.programs import nuts_compile_options

    opts = nuts_compile_options()
    if jax.default_backend() != "cpu":
        assert opts is None
        return
    assert opts == _accepted_options({"xla_cpu_experimental_ynn_fusion_type": ""})
    if opts:  # the option exists in this jaxlib: a dot and a reduction compile without YNNPACK
        f = jax.jit(lambda a, b: jnp.sum(jnp.dot(a, b) ** 2, axis=-1))
        args = (np.ones((256, 3), np.float32), np.ones((3, 6), np.float32))

        def ynn_fusions(compiler_options):
            # fusion kinds only: the HLO text's metadata also names this test's own function
            text = f.lower(*args).compile(compiler_options=compiler_options).as_text()
            return re.findall(r'"kind":"(__ynn[^"]*)"', text)

        assert ynn_fusions(None), "the default CPU compile has no YNNPACK fusion: the check is vacuous"
        assert ynn_fusions(opts) == []


@pytest.mark.slow
def test_nuts_calibration():
    """Central 90% intervals of the means cover the truth ~90% of the time over data sets drawn
    from the prior (the ordered prior identifies the labels)."""
    covered = total = 0
    with jax.enable_x64(True):
        for rep in range(25):
            x, truth = _small_data(100 + rep)
            r = _small_nuts(jax.random.PRNGKey(rep), x)
            m = r.draws.means[..., 0].reshape(-1, 2)
            lo, hi = np.quantile(m, [0.05, 0.95], axis=0)
            covered += int(np.sum((lo <= truth) & (truth <= hi)))
            total += 2
    p = binomtest(covered, total, 0.9).pvalue
    assert p > 0.01, f"coverage {covered}/{total} of nominal 90% intervals (p = {p:.3g})"


@pytest.mark.slow
def test_nuts_large_n_posterior_mean_near_map():
    """With N = 20000 the posterior concentrates: its mean is within 0.2 sd of the MAP."""
    rng = np.random.default_rng(11)
    n = 20_000
    z = rng.choice(2, n, p=[0.35, 0.65])
    x = np.array([[-2.0], [2.5]])[z] + np.array([[0.7], [1.2]])[z] * rng.normal(size=(n, 1))
    # the MAP to within a small fraction of a posterior sd: EM's default tol (a per-sample
    # change) stops earlier than that for N = 20000
    fit = fit_map(jax.random.PRNGKey(0), x, n_components=2, covariance_type="diag", prior=Prior(),
                  tol=1e-9, max_iter=1000)
    r = run_nuts(jax.random.PRNGKey(2), x, n_components=2, covariance_type="diag", prior=Prior(),
                 init=fit.params, num_warmup=150, num_samples=250, num_chains=2)
    for field in ("weights", "means", "scales"):
        draws = np.asarray(getattr(r.draws, field))
        mean, sd = _summary(draws)
        gap = np.abs(mean - np.asarray(getattr(fit.params, field))) / sd
        assert np.all(gap < 0.2), f"{field}: |posterior mean - MAP| / sd = {gap}"


# ----------------------------------------------------------------------------------------------
# NUTS: arguments
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, err, match",
    [
        (dict(num_chains=0), ValueError, "num_chains"),
        (dict(num_samples=0), ValueError, "num_samples"),
        (dict(chain_method="threads"), ValueError, "vectorized"),
        (dict(target_accept=1.0), ValueError, "target_accept"),
        (dict(init_jitter=-1.0), ValueError, "init_jitter"),
        (dict(prior=None), TypeError, "proper prior"),
        (dict(covariance_type="diag"), ValueError, "covariance_type"),
        (dict(n_components=2), ValueError, "init.means"),
    ],
)
def test_nuts_bad_arguments(problem, kw, err, match):
    args = dict(n_components=K, covariance_type="full", prior=Prior(), init=problem["fit"].params)
    args.update(kw)
    with pytest.raises(err, match=match):
        run_nuts(jax.random.PRNGKey(0), problem["x"], **args)


def test_nuts_rejects_non_finite_data(problem):
    """Infinite values are refused (NaN marks a missing cell: tests/test_missing_posterior.py)."""
    x = problem["x"].copy()
    x[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        run_nuts(jax.random.PRNGKey(0), x, n_components=K, covariance_type="full", prior=Prior(),
                 init=problem["fit"].params)


# ----------------------------------------------------------------------------------------------
# VI
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nuts_summary(nuts, problem):
    w, m, c, _ = _align(nuts.draws, problem["pivot"])
    return {"weights": _summary(w), "means": _summary(m), "covariances": _summary(c)}


@pytest.mark.parametrize("guide", ["normal", "multivariate_normal"])
def test_vi_matches_nuts(guide, problem, nuts_summary):
    r = run_svi(jax.random.PRNGKey(3), problem["x"], n_components=K, covariance_type="full",
                prior=Prior(), init=problem["fit"].params, guide=guide, num_steps=2000,
                num_samples=1000)
    assert r.method == "vi" and r.num_chains == 1 and r.info["guide"] == guide
    assert r.draws.means.shape == (1, 1000, K, D)
    elbo = r.info["elbo"]
    assert elbo.shape == (2000,) and np.all(np.isfinite(elbo))
    tenth = len(elbo) // 10
    assert elbo[-tenth:].mean() > elbo[:tenth].mean()
    w, m, c, perms = _align(r.draws, problem["pivot"])
    for est, name in ((w, "weights"), (m, "means")):
        mean = est.mean(axis=(0, 1))
        ref_mean, ref_sd = nuts_summary[name]
        z = np.abs(mean - ref_mean) / ref_sd
        assert np.all(z < 2.0), f"{guide} {name}: |VI mean - NUTS mean| / NUTS sd = {z}"
    with jax.enable_x64(True):
        draw = r.draws[0, 3].astype(np.float64)
        ref = float(log_posterior(draw, problem["x"], Prior()))
    np.testing.assert_allclose(r.sample_stats["lp"][0, 3], ref, rtol=2e-5)


def test_vi_delta_recovers_map(problem, nuts_summary):
    """AutoDelta started away from the MAP climbs back to it (the objective of MAP-EM)."""
    mp = problem["fit"].params
    perm = match_components(np.asarray(mp.means), problem["means"])
    sd = np.empty_like(nuts_summary["means"][1])
    sd[perm] = nuts_summary["means"][1]  # posterior sd of the means in the MAP's label order
    start = mp.replace(means=np.asarray(mp.means) + 3.0 * sd)
    # an explicit optax optimiser (the default's schedule, spelled out)
    opt = optax.adam(optax.cosine_decay_schedule(0.01, 2000, alpha=0.01))
    r = run_svi(jax.random.PRNGKey(4), problem["x"], n_components=K, covariance_type="full",
                prior=Prior(), init=start, guide="delta", num_steps=2000, optimizer=opt,
                num_samples=5)
    assert r.info["elbo"].shape == (2000,)
    got = r.draws[0, 0]
    gap = np.abs(np.asarray(got.means) - np.asarray(mp.means)) / sd
    assert np.all(gap < 0.05), f"|delta - MAP| / posterior sd = {gap}"
    np.testing.assert_allclose(got.weights, mp.weights, atol=2e-3)
    np.testing.assert_allclose(r.sample_stats["lp"][0, 0], problem["fit"].objective, rtol=1e-5)
    assert np.all(r.draws.means == r.draws.means[:, :1])  # a point mass


def test_vi_draw_log_densities_only_when_cheap_or_asked():
    """The draws' log posteriors (one full pass each) are skipped for minibatch fits unless
    asked for; when computed they are the core log posterior of each draw."""
    x, _ = _small_data(5)
    fit = fit_map(jax.random.PRNGKey(0), x, n_components=2, covariance_type="diag", prior=SMALL_PRIOR)
    kw = dict(n_components=2, covariance_type="diag", prior=SMALL_PRIOR, init=fit.params, num_steps=50,
              num_samples=4)
    mini = run_svi(jax.random.PRNGKey(1), x, batch_size=20, **kw)
    assert "lp" not in mini.sample_stats
    asked = run_svi(jax.random.PRNGKey(1), x, batch_size=20, log_density=True, **kw)
    np.testing.assert_array_equal(asked.draws.means, mini.draws.means)  # the same fit and draws
    lp = [float(log_posterior(asked.draws[0, s], x, SMALL_PRIOR)) for s in range(4)]
    np.testing.assert_allclose(asked.sample_stats["lp"][0], lp, rtol=1e-5)
    full = run_svi(jax.random.PRNGKey(1), x, **kw)  # full batch, 4 x 60 rows: cheap, computed
    assert full.sample_stats["lp"].shape == (1, 4)


def test_vi_program_is_reused_for_new_starts_and_data():
    """Another start and new data of the same shapes reuse the compiled SVI program, which uses
    the new start: the cached run equals, bit for bit, one compiled afresh for that start."""
    from bayesgmm.infer import programs

    x1, _ = _small_data(2)
    x2, _ = _small_data(3)
    kw = dict(n_components=2, covariance_type="diag", prior=SMALL_PRIOR, num_steps=300, num_samples=20)
    fit1 = fit_map(jax.random.PRNGKey(0), x1, n_components=2, covariance_type="diag", prior=SMALL_PRIOR)
    fit2 = fit_map(jax.random.PRNGKey(0), x2, n_components=2, covariance_type="diag", prior=SMALL_PRIOR)
    run_svi(jax.random.PRNGKey(1), x1, init=fit1.params, **kw)
    cached = run_svi(jax.random.PRNGKey(1), x2, init=fit2.params, **kw)
    assert cached.info["cache_hit"] and cached.info["compile_seconds"] < 0.05
    programs.clear_program_cache()
    fresh = run_svi(jax.random.PRNGKey(1), x2, init=fit2.params, **kw)
    assert not fresh.info["cache_hit"]
    np.testing.assert_array_equal(cached.info["elbo"], fresh.info["elbo"])
    np.testing.assert_array_equal(cached.draws.means, fresh.draws.means)
    # a user's optimiser object is not a cache key: compiled afresh every time
    opt = optax.adam(0.01)
    assert not run_svi(jax.random.PRNGKey(1), x2, init=fit2.params, optimizer=opt, **kw).info["cache_hit"]
    assert not run_svi(jax.random.PRNGKey(1), x2, init=fit2.params, optimizer=opt, **kw).info["cache_hit"]


def test_samplers_share_one_program_across_nearby_data_sizes():
    """Data of 300 and 400 rows run the same compiled NUTS and full-batch SVI programs (rows
    padded to ``sampler_rows`` = 512 with weight 0; the guide's initial scale, which depends on the
    data's weight, an argument), and the padding leaves the posterior alone: each draw's ``lp`` is
    the log posterior of the unpadded data. A minibatch SVI keeps the real rows."""
    from bayesgmm.infer.problem import _prepare, sampler_rows

    rng = np.random.default_rng(8)
    x = np.concatenate([rng.normal(-2.0, 0.7, (200, 1)), rng.normal(2.0, 1.0, (200, 1))])[rng.permutation(400)]
    kw = dict(n_components=2, covariance_type="diag", prior=Prior())
    runs = []
    for n in (300, 400):
        fit = fit_map(jax.random.PRNGKey(0), x[:n], **kw)
        nuts = run_nuts(jax.random.PRNGKey(1), x[:n], init=fit.params, num_warmup=60, num_samples=30, num_chains=1,
                        **kw)
        vi = run_svi(jax.random.PRNGKey(1), x[:n], init=fit.params, num_steps=100, num_samples=10, **kw)
        runs.append((n, nuts, vi))
        # float32 rounding of a sum over the rows (observed up to 1.1e-7); a padded row counted
        # would change lp by about 1 in 600
        with jax.enable_x64(True):
            for s in (0, 29):
                draw = nuts.draws[0, s].astype(np.float64)
                np.testing.assert_allclose(nuts.sample_stats["lp"][0, s], float(log_posterior(draw, x[:n], Prior())),
                                           rtol=1e-6)
            draw = vi.draws[0, 3].astype(np.float64)
            np.testing.assert_allclose(vi.sample_stats["lp"][0, 3], float(log_posterior(draw, x[:n], Prior())),
                                       rtol=1e-6)
    (_, nuts1, vi1), (_, nuts2, vi2) = runs
    assert nuts2.info["cache_hit"] and vi2.info["cache_hit"]
    assert not np.array_equal(vi1.info["elbo"], vi2.info["elbo"])  # other data, other run
    assert sampler_rows(300) == sampler_rows(400) == 512
    fit = fit_map(jax.random.PRNGKey(0), x[:300], **kw)
    assert _prepare(x[:300], 2, "diag", Prior(), fit.params, None, "t").z.shape == (512, 1)
    assert _prepare(x[:300], 2, "diag", Prior(), fit.params, None, "t", batch_size=64).z.shape == (300, 1)
    assert _prepare(x[:300], 2, "diag", Prior(), fit.params, None, "t", batch_size=300).z.shape == (512, 1)


def test_samplers_share_one_program_across_nearby_lengths():
    """The number of draws (NUTS, its extension, VI), NUTS's warm-up length, VI's steps and its
    learning rate are arguments of the programs: runs whose lengths share a ``draw_slots`` bucket reuse one program
    (the configurations of the test above: nothing new is compiled), and a shorter run's draws
    are the first draws of a longer one with the same key, exactly."""
    from bayesgmm.infer.nuts import extend_nuts
    from bayesgmm.infer.problem import draw_slots

    rng = np.random.default_rng(8)
    x = np.concatenate([rng.normal(-2.0, 0.7, (200, 1)), rng.normal(2.0, 1.0, (200, 1))])[rng.permutation(400)]
    kw = dict(n_components=2, covariance_type="diag", prior=Prior())
    fit = fit_map(jax.random.PRNGKey(0), x[:300], **kw)
    nuts = {n: run_nuts(jax.random.PRNGKey(1), x[:300], init=fit.params, num_warmup=60, num_samples=n, num_chains=1,
                        **kw) for n in (30, 20)}
    assert nuts[20].info["cache_hit"] and nuts[20].draws.means.shape == (1, 20, 2, 1)
    np.testing.assert_array_equal(nuts[20].draws.means, nuts[30].draws.means[:, :20])
    for name in ("lp", "n_steps", "step_size", "diverging"):
        np.testing.assert_array_equal(nuts[20].sample_stats[name], nuts[30].sample_stats[name][:, :20])
    # extensions of 10 and 7 draws: one program; 20 draws + 10 more are the 30-draw run
    ext = {n: extend_nuts(nuts[20], x[:300], num_samples=n) for n in (10, 7)}
    assert ext[7].info["cache_hit"] and ext[7].draws.means.shape == (1, 7, 2, 1)
    np.testing.assert_array_equal(ext[7].draws.means, ext[10].draws.means[:, :7])
    np.testing.assert_array_equal(np.concatenate([nuts[20].draws.means, ext[10].draws.means], axis=1),
                                  nuts[30].draws.means)
    # so is the warm-up's length: 90 transitions have NumPyro's 3 adaptation windows, as 60 have
    # (tests/test_numpyro_bridge.py checks the traced warm-up against NumPyro's own kernel)
    w90 = run_nuts(jax.random.PRNGKey(1), x[:300], init=fit.params, num_warmup=90, num_samples=20, num_chains=1,
                   **kw)
    assert w90.info["cache_hit"] and w90.num_warmup == 90
    assert not np.array_equal(w90.sample_stats["step_size"], nuts[20].sample_stats["step_size"])
    assert extend_nuts(w90, x[:300], num_samples=7).info["cache_hit"]
    # a progress bar needs the loop's length as a number: its own program, the same chain
    bar = run_nuts(jax.random.PRNGKey(1), x[:300], init=fit.params, num_warmup=90, num_samples=20, num_chains=1,
                   progress_bar=True, **kw)
    assert not bar.info["cache_hit"]
    np.testing.assert_array_equal(bar.draws.means, w90.draws.means)
    np.testing.assert_array_equal(bar.sample_stats["step_size"], w90.sample_stats["step_size"])
    vi = run_svi(jax.random.PRNGKey(1), x[:300], init=fit.params, num_steps=100, num_samples=10, **kw)
    fewer = run_svi(jax.random.PRNGKey(1), x[:300], init=fit.params, num_steps=100, num_samples=7, **kw)
    longer = run_svi(jax.random.PRNGKey(1), x[:300], init=fit.params, num_steps=120, num_samples=10,
                     learning_rate=0.02, **kw)
    assert fewer.info["cache_hit"] and longer.info["cache_hit"]
    np.testing.assert_array_equal(fewer.draws.means, vi.draws.means[:, :7])
    np.testing.assert_array_equal(fewer.info["elbo"], vi.info["elbo"])
    # the learning rate and the steps reach the schedule (not the buffer's 128 slots): the same run
    # with optax's own schedule built from the numbers (a user optimiser, compiled apart)
    from bayesgmm.infer.svi import _FINAL_LR_FRACTION

    oracle = run_svi(jax.random.PRNGKey(1), x[:300], init=fit.params, num_steps=120, num_samples=10,
                     optimizer=optax.adam(optax.cosine_decay_schedule(0.02, 120, alpha=_FINAL_LR_FRACTION)), **kw)
    assert longer.info["elbo"].shape == (120,)
    # (observed on jax 0.10: ELBO within 5e-8 relative, draws identical)
    np.testing.assert_allclose(longer.info["elbo"], oracle.info["elbo"], rtol=1e-6)
    np.testing.assert_allclose(longer.draws.means, oracle.draws.means, rtol=1e-6, atol=0)
    assert [draw_slots(n) for n in (7, 10, 20, 30, 100, 120, 500)] == [32, 32, 32, 32, 128, 128, 512]


@pytest.mark.parametrize("lr, steps", [(0.03, 250), (0.005, 120)])
def test_default_vi_optimiser_follows_optax_cosine_decay(lr, steps):
    """The default optimiser's schedule, with a traced learning rate and number of steps, is
    ``optax.cosine_decay_schedule``'s at every step, past the decay too (the oracle takes them
    as numbers)."""
    from bayesgmm.infer.svi import _FINAL_LR_FRACTION, _default_optimizer

    oracle = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=_FINAL_LR_FRACTION))
    grads = {"a": jnp.linspace(-1.0, 2.0, 5)}

    @jax.jit
    def run(lr, steps):
        opt = _default_optimizer(lr, steps)
        state, ostate = opt.init(grads), oracle.init(grads)

        def body(carry, g):
            state, ostate = carry
            u, state = opt.update(g, state)
            v, ostate = oracle.update(g, ostate)
            return (state, ostate), (u["a"], v["a"])

        gs = {"a": jnp.sin(jnp.arange(300.0))[:, None] * grads["a"]}
        return jax.lax.scan(body, (state, ostate), gs)[1]

    ours, theirs = run(jnp.float32(lr), jnp.int32(steps))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-9)


def test_sampler_rows_buckets():
    """Powers of two (at least 32) up to 1024 rows, then eighths of an octave (at most 12.5%
    padding, 8 programs per doubling of the data), then 64ths beyond 65536 rows."""
    from bayesgmm.infer.problem import sampler_rows

    assert [sampler_rows(n) for n in (1, 32, 33, 272, 1024)] == [32, 32, 64, 512, 1024]
    ns = np.arange(1025, 20_000)
    rows = np.array([sampler_rows(n) for n in ns])
    assert np.all(rows >= ns) and np.all(rows < 1.125 * ns) and np.all(np.diff(rows) >= 0)
    assert len(set(rows[(ns > 4096) & (ns <= 8192)])) == 8
    big = np.array([100_000, 1_000_000, 3_000_001])
    assert np.all([(sampler_rows(n) >= n) & (sampler_rows(n) <= 1.016 * n) for n in big])


@pytest.mark.slow
def test_vi_minibatch_matches_full_batch():
    rng = np.random.default_rng(21)
    n = 100_000
    z = rng.choice(2, n, p=[0.4, 0.6])
    means = np.array([[-2.0, 0.0], [2.0, 1.0]])
    chol = np.array([[[1.0, 0.0], [0.5, 0.8]], [[0.7, 0.0], [-0.3, 1.1]]])
    x = means[z] + np.einsum("nij,nj->ni", chol[z], rng.normal(size=(n, 2)))
    fit = fit_map(jax.random.PRNGKey(0), x, n_components=2, covariance_type="full", prior=Prior())
    kw = dict(n_components=2, covariance_type="full", prior=Prior(), init=fit.params,
              num_samples=500)
    full = run_svi(jax.random.PRNGKey(1), x, num_steps=1000, **kw)
    # minibatch steps are ~100x cheaper: take more of them
    mini = run_svi(jax.random.PRNGKey(1), x, batch_size=1000, num_steps=4000, **kw)
    assert mini.info["batch_size"] == 1000 and full.info["batch_size"] is None
    for field in ("weights", "means"):
        f = np.asarray(getattr(full.draws, field))
        mb = np.asarray(getattr(mini.draws, field))
        f_mean, f_sd = _summary(f)
        gap = np.abs(mb.mean(axis=(0, 1)) - f_mean) / f_sd
        assert np.all(gap < 3.0), f"{field}: |minibatch - full| / sd = {gap}"


@pytest.mark.parametrize(
    "kw, err, match",
    [
        (dict(guide="laplace"), ValueError, "'normal', 'multivariate_normal', 'low_rank', 'delta'"),
        (dict(num_steps=0), ValueError, "num_steps"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(learning_rate=-1.0), ValueError, "learning_rate"),
        (dict(optimizer="adam"), TypeError, "optimizer"),
        (dict(prior=None), TypeError, "proper prior"),
    ],
)
def test_vi_bad_arguments(problem, kw, err, match):
    args = dict(n_components=K, covariance_type="full", prior=Prior(), init=problem["fit"].params)
    args.update(kw)
    with pytest.raises(err, match=match):
        run_svi(jax.random.PRNGKey(0), problem["x"], **args)


def test_guides_listed():
    assert set(GUIDES) == {"normal", "multivariate_normal", "low_rank", "delta"}


# ----------------------------------------------------------------------------------------------
# ordered means: sampled unordered and sorted (exchangeable prior), constrained otherwise
# ----------------------------------------------------------------------------------------------
def _ordered_problem():
    rng = np.random.default_rng(3)
    # two clusters apart in the second feature, with nearly equal first-feature means
    x = np.concatenate([rng.normal([0.0, -2.0], 0.5, (40, 2)), rng.normal([0.1, 2.0], 0.5, (40, 2))])
    return x


@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
def test_ordered_prior_is_sampled_unordered_and_sorted(covariance_type):
    from bayesgmm.infer.nuts import extend_nuts
    from bayesgmm.infer.problem import _fold_draws

    x = _ordered_problem()
    prior = Prior(weight_concentration=2.0, ordered_means=True)
    fit = fit_map(jax.random.PRNGKey(0), x, n_components=2, covariance_type=covariance_type, prior=prior)
    run = dict(n_components=2, covariance_type=covariance_type, prior=prior, init=fit.params,
               num_warmup=150, num_samples=100, num_chains=2)
    r = run_nuts(jax.random.PRNGKey(1), x, **run)
    assert "means" in state_position(r.state) and "means_first" not in state_position(r.state)  # unordered model
    assert np.all(np.diff(r.draws.means[..., 0], axis=-1) >= 0)  # every draw in the ordered labelling
    # each draw's components moved whole: the lp is the ordered log posterior of the sorted draw
    with jax.enable_x64(True):
        for c, s in [(0, 0), (1, 99)]:
            draw = r.draws[c, s].astype(np.float64)
            ref = float(log_posterior(draw, x, prior))
            np.testing.assert_allclose(r.sample_stats["lp"][c, s], ref, rtol=2e-5)
    # the fold is a permutation of components: sorting twice changes nothing, a shuffled copy sorts back
    np.testing.assert_array_equal(_fold_draws(r.draws).means, r.draws.means)
    back = _fold_draws(r.draws.take_components(np.array([1, 0])))
    for name in ("weights", "means", "scales", "corr_chol"):
        np.testing.assert_array_equal(getattr(back, name), getattr(r.draws, name))
    ext = extend_nuts(r, x, num_samples=20)
    assert np.all(np.diff(ext.draws.means[..., 0], axis=-1) >= 0)


def test_ordered_prior_with_unequal_weight_concentrations_keeps_the_constrained_sampler():
    """Sorting gives the ordered posterior only for an exchangeable prior; otherwise the ordered
    model itself is sampled. A run on the ordered model (as saved before the change) extends on it."""
    from bayesgmm.infer.nuts import extend_nuts
    from bayesgmm.core.prior import resolve_prior

    x = _ordered_problem()
    prior = Prior(weight_concentration=[2.0, 3.0], ordered_means=True)
    fit = fit_map(jax.random.PRNGKey(0), x, n_components=2, covariance_type="diag", prior=prior)
    r = run_nuts(jax.random.PRNGKey(1), x, n_components=2, covariance_type="diag", prior=prior,
                 init=fit.params, num_warmup=100, num_samples=50, num_chains=2)
    assert "means_first" in state_position(r.state)
    assert np.all(np.diff(r.draws.means[..., 0], axis=-1) >= 0)
    # an old run: the ordered model's state under an exchangeable prior continues on that model
    exchangeable = resolve_prior(Prior(weight_concentration=2.0, ordered_means=True), x, 2, "diag", None, "host")
    ext = extend_nuts(dataclasses.replace(r, prior=exchangeable), x, num_samples=10)
    assert "means_first" in state_position(ext.state)
    assert np.all(np.diff(ext.draws.means[..., 0], axis=-1) >= 0)
