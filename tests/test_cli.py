"""The ``bayesgmm`` command line, run in-process through ``main(argv)``."""

import contextlib
import io
import re
from importlib import resources

import numpy as np
import pytest

from bayesgmm import __version__
from bayesgmm.cli import main
from bayesgmm.datasets import load_faithful


def run(argv):
    """``main(argv)`` with stdout and stderr captured: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


ROW = re.compile(r"^\s+(\d+)\s+([0-9.]+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$")
CONT = re.compile(r"^\s+(\S+)\s+(\S+)\s+(\S+)\s*$")


def component_table(text, names):
    """Parse the component table: {rank: (weight, {feature: (mean, sd)})}."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:5] == ["k", "weight", "feature", "mean", "sd"])
    table, current = {}, None
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        m = ROW.match(line)
        if m:
            rank, weight, name, mean, sd = m.groups()
            current = int(rank)
            table[current] = (float(weight), {name: (float(mean), float(sd))})
            continue
        m = CONT.match(line)
        assert m and current is not None, f"unexpected table line {line!r}"
        name, mean, sd = m.groups()
        table[current][1][name] = (float(mean), float(sd))
    for _, features in table.values():
        assert tuple(features) == tuple(names)
    return table


@pytest.fixture(scope="module")
def faithful_run():
    return run(["fit"])


def test_fit_embedded_faithful(faithful_run):
    status, out, err = faithful_run
    assert status == 0, err
    assert "Old Faithful" in out
    assert "N = 272 samples, D = 2 feature(s): eruptions, waiting" in out
    assert "K = 2 components, covariance = full, prior = default" in out
    assert "n_init = 5 start(s), seed = 0" in out
    assert "components (ordered by mean eruptions)" in out
    table = component_table(out, ("eruptions", "waiting"))
    assert sorted(table) == [1, 2]
    weights = [table[k][0] for k in (1, 2)]
    assert sum(weights) == pytest.approx(1.0, abs=2e-3)
    # The two Old Faithful clusters: short eruptions after short waits and long after long
    # (maximum-likelihood values 0.356, (2.04, 54.5), (4.29, 80.0); the weak prior barely moves them).
    (w1, short), (w2, long_) = table[1], table[2]
    assert w1 == pytest.approx(0.356, abs=0.01) and w2 == pytest.approx(0.644, abs=0.01)
    assert short["eruptions"][0] == pytest.approx(2.04, abs=0.05)
    assert short["waiting"][0] == pytest.approx(54.5, abs=0.5)
    assert long_["eruptions"][0] == pytest.approx(4.29, abs=0.05)
    assert long_["waiting"][0] == pytest.approx(80.0, abs=0.5)
    for _, features in table.values():
        assert all(sd > 0 for _, sd in features.values())
    assert len(re.findall(r"component \d: r\(eruptions, waiting\) = [+-]0\.\d{3}", out)) == 2
    assert re.search(r"log posterior / N\s+-\d", out)
    assert re.search(r"converged\s+yes, after \d+ EM iteration", out)
    assert re.search(r"BIC\s+\d", out)
    assert err == ""


def test_fit_output_matches_the_estimator(faithful_run):
    """The CLI reports what GaussianMixture(prior='default') fits with the same settings."""
    from bayesgmm.estimator import GaussianMixture

    _, out, _ = faithful_run
    X, names = load_faithful()
    gm = GaussianMixture(n_components=2, prior="default", n_init=5, random_state=0).fit(X)
    order = np.argsort(gm.means_[:, 0])
    table = component_table(out, names)
    for rank, k in enumerate(order, start=1):
        weight, features = table[rank]
        assert weight == pytest.approx(gm.weights_[k], abs=5e-4)
        for j, name in enumerate(names):
            mean, sd = features[name]
            assert mean == pytest.approx(gm.means_[k, j], rel=1e-4)
            assert sd == pytest.approx(np.sqrt(gm.covariances_[k, j, j]), rel=1e-4)
    bic = float(re.search(r"BIC\s+(\S+)", out).group(1))
    assert bic == pytest.approx(gm.bic(X), rel=1e-4)
    lb = float(re.search(r"log posterior / N\s+(\S+)", out).group(1))
    assert lb == pytest.approx(gm.lower_bound_, rel=1e-4)


def test_fit_three_diag_components():
    status, out, err = run(["fit", "--components", "3", "--covariance", "diag"])
    assert status == 0, err
    assert "K = 3 components, covariance = diag" in out
    table = component_table(out, ("eruptions", "waiting"))
    assert sorted(table) == [1, 2, 3]
    assert sum(w for w, _ in table.values()) == pytest.approx(1.0, abs=3e-3)
    means = [features["eruptions"][0] for _, features in table.values()]
    assert means == sorted(means)
    assert "correlations: none (diag covariance" in out
    assert "BIC" in out


def test_dropna_drops_rows_and_fits_the_rest(tmp_path, faithful_run):
    """Faithful with three incomplete rows added: --dropna reports them and fits the same data."""
    X, _ = load_faithful()
    lines = ["eruptions,waiting"] + [f"{a!r},{b!r}" for a, b in X.tolist()]
    lines.insert(10, "NA,70")
    lines.insert(100, "3.1,")
    lines.insert(200, "nan,nan")
    path = tmp_path / "faithful_gaps.csv"
    path.write_text("\n".join(lines) + "\n")

    status, out, err = run(["fit", str(path)])
    assert status == 2 and out == ""
    assert "missing values" in err and "--dropna" in err

    status, out, err = run(["fit", str(path), "--dropna"])
    assert status == 0, err
    assert "N = 272 samples" in out and "3 row(s) with missing values dropped" in out
    assert component_table(out, ("eruptions", "waiting")) == component_table(
        faithful_run[1], ("eruptions", "waiting")
    )


def test_columns_choose_and_order_features(faithful_run):
    status, out, err = run(["fit", "--columns", "waiting,eruptions"])
    assert status == 0, err
    assert "D = 2 feature(s): waiting, eruptions" in out
    assert "components (ordered by mean waiting)" in out
    table = component_table(out, ("waiting", "eruptions"))
    assert table[1][1]["waiting"][0] == pytest.approx(54.5, abs=0.5)


def test_version_and_help():
    status, out, _ = run(["--version"])
    assert status == 0 and out.strip() == f"bayesgmm {__version__}"
    status, out, _ = run(["fit", "--help"])
    assert status == 0
    for option in ("--columns", "--components", "--covariance", "--seed", "--n-init", "--dropna"):
        assert option in out


# ---------------------------------------------------------------------------------------------
# bad input: one line on stderr, exit status 2, nothing on stdout
# ---------------------------------------------------------------------------------------------
CSV = {
    "ok.csv": "a,b\n1,2\n2,1\n3,5\n4,3\n",
    "words.csv": "kind,a,b\ncat,1,2\ndog,2,1\ncow,3,5\n",
    "gaps.csv": "a,b\n1,2\n2,NA\n3,5\n4,3\n",
    "const.csv": "a,b\n1,2\n1,1\n1,5\n1,3\n",
    "empty.csv": "",
}

BAD = [
    (["fit", "{tmp}/missing.csv"], r"data file not found: .*missing\.csv"),
    (["fit", "{tmp}/ok.csv", "--columns", "a,zzz"], r"unknown column 'zzz'.*available columns: 'a', 'b'"),
    (["fit", "--columns", "duration"], r"unknown column 'duration'.*'eruptions', 'waiting'"),
    (["fit", "{tmp}/words.csv"], r"non-numeric column\(s\).*'kind'.*--columns"),
    (["fit", "{tmp}/words.csv", "--columns", "kind,a"], r"non-numeric column\(s\).*'kind'"),
    (["fit", "{tmp}/gaps.csv"], r"1 row\(s\) have missing values.*--dropna"),
    (["fit", "{tmp}/ok.csv", "--components", "5"], r"too few rows for 5 components.*4 usable row"),
    (["fit", "{tmp}/gaps.csv", "--dropna", "-k", "4"], r"too few rows for 4 components.*3 usable row"),
    (["fit", "{tmp}/const.csv"], r"constant column\(s\) 'a'"),
    (["fit", "{tmp}/empty.csv"], r"empty"),
    (["fit", "{tmp}"], r"is a directory"),
    (["fit", "--components", "0"], r"--components.*positive integer"),
    (["fit", "--components", "two"], r"--components.*positive integer"),
    (["fit", "--n-init", "-1"], r"--n-init.*positive integer"),
    (["fit", "--seed", "x"], r"--seed.*non-negative integer"),
    (["fit", "--covariance", "banana"], r"--covariance: invalid choice: 'banana'"),
    (["fit", "--bogus"], r"unrecognized arguments: --bogus"),
    (["fit", "a.csv", "b.csv"], r"unrecognized arguments: b\.csv"),
    ([], r"choose a command: fit"),
    (["frobnicate"], r"invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize("argv, pattern", BAD, ids=[" ".join(a) or "(none)" for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(tmp_path, argv, pattern):
    for name, text in CSV.items():
        (tmp_path / name).write_text(text)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    status, out, err = run(argv)
    assert status == 2
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert err.startswith("bayesgmm: error: ")
    assert "Traceback" not in err
    assert re.search(pattern, err), err


def test_embedded_data_is_the_packaged_csv():
    """No DATA means the CSV shipped inside the package (so a wheel install can run `bayesgmm fit`)."""
    assert (resources.files("bayesgmm.datasets") / "faithful.csv").is_file()
