"""The scikit-learn front: estimator contract, input types, and every bad input."""

import re

import jax
import numpy as np
import pandas as pd
import pytest
from conftest import full_covs, sample_mixture, true_mixture
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

import bayesgmm
from bayesgmm import GaussianMixture, Prior


@pytest.fixture(scope="module")
def data():
    w, m, c = true_mixture("full", 2, 2, 0)
    x, z = sample_mixture(w, m, full_covs("full", c, 2, 2), 300, 1)
    return x


@pytest.mark.slow
def test_scikit_learn_estimator_checks_maximum_likelihood():
    results = check_estimator(GaussianMixture(prior=None), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert len(results) > 40
    assert failed == []


def test_public_api_is_curated():
    assert set(bayesgmm.__all__) >= {"GaussianMixture", "Prior", "GMMParams", "log_posterior"}
    for name in bayesgmm.__all__:
        assert hasattr(bayesgmm, name)


def test_import_has_no_global_side_effects():
    import subprocess
    import sys

    code = (
        "import logging, jax; before = jax.config.jax_enable_x64; "
        "import bayesgmm; "
        "assert jax.config.jax_enable_x64 == before; "
        "assert logging.getLogger().handlers == []; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_init_only_stores_and_clone_get_set_params():
    prior = Prior(weight_concentration=2.0)
    gm = GaussianMixture(3, covariance_type="diag", prior=prior, tol=1e-4, random_state=7)
    params = gm.get_params()
    assert params["n_components"] == 3 and params["prior"] is prior and params["random_state"] == 7
    c = clone(gm)
    assert c.get_params() == params
    c.set_params(n_components=4, covariance_type="tied")
    assert (c.n_components, c.covariance_type) == (4, "tied")
    # invalid values are only rejected at fit
    GaussianMixture(n_components=-1, covariance_type="banana")


def test_pipeline_and_grid_search(data):
    pipe = make_pipeline(StandardScaler(), GaussianMixture(random_state=0))
    pipe.fit(data)
    assert pipe.predict(data).shape == (len(data),)
    grid = GridSearchCV(GaussianMixture(random_state=0), {"n_components": [1, 2, 3], "covariance_type": ["full", "diag"]}, cv=3)
    grid.fit(data)
    assert grid.best_params_["n_components"] >= 2


def test_fitted_attribute_shapes(data):
    k, d = 3, data.shape[1]
    shapes = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}
    for ct, shape in shapes.items():
        gm = GaussianMixture(k, covariance_type=ct, random_state=0).fit(data)
        assert gm.weights_.shape == (k,) and gm.means_.shape == (k, d)
        for attr in ("covariances_", "precisions_", "precisions_cholesky_"):
            assert getattr(gm, attr).shape == shape
        assert gm.n_features_in_ == d and isinstance(gm.converged_, bool) and gm.n_iter_ >= 1
        assert np.isfinite(gm.lower_bound_) and gm.lower_bounds_[-1] == pytest.approx(gm.lower_bound_)
        np.testing.assert_allclose(gm.predict_proba(data).sum(1), 1.0, rtol=1e-6)
        assert gm.score(data) == pytest.approx(gm.score_samples(data).mean())
        np.testing.assert_array_equal(gm.fit_predict(data), gm.predict(data))
        x, y = gm.sample(50)
        assert x.shape == (50, d) and y.shape == (50,)


def test_exp_score_samples_is_the_weighted_sum_of_component_densities():
    """Seed 000's question: exp(score_samples) equals the weighted sum of component densities."""
    from scipy.stats import norm

    rng = np.random.default_rng(0)
    samples = np.concatenate([rng.normal(-0.5, 0.2, 200), rng.normal(-0.1, 0.07, 500), rng.normal(0.2, 0.13, 1000)])
    gm = GaussianMixture(3, random_state=0).fit(samples[:, None])
    grid = np.linspace(-2, 1.5, 500)
    mix = sum(w * norm.pdf(grid, m, np.sqrt(c)) for w, m, c in zip(gm.weights_, gm.means_.ravel(), gm.covariances_.ravel()))
    np.testing.assert_allclose(np.exp(gm.score_samples(grid[:, None])), mix, rtol=1e-5, atol=1e-12)
    assert np.trapezoid(mix, grid) == pytest.approx(1.0, abs=1e-3)


def test_dataframe_list_and_integer_inputs(data):
    df = pd.DataFrame(data, columns=["eruptions", "waiting"])
    gm = GaussianMixture(2, random_state=0).fit(df)
    np.testing.assert_array_equal(gm.feature_names_in_, ["eruptions", "waiting"])
    ref = GaussianMixture(2, random_state=0).fit(data)
    np.testing.assert_allclose(gm.means_, ref.means_)
    gm_list = GaussianMixture(2, random_state=0).fit(data.tolist())
    np.testing.assert_allclose(gm_list.means_, ref.means_)
    xi = np.round(data * 10).astype(np.int64)
    a = GaussianMixture(2, random_state=0).fit(xi)
    b = GaussianMixture(2, random_state=0).fit(xi.astype(np.float64))
    np.testing.assert_array_equal(a.means_, b.means_)
    # Fortran-ordered and non-contiguous views give the same answer
    f = GaussianMixture(2, random_state=0).fit(np.asfortranarray(data))
    np.testing.assert_allclose(f.means_, ref.means_)
    nc = np.repeat(data, 2, axis=1)[:, ::2]
    np.testing.assert_allclose(GaussianMixture(2, random_state=0).fit(nc).means_, ref.means_)


def test_warm_start_continues_from_the_last_solution(data):
    gm = GaussianMixture(2, warm_start=True, max_iter=2, random_state=0, tol=0.0)
    with pytest.warns(Warning, match="did not converge"):
        gm.fit(data)
    first = gm.lower_bound_
    with pytest.warns(Warning, match="did not converge"):
        gm.fit(data)
    assert gm.lower_bound_ >= first - 1e-6 * abs(first)  # float32 objective


# ---------------------------------------------------------------------------------------------
# bad input: each a clear error naming the argument and the fix
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad, match",
    [
        (np.nan, r"NaN.*row 3, column 1.*drop or impute"),
        (np.inf, r"infinite.*row 3, column 1"),
    ],
)
def test_nan_and_inf_say_where(data, bad, match):
    x = data.copy()
    x[3, 1] = bad
    with pytest.raises(ValueError, match=match):
        GaussianMixture(2).fit(x)
    gm = GaussianMixture(2, random_state=0).fit(data)
    with pytest.raises(ValueError, match=match):
        gm.predict(x)


def test_one_dimensional_x_says_how_to_reshape():
    with pytest.raises(ValueError, match=re.escape("reshape(-1, 1)")):
        GaussianMixture(1).fit(np.arange(10.0))


def test_empty_and_too_few_samples(data):
    with pytest.raises(ValueError, match="0 sample"):
        GaussianMixture(1).fit(np.empty((0, 2)))
    with pytest.raises(ValueError, match=r"n_samples >= n_components.*n_components = 5, n_samples = 3"):
        GaussianMixture(5).fit(data[:3])
    with pytest.raises(ValueError, match="n_samples >= 2"):
        GaussianMixture(1).fit(data[:1])


def test_wrong_number_of_features_at_predict(data):
    gm = GaussianMixture(2, random_state=0).fit(data)
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture is expecting 2"):
        gm.predict(np.ones((4, 3)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(covariance_type="banana"), r"covariance_type='banana'.*'full', 'tied', 'diag', 'spherical'"),
        (dict(init_params="magic"), r"init_params='magic'.*'kmeans'.*'hc'"),
        (dict(n_components=0), r"n_components must be an integer >= 1"),
        (dict(n_components=2.5), r"n_components must be an integer"),
        (dict(tol=-1.0), r"tol must be >= 0"),
        (dict(reg_covar=-1e-3), r"reg_covar must be >= 0"),
        (dict(max_iter=0), r"max_iter must be an integer >= 1"),
        (dict(n_init=0), r"n_init must be an integer >= 1"),
        (dict(prior="flat"), r"prior='flat'.*'default', None"),
        (dict(weights_init=[0.2, 0.2]), r"weights_init must have shape \(2,\).*sum to 1"),
        (dict(means_init=[[0.0, 0.0]]), r"means_init must be finite with shape \(2, 2\)"),
        (dict(precisions_init=np.ones((2, 2))), r"precisions_init for covariance_type='full' must have shape \(2, 2, 2\)"),
    ],
)
def test_invalid_estimator_arguments(data, kwargs, match):
    kwargs = {"n_components": 2, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        GaussianMixture(**kwargs).fit(data)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(scale_prior="uniform"), r"scale_prior='uniform'.*'half_normal', 'half_cauchy', 'log_normal'"),
        (dict(weight_concentration=0.0), r"weight_concentration=0.0\) must be finite and > 0"),
        (dict(mean_scale=-1.0), r"mean_scale=-1.0\) must be finite and > 0"),
        (dict(lkj_concentration=np.nan), r"lkj_concentration=nan\) must be finite and > 0"),
        (dict(mean_loc=[np.inf, 0.0]), r"mean_loc=...\) must be finite"),
        (dict(ordered_means="yes"), r"ordered_means=...\) must be a bool"),
    ],
)
def test_invalid_prior_values(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        Prior(**kwargs)


def test_prior_shape_mismatch_names_the_field(data):
    with pytest.raises(ValueError, match=r"Prior\(mean_loc=...\) has shape \(3,\); expected a scalar or shape \(2,\)"):
        GaussianMixture(2, prior=Prior(mean_loc=[0.0, 1.0, 2.0])).fit(data)
    with pytest.raises(ValueError, match=r"weight_concentration=...\) has shape \(3,\).*\(2,\)"):
        GaussianMixture(2, prior=Prior(weight_concentration=[1.0, 1.0, 1.0])).fit(data)


def test_sample_weight_errors(data):
    n = len(data)
    with pytest.raises(ValueError, match=r"sample_weight has 1 negative value.*>= 0"):
        GaussianMixture(2).fit(data, sample_weight=np.r_[-1.0, np.ones(n - 1)])
    with pytest.raises(ValueError, match=r"sample_weight has shape \(3,\); expected \(300,\)"):
        GaussianMixture(2).fit(data, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="zero"):
        GaussianMixture(2).fit(data, sample_weight=np.zeros(n))
    with pytest.raises(ValueError, match="NaN or infinite"):
        GaussianMixture(2).fit(data, sample_weight=np.r_[np.nan, np.ones(n - 1)])


def test_predict_before_fit():
    for method in ("predict", "predict_proba", "score_samples", "score"):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            getattr(GaussianMixture(2), method)(np.ones((3, 2)))
    with pytest.raises(NotFittedError):
        GaussianMixture(2).sample(3)


def test_string_data_and_constant_feature(data):
    with pytest.raises((TypeError, ValueError), match="numbers|convert"):
        GaussianMixture(1).fit(np.array([["a", "b"], ["c", "d"]]))
    x = data.copy()
    x[:, 1] = 3.0
    with pytest.raises(ValueError, match=r"constant feature\(s\) \[1\].*Prior\(mean_scale=..., scale_scale=...\)"):
        GaussianMixture(2).fit(x)
    # maximum likelihood copes through reg_covar, as scikit-learn does
    gm = GaussianMixture(2, prior=None, random_state=0).fit(x)
    assert np.all(np.isfinite(gm.covariances_))


def test_singular_covariance_is_explained_never_nan():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 10))  # fewer points than features: the full covariance is singular
    with pytest.raises(FloatingPointError, match=r"singular.*reg_covar.*fewer than the 10"):
        GaussianMixture(2, prior=None, reg_covar=0.0, random_state=0).fit(x)
    gm = GaussianMixture(2, prior=None, random_state=0).fit(x)  # reg_covar keeps it finite
    assert np.all(np.isfinite(gm.covariances_))


def test_unknown_dtype_of_prior_argument():
    with pytest.raises(TypeError, match="prior must be 'default', None or a bayesgmm.Prior"):
        GaussianMixture(2, prior=3).fit(np.ones((5, 1)))


def test_float32_default_and_x64_mode(data):
    gm = GaussianMixture(2, random_state=0).fit(data)
    assert gm.map_result_.info.objective.dtype == np.float32  # the EM ran in float32
    with jax.enable_x64(True):
        gm64 = GaussianMixture(2, random_state=0).fit(data)
    assert gm64.map_result_.info.objective.dtype == np.float64
    # the host parameters in data units are float64 either way
    assert gm.map_result_.params.means.dtype == gm64.map_result_.params.means.dtype == np.float64
    assert gm.means_.dtype == gm64.means_.dtype == np.float64


# ---------------------------------------------------------------------------------------------
# fit_posterior: NUTS and VI on the same model, started at the MAP
# ---------------------------------------------------------------------------------------------
def test_fit_posterior_nuts_and_vi_agree_with_the_map():
    from bayesgmm.datasets import load_faithful

    X = load_faithful(as_frame=True)
    gm = GaussianMixture(2, random_state=0).fit(X)
    post = gm.fit_posterior(X, num_warmup=200, num_samples=200, num_chains=2, progress_bar=False)
    assert isinstance(post, bayesgmm.Posterior)
    idata = post.idata
    assert list(idata.posterior["means"].coords["feature"].values) == ["eruptions", "waiting"]
    mean = idata.posterior["means"].mean(("chain", "draw")).values
    sd = idata.posterior["means"].std(("chain", "draw")).values
    # large N relative to the parameters: the posterior mean sits near the MAP (in posterior sd)
    assert np.all(np.abs(mean - gm.means_) < 1.0 * sd)
    vi = gm.fit_posterior(X, method="vi", num_steps=1500, num_samples=400, progress_bar=False)
    vmean = vi.draws.means.mean(axis=(0, 1))
    assert np.all(np.abs(np.asarray(vmean) - mean) < 2.0 * sd)


def test_fit_posterior_with_one_component():
    """K = 1 has no weights site (Dirichlet over one component); VI's autoguides used to crash."""
    rng = np.random.default_rng(3)
    x = rng.normal([1.0, -2.0], [0.5, 2.0], size=(300, 2))
    gm = GaussianMixture(1, random_state=0).fit(x)
    vi = gm.fit_posterior(x, method="vi", num_steps=500, progress_bar=False)
    post = gm.fit_posterior(x, method="nuts", num_warmup=100, num_samples=100, num_chains=2,
                            progress_bar=False)
    for p in (vi, post):
        assert np.all(np.asarray(p.draws.weights) == 1.0)
        m = np.asarray(p.draws.means)[..., 0, :].reshape(-1, 2)
        gap = np.abs(m.mean(axis=0) - x.mean(axis=0)) / m.std(axis=0)
        assert np.all(gap < 1.0), gap
    s_vi, s_map = vi.score_samples(x[:20]), gm.score_samples(x[:20])
    assert np.all(np.isfinite(s_vi))
    # the posterior predictive is close to the plug-in density at N = 300 (and a little wider)
    assert abs(np.mean(s_vi - s_map)) < 0.05, np.mean(s_vi - s_map)


def test_fit_posterior_bad_arguments(data):
    gm = GaussianMixture(2, random_state=0).fit(data)
    with pytest.raises(ValueError, match="method='mcmc' is not supported"):
        gm.fit_posterior(data, method="mcmc")
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['num_steps'\]"):
        gm.fit_posterior(data, num_steps=10)
    with pytest.raises(ValueError, match="needs a prior"):
        GaussianMixture(2, prior=None).fit(data).fit_posterior(data)
