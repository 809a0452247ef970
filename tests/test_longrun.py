"""Long runs: saving and loading posteriors, extending and resuming NUTS, rollback on interrupt, weights.

One small weighted NUTS run (1-D, two components) is shared by the tests; the programs it
compiles are cached, so the repeated-rows run and the resumed runs reuse them.
"""

import os
import pathlib
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest
from conftest import make_pivot, synthetic_draws

import bayesgmm
from bayesgmm import GaussianMixture
from bayesgmm.posterior import Posterior, PosteriorWarning

RUN = dict(num_warmup=100, num_samples=100, num_chains=2, progress_bar=False)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PosteriorWarning)
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def weighted():
    """60 rows with integer weights 0, 1, 2 summing to 60 (3:1 between the clusters), and the repeated rows."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-3, 1, (30, 1)), rng.normal(3, 1, (30, 1))])
    w = np.concatenate([np.tile([2.0, 1.0], 15), np.tile([1.0, 0.0], 15)])
    return x, w, np.repeat(x, w.astype(int), axis=0)


@pytest.fixture(scope="module")
def run(weighted):
    x, w, _ = weighted
    gm = GaussianMixture(2, covariance_type="diag", random_state=0).fit(x, sample_weight=w)
    return gm, _quiet(gm.fit_posterior, x, sample_weight=w, **RUN)


def _assert_same_posterior(a, b, X):
    for name in ("draws", "raw_draws", "pivot"):
        for f in ("weights", "means", "scales", "corr_chol"):
            va, vb = getattr(getattr(a, name), f), getattr(getattr(b, name), f)
            assert (va is None) == (vb is None)
            if va is not None:
                assert np.asarray(va).dtype == np.asarray(vb).dtype
                np.testing.assert_array_equal(va, vb, err_msg=f"{name}.{f}")
    np.testing.assert_array_equal(a.permutations, b.permutations)
    assert a.sample_stats.keys() == b.sample_stats.keys()
    for key, v in a.sample_stats.items():
        assert v.dtype == b.sample_stats[key].dtype, key
        np.testing.assert_array_equal(v, b.sample_stats[key], err_msg=key)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.sample_weight, b.sample_weight)
    assert (a.method, a.relabel_method, a.num_warmup, a.feature_names) == (
        b.method, b.relabel_method, b.num_warmup, b.feature_names)
    np.testing.assert_equal(a.diagnostics(), b.diagnostics())  # NaN == NaN here
    assert a.summary().equals(b.summary())
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))


def test_nuts_posterior_round_trip_and_arviz_reads_it(tmp_path, run, weighted):
    _, post = run
    path = tmp_path / "run.nc"
    assert post.save(path) == os.fspath(path)
    assert os.listdir(tmp_path) == ["run.nc"]
    loaded = bayesgmm.load_posterior(path)
    _assert_same_posterior(post, loaded, weighted[0])
    assert loaded.info["inverse_mass_matrix"].shape == post.info["inverse_mass_matrix"].shape
    import arviz as az

    idata = az.from_netcdf(path)
    np.testing.assert_array_equal(idata.posterior["means"].values, post.draws.means)
    np.testing.assert_array_equal(idata.log_likelihood["obs"].values, post.pointwise_log_likelihood())


def test_vi_like_posterior_round_trip(tmp_path):
    """Tied covariances, Stephens relabelling, weights, feature names and nested info (no sampler run)."""
    pivot = make_pivot("tied", k=3, d=2, seed=1)
    raw = synthetic_draws(pivot, chains=1, draws=30, seed=2)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(25, 2)) * 3
    result = dict(draws=raw, method="vi", num_warmup=0, num_samples=30, num_chains=1,
                  sample_stats={"lp": rng.normal(size=(1, 30))},
                  info={"guide": "normal", "elbo": rng.normal(size=50), "batch_size": None,
                        "guide_params": {"loc": rng.normal(size=4), ("a", "b"): np.arange(3)}})
    post = Posterior(type("R", (), result)(), x, pivot, sample_weight=rng.uniform(0.5, 2, 25),
                     feature_names=["u", "v"], relabel="stephens")
    path = tmp_path / "vi.nc"
    post.save(path)
    loaded = bayesgmm.load_posterior(path)
    _assert_same_posterior(post, loaded, x)
    assert loaded.info["guide_params"][("a", "b")].tolist() == [0, 1, 2]
    np.testing.assert_array_equal(loaded.info["elbo"], post.info["elbo"])
    assert loaded.info["batch_size"] is None
    with pytest.raises(ValueError, match="only a NUTS posterior that kept its sampler state"):
        loaded.extend(10)


@pytest.mark.slow  # compiles two more NUTS programs (the longer run and the continuation)
def test_extend_and_resume_equal_one_longer_run(tmp_path, run, weighted):
    """100 + 100 draws continue the chains exactly: bit-identical to one run of 200 (CPU)."""
    x, w, _ = weighted
    gm, post = run
    longer = _quiet(gm.fit_posterior, x, sample_weight=w, **{**RUN, "num_samples": 200})
    extended = _quiet(post.extend, 100)
    assert extended.num_samples == 200 and post.num_samples == 100  # the original is unchanged
    _assert_same_posterior(extended, longer, x)
    assert extended.info["n_divergent"] == longer.info["n_divergent"]
    # resumed from a file by a fresh estimator (as another process would): the same draws again
    path = tmp_path / "run.nc"
    post.save(path)
    resumed = _quiet(GaussianMixture(2).fit_posterior, x, sample_weight=w, resume=path, num_samples=100,
                     progress_bar=False)
    _assert_same_posterior(resumed, longer, x)
    # and in a new process (nothing compiled or cached): the same draws once more
    code = (
        "import sys, warnings, numpy as np, bayesgmm; warnings.simplefilter('ignore'); "
        "p = bayesgmm.load_posterior(sys.argv[1]).extend(100); "
        "np.savez(sys.argv[2], means=p.raw_draws.means, lp=p.sample_stats['lp'])"
    )
    root = pathlib.Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "out.npz")], check=True, cwd=root,
                   env=env, capture_output=True, timeout=300)
    with np.load(tmp_path / "out.npz") as out:
        np.testing.assert_array_equal(out["means"], longer.raw_draws.means)
        np.testing.assert_array_equal(out["lp"], longer.sample_stats["lp"])
    with pytest.raises(ValueError, match="not the data the resumed run was conditioned on"):
        GaussianMixture(2).fit_posterior(x[:-1], sample_weight=w[:-1], resume=post, num_samples=5)
    with pytest.raises(ValueError, match="sample_weight differs"):
        GaussianMixture(2).fit_posterior(x, resume=post, num_samples=5)
    with pytest.raises(TypeError, match="only takes num_samples"):
        GaussianMixture(2).fit_posterior(x, sample_weight=w, resume=post, num_warmup=5)


def test_bad_posterior_files_are_refused(tmp_path, run):
    _, post = run
    good = tmp_path / "good.nc"
    post.save(good)
    data = good.read_bytes()
    (tmp_path / "truncated.nc").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.nc").write_bytes(b"not a posterior\n")
    (tmp_path / "garbage.nc").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)
    with open(tmp_path / "model.nc", "wb") as f:  # a zip (model) file is refused with a hint
        np.savez(f, a=np.ones(2))
    import xarray as xr

    xr.Dataset({"a": ("x", np.ones(3))}).to_netcdf(tmp_path / "foreign.nc", engine="h5netcdf")
    tampered = tmp_path / "tampered.nc"
    tampered.write_bytes(data)
    with h5py.File(tampered, "r+") as f:
        f["posterior/means"][0, 0, 0, 0] += 1e-9
    cases = {
        "truncated": "truncated or corrupted",
        "text": "not a netCDF-4 file",
        "garbage": "truncated or corrupted",
        "model": "use bayesgmm.load",
        "foreign": "not a bayesgmm posterior",
        "tampered": "failed its SHA-256 checksum",
    }
    for name, match in cases.items():
        path = tmp_path / f"{name}.nc"
        with pytest.raises(ValueError, match=match) as err:
            bayesgmm.load_posterior(path)
        assert os.fspath(path) in str(err.value)


# ---------------------------------------------------------------------------------------------
# rollback: an interrupted call leaves the estimator as it was
# ---------------------------------------------------------------------------------------------
def _state(est):
    out = {}
    for key, v in vars(est).items():
        out[key] = v.tolist() if isinstance(v, np.ndarray) else v
    return out


def test_interrupted_fit_and_fit_posterior_leave_the_estimator_unchanged(monkeypatch, run, weighted):
    import bayesgmm.estimator as est_mod
    import bayesgmm.infer.nuts as nuts

    x, w, _ = weighted
    gm = GaussianMixture(2, covariance_type="diag", random_state=np.random.RandomState(0))
    gm.fit(x, sample_weight=w)
    before, rs_before = _state(gm), gm.random_state.get_state()[1].copy()
    real_store = GaussianMixture._store

    def store_then_interrupt(self, *args):  # a KeyboardInterrupt half-way through storing the result
        real_store(self, *args)
        raise KeyboardInterrupt

    monkeypatch.setattr(GaussianMixture, "_store", store_then_interrupt)
    for call in (lambda: gm.fit(x * 2, sample_weight=w), lambda: gm.fit_predict(x + 1, sample_weight=w)):
        with pytest.raises(KeyboardInterrupt):
            call()
        assert _state(gm) == before
        np.testing.assert_array_equal(gm.random_state.get_state()[1], rs_before)
    monkeypatch.setattr(GaussianMixture, "_store", real_store)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nuts, "run_nuts", interrupted)
    fresh = GaussianMixture(2, covariance_type="diag", random_state=0)
    with pytest.raises(KeyboardInterrupt):  # fit_posterior fits the MAP first, then is interrupted
        fresh.fit_posterior(x, sample_weight=w, **RUN)
    assert not hasattr(fresh, "weights_") and _state(fresh) == _state(GaussianMixture(2, covariance_type="diag", random_state=0))
    monkeypatch.setattr(est_mod, "fit_map", interrupted)
    with pytest.raises(KeyboardInterrupt):  # other data: n_features_in_ is reset before the EM starts
        gm.fit(np.hstack([x, x, x]))
    assert _state(gm) == before


# ---------------------------------------------------------------------------------------------
# weights: integer weights act as repeated rows
# ---------------------------------------------------------------------------------------------
def test_weighted_posterior_matches_repeated_rows(run, weighted):
    """NUTS with integer weights samples the posterior of the repeated-rows data (MC-error scaled)."""
    x, w, xr = weighted
    _, post = run
    gm = GaussianMixture(2, covariance_type="diag", random_state=0).fit(xr, sample_weight=np.ones(len(xr)))
    np.testing.assert_allclose(gm.means_, run[0].means_, rtol=1e-5)  # the same MAP, same start
    rep = _quiet(gm.fit_posterior, xr, sample_weight=np.ones(len(xr)), **RUN)
    # same shapes: the weighted data reuse the program just compiled for the repeated rows, and
    # the same seed reproduces the fixture's draws bit for bit.  (Both runs are in this test: the
    # suite's conftest may drop compiled programs between tests to bound memory mappings.)
    again = _quiet(run[0].fit_posterior, x, sample_weight=w, **RUN)
    assert again.info["cache_hit"] and again.info["compile_seconds"] < 0.05
    np.testing.assert_array_equal(again.draws.means, post.draws.means)
    sa = post.summary(var_names=["weights", "means", "covariances"])
    sb = rep.summary(var_names=["weights", "means", "covariances"])
    z = (sa["mean"] - sb["mean"]) / np.sqrt(sa["mcse_mean"] ** 2 + sb["mcse_mean"] ** 2)
    assert np.all(np.abs(z) < 4.5), z
    # the weights matter: 3:1 weighted clusters, far from the 1:1 of the unweighted rows
    left = int(np.argmin(post.pivot.means[:, 0]))
    row = sa.loc[f"weights[{left}]"]
    assert abs(row["mean"] - 0.75) < 0.1 and abs(row["mean"] - 0.5) > 10 * row["mcse_mean"]
