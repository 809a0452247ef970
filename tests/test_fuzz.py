"""Fuzzed inputs: every input either fits correctly or is refused with a clear error.

Each distinct input kind is one named entry of a module-level registry (``ERROR_CASES``,
``SAME_AS_FLOAT64_CASES``, ``PREDICT_ERROR_CASES``, ``OTHER_CASES``); ``test_case_count`` prints
their number. A correct fit is checked against an oracle: the same values as a float64 array give
bit-identical parameters, and fitting ``c * X + b`` gives ``c * means + b`` and ``c**2 *
covariances`` (hypothesis draws ``c`` and ``b``, derandomised). A refusal must be a ValueError or
TypeError whose message names the argument (``X``) and says what to do. Shapes are kept to a few
(100 x 2, two components) so that the compiled EM programs are shared between examples.
"""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bayesgmm
from bayesgmm import GaussianMixture

_RNG = np.random.default_rng(0)
X0 = np.vstack([_RNG.normal(-2.0, 0.5, (60, 2)), _RNG.normal(2.0, 0.5, (40, 2))])
X0[:, 1] *= 3.0
FIX_WORDS = re.compile(r"\b(use|drop|pass|rescale|reshape|convert|select|check|impute|encode|"
                       r"fewer|more data|remove)\b", re.IGNORECASE)


def _fit(X, prior="default", ct="diag", k=2, **kw):
    return GaussianMixture(k, covariance_type=ct, prior=prior, random_state=0, **kw).fit(X)


def _assert_clear_error(excinfo, must_name="X"):
    msg = str(excinfo.value)
    assert must_name in msg, msg
    assert FIX_WORDS.search(msg), f"the message does not say what to do: {msg}"
    assert len(msg) < 1200, "error messages should not dump the data"


def _with(X, i, j, v):
    X = X.copy()
    X[i, j] = v
    return X


def _df(**cols):
    base = {"a": X0[:, 0], "b": X0[:, 1]}
    base.update(cols)
    return pd.DataFrame(base)


# --- inputs that must be refused at fit: name -> (X, estimator options, exception type) ---------
ERROR_CASES = {
    "nan": (lambda: _with(X0, 3, 1, np.nan), {}, ValueError),
    "inf": (lambda: _with(X0, 5, 0, np.inf), {}, ValueError),
    "neg_inf": (lambda: _with(X0, 5, 0, -np.inf), {}, ValueError),
    "nan_and_inf": (lambda: _with(_with(X0, 1, 0, np.nan), 2, 1, np.inf), {}, ValueError),
    "nan_ml": (lambda: _with(X0, 3, 1, np.nan), {"prior": None}, ValueError),
    "empty_list": (lambda: [], {}, ValueError),
    "zero_rows": (lambda: np.zeros((0, 2)), {}, ValueError),
    "zero_columns": (lambda: np.zeros((10, 0)), {}, ValueError),
    "one_d_array": (lambda: X0[:, 0], {}, ValueError),
    "one_d_list": (lambda: X0[:, 0].tolist(), {}, ValueError),
    "three_d": (lambda: X0.reshape(100, 2, 1), {}, ValueError),
    "scalar": (lambda: np.float64(3.0), {}, ValueError),
    "string_array": (lambda: X0.astype(str), {}, TypeError),
    "object_strings": (lambda: np.array([["a", 1.0]] * 10, dtype=object), {}, TypeError),
    "complex": (lambda: X0.astype(complex), {}, ValueError),
    "datetime_array": (lambda: (np.datetime64("2020-01-01") + np.arange(20)).reshape(10, 2), {}, TypeError),
    "ragged_list": (lambda: [[1.0, 2.0], [3.0]] * 5, {}, ValueError),
    "list_with_strings": (lambda: [[1.0, "x"]] * 10, {}, TypeError),
    "pandas_str_column": (lambda: _df(c=["x"] * 100), {}, TypeError),
    "pandas_category": (lambda: _df(c=pd.Categorical(["u", "v"] * 50)), {}, TypeError),
    "pandas_datetime": (lambda: _df(c=pd.date_range("2020-01-01", periods=100)), {}, TypeError),
    "pandas_mixed_object": (lambda: _df(c=np.array([1.0, "x"] * 50, dtype=object)), {}, TypeError),
    "pandas_nullable_na": (lambda: _df(c=pd.array([1, None] * 50, dtype="Int64")), {}, ValueError),
    "one_row_default_prior": (lambda: X0[:1], {"k": 1}, ValueError),
    "fewer_rows_than_components": (lambda: X0[:2], {"k": 3}, ValueError),
    "constant_column_prior": (lambda: np.c_[X0[:, 0], np.full(100, 7.0)], {}, ValueError),
    "all_constant_prior": (lambda: np.full((100, 2), -3.0), {}, ValueError),
    "offset_1e150_constant": (lambda: X0 + 1e150, {}, ValueError),  # X lost below float64 spacing
    "collinear_full_prior": (lambda: np.c_[X0[:, 0], 2.0 * X0[:, 0] - 1.0], {"ct": "full"}, ValueError),
    "collinear_tied_prior": (lambda: np.c_[X0, X0[:, 0] - X0[:, 1]], {"ct": "tied"}, ValueError),
    "rank_deficient_full_prior": (lambda: X0[:3, :1] * [[1.0, 2.0, 3.0]] + _RNG.normal(size=(3, 3)) * [[0, 0, 1]],
                                  {"ct": "full", "k": 1}, ValueError),
    "std_above_1e150": (lambda: X0 * 1e160, {}, ValueError),
    "std_above_1e150_ml": (lambda: X0 * 1e160, {"prior": None}, ValueError),
    "std_below_1e-150_prior": (lambda: X0 * 1e-160, {}, ValueError),
    "extreme_range_overflow": (lambda: _with(_with(X0, 0, 0, -1.5e308), 1, 0, 1.5e308), {}, ValueError),
}


@pytest.mark.parametrize("name", sorted(ERROR_CASES))
def test_fit_refuses_bad_input(name):
    make, opts, exc = ERROR_CASES[name]
    opts = dict(opts)
    with pytest.raises(exc) as excinfo:
        _fit(make(), prior=opts.pop("prior", "default"), ct=opts.pop("ct", "diag"), k=opts.pop("k", 2))
    _assert_clear_error(excinfo)


# --- inputs holding the same values as a float64 array: the fit must be bit-identical ------------
SAME_AS_FLOAT64_CASES = {
    "int64": lambda: np.round(X0 * 10).astype(np.int64),
    "int32": lambda: np.round(X0 * 10).astype(np.int32),
    "uint8": lambda: np.round(X0 * 10 + 60).astype(np.uint8),
    "bool": lambda: np.c_[X0[:, 0] > 0, X0[:, 1] > 1.0],
    "float16": lambda: X0.astype(np.float16),
    "float32": lambda: X0.astype(np.float32),
    "fortran_order": lambda: np.asfortranarray(X0),
    "non_contiguous": lambda: np.repeat(X0, 2, axis=1)[:, ::2],
    "reversed_strides": lambda: X0[::-1][::-1],
    "list_of_lists": lambda: X0.tolist(),
    "tuple_of_tuples": lambda: tuple(map(tuple, X0)),
    "pandas_float": lambda: _df(),
    "pandas_int_object_column": lambda: pd.DataFrame({"a": X0[:, 0], "b": X0[:, 1].astype(object)}),
    "pandas_nullable_int": lambda: pd.DataFrame({"a": pd.array(np.round(X0[:, 0] * 10).astype(int), dtype="Int64"),
                                                 "b": X0[:, 1]}),
    "duplicated_rows_twice": lambda: np.vstack([X0, X0]),
}


def _as_float64(X):
    if isinstance(X, pd.DataFrame):
        return X.to_numpy(dtype=np.float64)
    return np.asarray(X).astype(np.float64)


@pytest.mark.parametrize("name", sorted(SAME_AS_FLOAT64_CASES))
@pytest.mark.parametrize("prior", ["default", None], ids=["prior", "ml"])
def test_same_values_give_identical_fit(name, prior):
    X = SAME_AS_FLOAT64_CASES[name]()
    ref = _fit(_as_float64(X), prior=prior)
    got = _fit(X, prior=prior)
    np.testing.assert_array_equal(got.means_, ref.means_)
    np.testing.assert_array_equal(got.covariances_, ref.covariances_)
    np.testing.assert_array_equal(got.weights_, ref.weights_)
    assert np.all(np.isfinite(got.covariances_)) and np.all(got.covariances_ > 0)
    np.testing.assert_array_equal(got.score_samples(X), ref.score_samples(_as_float64(X)))
    np.testing.assert_array_equal(got.predict(X), ref.predict(_as_float64(X)))


# --- affine equivariance under extreme scales and offsets (hypothesis) ---------------------------
_SCALES = [1.0, -1.0, 1e-8, 1e8, 1e-20, 1e20, 1e-100, 1e100, 3.7e-5]
_OFFSETS = [0.0, 1e8, -1e8, 1e15, 1e-3, -2.5e20]
_BASE = {}


def _base(ct, prior):
    if (ct, prior) not in _BASE:
        _BASE[ct, prior] = _fit(X0, prior=prior, ct=ct)
    return _BASE[ct, prior]


@pytest.mark.parametrize("c", _SCALES)
@settings(max_examples=4, deadline=None, derandomize=True)
@given(
    b=st.sampled_from(_OFFSETS),
    ct=st.sampled_from(["diag", "full"]),
    prior=st.sampled_from(["default", None]),
)
def test_affine_equivariance(c, b, ct, prior):
    if prior is None and abs(c) < 1e-2:
        c = 1.0 / c  # ML adds reg_covar (absolute): equivariant only when it is negligible
    if abs(b) > 1e6 * abs(c):
        b = np.sign(b) * 1e6 * abs(c)  # float64 keeps X + b exact only to ~1e-10 of the spread
    base = _base(ct, prior)
    fit = _fit(c * X0 + b, prior=prior, ct=ct)
    spread = abs(c) * X0.std(axis=0)
    assert np.all(np.isfinite(fit.means_)) and np.all(np.isfinite(fit.covariances_))
    np.testing.assert_allclose((fit.means_ - b) / spread, c * base.means_ / spread, atol=1e-3)
    np.testing.assert_allclose(fit.covariances_ / (c * c), base.covariances_, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(fit.weights_, base.weights_, atol=1e-4)
    if prior is None:
        np.testing.assert_allclose(fit.lower_bound_ + X0.shape[1] * np.log(abs(c)), base.lower_bound_, atol=2e-3)
    s = fit.score_samples(c * X0[:5] + b)
    np.testing.assert_allclose(s + X0.shape[1] * np.log(abs(c)), base.score_samples(X0[:5]), atol=2e-3)


# --- predict / score_samples with bad input after a good fit: name -> (X, exception) ------------
PREDICT_ERROR_CASES = {
    "wrong_n_features_more": (lambda: np.zeros((3, 3)), ValueError),
    "wrong_n_features_fewer": (lambda: np.zeros((3, 1)), ValueError),
    "predict_one_d": (lambda: np.zeros(2), ValueError),
    "predict_nan": (lambda: np.array([[np.nan, 0.0]]), ValueError),
    "predict_inf": (lambda: np.array([[0.0, -np.inf]]), ValueError),
    "predict_zero_rows": (lambda: np.zeros((0, 2)), ValueError),
    "predict_strings": (lambda: np.array([["a", "b"]]), TypeError),
    "predict_pandas_str_column": (lambda: pd.DataFrame({"a": [0.0], "b": ["x"]}), TypeError),
}


@pytest.fixture(scope="module")
def fitted():
    return _fit(X0)


@pytest.mark.parametrize("name", sorted(PREDICT_ERROR_CASES))
@pytest.mark.parametrize("method", ["predict", "score_samples", "predict_proba"])
def test_predict_refuses_bad_input(fitted, name, method):
    make, exc = PREDICT_ERROR_CASES[name]
    with pytest.raises(exc) as excinfo:
        getattr(fitted, method)(make())
    _assert_clear_error(excinfo)


# --- the remaining kinds, one test each -----------------------------------------------------------
OTHER_CASES = [
    "constant_column_ml", "duplicated_cluster_ml", "one_row_ml", "scaled_1e-20_ml_reg_dominates",
    "offset_1e15_precision", "fit_posterior_nan", "fit_posterior_wrong_n_features",
    "fit_posterior_ml", "select_nan", "select_non_numeric", "select_wrong_dims", "n_features_1",
]


def test_constant_column_ml_fits_like_sklearn():
    """ML with a constant feature: finite, the constant recovered, its variance exactly reg_covar."""
    X = np.c_[X0[:, 0], np.full(100, 7.0)]
    gm = _fit(X, prior=None)
    np.testing.assert_allclose(gm.means_[:, 1], 7.0, rtol=1e-12)
    np.testing.assert_allclose(gm.covariances_[:, 1], gm.reg_covar, rtol=1e-3)
    assert np.all(np.isfinite(gm.score_samples(X)))


def test_duplicated_cluster_ml_is_finite_and_reported():
    X = np.vstack([X0, np.repeat(X0[:1], 20, axis=0)])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        gm = _fit(X, prior=None, k=3)
    assert np.all(np.isfinite(gm.covariances_)) and np.all(np.isfinite(gm.weights_))
    if len(gm.collapsed_components_):
        assert any(issubclass(r.category, bayesgmm.CollapsedComponentWarning) for r in rec)


def test_one_row_ml():
    gm = _fit(X0[:1], prior=None, k=1)
    np.testing.assert_allclose(gm.means_[0], X0[0], rtol=1e-6)
    np.testing.assert_allclose(gm.covariances_[0], gm.reg_covar, rtol=1e-3)


def test_tiny_scale_ml_is_dominated_by_reg_covar():
    """Data of scale 1e-20 in ML mode: reg_covar (1e-6) is the variance, as in scikit-learn."""
    gm = _fit(X0 * 1e-20, prior=None)
    assert np.all(np.isfinite(gm.covariances_))
    np.testing.assert_allclose(gm.covariances_, gm.reg_covar, rtol=1e-3)


def test_offset_1e15_keeps_precision():
    """Means are reported in float64: an offset of 1e15 keeps float64 precision (float32: 6.7e7)."""
    base = _base("diag", "default")
    gm = _fit(X0 + 1e15)
    np.testing.assert_allclose(np.sort(gm.means_ - 1e15, axis=0), np.sort(base.means_, axis=0), atol=0.13)  # float64 spacing at 1e15: 0.125


def test_fit_posterior_refuses_bad_input(fitted):
    with pytest.raises(ValueError) as excinfo:
        fitted.fit_posterior(_with(X0, 0, 0, np.nan), num_warmup=5, num_samples=5, progress_bar=False)
    _assert_clear_error(excinfo)
    with pytest.raises(ValueError) as excinfo:
        fitted.fit_posterior(np.zeros((5, 3)), num_warmup=5, num_samples=5, progress_bar=False)
    _assert_clear_error(excinfo)
    with pytest.raises(ValueError) as excinfo:
        _fit(X0, prior=None).fit_posterior(X0, num_warmup=5, num_samples=5, progress_bar=False)
    assert "prior" in str(excinfo.value) and FIX_WORDS.search(str(excinfo.value))


def test_select_refuses_bad_input_up_front():
    with pytest.raises(ValueError) as excinfo:
        bayesgmm.select(_with(X0, 0, 0, np.nan), n_components=[1, 2], progress_bar=False)
    _assert_clear_error(excinfo)
    with pytest.raises(TypeError) as excinfo:
        bayesgmm.select(_df(c=["x"] * 100), n_components=[1, 2], progress_bar=False)
    _assert_clear_error(excinfo)
    with pytest.raises(ValueError) as excinfo:
        bayesgmm.select(X0[:, 0], n_components=[1, 2], progress_bar=False)
    _assert_clear_error(excinfo)


def test_single_feature_column_vector():
    gm = _fit(X0[:, :1])
    assert np.all(np.isfinite(gm.covariances_)) and gm.means_.shape == (2, 1)
    np.testing.assert_allclose(np.sort(gm.means_[:, 0]), [-2.0, 2.0], atol=0.3)


def test_case_count():
    names = (
        list(ERROR_CASES) + list(SAME_AS_FLOAT64_CASES) + ["affine_scale_" + str(s) for s in _SCALES if s != 1.0] + ["affine_offset"]
        + list(PREDICT_ERROR_CASES) + OTHER_CASES
    )
    assert len(names) == len(set(names))
    print(f"\ntest_fuzz: {len(names)} distinct input kinds")
    assert len(names) >= 50
