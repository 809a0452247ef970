"""The ArviZ bridge (bayesgmm._arviz) under the installed ArviZ: 0.2x (InferenceData) or >= 1.3 (DataTree).

Each test states what is right for the ArviZ generation it runs under; CI runs this file under
both (Python 3.11 with ArviZ 0.23, Python 3.13 with ArviZ 1.x). The two small posterior files in
``tests/data`` were written one by each generation (``tests/data/make_posterior_files.py``), and
both are read here, so a file written by one generation is checked to open in the other.
"""

import pathlib
import warnings

import numpy as np
import pytest
import xarray as xr
from scipy.special import logsumexp

import bayesgmm
from bayesgmm import _arviz
from bayesgmm.core.params import GMMParams

DATA = pathlib.Path(__file__).with_name("data")
FILES = {0: DATA / "posterior_arviz0.nc", 1: DATA / "posterior_arviz1.nc"}


def _draws(chains=2, draws=40, k=3, d=2, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.full(k, 5.0), size=(chains, draws))
    m = rng.normal(size=(chains, draws, k, d)) + np.arange(k)[:, None] * 4.0
    s = np.exp(rng.normal(0.0, 0.1, (chains, draws, k, d)))
    return GMMParams(weights=w, means=m, scales=s, corr_chol=None, covariance_type="diag")


def test_generation_matches_the_installed_arviz():
    import importlib.metadata

    major = int(importlib.metadata.version("arviz").split(".")[0])
    assert _arviz.ARVIZ_1 == (major >= 1)
    idata = _arviz.to_inference_data(_draws(), feature_names=["a", "b"])
    if _arviz.ARVIZ_1:
        assert isinstance(idata, xr.DataTree) and list(idata.children) == ["posterior"]
    else:
        import arviz as az

        assert isinstance(idata, az.InferenceData) and idata.groups() == ["posterior"]
    assert _arviz.is_idata(idata)
    po = idata.posterior
    assert po["means"].dims == ("chain", "draw", "component", "feature")
    assert list(po.coords["chain"].values) == [0, 1] and list(po.coords["draw"].values) == list(range(40))
    assert list(po.coords["feature"].values) == ["a", "b"]
    assert list(_arviz.groups(idata)) == ["posterior"]
    assert isinstance(_arviz.groups(idata)["posterior"], xr.Dataset)


def _narrowest_interval(v, prob):
    v = np.sort(v)
    n_in = int(np.floor(prob * v.size))
    widths = v[n_in:] - v[: v.size - n_in]
    i = int(np.argmin(widths))
    return v[i], v[i + n_in]


@pytest.mark.parametrize("prob", [0.5, 0.94])
def test_hdi_is_the_narrowest_interval_pooled_over_chains(prob):
    rng = np.random.default_rng(1)
    samples = np.stack([rng.gamma(2.0, size=(3, 400)), rng.normal(size=(3, 400))], axis=-1)  # (3, 400, 2)
    out = _arviz.hdi(samples, prob)
    assert out.shape == (2, 2)
    for e in range(2):
        lo, hi = _narrowest_interval(samples[..., e].ravel(), prob)
        np.testing.assert_allclose(out[e], [lo, hi], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="hdi_prob"):
        _arviz.hdi(samples, 1.5)


def test_rhat_and_ess_see_mixing_and_non_mixing_chains():
    rng = np.random.default_rng(2)
    iid = rng.normal(size=(4, 500))
    stuck = iid + np.array([0.0, 0.0, 3.0, 3.0])[:, None]  # two chains elsewhere
    r = _arviz.rhat({"iid": iid, "stuck": stuck}, var_names=None)
    assert r["iid"] < 1.01 and r["stuck"] > 1.5
    ess = _arviz.ess({"iid": iid}, var_names=None)["iid"]
    assert 1500 < ess < 2500  # about the 2000 independent draws
    worst = _arviz.rhat_ess(_draws(chains=4, draws=200), var_names=["weights", "means"])
    assert set(worst) == {"rhat", "ess_bulk", "ess_tail"} and worst["rhat"]["weights"] < 1.05


def test_waic_and_loo_agree_with_their_definitions():
    rng = np.random.default_rng(3)
    ll = rng.normal(-1.0, 0.05, (2, 300, 25))
    idata = _arviz.from_groups({
        "posterior": xr.Dataset({"mu": (("chain", "draw"), rng.normal(size=(2, 300)))}),
        "log_likelihood": xr.Dataset({"obs": (("chain", "draw", "obs_id"), ll)}),
    })
    flat = ll.reshape(600, 25)
    lppd_i = logsumexp(flat, axis=0) - np.log(600)
    waic_i = lppd_i - flat.var(axis=0)
    res = _arviz.information_criterion(idata, "waic")
    assert res["elpd"] == pytest.approx(waic_i.sum(), rel=1e-12)
    assert res["se"] == pytest.approx(np.sqrt(25 * np.var(waic_i)), rel=1e-10)
    assert res["p"] == pytest.approx(flat.var(axis=0).sum(), rel=1e-12)
    assert res["deviance"] == pytest.approx(-2 * waic_i.sum(), rel=1e-12) and not res["warning"]
    waic = _arviz.waic(idata)
    assert (waic.elpd if _arviz.ARVIZ_1 else waic["elpd_waic"]) == pytest.approx(waic_i.sum(), rel=1e-12)
    # LOO of nearly flat log-likelihoods is close to the in-sample lppd, below it
    loo = _arviz.information_criterion(idata, "loo")
    assert loo["elpd"] <= lppd_i.sum() and loo["elpd"] == pytest.approx(waic_i.sum(), abs=0.05)
    assert loo["pareto_k"].shape == (25,) and loo["n_bad_k"] == 0


@pytest.mark.parametrize("generation", [0, 1])
def test_files_written_by_either_generation_load(generation):
    path = FILES[generation]
    post = bayesgmm.load_posterior(path)  # checks the file's SHA-256 digest of every array
    assert post.draws.means.shape == (2, 30, 2, 2) and post.feature_names == ["eruptions", "waiting"]
    assert _arviz.is_idata(post.idata)
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 0.2x: groups outside its schema
        opened = az.from_netcdf(path)
    assert {"posterior", "unrelabelled_posterior", "log_likelihood", "observed_data", "bayesgmm"} <= set(
        _arviz.group_names(opened))
    po = opened.posterior
    np.testing.assert_array_equal(po["means"].values, post.draws.means)
    assert list(po["means"].coords["feature"].values) == ["eruptions", "waiting"]
    assert po["covariances"].dims == ("chain", "draw", "component", "feature", "feature_bis")
    perm = opened.unrelabelled_posterior["permutation"].values
    np.testing.assert_array_equal(
        np.take_along_axis(opened.unrelabelled_posterior["weights"].values, perm, -1), po["weights"].values)
    table = post.summary(hdi_prob=0.9)
    assert "means[1, waiting]" in table.index
    interval = ["hdi_5%", "hdi_95%"] if not _arviz.ARVIZ_1 else ["hdi90_lb", "hdi90_ub"]
    assert set(interval) <= set(table.columns)
    lo, hi = _narrowest_interval(post.draws.weights[..., 0].ravel(), 0.9)
    assert float(table.loc["weights[0]", interval[0]]) == pytest.approx(lo, abs=0.006)
    assert float(table.loc["weights[0]", interval[1]]) == pytest.approx(hi, abs=0.006)


def test_written_file_is_this_generations_container(tmp_path):
    post = bayesgmm.load_posterior(FILES[1 - int(_arviz.ARVIZ_1)])
    path = tmp_path / "again.nc"
    post.save(path)
    again = bayesgmm.load_posterior(path)
    np.testing.assert_array_equal(again.draws.means, post.draws.means)
    np.testing.assert_array_equal(again.raw_draws.means, post.raw_draws.means)
    assert set(_arviz.read_netcdf(path)) >= {"posterior", "bayesgmm"}
