"""Label-free cluster summaries of a posterior, and density-based anomaly detection.

Two real NUTS posteriors with the same shapes (one compilation), shared by the module:

* ``overlap``: six spherical clusters, two of which overlap, fitted with K=6 and the default
  prior (assignment probabilities, co-clustering, anomalies);
* ``sparse``: two well-separated clusters fitted with K=6 and a sparse Dirichlet
  (``weight_concentration=0.01``): the number of occupied components and the partition must find
  the two clusters although the MAP-EM fit keeps all six components busy.
"""

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.metrics import adjusted_rand_score, mutual_info_score

from bayesgmm import GaussianMixture, Prior
from bayesgmm.posterior import clusters

# 300 warm-up draws: with 100, the step size and mass matrix are still poorly adapted (80-180
# leapfrog steps per draw against 7) and in most seeds a chain falls into a secondary mode of
# the K=6 posterior about 50 log-density units below the main one (R-hat near 2)
NUTS = dict(num_warmup=300, num_samples=100, num_chains=2, progress_bar=False)


def blobs(centres, sd, sizes, seed):
    rng = np.random.default_rng(seed)
    x = np.vstack([rng.normal(c, sd, (n, len(c))) for c, n in zip(centres, sizes)])
    return x, np.repeat(np.arange(len(sizes)), sizes)


# clusters 0 and 1 overlap; the others are far from everything
OVERLAP_CENTRES = np.array([(-1.3, 0.0), (1.3, 0.0), (0.0, 5.0), (6.0, 0.0), (6.0, 5.0), (-6.0, 3.0)])
OVERLAP_SD = 0.6
OVERLAP_SIZES = (40, 40, 20, 20, 15, 15)


def posterior(x, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short chains: ESS/divergence warnings are expected
        gm = GaussianMixture(covariance_type="spherical", random_state=0, **kwargs).fit(x)
        return gm, gm.fit_posterior(x, **NUTS)


@pytest.fixture(scope="module")
def overlap():
    x, y = blobs(OVERLAP_CENTRES, OVERLAP_SD, OVERLAP_SIZES, seed=1)
    gm, post = posterior(x, n_components=6)
    return x, y, gm, post


@pytest.fixture(scope="module")
def sparse():
    x, y = blobs(np.array([(-3.0, 0.0), (3.0, 0.0)]), 0.6, (90, 60), seed=0)
    gm, post = posterior(x, n_components=6, prior=Prior(weight_concentration=0.01))
    return x, y, gm, post


def oracle_responsibilities(post, x):
    """``r[s, n, k]`` of every relabelled draw in float64 numpy (spherical components)."""
    d = x.shape[1]
    w = post.draws.weights.reshape(post.n_draws, -1)
    m = post.draws.means.reshape(post.n_draws, -1, d)
    sd = post.draws.scales.reshape(post.n_draws, -1)
    sq = np.sum((x[None, :, None, :] - m[:, None]) ** 2, axis=-1)  # (S, N, K)
    lp = np.log(w)[:, None] - 0.5 * sq / sd[:, None] ** 2 - d * np.log(sd)[:, None]
    return np.exp(lp - logsumexp(lp, axis=-1, keepdims=True))


# -- co-clustering ---------------------------------------------------------------------------------
def test_coclustering_matrix_properties_and_oracle(overlap):
    x, _, _, post = overlap
    psm = post.coclustering()
    n = x.shape[0]
    assert psm.shape == (n, n)
    np.testing.assert_array_equal(psm, psm.T)
    np.testing.assert_array_equal(np.diag(psm), 1.0)
    assert psm.min() >= 0.0 and psm.max() <= 1.0
    r = oracle_responsibilities(post, x)
    direct = np.einsum("sik,sjk->ij", r, r) / r.shape[0]
    off = ~np.eye(n, dtype=bool)
    np.testing.assert_allclose(psm[off], direct[off], atol=2e-5)
    # new points: the same definition (X given explicitly)
    np.testing.assert_allclose(post.coclustering(x[:7]), psm[:7, :7], atol=1e-6)


def test_coclustering_separates_the_far_clusters(overlap):
    _, y, _, post = overlap
    psm = post.coclustering()
    far, near = y >= 2, y < 2
    assert np.median(psm[np.ix_(far, near)]) < 1e-3 and psm[np.ix_(far, near)].max() < 0.1
    for k in range(2, 6):
        assert psm[np.ix_(y == k, y == k)].min() > 0.95


# -- assignment probabilities ------------------------------------------------------------------------
def test_assignment_probabilities_match_draws(overlap):
    x, _, _, post = overlap
    a = post.assignment_probabilities(interval=(0.1, 0.9))
    r = oracle_responsibilities(post, x)
    np.testing.assert_allclose(a.mean, r.mean(axis=0), atol=2e-5)
    np.testing.assert_allclose(a.mean, post.predict_proba(x), atol=1e-6)
    np.testing.assert_allclose(a.lower, np.quantile(r, 0.1, axis=0), atol=5e-5)
    np.testing.assert_allclose(a.upper, np.quantile(r, 0.9, axis=0), atol=5e-5)
    assert np.all(a.lower <= a.upper)
    ent = -np.sum(np.where(r > 0, r * np.log(np.maximum(r, 1e-300)), 0.0), axis=-1).mean(axis=0)
    np.testing.assert_allclose(a.expected_entropy, ent, atol=1e-4)
    assert np.all(a.entropy >= a.expected_entropy - 1e-6)  # concavity of the entropy
    assert a.labels.shape == (x.shape[0],)


def test_entropy_is_high_exactly_where_the_truth_overlaps(overlap):
    x, _, _, post = overlap
    # true responsibilities (equal weights within the overlapping pair, same sd)
    sq = np.sum((x[:, None, :] - OVERLAP_CENTRES[None]) ** 2, axis=-1)
    lp = np.log(np.asarray(OVERLAP_SIZES) / sum(OVERLAP_SIZES)) - 0.5 * sq / OVERLAP_SD**2
    r_true = np.exp(lp - logsumexp(lp, axis=1, keepdims=True))
    ambiguous = r_true.max(axis=1) < 0.8  # true entropy above 0.5 nats (log 2 = 0.69 at most)
    sure = r_true.max(axis=1) > 0.999
    assert ambiguous.sum() >= 3 and sure.sum() >= 80
    e = post.assignment_probabilities().entropy
    assert e[ambiguous].min() > 0.25 and e[ambiguous].mean() > 0.4
    assert e[sure].max() < 0.1
    true_entropy = -np.sum(r_true * np.log(np.maximum(r_true, 1e-300)), axis=1)
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    assert np.corrcoef(rank(e), rank(true_entropy))[0, 1] > 0.8


def test_assignment_probabilities_rejects_bad_interval(overlap):
    post = overlap[3]
    with pytest.raises(ValueError, match="interval"):
        post.assignment_probabilities(interval=(0.9, 0.1))


# -- partition ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["binder", "vi"])
def test_partition_recovers_separated_truth_from_an_overfitted_mixture(sparse, loss):
    x, y, gm, post = sparse
    assert np.unique(gm.predict(x)).size > 2  # the MAP splits the two clusters
    part = post.partition(loss=loss)
    assert adjusted_rand_score(y, part.labels) >= 0.95
    assert part.n_clusters == 2
    assert part.expected_loss <= part.map_expected_loss + 1e-12
    np.testing.assert_array_equal(np.bincount(part.labels), part.sizes)


def test_partition_binder_loss_is_the_pairwise_expectation(overlap):
    _, y, _, post = overlap
    psm = post.coclustering()
    part = post.partition(loss="binder", psm=psm)
    lab = part.labels
    iu = np.triu_indices(lab.size, 1)
    same = (lab[:, None] == lab[None, :])[iu]
    brute = np.mean(np.where(same, 1.0 - psm[iu], psm[iu]))
    assert part.expected_loss == pytest.approx(brute, abs=1e-10)
    # the truth is no better than the partition found
    assert clusters.expected_loss(y, "binder", psm=psm) >= part.expected_loss - 1e-12
    assert adjusted_rand_score(y, lab) > 0.7


def test_expected_vi_matches_mutual_information_formula():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 40)
    draws = rng.integers(0, 4, (5, 40))

    def entropy_bits(a):
        p = np.bincount(a) / a.size
        p = p[p > 0]
        return -np.sum(p * np.log2(p))

    direct = np.mean([
        entropy_bits(labels) + entropy_bits(d) - 2 * mutual_info_score(labels, d) / np.log(2) for d in draws
    ])
    assert clusters.expected_loss(labels, "vi", draws_labels=draws) == pytest.approx(direct, abs=1e-10)


def noisy_partitions(seed=1, n_draws=200, noise=0.1):
    """The partition (30, 20, 10) with a share ``noise`` of the labels scrambled in every draw."""
    rng = np.random.default_rng(seed)
    truth = np.repeat([0, 1, 2], [30, 20, 10])
    draws = np.tile(truth, (n_draws, 1))
    flip = rng.random(draws.shape) < noise
    draws[flip] = rng.integers(0, 3, flip.sum())
    return truth, draws


@pytest.mark.parametrize("loss", ["binder", "vi"])
def test_search_recovers_blocks_from_sequential_allocation(loss):
    truth, draws = noisy_partitions()
    kwargs = {"psm": np.mean(draws[:, :, None] == draws[:, None, :], axis=0)} if loss == "binder" else {
        "draws_labels": draws}
    labels, value = clusters.minimise_expected_loss(loss, n_starts=2, random_state=0, **kwargs)
    assert adjusted_rand_score(truth, labels) == 1.0
    assert value == pytest.approx(clusters.expected_loss(truth, loss, **kwargs), abs=1e-12)
    # no move from the optimum helps; a bad start is improved
    rng = np.random.default_rng(0)
    start = rng.integers(0, 2, truth.size)
    if loss == "binder":
        m = 1.0 - 2.0 * kwargs["psm"]
        np.fill_diagonal(m, 0.0)
        found = clusters._sweeten_binder(start, m, 50, rng)
        assert adjusted_rand_score(truth, found) == 1.0  # Binder can open new clusters point by point
    else:
        found = clusters._sweeten_vi(start, draws, 50, rng)
    assert clusters.expected_loss(found, loss, **kwargs) < clusters.expected_loss(start, loss, **kwargs)


def test_partition_argument_errors(overlap):
    post = overlap[3]
    with pytest.raises(ValueError, match="loss"):
        post.partition(loss="hamming")
    with pytest.raises(ValueError, match="psm"):
        post.partition(loss="binder", psm=np.eye(3))


# -- occupied components ------------------------------------------------------------------------------
def test_n_occupied_concentrates_on_the_truth_with_a_sparse_dirichlet(sparse):
    _, _, _, post = sparse
    occ = post.n_occupied(random_state=0)
    assert occ.shape == (post.num_chains, post.num_samples)
    assert occ.dtype == np.int64
    share = np.bincount(occ.ravel(), minlength=post.n_components + 1) / occ.size
    assert share[2] >= 0.85
    assert share[:2].sum() == 0.0
    # the same seed gives the same draws; the count never exceeds K
    np.testing.assert_array_equal(post.n_occupied(random_state=0), occ)
    assert occ.max() <= post.n_components


def test_n_occupied_ignores_zero_weight_rows(overlap):
    _, y, _, post = overlap
    from bayesgmm.posterior import Posterior

    # a copy of the posterior whose data keep only one far cluster (others weigh 0)
    p2 = Posterior.__new__(Posterior)
    p2.__dict__.update(post.__dict__)
    p2.sample_weight = (y == 3).astype(float)
    occ = p2.n_occupied(random_state=0)
    full = post.n_occupied(random_state=0)
    # the far cluster's points sit in one component in (nearly) every draw; counted over all rows
    # every draw occupies several
    assert np.mean(occ == 1) >= 0.95 and occ.max() <= 2, np.bincount(occ.ravel())
    assert full.min() >= 3


# -- anomalies ---------------------------------------------------------------------------------------
def test_density_percentile_anomalies_follow_the_seed_workflow(overlap):
    x, _, gm, _ = overlap
    densities = gm.score_samples(x)
    expected = densities < np.percentile(densities, 4)
    flagged = gm.detect_anomalies(x)
    np.testing.assert_array_equal(flagged, expected)
    assert flagged.sum() == 6  # 4% of 150
    far = np.array([[8.0, -6.0], [6.0, 0.0]])  # far out; a cluster centre
    np.testing.assert_array_equal(gm.detect_anomalies(far, X_train=x), [True, False])
    with pytest.raises(ValueError, match="percentile"):
        gm.detect_anomalies(x, percentile=120)


def test_bayesian_anomaly_probability(overlap):
    x, _, gm, post = overlap
    prob, thresholds = post.anomaly_probability(return_thresholds=True)
    assert prob.shape == (x.shape[0],) and thresholds.shape == (post.num_chains, post.num_samples)
    assert np.all((prob >= 0) & (prob <= 1))
    # per draw exactly floor(0.04 * (N - 1)) + 1 = 6 points lie below the threshold
    assert prob.mean() == pytest.approx(6 / x.shape[0], abs=1e-12)
    # points flagged by the MAP rule are the likely anomalies under the posterior
    flagged = gm.detect_anomalies(x)
    assert prob[flagged].mean() > 0.5 > prob[~flagged].mean()
    centres = OVERLAP_CENTRES + 0.0
    new = np.vstack([centres, [[8.0, -6.0]]])
    p_new = post.anomaly_probability(new)
    np.testing.assert_array_equal(p_new, [0.0] * len(centres) + [1.0])
