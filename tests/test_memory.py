"""Bounded host memory: chunked host passes give the same numbers without whole-data float64 copies."""

import gc
import tracemalloc

import numpy as np
import pytest

import bayesgmm.infer.scoring as scoring_module
from bayesgmm import GaussianMixture
from bayesgmm.core import prior as prior_module
from bayesgmm.core.units import standardise_rows


def test_chunked_moments_and_standardisation_match_direct(monkeypatch):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(1000, 3)) * [1.0, 10.0, 0.1] + [5.0, -3.0, 100.0]).astype(np.float32)
    w = rng.uniform(0.1, 2.0, 1000)
    x64 = x.astype(np.float64)
    mean = (w[:, None] * x64).sum(0) / w.sum()
    std = np.sqrt((w[:, None] * (x64 - mean) ** 2).sum(0) / w.sum())
    monkeypatch.setattr(prior_module, "HOST_CHUNK", 128)  # 8 chunks, the last one partial
    got_mean, got_std = prior_module.weighted_moments(x, w)
    np.testing.assert_allclose(got_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(got_std, std, rtol=1e-12)
    z = standardise_rows(x, mean, std, np.float32, 1024)
    assert z.shape == (1024, 3) and z.dtype == np.float32
    np.testing.assert_array_equal(z[:1000], ((x64 - mean) / std).astype(np.float32))
    assert not z[1000:].any()


def test_scoring_in_host_chunks_matches_one_pass(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 3))
    x[:1500] += 4.0
    gm = GaussianMixture(2, covariance_type="diag", random_state=0).fit(x)
    s, p = gm.score_samples(x), gm.predict_proba(x)
    monkeypatch.setattr(scoring_module, "_SCORE_CHUNK_ROWS", 512)
    monkeypatch.setattr(scoring_module, "default_block_size", lambda k, d: 256)
    s2, p2 = gm.score_samples(x), gm.predict_proba(x)  # 6 host chunks of 512 rows
    assert s2.shape == s.shape and p2.shape == p.shape
    np.testing.assert_allclose(s2, s, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(p2, p, atol=1e-5)
    np.testing.assert_array_equal(gm.predict(x), np.argmax(p2, axis=1))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("covariance_type", ["diag", "full"])  # full: also the collinearity check
def test_fit_and_score_make_no_whole_float64_copy_of_float32_data(monkeypatch, covariance_type):
    """numpy allocations (tracemalloc) during fit and scoring stay below twice the float32 data:
    the standardised float32 copy plus per-row weights, not 8-byte copies of X (the host passes
    work in float64 on chunks of HOST_CHUNK rows)."""
    import bayesgmm._validation as validation_module

    monkeypatch.setattr(prior_module, "HOST_CHUNK", 1024)
    monkeypatch.setattr(validation_module, "HOST_CHUNK", 1024)
    rng = np.random.default_rng(2)
    n, d = 32_000, 8  # little padding: the blocks hold 32768 rows
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[: n // 2] += 3.0
    gm = GaussianMixture(2, covariance_type=covariance_type, max_iter=2, tol=0.0, random_state=0)
    gm.fit(x).score_samples(x)  # compile first: tracing allocates Python objects too
    # each peak is measured above what is live when the call starts: cyclic garbage that a
    # previous call left for the collector is not the call's allocation
    gc.collect()
    tracemalloc.start()
    try:
        gm.fit(x)
        _, peak_fit = tracemalloc.get_traced_memory()
        gc.collect()
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        gm.score_samples(x)
        peak_score = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak_fit < 2.0 * x.nbytes, (peak_fit, x.nbytes)
    assert peak_score < 2.0 * x.nbytes, (peak_score, x.nbytes)
