"""bayesgmm.datasets: the embedded data, the CSV reader and the known-truth generators."""

import math

import numpy as np
import pytest

from bayesgmm.datasets import (
    load_acidity,
    load_csv,
    load_diabetes,
    load_enzyme,
    load_faithful,
    load_galaxies,
    make_blobs_1d_three,
    make_mixture,
    make_stretched_blobs,
)


# ---------------------------------------------------------------------------------------------
# load_faithful
# ---------------------------------------------------------------------------------------------
def test_load_faithful_array():
    X, names = load_faithful()
    assert X.shape == (272, 2)
    assert X.dtype == np.float64
    assert names == ("eruptions", "waiting")
    np.testing.assert_array_equal(X[:3], [[3.6, 79.0], [1.8, 54.0], [3.333, 74.0]])
    # R's summary(faithful): means 3.488 and 70.9, ranges [1.6, 5.1] and [43, 96]
    np.testing.assert_allclose(X.mean(axis=0), [3.4878, 70.8971], atol=1e-4)
    np.testing.assert_array_equal(X.min(axis=0), [1.6, 43.0])
    np.testing.assert_array_equal(X.max(axis=0), [5.1, 96.0])


def test_load_faithful_frame():
    import pandas as pd  # a test extra; as_frame needs it

    frame = load_faithful(as_frame=True)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["eruptions", "waiting"]
    assert frame.shape == (272, 2)
    np.testing.assert_array_equal(frame.to_numpy(), load_faithful()[0])


def test_provenance_is_shipped():
    from importlib import resources

    text = (resources.files("bayesgmm.datasets") / "PROVENANCE.md").read_text(encoding="utf-8")
    assert "faithful.csv" in text and "GPL-2 / GPL-3" in text and "datasets::faithful" in text


# ---------------------------------------------------------------------------------------------
# the embedded one-dimensional sets (galaxies, acidity, enzyme)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "loader, name, n, mean, lo, hi",
    [
        # R: mean(MASS::galaxies) = 20828.17, range 9172 .. 34279
        (load_galaxies, "velocity", 82, 20828.17, 9172.0, 34279.0),
        # the registered files' (data/README.md) summaries
        (load_acidity, "log_acidity", 155, 5.10510, 2.928524, 7.10513),
        (load_enzyme, "enzyme_activity", 245, 0.62225, 0.021, 2.88),
    ],
)
def test_embedded_one_dimensional_sets(loader, name, n, mean, lo, hi):
    X, names = loader()
    assert names == (name,)
    assert X.shape == (n, 1) and X.dtype == np.float64
    assert np.all(np.isfinite(X))
    assert abs(X.mean() - mean) < 1e-4 * abs(mean)
    assert (X.min(), X.max()) == (lo, hi)


def test_embedded_provenance_lists_every_shipped_csv():
    from importlib import resources

    folder = resources.files("bayesgmm.datasets")
    text = (folder / "PROVENANCE.md").read_text(encoding="utf-8")
    shipped = sorted(p.name for p in folder.iterdir() if p.name.endswith(".csv"))
    assert shipped == ["acidity.csv", "diabetes.csv", "enzyme.csv", "faithful.csv", "galaxies.csv"]
    for name in shipped:
        assert f"`{name}`" in text
    assert "MASS::galaxies" in text and "Richardson & Green (1997)" in text


def test_load_diabetes_is_mclusts_corrected_data():
    X, names, classes = load_diabetes()
    assert names == ("fpg", "glucose", "insulin") and X.shape == (145, 3) and X.dtype == np.float64
    # mclust's class sizes (76 Normal, 36 Chemical, 33 Overt) and its documented correction
    assert {c: int(np.sum(classes == c)) for c in ("Normal", "Chemical", "Overt")} == {
        "Normal": 76, "Chemical": 36, "Overt": 33}
    assert X[103, 1] == 455.0
    assert np.all(np.isfinite(X)) and np.all(X > 0)


# ---------------------------------------------------------------------------------------------
# load_csv
# ---------------------------------------------------------------------------------------------
def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_csv_reads_all_numeric_columns(tmp_path):
    path = write(tmp_path, "a,b,c\n1,2,3\n4.5,-5e-1,6\n")
    X, names, n_dropped = load_csv(path)
    assert names == ("a", "b", "c")
    assert n_dropped == 0
    np.testing.assert_array_equal(X, [[1, 2, 3], [4.5, -0.5, 6]])
    assert X.dtype == np.float64


def test_load_csv_selects_and_orders_columns(tmp_path):
    path = write(tmp_path, "label, a ,b\nx,1,2\ny,3,4\n")  # blanks around names are ignored
    X, names, _ = load_csv(path, columns=["b", "a"])
    assert names == ("b", "a")
    np.testing.assert_array_equal(X, [[2, 1], [4, 3]])
    X2, names2, _ = load_csv(str(path), columns="b, a")  # the command line's "a,b" form
    assert names2 == names
    np.testing.assert_array_equal(X2, X)


def test_load_csv_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere.csv"
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        load_csv(path)


def test_load_csv_unknown_column_lists_available(tmp_path):
    path = write(tmp_path, "alpha,beta\n1,2\n")
    with pytest.raises(ValueError, match=r"unknown column 'gamma'.*available columns: 'alpha', 'beta'"):
        load_csv(path, columns=["alpha", "gamma"])


def test_load_csv_non_numeric_column_is_named(tmp_path):
    path = write(tmp_path, "kind,x,y\ncat,1,2\ndog,3,4\n")
    with pytest.raises(ValueError, match=r"non-numeric column\(s\).*'kind'.*'cat'") as info:
        load_csv(path)
    assert "x,y" in str(info.value)  # suggests the numeric columns
    with pytest.raises(ValueError, match="'kind'"):
        load_csv(path, columns="x,kind")
    X, _, _ = load_csv(path, columns="x,y")  # the numeric ones are fine
    assert X.shape == (2, 2)


@pytest.mark.parametrize("missing", ["", "NA", "nan", "NaN", "N/A", "null"])
def test_load_csv_missing_values_error_or_dropped(tmp_path, missing):
    path = write(tmp_path, f"a,b\n1,2\n3,{missing}\n5,6\n{missing},8\n9,10\n")
    with pytest.raises(ValueError, match=r"2 row\(s\) have missing values \(first at line 3\).*dropna"):
        load_csv(path)
    X, _, n_dropped = load_csv(path, dropna=True)
    assert n_dropped == 2
    np.testing.assert_array_equal(X, [[1, 2], [5, 6], [9, 10]])


def test_load_csv_missing_values_only_in_unselected_columns(tmp_path):
    path = write(tmp_path, "a,b\n1,\n2,NA\n")
    X, _, n_dropped = load_csv(path, columns=["a"])
    assert n_dropped == 0
    np.testing.assert_array_equal(X, [[1], [2]])


def test_load_csv_all_rows_missing_after_dropna(tmp_path):
    path = write(tmp_path, "a,b\n1,NA\nNA,2\n")
    with pytest.raises(ValueError, match="nothing is left"):
        load_csv(path, dropna=True)


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("", "empty"),
        ("a,b\n", "no data rows"),
        ("a,b\n1,2\n3\n", r"line 3: 1 cells, but the header has 2 columns"),
        ("a,b\n1,inf\n", r"line 2: column 'b' is infinite"),
        ("a,a\n1,2\n", "ambiguous"),
    ],
)
def test_load_csv_malformed(tmp_path, text, pattern):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=pattern):
        load_csv(path)


def test_load_csv_directory_and_binary(tmp_path):
    with pytest.raises(ValueError, match="directory"):
        load_csv(tmp_path)
    path = tmp_path / "blob.csv"
    path.write_bytes(b"\xff\xfe\x00\x81a,b\n")
    with pytest.raises(ValueError, match="UTF-8"):
        load_csv(path)


# ---------------------------------------------------------------------------------------------
# make_mixture
# ---------------------------------------------------------------------------------------------
WEIGHTS = np.array([0.2, 0.3, 0.5])
MEANS = np.array([[-4.0, 0.0], [0.0, 3.0], [4.0, -1.0]])
FULL = np.array(
    [
        [[1.0, 0.6], [0.6, 1.0]],
        [[0.5, 0.0], [0.0, 2.0]],
        [[2.0, -0.8], [-0.8, 1.0]],
    ]
)


def test_make_mixture_shapes_and_reproducibility():
    X, labels = make_mixture(1000, WEIGHTS, MEANS, FULL, random_state=3)
    assert X.shape == (1000, 2) and X.dtype == np.float64
    assert labels.shape == (1000,) and labels.dtype == np.int64
    assert set(np.unique(labels)) <= {0, 1, 2}
    X2, labels2 = make_mixture(1000, WEIGHTS, MEANS, FULL, random_state=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(labels, labels2)
    X3, _ = make_mixture(1000, WEIGHTS, MEANS, FULL, random_state=np.random.RandomState(3))
    assert X3.shape == (1000, 2)


def test_make_mixture_labels_follow_weights():
    n = 20_000
    _, labels = make_mixture(n, WEIGHTS, MEANS, FULL, random_state=0)
    counts = np.bincount(labels, minlength=3)
    # each count is Binomial(n, w): within 4 standard deviations
    sd = np.sqrt(n * WEIGHTS * (1 - WEIGHTS))
    assert np.all(np.abs(counts - n * WEIGHTS) < 4 * sd), (counts, n * WEIGHTS)


def test_make_mixture_recovers_component_moments():
    n = 30_000
    X, labels = make_mixture(n, WEIGHTS, MEANS, FULL, random_state=1)
    for k in range(3):
        xk = X[labels == k]
        nk = xk.shape[0]
        # sample mean: standard error sqrt(var / n_k) per coordinate, 4 standard errors
        se = np.sqrt(np.diag(FULL[k]) / nk)
        assert np.all(np.abs(xk.mean(axis=0) - MEANS[k]) < 4 * se)
        # sample covariance entries: standard error sqrt((s_ii s_jj + s_ij^2) / n_k)
        s = FULL[k]
        se_cov = np.sqrt((np.outer(np.diag(s), np.diag(s)) + s**2) / nk)
        assert np.all(np.abs(np.cov(xk.T) - s) < 4 * se_cov)


@pytest.mark.parametrize(
    "covariance_type, covariances, expected_var",
    [
        ("tied", [[1.0, 0.3], [0.3, 2.0]], lambda k: [1.0, 2.0]),
        ("diag", [[1.0, 2.0], [0.5, 0.5], [3.0, 1.0]], lambda k: [[1.0, 2.0], [0.5, 0.5], [3.0, 1.0]][k]),
        ("spherical", [1.0, 0.25, 4.0], lambda k: [[1.0] * 2, [0.25] * 2, [4.0] * 2][k]),
    ],
)
def test_make_mixture_covariance_types(covariance_type, covariances, expected_var):
    X, labels = make_mixture(
        30_000, WEIGHTS, MEANS, covariances, random_state=2, covariance_type=covariance_type
    )
    for k in range(3):
        xk = X[labels == k]
        var = np.asarray(expected_var(k))
        # variance of a sample variance of normals: 2 var^2 / (n - 1)
        se = np.sqrt(2 * var**2 / (xk.shape[0] - 1))
        assert np.all(np.abs(xk.var(axis=0, ddof=1) - var) < 4 * se)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(weights=[0.5, 0.6, -0.1]), "non-negative and sum to 1"),
        (dict(weights=[0.5, 0.4, 0.2]), "sum to 1"),
        (dict(means=[[0.0, 0.0]]), "means must have shape"),
        (dict(covariances=np.ones((3, 2))), "must have shape"),
        (dict(covariances=np.tile([[1.0, 2.0], [2.0, 1.0]], (3, 1, 1))), "positive definite"),
        (dict(covariances=np.tile([[1.0, 0.5], [0.0, 1.0]], (3, 1, 1))), "symmetric"),
        (dict(covariance_type="banana"), "not supported"),
    ],
)
def test_make_mixture_rejects_bad_parameters(kwargs, pattern):
    args = dict(n_samples=10, weights=WEIGHTS, means=MEANS, covariances=FULL, random_state=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        make_mixture(**args)


# ---------------------------------------------------------------------------------------------
# make_blobs_1d_three (seed 000)
# ---------------------------------------------------------------------------------------------
def test_make_blobs_1d_three_matches_the_seed():
    X, labels = make_blobs_1d_three(random_state=0)
    assert X.shape == (17_000, 1)
    np.testing.assert_array_equal(np.bincount(labels), [2000, 5000, 10000])
    assert np.all(np.diff(labels) >= 0)  # concatenated in order, as in the seed
    for k, (loc, sd) in enumerate([(-0.5, 0.2), (-0.1, 0.07), (0.2, 0.13)]):
        xk = X[labels == k, 0]
        assert abs(xk.mean() - loc) < 4 * sd / math.sqrt(xk.size)
        assert abs(xk.std(ddof=1) - sd) < 4 * sd / math.sqrt(2 * (xk.size - 1))
    X2, _ = make_blobs_1d_three(random_state=0)
    np.testing.assert_array_equal(X, X2)


def test_make_blobs_1d_three_custom_counts():
    X, labels = make_blobs_1d_three(n=(3, 0, 5), random_state=1)
    assert X.shape == (8, 1)
    np.testing.assert_array_equal(np.bincount(labels, minlength=3), [3, 0, 5])
    with pytest.raises(ValueError, match="three non-negative counts"):
        make_blobs_1d_three(n=(1, 2))


# ---------------------------------------------------------------------------------------------
# make_stretched_blobs (seed 003)
# ---------------------------------------------------------------------------------------------
def test_make_stretched_blobs_is_the_seeds_sklearn_pipeline():
    from sklearn.datasets import make_blobs

    for seed in (0, 5):
        X, labels = make_stretched_blobs(random_state=seed)
        Xs, ys = make_blobs(n_samples=400, centers=4, cluster_std=0.60, random_state=seed)
        Xs = Xs[:, ::-1] @ np.random.RandomState(13).randn(2, 2)
        np.testing.assert_allclose(X, Xs, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(labels, ys)


def test_make_stretched_blobs_truth():
    X, labels, truth = make_stretched_blobs(n_samples=4002, random_state=3, return_params=True)
    np.testing.assert_array_equal(np.bincount(labels), [1001, 1001, 1000, 1000])
    np.testing.assert_allclose(truth["weights"], np.bincount(labels) / 4002)
    cov = truth["covariance"]
    np.testing.assert_allclose(cov, 0.36 * truth["stretch"].T @ truth["stretch"])
    for k in range(4):
        xk = X[labels == k]
        n = xk.shape[0]
        # the mean of each blob within 4 standard errors of the truth, per coordinate
        se = np.sqrt(np.diag(cov) / n)
        assert np.all(np.abs(xk.mean(axis=0) - truth["means"][k]) < 4 * se)
        # the sample covariance within 4 standard errors (normal theory: var(s_ij) ~ (s_ii s_jj + s_ij^2) / n)
        se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
        assert np.all(np.abs(np.cov(xk.T) - cov) < 4 * se_cov)
    # one shared covariance: the blobs are stretched, not round (what defeats k-means)
    eig = np.linalg.eigvalsh(cov)
    assert eig[1] / eig[0] > 4


def test_make_stretched_blobs_rejects_bad_input():
    with pytest.raises(ValueError, match="n_samples must be >= 4"):
        make_stretched_blobs(3)
    with pytest.raises(ValueError, match="cluster_std must be a finite number > 0"):
        make_stretched_blobs(cluster_std=0.0)


# ---------------------------------------------------------------------------------------------
# the docstring examples run
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("module_name", ["bayesgmm.datasets._csv", "bayesgmm.datasets._synthetic"])
def test_docstring_examples(module_name):
    import doctest
    import importlib

    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
