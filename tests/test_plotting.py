"""Plots run headless (Agg) and their artists reflect the fit.

Posteriors here are stand-ins (iid draws around known parameters, no sampler), so every plot can be
checked against numbers computed independently.
"""

import subprocess
import sys

import numpy as np
import pytest
from conftest import params_from_cov, posterior_around
from scipy.stats import multivariate_normal, norm

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.contour import ContourSet  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402

import bayesgmm  # noqa: E402
from bayesgmm import GaussianMixture, plotting  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def fake_posterior(weights, means, covs, x, chains=2, draws=100, noise=0.05, seed=0, feature_names=None):
    """A Posterior of iid draws around (weights, means, covs) (full covariances)."""
    truth = params_from_cov(weights, means, covs, "full")
    return posterior_around(truth, x, chains=chains, draws=draws, noise=noise, seed=seed, feature_names=feature_names)


W = np.array([0.6, 0.4])
M = np.array([[-3.0, 0.0], [3.0, 1.0]])
C = np.array([[[1.0, 0.6], [0.6, 1.0]], [[0.5, -0.2], [-0.2, 0.8]]])


def sample(weights, means, covs, n, seed):
    rng = np.random.default_rng(seed)
    z = rng.choice(len(weights), size=n, p=weights)
    return np.stack([rng.multivariate_normal(means[k], covs[k]) for k in z]), z


@pytest.fixture(scope="module")
def data2():
    return sample(W, M, C, 200, seed=0)[0]


@pytest.fixture(scope="module")
def gm2(data2):
    return GaussianMixture(2, random_state=0).fit(data2)


@pytest.fixture(scope="module")
def post2(data2):
    return fake_posterior(W, M, C, data2)


def ellipses(ax):
    return [p for p in ax.patches if isinstance(p, Ellipse)]


# -- import ----------------------------------------------------------------------------------------
def test_importing_bayesgmm_does_not_import_matplotlib():
    code = (
        "import sys, bayesgmm, bayesgmm.plotting, bayesgmm.selection, bayesgmm.comparison; "
        "bayesgmm.select; bayesgmm.compare; "
        "print('matplotlib' in sys.modules, "
        "any(m in sys.modules for m in ('arviz', 'arviz_base', 'arviz_stats', 'arviz_plots')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    assert set(bayesgmm.__all__) >= {"compare", "select"}


# -- ellipses ----------------------------------------------------------------------------------------
def test_map_ellipses_one_per_component_and_sd(gm2, data2):
    fig, ax = plt.subplots()
    out = plotting.plot_ellipses(gm2, data2, ax=ax)
    assert out is ax
    es = ellipses(ax)
    assert len(es) == 2 * 3
    for k in range(2):
        mine = [e for e in es if e.get_gid() == f"component-{k}"]
        assert len(mine) == 3
        widths = sorted(e.width for e in mine)
        np.testing.assert_allclose(widths, np.array([1, 2, 3]) * widths[0])  # 1, 2, 3 sd
        for e in mine:
            np.testing.assert_allclose(e.center, gm2.means_[k])
        e1 = min(mine, key=lambda e: e.width)
        cov = gm2.covariances_[k]
        ev = np.linalg.eigvalsh(cov)
        np.testing.assert_allclose([e1.width, e1.height], 2 * np.sqrt(ev[::-1]), rtol=1e-10)
        # the long axis points along the main eigenvector
        vec = np.linalg.eigh(cov)[1][:, -1]
        direction = np.array([np.cos(np.radians(e1.angle)), np.sin(np.radians(e1.angle))])
        assert abs(direction @ vec) == pytest.approx(1.0, abs=1e-10)
    # the heavier component is drawn more opaque
    heavy = int(np.argmax(gm2.weights_))
    alpha = {k: [e for e in es if e.get_gid() == f"component-{k}"][0].get_alpha() for k in range(2)}
    assert alpha[heavy] > alpha[1 - heavy]
    assert len(ax.collections[0].get_offsets()) == data2.shape[0]


def test_posterior_ellipses_follow_the_draws(post2):
    ax = plotting.plot_ellipses(post2, n_draws=10)
    es = ellipses(ax)
    assert len(es) == 10 * 2
    idx = np.linspace(0, post2.n_draws - 1, 10).astype(int)
    means = post2.draws.means.reshape(post2.n_draws, 2, 2)[idx]
    for k in range(2):
        centres = np.array([e.center for e in es if e.get_gid() == f"component-{k}"])
        np.testing.assert_allclose(centres, means[:, k])


def test_more_than_two_features_need_named_features():
    w, m = np.array([0.5, 0.5]), np.array([[0.0, 5.0, -2.0], [4.0, 0.0, 2.0]])
    c = np.stack([np.eye(3) * 0.5, np.diag([1.0, 0.3, 0.7])])
    x = sample(w, m, c, 60, seed=1)[0]
    post = fake_posterior(w, m, c, x, feature_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="features"):
        plotting.plot_ellipses(post)
    ax = plotting.plot_ellipses(post, features=("a", "c"), n_draws=5)
    es = ellipses(ax)
    centres = np.array([e.center for e in es if e.get_gid() == "component-1"])
    idx = np.linspace(0, post.n_draws - 1, 5).astype(int)
    np.testing.assert_allclose(centres, post.draws.means.reshape(-1, 2, 3)[idx, 1][:, [0, 2]])
    assert ax.get_xlabel() == "a" and ax.get_ylabel() == "c"
    # marginal density of features (0, 2): against scipy
    grid = np.array([[0.0, -2.0], [1.0, 0.5], [4.0, 2.0]])
    ws, ms, cs = plotting._mixture_arrays(post, n_draws=20)
    got = plotting._marginal_logpdf(ws, ms[..., [0, 2]], cs[..., [0, 2], :][..., [0, 2]], grid)
    want = np.log(np.mean([
        sum(ws[s, k] * multivariate_normal(ms[s, k, [0, 2]], cs[s, k][np.ix_([0, 2], [0, 2])]).pdf(grid) for k in range(2))
        for s in range(ws.shape[0])
    ], axis=0))
    np.testing.assert_allclose(got, want, rtol=1e-10)
    ax = plotting.plot_density(post, features=(0, 2))
    assert any(isinstance(c, ContourSet) for c in ax.collections)


# -- 1-D densities ---------------------------------------------------------------------------------------
def test_1d_mixture_density_is_the_sum_of_components_and_exp_score_samples():
    w, m, c = np.array([0.3, 0.7]), np.array([[-2.0], [1.5]]), np.array([[[0.3]], [[1.0]]])
    x = sample(w, m, c, 300, seed=2)[0]
    gm = GaussianMixture(2, random_state=0).fit(x)
    ax = plotting.plot_density_1d(gm, x)
    lines = {line.get_gid(): line for line in ax.lines}
    grid, total = lines["mixture"].get_xdata(), lines["mixture"].get_ydata()
    np.testing.assert_allclose(total, lines["component-0"].get_ydata() + lines["component-1"].get_ydata())
    np.testing.assert_allclose(total, np.exp(gm.score_samples(grid[:, None])), rtol=1e-5)
    marks = lines["score_samples"]
    np.testing.assert_allclose(marks.get_ydata(), np.interp(marks.get_xdata(), grid, total), rtol=1e-5)
    heights = np.array([p.get_height() for p in ax.patches])
    widths = np.array([p.get_width() for p in ax.patches])
    assert np.sum(heights * widths) == pytest.approx(1.0)  # a density histogram
    assert not any(line.get_gid() == "band" for line in ax.collections)


def test_1d_posterior_band_contains_the_predictive_density():
    w, m, c = np.array([0.3, 0.7]), np.array([[-2.0], [1.5]]), np.array([[[0.3]], [[1.0]]])
    x = sample(w, m, c, 100, seed=3)[0]
    post = fake_posterior(w, m, c, x, noise=0.1)
    ax = plotting.plot_density_1d(post, band=(0.05, 0.95))
    lines = {line.get_gid(): line for line in ax.lines}
    grid, total = lines["mixture"].get_xdata(), lines["mixture"].get_ydata()
    np.testing.assert_allclose(total, np.exp(post.score_samples(grid[:, None])), rtol=1e-4)
    # the band is the 5%-95% quantiles of the per-draw densities, computed here with scipy
    w_s = post.draws.weights.reshape(-1, 2)
    m_s = post.draws.means.reshape(-1, 2)
    sd_s = post.draws.scales.reshape(-1, 2)
    dens = np.sum(w_s[:, :, None] * norm.pdf(grid, m_s[:, :, None], sd_s[:, :, None]), axis=1)
    lo, hi = np.quantile(dens, [0.05, 0.95], axis=0)
    band = [p for p in ax.collections if p.get_gid() == "band"][0]
    verts = band.get_paths()[0].vertices
    on_grid = np.isin(verts[:, 0], grid)
    j = np.searchsorted(grid, verts[on_grid, 0])
    near = np.minimum(np.abs(verts[on_grid, 1] - lo[j]), np.abs(verts[on_grid, 1] - hi[j]))
    assert on_grid.sum() >= 2 * grid.size and np.all(near <= 1e-5 * hi.max())
    assert np.all(hi >= lo) and np.mean((total >= lo) & (total <= hi)) > 0.9


# -- contours and uncertainty ----------------------------------------------------------------------------
def test_density_contours_span_the_log_density(gm2, data2):
    ax = plotting.plot_density(gm2, data2, resolution=60)
    cs = [c for c in ax.collections if isinstance(c, ContourSet)][0]
    peak = gm2.score_samples(gm2.means_).max()
    assert cs.levels.min() < peak <= cs.levels.max() + 1e-9
    assert ax.get_xlabel() == "x0"


def test_uncertainty_colours_are_the_assignment_uncertainty(gm2, data2, post2):
    ax = plotting.plot_uncertainty(gm2, data2)
    pts = [c for c in ax.collections if c.get_gid() == "points"][0]
    u = 1 - gm2.predict_proba(data2).max(axis=1)
    np.testing.assert_allclose(np.asarray(pts.get_array()), np.sort(u), rtol=1e-6, atol=1e-12)
    ax = plotting.plot_uncertainty(post2, measure="entropy")
    pts = [c for c in ax.collections if c.get_gid() == "points"][0]
    e = post2.assignment_probabilities().entropy
    np.testing.assert_allclose(np.asarray(pts.get_array()), np.sort(e), rtol=1e-6, atol=1e-12)
    with pytest.raises(ValueError, match="Posterior"):
        plotting.plot_uncertainty(gm2, data2, measure="interval")


# -- co-clustering and comparison ---------------------------------------------------------------------
def test_coclustering_heatmap_ordered_by_partition(post2):
    psm = post2.coclustering()
    part = post2.partition(psm=psm)
    ax = plotting.plot_coclustering(post2, psm=psm, partition=part)
    img = np.asarray(ax.images[0].get_array())
    n = psm.shape[0]
    assert img.shape == (n, n)
    np.testing.assert_array_equal(np.diag(img), 1.0)
    np.testing.assert_allclose(np.sort(img.sum(axis=0)), np.sort(psm.sum(axis=0)))
    # blocks along the diagonal, one per cluster of the partition
    n0 = part.sizes[0]
    assert img[:n0, :n0].mean() > 0.95 and img[n0:, n0:].mean() > 0.95 and img[:n0, n0:].mean() < 0.05
    boundaries = [line for line in ax.lines if line.get_gid() == "boundary"]
    assert len(boundaries) == 2 * (part.n_clusters - 1)


def test_comparison_forest_plot(gm2, data2, post2):
    cmp = bayesgmm.compare(gm2, post2, post2, names=["a", "b"], partition_loss=None)
    ax = cmp.plot()
    bars = {c.get_gid(): c for c in ax.collections}
    assert set(bars) >= {"a", "b"}
    n_rows = len(cmp.table)
    assert len(bars["a"].get_segments()) == n_rows
    marks = [line for line in ax.lines if line.get_gid() == "map"][0]
    np.testing.assert_allclose(
        marks.get_xdata(), (cmp.table["map"] - cmp.table["a_mean"]) / cmp.table["a_sd"], rtol=1e-9
    )
    assert [t.get_text() for t in ax.get_yticklabels()] == list(cmp.table.index)


# -- traces -------------------------------------------------------------------------------------------
def test_trace_and_rank_plots(post2):
    from bayesgmm import _arviz

    result = plotting.plot_trace(post2, var_names=("weights",))
    # what that ArviZ's users get: Axes (0.2x) or a PlotCollection (1.x)
    assert isinstance(result, np.ndarray) != _arviz.ARVIZ_1
    axes = _arviz.trace_axes(result)
    assert axes.shape == (1, 2)  # [density, trace]
    assert _arviz.figure_of(result) is axes[0, 0].figure
    trace_lines = [line for line in axes[0, 1].get_lines() if np.size(line.get_ydata()) == post2.num_samples]
    assert len(trace_lines) == post2.num_chains * post2.n_components
    for c in range(post2.num_chains):
        for k in range(post2.n_components):  # every chain's relabelled draws of every weight is a trace
            assert any(np.allclose(line.get_ydata(), post2.draws.weights[c, :, k]) for line in trace_lines), (c, k)
    result = plotting.plot_trace(post2, var_names=("weights",), kind="rank")
    assert np.size(_arviz.trace_axes(result)) == post2.n_components
    with pytest.raises(ValueError, match="kind"):
        plotting.plot_trace(post2, kind="pairs")
