"""Saving and loading without pickle: exact round trips, and refusal of bad files."""

import copy
import json
import os
import pickle
import zipfile

import jax
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import bayesgmm
from bayesgmm import GaussianMixture, Prior
from bayesgmm import io as bio


@pytest.fixture(scope="module")
def frame():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(-2, 0.5, (80, 2)), rng.normal(2, 0.7, (40, 2))])
    return pd.DataFrame(x, columns=["length", "width"])


FITTED = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_", "lower_bounds_",
          "converged_", "n_iter_", "lower_bound_", "n_empty_", "n_features_in_", "_shift", "_scale")


def _assert_same_estimator(a, b, X):
    # every attribute a fit or partial_fit sets is restored (a new one must be added to bayesgmm.io)
    assert set(vars(a)) == set(vars(b))
    assert set(FITTED) <= set(vars(a))
    for name in sorted(set(vars(a)) - {"map_result_", "_online"} - set(a.get_params())):
        va, vb = getattr(a, name), getattr(b, name)
        assert type(va) is type(vb), name
        if isinstance(va, np.ndarray):
            assert va.dtype == vb.dtype, name
        np.testing.assert_array_equal(va, vb, err_msg=name)
    pa, pb = a.get_params(), b.get_params()
    assert pa.keys() == pb.keys()
    for key in pa:
        if key == "random_state" and isinstance(pa[key], np.random.RandomState):
            assert pa[key].get_state()[1].tolist() == pb[key].get_state()[1].tolist()
        elif key == "prior" and isinstance(pa[key], Prior):
            assert type(pb[key]) is Prior
            for f in ("weight_concentration", "mean_loc", "mean_scale", "scale_scale", "lkj_concentration",
                      "covariance_floor"):
                assert type(getattr(pa[key], f)) is type(getattr(pb[key], f)), f
                np.testing.assert_array_equal(getattr(pa[key], f), getattr(pb[key], f))
            assert (pa[key].scale_prior, pa[key].ordered_means) == (pb[key].scale_prior, pb[key].ordered_means)
        else:
            assert type(pa[key]) is type(pb[key]), key
            np.testing.assert_array_equal(pa[key], pb[key], err_msg=key)
    for method in ("predict", "predict_proba", "score_samples"):
        np.testing.assert_array_equal(getattr(a, method)(X), getattr(b, method)(X), err_msg=method)
    xa, ya = a.sample(7)
    xb, yb = b.sample(7)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    # map_result_: everything but the per-restart EM diagnostics
    ma, mb = a.map_result_, b.map_result_
    for f in ("objective", "log_likelihood", "converged", "n_iter", "n_empty", "best_index", "history",
              "restart_objectives", "shift", "scale"):
        np.testing.assert_array_equal(getattr(ma, f), getattr(mb, f), err_msg=f)
    for f in ("weights", "means", "scales", "corr_chol"):
        va, vb = getattr(ma.params, f), getattr(mb.params, f)
        assert (va is None) == (vb is None)
        if va is not None:
            assert np.asarray(va).dtype == vb.dtype
            np.testing.assert_array_equal(va, vb)
    assert mb.info is None
    assert (ma.prior is None) == (mb.prior is None)
    if ma.prior is not None:
        for f in ("weight_concentration", "mean_loc", "mean_scale", "scale_scale", "lkj_concentration",
                  "covariance_floor"):
            np.testing.assert_array_equal(getattr(ma.prior, f), getattr(mb.prior, f), err_msg=f)
    oa, ob = getattr(a, "_online", None), getattr(b, "_online", None)
    assert (oa is None) == (ob is None)
    if oa is not None:
        for la, lb in zip(jax.tree_util.tree_leaves(oa), jax.tree_util.tree_leaves(ob)):
            np.testing.assert_array_equal(la, lb)


def test_partial_fit_state_round_trip(tmp_path, frame):
    """A saved streaming model goes on exactly as the one kept in memory."""
    x = frame.to_numpy()
    gm = GaussianMixture(2, random_state=0).partial_fit(x[:60]).partial_fit(x[60:90])
    path = gm.save(tmp_path / "stream.npz")
    loaded = bayesgmm.load(path)
    _assert_same_estimator(gm, loaded, x)
    gm.partial_fit(x[90:])
    loaded.partial_fit(x[90:])
    _assert_same_estimator(gm, loaded, x)
    assert loaded.n_steps_ == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n_components=2, random_state=0, prior=Prior(weight_concentration=np.array([1.0, 2.0]), mean_scale=3.0)),
        dict(n_components=2, covariance_type="diag", prior=None, random_state=np.random.RandomState(3),
             means_init=[[-2.0, -2.0], [2.0, 2.0]], n_init=2, tol=1e-5),
    ],
    ids=["full-prior-arrays", "ml-diag-randomstate-list"],
)
def test_estimator_round_trip_is_exact(tmp_path, frame, kwargs):
    gm = GaussianMixture(**kwargs).fit(frame)
    path = tmp_path / "model.npz"
    assert gm.save(path) == os.fspath(path)
    loaded = bayesgmm.load(path)
    np.testing.assert_array_equal(loaded.feature_names_in_, gm.feature_names_in_)
    assert loaded.feature_names_in_.dtype == object
    _assert_same_estimator(gm, loaded, frame)
    # the file is a plain zip of .npy arrays readable without pickle, and nothing else is left behind
    with np.load(path, allow_pickle=False) as z:
        header = json.loads(str(z["__header__"][()]))
    assert header["format_version"] == bio.FORMAT_VERSION and header["kind"] == "GaussianMixture"
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]


@pytest.fixture(scope="module")
def fitted(frame):
    return GaussianMixture(2, random_state=0).fit(frame)  # same program as the round trip's first case


def test_files_from_before_the_covariance_floor_load_as_the_model_without_it(tmp_path, monkeypatch, fitted):
    """A file written before ``Prior.covariance_floor`` existed has no such field: its prior loads
    with ``covariance_floor=0`` and its resolved prior without the factor (the model it was fitted
    with), not with today's default."""
    real_to_json = bio._prior_to_json

    def old_to_json(prior, arrays):
        out = real_to_json(prior, arrays)
        if isinstance(out, dict) and "__prior__" in out:
            out["__prior__"].pop("covariance_floor")
        return out

    gm = copy.deepcopy(fitted).set_params(prior=Prior(weight_concentration=2.0))
    monkeypatch.setattr(bio, "_prior_to_json", old_to_json)
    monkeypatch.setattr(bio, "_RESOLVED_PRIOR_FIELDS", bio._RESOLVED_PRIOR_FIELDS[:-1])
    gm.save(tmp_path / "old.npz")
    monkeypatch.undo()
    loaded = bayesgmm.load(tmp_path / "old.npz")
    assert loaded.prior == Prior(weight_concentration=2.0, covariance_floor=0.0)
    assert loaded.map_result_.prior.covariance_floor is None
    assert fitted.map_result_.prior.covariance_floor is not None  # today's files carry it


def test_unfitted_and_unsaveable_estimators(tmp_path, fitted):
    with pytest.raises(NotFittedError, match="not fitted yet, so there is nothing to save"):
        GaussianMixture(2).save(tmp_path / "m.npz")
    gm = copy.deepcopy(fitted).set_params(random_state=np.random.default_rng(0))
    with pytest.raises(TypeError, match="cannot save random_state=Generator"):
        gm.save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []  # no half-written file, no temporary left behind


def test_failed_write_leaves_the_old_file(tmp_path, monkeypatch, fitted):
    path = tmp_path / "m.npz"
    fitted.save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        fitted.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, fitted):
    path = tmp_path_factory.mktemp("model") / "m.npz"
    fitted.save(path)
    return path


def _rewrite(src, dst, change):
    """Copy the archive ``src`` to ``dst`` with ``change(name, bytes) -> bytes`` applied to members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, change(item.filename, zin.read(item.filename)))


def _npy(value):
    import io

    buf = io.BytesIO()
    np.save(buf, value, allow_pickle=False)
    return buf.getvalue()


def test_bad_files_are_refused_clearly(tmp_path, saved_model):
    data = saved_model.read_bytes()
    cases = {}
    cases["truncated"] = (data[: len(data) // 2], "truncated or corrupted")
    cases["text"] = (b"weights: 0.5 0.5\n", "not an .npz archive")
    cases["pickle"] = (pickle.dumps({"weights_": np.ones(2)}), "not an .npz archive")
    cases["netcdf"] = (b"\x89HDF\r\n\x1a\n" + bytes(64), "load a saved posterior with bayesgmm.load_posterior")
    for name, (content, _) in cases.items():
        (tmp_path / f"{name}.npz").write_bytes(content)
    np.savez(tmp_path / "foreign.npz", a=np.arange(3))
    cases["foreign"] = (None, "not a bayesgmm file")

    def tamper(name, b):
        if name != "fitted:means_.npy":
            return b
        return _npy(np.load(saved_model)["fitted:means_"] + 1e-12)

    _rewrite(saved_model, tmp_path / "tampered.npz", tamper)
    cases["tampered"] = (None, "failed its SHA-256 checksum")

    def newer(name, b):
        if name != "__header__.npy":
            return b
        header = json.loads(str(np.load(saved_model)["__header__"][()]))
        header["format_version"] = bio.FORMAT_VERSION + 1
        return _npy(np.asarray(json.dumps(header)))

    _rewrite(saved_model, tmp_path / "newer.npz", newer)
    cases["newer"] = (None, r"format version 2 .* reads versions up to 1\. Upgrade bayesgmm")
    for name, (_, match) in cases.items():
        path = tmp_path / f"{name}.npz"
        with pytest.raises(ValueError, match=match) as err:
            bayesgmm.load(path)
        assert os.fspath(path) in str(err.value), name
    with pytest.raises(FileNotFoundError):
        bayesgmm.load(tmp_path / "missing.npz")
