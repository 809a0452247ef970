"""Every research notebook in ``notebooks/`` runs without errors, in fast mode, and its key numbers hold.

The notebooks are committed with the outputs of a full run (``python -m notebooks.run``), and
the first test fails when a stored notebook's outputs were not produced from its current code
cells (a hash of the code cells, stored in the notebook's metadata when the outputs are written).

Each notebook reads ``BAYESGMM_NOTEBOOK_FAST=1`` (less data, fewer draws and steps, smaller grids;
the same code paths) and ends with a cell printing ``BAYESGMM_RESULTS {json}``: the numbers its
text relies on, which are checked here against the truth or an independent computation.
"""

import json
import os
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need the 'test' extra (nbformat)")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need the 'test' extra (nbclient)")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
MARKER = "BAYESGMM_RESULTS "
CPU_MARKER = "BAYESGMM_KERNEL_CPU_SECONDS "
TIMEOUT_S = 600  # per cell; a fast-mode notebook takes well under a minute


#: Run before each notebook in the shared kernel: a fresh namespace (IPython's ``%reset``: a name a
#: notebook uses before defining it still fails), the warning filters and figures of a new
#: kernel, and the kernel's CPU time so far (each notebook's own share is printed at its end).
_FRESH_NAMESPACE = """\
%reset -f
import builtins as _b, resource as _r, warnings as _w
if not hasattr(_b, "_bayesgmm_test_filters"):
    _b._bayesgmm_test_filters = list(_w.filters)
_w.filters[:] = _b._bayesgmm_test_filters
if hasattr(_w, "_filters_mutated"):  # CPython's note that the filters changed (its caches)
    _w._filters_mutated()
import matplotlib.pyplot as _p
_p.close("all")
_u = _r.getrusage(_r.RUSAGE_SELF)
_b._bayesgmm_test_cpu0 = _u.ru_utime + _u.ru_stime
del _b, _r, _w, _p, _u
"""


@pytest.fixture(scope="module")
def kernel():
    """One python3 kernel for the notebooks of this module, each run in a fresh namespace.

    A kernel of its own per notebook would pay the kernel's start and the imports of JAX,
    bayesgmm, matplotlib and scikit-learn (about 4 s on 2 cores) seven times; what a notebook
    could leave behind for the next -- its variables, warning filters and open figures -- is
    reset before each (:data:`_FRESH_NAMESPACE`). The kernel runs in fast mode
    (``BAYESGMM_NOTEBOOK_FAST=1``) and imports the package under test (a checkout as well as an
    installed copy).
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BAYESGMM_NOTEBOOK_FAST", "1")
        mp.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
        mp.setenv("MPLBACKEND", "Agg")  # nothing is shown interactively
        holder = nbclient.NotebookClient(
            nbformat.v4.new_notebook(), timeout=TIMEOUT_S, kernel_name="python3",
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        )
        holder.execute(cleanup_kc=False)  # starts the kernel (in NOTEBOOKS, with this environment)
    try:
        yield holder.km
    finally:
        holder._cleanup_kernel()


def execute(name, km, out_dir=None):
    """Run ``notebooks/name`` in fast mode in the kernel of ``km`` (see :func:`kernel`);
    return (notebook, results)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(_FRESH_NAMESPACE))
    # test-only last cell: the notebook's CPU time in the kernel, a load-independent measure of its cost
    nb.cells.append(nbformat.v4.new_code_cell(
        "import builtins as _b, resource as _r; _u = _r.getrusage(_r.RUSAGE_SELF)\n"
        f"print('{CPU_MARKER}' + str(_u.ru_utime + _u.ru_stime - _b._bayesgmm_test_cpu0))"
    ))
    client = nbclient.NotebookClient(
        nb, km=km, timeout=TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the failing cell
    elapsed = time.perf_counter() - t0
    if out_dir is not None:  # the executed notebook, for a look when a check fails
        nbformat.write(nb, Path(out_dir) / name)
    texts = [
        out.get("text", "")
        for cell in nb.cells if cell.cell_type == "code"
        for out in cell.get("outputs", []) if out.get("output_type") == "stream"
    ]
    lines = [line for text in texts for line in text.splitlines() if line.startswith(MARKER)]
    assert len(lines) == 1, f"{name} must print one '{MARKER}...' line, found {len(lines)}"
    results = json.loads(lines[0][len(MARKER):])
    assert results["fast"] is True
    cpu = [line for text in texts for line in text.splitlines() if line.startswith(CPU_MARKER)]
    print(f"{name}: {elapsed:.1f} s wall, {float(cpu[-1][len(CPU_MARKER):]):.1f} s kernel CPU")
    return nb, results


def _runner():
    """``notebooks/run.py`` (the command that stores the outputs), imported from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_notebooks_run", NOTEBOOKS / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: Notebooks whose committed outputs come from a fast-mode run (``python -m notebooks.run --fast``)
#: until a full run is committed; every other notebook's outputs must come from a full run.
PENDING_FULL_RUN: set[str] = set()


def test_every_notebook_is_tested_and_committed_with_outputs_of_its_current_sources():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == sorted(EXPECTED), "a notebook without a test (or a test without a notebook)"
    run = _runner()
    for name in names:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        source = "\n".join(c.source for c in code)
        assert 'os.environ.get("BAYESGMM_NOTEBOOK_FAST") == "1"' in source
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
        # the stored outputs were produced by `python -m notebooks.run` from these very code cells
        assert run.check(nb) == [], f"{name}: {run.check(nb)}"
        meta = nb.metadata[run.META_KEY]
        assert meta["mode"] == ("fast" if name in PENDING_FULL_RUN else "full"), name
        assert any(out.get("output_type") == "display_data" and "image/png" in out.get("data", {})
                   for c in code for out in c.outputs), f"{name} has no stored figure"
        errors = [out for c in code for out in c.outputs if out.get("output_type") == "error"]
        assert not errors, f"{name} was stored with an error output"


def test_the_output_check_sees_an_edited_cell():
    run = _runner()
    nb = nbformat.read(NOTEBOOKS / sorted(EXPECTED)[0], as_version=4)
    assert run.check(nb) == []
    code = [c for c in nb.cells if c.cell_type == "code"]
    code[-1].source += "\nprint('edited')"
    assert any("code cells changed" in p for p in run.check(nb))
    code[-1].source = code[-1].source[: -len("\nprint('edited')")]
    assert run.check(nb) == []
    code[0].execution_count = None  # a cell not run (or run out of order)
    assert any("in order" in p for p in run.check(nb))
    nb.cells = [c for c in nb.cells if c.cell_type == "markdown"] + code  # markdown edits need no re-run
    code[0].execution_count = 1
    assert run.check(nb) == []


# -- per-notebook checks ----------------------------------------------------------------------------
def check_01(r):
    # exp(score_samples) is the weighted sum of normalised components, to float32 rounding
    assert r["max_rel_diff_sum_vs_score"] < 1e-4
    assert r["max_rel_diff_seed_vs_score"] > 0.05  # the seed's first attempt is visibly off
    assert abs(r["integral_of_density"] - 1) < 1e-3
    # the MAP means near the truth: 1700 points in fast mode, and the groups overlap so much that
    # the estimates' errors are several times sd_k / sqrt(n_k); a wrong fit is off by 0.3 or more
    assert max(abs(e) for e in r["mean_errors"]) < 0.06
    assert r["max_abs_mean_diff_sklearn"] < 0.005  # MAP with a weak prior ~ scikit-learn's ML
    assert r["true_means_in_90pct_interval"] >= 2


def check_02(r):
    # the seed's M-step reproduces the seed's printed end point (its k=85 line) ...
    import numpy as np

    np.testing.assert_allclose(r["seed_final"]["mus"], [-0.01561403, 1.8740517], atol=2e-5)
    np.testing.assert_allclose(r["seed_final"]["sigmas"], [1.09142663, 0.90429172], atol=2e-5)
    np.testing.assert_allclose(r["seed_final"]["priors"], [0.43, 0.57], atol=1e-12)
    # ... which is not the MLE: the corrected EM is monotone and ends higher
    assert r["em_loglik_decreases"] == 0
    assert r["em_final_loglik"] > r["seed_final_loglik"] + 0.01
    # bayesgmm's ML-EM (float32) computes the hand EM's iterates from the same start
    d = r["seed001_hand_vs_bayesgmm"]
    assert d["means"] < 1e-4 and d["sds"] < 1e-4 and d["weights"] < 1e-5 and d["mean_loglik"] < 1e-5
    assert r["seed002_max_abs_diff_means_per_iteration"] < 1e-4
    assert r["seed002_max_abs_diff_covariances"] < 1e-4 and r["seed002_max_abs_diff_weights"] < 1e-5
    assert r["seed002_map_vs_ml_max_abs_diff_means"] < 0.1


def check_06(r):
    # the two-step sampler has the mixture's mean and variance (Monte Carlo error scaled)
    assert abs(r["mean_z"]) < 4
    n, var = r["n_samples"], r["mix_var"]
    se_var = ((r["mix_kurtosis_term"] - var**2) / n) ** 0.5 / var  # relative s.e. of the sample variance
    assert abs(r["var_rel_error"]) < 4 * se_var
    # the fit recovers the truth; .sample draws from the fitted mixture
    n_fit = r["n_fit"]
    for err, w in zip(r["fit_weight_errors"], [0.3, 0.5, 0.2]):
        assert abs(err) < 4 * (w * (1 - w) / n_fit) ** 0.5 + 0.01
    for err, w, v in zip(r["fit_mean_errors"], [0.3, 0.5, 0.2], [0.5, 1.0, 0.8]):
        assert abs(err) < 4 * (v / (w * n_fit)) ** 0.5 + 0.02
    assert r["sample_shape"] == [n_fit, 1]
    shares = [c / n_fit for c in r["sample_component_shares"]]
    for s, w in zip(shares, [0.3, 0.5, 0.2]):
        assert abs(s - w) < 5 * (w * (1 - w) / n_fit) ** 0.5 + 0.02


def check_05(r):
    best = {"n_components": 2, "covariance_type": "full"}
    assert r["bic_best"] == best  # the two kinds of eruption
    assert r["loo_best"]["n_components"] >= 2
    assert r["n_divergent"] == 0 and r["max_rhat"] < 1.1  # short chains in fast mode
    assert r["ari_em_vs_posterior"] > 0.95
    assert r["n_outside_hdi"] <= 1 and r["n_parameters_compared"] >= 11
    assert 0 < r["n_uncertain"] < 20
    lo, hi = r["uncertain_eruption_range"]
    assert 2.5 < lo and hi < 4.0  # the ambiguous eruptions lie between the two groups
    assert 0 < r["n_anomalies"] < 30


def check_04(r):
    import numpy as np

    assert r["ari_nuts"] > 0.8 and r["ari_vi"] > 0.8
    assert r["nuts_vs_vi_mean_diff_in_sd"] < 2  # VI's means within 2 posterior sd of NUTS's
    # a label-switched chain: R-hat is huge before relabelling and back to normal after
    assert r["rhat_switched_before"] > 1.5
    assert abs(r["rhat_switched_after"] - r["rhat_original"]) < 1e-6
    assert r["n_relabelled"] > 0
    assert r["n_uncertain"] > 0 and 0 < r["max_interval_width"] <= 1
    assert 0 < r["max_entropy"] <= np.log(2) + 1e-9
    assert r["psm_symmetric"] and r["psm_diag_min"] > 0.999 and r["partition_clusters"] == 2
    # the sparse Dirichlet occupies fewer components than the uniform one
    k = np.arange(len(r["occupied_sparse"]))
    mean_sparse, mean_uniform = k @ r["occupied_sparse"], k @ r["occupied_uniform"]
    assert abs(sum(r["occupied_sparse"]) - 1) < 1e-9
    assert mean_sparse < mean_uniform
    assert 2 <= mean_sparse


def check_03(r):
    # k-means cuts the stretched blobs; the mixture recovers the true structure (4, tied)
    assert r["best_params"] == {"n_components": 4, "covariance_type": "tied"}
    ari = r["ari_by_covariance_type"]
    assert ari["tied"] > 0.9 and ari["full"] > 0.9
    assert ari["tied"] > r["ari_kmeans"] + 0.1 and ari["tied"] > r["ari_kmeans_scaled_pca"]
    assert abs(r["density_integral"] - 1) < 0.02  # a coarse grid in fast mode
    assert r["n_anomalies"] == 16 and r["anomalies_equal_seed_rule"]  # 4% of 400
    assert r["moons_best_k"] > 2  # two ellipses cannot describe the moons
    assert r["moons_two_vs_best_bic"][1] < r["moons_two_vs_best_bic"][0]
    assert r["digits_pca_dims"] == 21 and r["digits_new_shape"] == [100, 64]  # PCA keeping 90%
    lo, hi = r["digits_new_pixel_range"]
    assert -20 < lo < 4 and 12 < hi < 30  # pixel intensities are 0..16; a Gaussian sample overshoots


def check_07(r):
    assert r["n_missing"] == 62 and r["n_incomplete_rows"] == 56  # the seeded removal
    gap, ari = r["mean_gap"], r["ari_vs_complete"]
    # marginalising stays closest to the complete-data fit (measured 0.073 vs 0.115 dropping rows and
    # 0.342 mean-imputing; ARI 0.94 vs 0.60 and 0.57); the EM part is the same in fast and full mode
    assert gap["marginalise"] < 0.8 * gap["drop incomplete rows"] and gap["marginalise"] < 0.5 * gap["mean-impute, then fit"]
    assert ari["marginalise"] > 0.85 and ari["marginalise"] > ari["drop incomplete rows"] + 0.2
    assert r["impute_rmse"] < 0.7 * r["colmean_rmse"]  # 0.45 vs 0.75 sd
    # 62 cells: a binomial(62, 0.9) lies in [0.79, 0.98] with probability 0.99 (fast: 0.92, full: 0.90)
    assert 0.79 <= r["coverage90"] <= 0.98


EXPECTED = {
    "01_one_dimensional_mixture.ipynb": check_01,
    "02_em_from_scratch.ipynb": check_02,
    "03_sklearn_workflows.ipynb": check_03,
    "04_bayesian_uncertainty.ipynb": check_04,
    "05_old_faithful.ipynb": check_05,
    "06_what_is_a_mixture.ipynb": check_06,
    "07_missing_values.ipynb": check_07,
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_in_fast_mode(name, kernel, tmp_path):
    _, results = execute(name, kernel, out_dir=tmp_path)
    EXPECTED[name](results)
