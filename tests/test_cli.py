"""The ``bayesgmm`` command line, run in-process through ``main(argv)``."""

import csv
import contextlib
import io
import pathlib
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


#: The MAP-only path of the first tests: no posterior, no files, no progress output.
MAP_ONLY = ["--method", "map", "--no-report", "-q"]


@pytest.fixture(scope="module")
def faithful_run():
    return run(["fit", *MAP_ONLY])


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
    status, out, err = run(["fit", "--components", "3", "--covariance", "diag", *MAP_ONLY])
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

    status, out, err = run(["fit", str(path), *MAP_ONLY])
    assert status == 2 and out == ""
    assert "missing values" in err and "--dropna" in err

    status, out, err = run(["fit", str(path), "--dropna", *MAP_ONLY])
    assert status == 0, err
    assert "N = 272 samples" in out and "3 row(s) with missing values dropped" in out
    assert component_table(out, ("eruptions", "waiting")) == component_table(
        faithful_run[1], ("eruptions", "waiting")
    )


def test_columns_choose_and_order_features(faithful_run):
    status, out, err = run(["fit", "--columns", "waiting,eruptions", *MAP_ONLY])
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
    for option in ("--columns", "--components", "--select", "--covariance", "--criterion", "--method",
                   "--chains", "--warmup", "--samples", "--vi-steps", "--seed", "--n-init", "--out",
                   "--no-report", "--dropna", "--quiet"):
        assert option in out
    # the README's option table documents exactly the options of `fit --help`
    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    documented = set(re.findall(r"`(--[a-z-]+)", "\n".join(l for l in readme.splitlines() if l.startswith("| `--"))))
    offered = set(re.findall(r"(--[a-z][a-z-]+)", out)) - {"--help"}
    assert documented == offered, (documented ^ offered)


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
    # the options of the report run
    (["fit", "--select", "0..3"], r"--select.*range of positive component counts.*'0\.\.3'"),
    (["fit", "--select", "4..2"], r"--select.*like 1\.\.8"),
    (["fit", "--select", "many"], r"--select.*'many'"),
    (["fit", "--components", "2", "--select", "1..3"], r"--select: not allowed with argument --components"),
    (["fit", "{tmp}/ok.csv", "--select", "1..6"], r"too few rows for 6 components.*4 usable row"),
    (["fit", "--method", "mcmc"], r"--method: invalid choice: 'mcmc'"),
    (["fit", "--criterion", "loo"], r"--criterion loo chooses a model: use it with --select A\.\.B or "
                                    r"--covariance auto"),
    (["fit", "--select", "1..2", "--criterion", "deviance"], r"--criterion: invalid choice: 'deviance'"),
    (["fit", "--covariance", "automatic"], r"--covariance: invalid choice: 'automatic'"),
    (["fit", "--chains", "0"], r"--chains.*positive integer"),
    (["fit", "--warmup", "-5"], r"--warmup.*positive integer"),
    (["fit", "--samples", "3"], r"--samples.*integer of at least 4"),
    (["fit", "--vi-steps", "1.5"], r"--vi-steps.*positive integer"),
    (["fit", "--out", "{tmp}/ok.csv"], r"--out .*ok\.csv.* is not a directory"),
    (["fit", "--out", "{tmp}/no/such/dir"], r"--out .*does not exist; create it first"),
]

#: A user's report directory that every failing run must leave exactly as it was.
KEEP = {"notes.txt": "mine\n", "report.html": "<html>an older report</html>\n"}


def _listing(path):
    return sorted((p.relative_to(path).as_posix(), p.read_bytes() if p.is_file() else None) for p in path.rglob("*"))


@pytest.mark.parametrize("argv, pattern", BAD, ids=[" ".join(a) or "(none)" for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(tmp_path, argv, pattern):
    for name, text in CSV.items():
        (tmp_path / name).write_text(text)
    out_dir = tmp_path / "report"
    out_dir.mkdir()
    for name, text in KEEP.items():
        (out_dir / name).write_text(text)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[:1] == ["fit"] and "--out" not in argv:
        argv += ["--out", str(out_dir)]
    before = _listing(tmp_path)
    status, out, err = run(argv)
    assert status == 2
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert err.startswith("bayesgmm: error: ")
    assert "Traceback" not in err
    assert re.search(pattern, err), err
    assert _listing(tmp_path) == before  # --out untouched, no staging directory left behind


def test_embedded_data_is_the_packaged_csv():
    """No DATA means the CSV shipped inside the package (so a wheel install can run `bayesgmm fit`)."""
    assert (resources.files("bayesgmm.datasets") / "faithful.csv").is_file()


def test_python_dash_m_runs_the_same_command_line():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "bayesgmm", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"bayesgmm {__version__}"
    proc = subprocess.run([sys.executable, "-m", "bayesgmm", "fit", "--select", "x"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("bayesgmm: error: argument --select") and proc.stderr.count("\n") == 1


# ---------------------------------------------------------------------------------------------
# the report: one `--method all` run on the embedded data with small draws
# ---------------------------------------------------------------------------------------------
SMALL = ["--chains", "2", "--warmup", "100", "--samples", "100", "--vi-steps", "300"]
FAITHFUL_CLUSTERS = {"weights": (0.356, 0.644), "eruptions": (2.04, 4.29), "waiting": (54.5, 80.0)}


@pytest.fixture(scope="module")
def report_run(tmp_path_factory):
    """`bayesgmm fit --method all` into an existing directory that holds a file of the user's."""
    out = tmp_path_factory.mktemp("cli") / "report"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    status, stdout, stderr = run(["fit", *SMALL, "--out", str(out)])
    return out, status, stdout, stderr


def _read_csv(path):
    import csv

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {r["parameter"]: r for r in rows}


def test_report_run_prints_every_section(report_run):
    out, status, stdout, stderr = report_run
    assert status == 0, stderr
    for heading in ("components (ordered by mean eruptions)", "EM (MAP) next to the posterior",
                    "agreement of the EM labels with each posterior", "diagnostics (after relabelling",
                    "assignment uncertainty (nuts posterior)", f"report    {out / 'report.html'}"):
        assert heading in stdout
    # progress on stderr, one line per step, the summary on stdout only
    assert [f"[{i}/4]" in stderr for i in range(1, 5)] == [True] * 4
    assert "[1/4]" not in stdout
    # NUTS diagnostics: a two-component Old Faithful posterior mixes (R-hat after relabelling)
    row = re.search(r"^  nuts\s+2 x 100 \(\+100 warm-up\)\s+([0-9.]+) \(([0-9.]+)\)\s+(\d+) / (\d+)\s+(\d+)", stdout,
                    re.M)
    assert row, stdout
    # (2 short chains of 100 draws: R-hat varies by about +-0.1 between seeds; a relabelling
    # failure gives 1.5 and more)
    assert float(row.group(1)) < 1.25 and int(row.group(3)) > 50
    # well-separated clusters: few points are unsure of their component
    m = re.search(r"(\d+) of 272 points \(([0-9.]+)%\) have max_k p\(k \| x\) < 0.9", stdout)
    assert m and int(m.group(1)) <= 10


def test_report_directory_holds_our_files_and_keeps_the_users(report_run):
    out, status, _, stderr = report_run
    assert status == 0, stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["model.npz", "notes.txt", "posterior_nuts.nc", "posterior_vi.nc", "report.html", "summary.csv"]
    assert (out / "notes.txt").read_text() == "mine\n"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".report.tmp")]  # staging removed


def test_report_html_is_self_contained_with_tables_and_images(report_run):
    import base64

    out, status, _, stderr = report_run
    assert status == 0, stderr
    page = (out / "report.html").read_text()
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 4
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    ids = set(re.findall(r'<figure id="fig-([a-z_0-9]+)"', page))
    assert {"map_ellipses", "posterior_ellipses", "uncertainty", "comparison", "trace", "rank"} <= ids
    # nothing loaded from elsewhere
    assert not re.search(r"<script|<link|src=\"(?!data:)|url\(", page)
    assert page.count("<table>") >= 4
    for text in ("means[0,eruptions]", "MAP in HDI", "max R-hat (before relabelling)", "ARI (EM labels vs partition)"):
        assert text in page


def test_summary_csv_and_netcdf_agree_and_recover_old_faithful(report_run):
    import arviz as az  # from_netcdf: InferenceData under ArviZ 0.2x, DataTree under 1.x

    import bayesgmm
    from bayesgmm import _arviz

    out, status, _, stderr = report_run
    assert status == 0, stderr
    table = _read_csv(out / "summary.csv")
    assert len(table) == 2 + 4 + 6  # weights, means, distinct entries of two 2x2 covariances
    for name in ("nuts", "vi"):
        idata = az.from_netcdf(out / f"posterior_{name}.nc")
        post = idata.posterior
        assert post.weights.dims == ("chain", "draw", "component")
        assert list(post.feature.values) == ["eruptions", "waiting"]
        assert post.sizes["chain"] * post.sizes["draw"] == 200
        assert {"log_likelihood", "observed_data"} <= set(_arviz.group_names(idata))
        # the table is the summary of the file's draws (components matched to the MAP's labels)
        w = post.weights.values.reshape(-1, 2).mean(axis=0)
        csv_w = sorted(float(table[f"weights[{k}]"][f"{name}_mean"]) for k in (0, 1))
        assert sorted(w) == pytest.approx(csv_w, rel=1e-6)
        restored = bayesgmm.load_posterior(out / f"posterior_{name}.nc")
        assert np.array_equal(np.asarray(restored.draws.weights), post.weights.values)
        mean_sd = post.weights.values.reshape(-1, 2).std(axis=0, ddof=1)
        truth = FAITHFUL_CLUSTERS["weights"]
        assert sorted(w) == pytest.approx(truth, abs=4 * float(mean_sd.max()))
    for key, row in table.items():
        assert row["nuts_map_in_hdi"] == "True", key  # the MAP lies inside every 94% HDI here


def test_model_file_loads_and_is_the_printed_map(report_run):
    import bayesgmm

    out, status, stdout, stderr = report_run
    assert status == 0, stderr
    gm = bayesgmm.load(out / "model.npz")
    order = np.argsort(gm.means_[:, 0])
    table = component_table(stdout, ("eruptions", "waiting"))
    for rank, k in enumerate(order, start=1):
        assert table[rank][0] == pytest.approx(gm.weights_[k], abs=5e-4)
        assert table[rank][1]["waiting"][0] == pytest.approx(gm.means_[k, 1], rel=1e-4)
    assert np.round(gm.means_[order, 0], 2).tolist() == pytest.approx(FAITHFUL_CLUSTERS["eruptions"], abs=0.02)
    summary = _read_csv(out / "summary.csv")
    assert float(summary["means[0,waiting]"]["map"]) == pytest.approx(gm.means_[0, 1], rel=1e-6)


def test_rerun_replaces_only_our_files(report_run, tmp_path):
    """A `--method map` run into a copy of the report directory: our stale files go, the user's stay."""
    import shutil

    out, status, _, stderr = report_run
    assert status == 0, stderr
    copy = tmp_path / "report"
    shutil.copytree(out, copy)
    status, stdout, stderr = run(["fit", "--method", "map", "-q", "--out", str(copy)])
    assert status == 0, stderr
    assert sorted(p.name for p in copy.iterdir()) == ["model.npz", "notes.txt", "report.html", "summary.csv"]
    assert (copy / "notes.txt").read_text() == "mine\n"
    page = (copy / "report.html").read_text()
    assert "methods: map" in page and page.count("data:image/png;base64,") >= 3
    assert sorted(_read_csv(copy / "summary.csv")) == sorted(_read_csv(out / "summary.csv"))
    assert "assignment uncertainty (MAP responsibilities)" in stdout


def test_a_failed_run_leaves_out_untouched(tmp_path, monkeypatch):
    """A fit that fails after the staging directory exists: exit status 1, one line, nothing moved."""
    from bayesgmm.cli import CLIError
    from bayesgmm.cli import run as cli_run

    def fail(estimator, data, settings):
        raise CLIError("nuts: the sampler failed (simulated)", status=1)

    monkeypatch.setitem(cli_run._POSTERIOR_FITTERS, "nuts", fail)
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.html").write_text("old\n")
    before = _listing(tmp_path)
    status, stdout, stderr = run(["fit", "--method", "nuts", "-q", "--out", str(out)])
    assert status == 1 and stdout == ""
    assert stderr == "bayesgmm: error: nuts: the sampler failed (simulated)\n"
    assert _listing(tmp_path) == before


# ---------------------------------------------------------------------------------------------
# model choice on data with a known truth: 3 components, axis-aligned (diag) covariances
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def diag3_csv(tmp_path_factory):
    from bayesgmm.datasets import make_mixture

    # 272 x 2 like the embedded data, so that the EM programs compiled above are reused
    X, _ = make_mixture(272, [0.3, 0.3, 0.4], [[0, 0], [6, 0], [3, 6]],
                        [[1.0, 0.1], [0.15, 1.2], [1.5, 0.2]], random_state=1, covariance_type="diag")
    path = tmp_path_factory.mktemp("diag3") / "diag3.csv"
    np.savetxt(path, X, delimiter=",", header="u,v", comments="")
    return path


def test_select_chooses_the_number_of_components(diag3_csv, tmp_path):
    out = tmp_path / "sel"
    status, stdout, stderr = run(["fit", str(diag3_csv), "--select", "2..4", "--covariance", "diag",
                                  "--method", "map", "-q", "--out", str(out)])
    assert status == 0, stderr
    assert "K = 3 components, covariance = diag" in stdout
    assert "chosen by BIC over K = 2..4" in stdout
    assert "model selection by BIC (lower is better; * = chosen: K = 3, diag)" in stdout
    bic = {int(m.group(1)): float(m.group(2)) for m in re.finditer(r"^  ([234])\s+\*?([0-9.]+)\s*$", stdout, re.M)}
    assert sorted(bic) == [2, 3, 4] and min(bic, key=bic.get) == 3
    import csv

    with open(out / "selection.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["n_components"]) for r in rows] == [2, 3, 4]
    assert [float(r["bic"]) for r in rows] == pytest.approx([bic[2], bic[3], bic[4]], abs=0.06)
    assert 'id="fig-criteria"' in (out / "report.html").read_text()


def test_select_by_loo_and_aic(diag3_csv):
    """--criterion: AIC at the MAP and PSIS-LOO from a NUTS posterior per K pick the known K = 3."""
    status, stdout, stderr = run(["fit", str(diag3_csv), "--select", "2..4", "--covariance", "diag",
                                  "--criterion", "aic", *MAP_ONLY])
    assert status == 0, stderr
    assert "chosen by AIC over K = 2..4" in stdout and "model selection by AIC" in stdout
    assert "K = 3 components, covariance = diag" in stdout
    status, stdout, stderr = run(["fit", str(diag3_csv), "--select", "2..3", "--covariance", "diag",
                                  "--criterion", "loo", "--chains", "2", "--warmup", "150", "--samples", "150",
                                  *MAP_ONLY])
    assert status == 0, stderr
    assert "model selection by LOO (lower is better; * = chosen: K = 3, diag)" in stdout
    loo = {int(m.group(1)): float(m.group(2)) for m in re.finditer(r"^  ([23])\s+\*?([0-9.]+)\s*$", stdout, re.M)}
    # the deviance-scale LOO of K = 2 is far worse than K = 3's (many MC errors apart on these data)
    assert sorted(loo) == [2, 3] and loo[2] - loo[3] > 50, loo


def test_covariance_auto_chooses_the_covariance_type(diag3_csv):
    status, stdout, stderr = run(["fit", str(diag3_csv), "--components", "3", "--covariance", "auto", *MAP_ONLY])
    assert status == 0, stderr
    assert "K = 3 components, covariance = diag" in stdout
    header = next(line for line in stdout.splitlines() if line.split()[:1] == ["K"] and "spherical" in line)
    assert header.split() == ["K", "full", "tied", "diag", "spherical"]
    assert "chosen: K = 3, diag" in stdout


def test_missing_marginalize_keeps_the_cells_and_reports_their_imputation(tmp_path, faithful_run):
    """Faithful with cells removed: --missing marginalize fits every row, marks the cells in the
    summary, report and imputed.csv (MAP and posterior intervals), refuses a row with no value and
    --dropna beside it; the imputation of a removed waiting time follows the eruption it belongs to."""
    X, _ = load_faithful()
    rows = X.tolist()
    gone = {10: 1, 11: 1, 100: 0, 200: 1}  # row -> removed column
    lines = ["eruptions,waiting"] + [
        ",".join("NA" if gone.get(i) == j else repr(v) for j, v in enumerate(r)) for i, r in enumerate(rows)
    ]
    path = tmp_path / "faithful_holes.csv"
    path.write_text("\n".join(lines) + "\n")
    out_dir = tmp_path / "report"
    status, out, err = run(["fit", str(path), "--missing", "marginalize", "--method", "vi", "--vi-steps", "300",
                            "--samples", "100", "--chains", "2", "--out", str(out_dir)])
    assert status == 0, err
    assert "N = 272 samples" in out and "4 missing cell(s) (0.7%) in 4 row(s), marginalised" in out
    assert "missing cells: 4, imputed (posterior: vi)" in out
    with open(out_dir / "imputed.csv") as f:
        table = list(csv.DictReader(f))
    assert [(int(t["row"]), t["feature"]) for t in table] == [(10, "waiting"), (11, "waiting"), (100, "eruptions"),
                                                               (200, "waiting")]
    for t in table:
        i, j = int(t["row"]), {"eruptions": 0, "waiting": 1}[t["feature"]]
        lo, mid, hi = float(t["posterior_lower"]), float(t["posterior_mean"]), float(t["posterior_upper"])
        assert lo < mid < hi and lo < float(t["map"]) < hi
        # the two eruption types wait about 55 and 80 minutes: the imputation follows the eruption
        if j == 1:
            assert (float(t["map"]) > 70) == (rows[i][0] > 3.0)
    assert "Missing cells" in (out_dir / "report.html").read_text()

    status, _, err = run(["fit", str(path), "--missing", "marginalize", "--dropna", *MAP_ONLY])
    assert status == 2 and "exclude each other" in err
    path.write_text("\n".join(lines[:5] + ["NA,NA"] + lines[5:]) + "\n")
    status, _, err = run(["fit", str(path), "--missing", "marginalize", *MAP_ONLY])
    assert status == 2 and "no value in the selected columns" in err
