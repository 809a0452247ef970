"""Data parallelism: a fit on 4 simulated CPU devices matches the single-device fit, and NUTS
chains on devices of their own draw the chains run in turn.

The sharded runs need ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` before JAX starts, so
they run in one subprocess (module fixture) that fits every case twice -- ``devices=1`` (the
unsharded code path) and ``devices=None`` (all 4 devices) -- and reports both; the tests compare.
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from sklearn.base import clone

from bayesgmm import GaussianMixture
from bayesgmm.core.sharding import data_mesh

_WORKER = textwrap.dedent(
    r"""
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    from bayesgmm import GaussianMixture
    from bayesgmm.core import sharding
    from sklearn.base import clone

    assert len(jax.local_devices()) == 4, jax.local_devices()
    assert sharding.n_shards(sharding.data_mesh(None)) == 4
    rng = np.random.default_rng(0)
    out = {}

    def data(n, d):
        a = n // 3
        return np.vstack([
            rng.normal(-3.0, 1.0, (a, d)),
            rng.normal(2.0, 0.6, (n - 2 * a, d)) * [1.0] + 0.5 * np.arange(d),
            rng.normal(5.0, 0.8, (a, d)),
        ])

    def run(name, est, x, w=None, chunks=None):
        res = {}
        for label, devices in (("one", 1), ("four", None)):
            gm = clone(est).set_params(devices=devices)
            if chunks is None:
                gm.fit(x, sample_weight=w)
            else:
                for c in chunks:  # row index arrays
                    gm.partial_fit(x[c], sample_weight=w[c])
            res[label] = {
                "weights": gm.weights_.tolist(),
                "means": gm.means_.tolist(),
                "covariances": np.asarray(gm.covariances_).tolist(),
                "n_iter": int(gm.n_iter_),
                "lower_bound": float(gm.lower_bound_),
                "predict": gm.predict(x).tolist(),
                "proba": gm.predict_proba(x).tolist(),
                "score_samples": gm.score_samples(x).tolist(),
            }
        # the 4-device model scored on one device: the scoring paths alone, same parameters
        gm.set_params(devices=1)
        res["four_on_one"] = {
            "predict": gm.predict(x).tolist(),
            "proba": gm.predict_proba(x).tolist(),
            "score_samples": gm.score_samples(x).tolist(),
        }
        out[name] = res

    x = data(1003, 3)  # not divisible by 4
    w = rng.uniform(0.2, 3.0, len(x))
    run("full_map_weighted", GaussianMixture(3, random_state=0), x, w)
    run("diag_ml", GaussianMixture(3, covariance_type="diag", prior=None, random_state=1), data(1001, 2))
    # the first partial_fit fits its chunk (the same shapes as above: no new compilation), the
    # second takes one stepwise-EM step
    order = rng.permutation(len(x))
    run("full_partial_fit_weighted", GaussianMixture(3, random_state=0), x, w, chunks=[order, order[::-1]])
    out["sharded_estep_used"] = sharding.sharded_estep.cache_info().currsize

    # NUTS chains on devices of their own (chain_method="parallel") and in turn
    import warnings
    xs = data(300, 2)
    gm = GaussianMixture(2, random_state=0).fit(xs)
    nuts = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short chains: the diagnostics warn
        for method in ("sequential", "parallel"):
            post = gm.fit_posterior(xs, "nuts", num_warmup=30, num_samples=20, num_chains=2,
                                    chain_method=method, random_state=1)
            nuts[method] = {"chain_method": post.info["chain_method"],
                            "means": np.asarray(post.raw_draws.means).tolist(),
                            "lp": np.asarray(post.sample_stats["lp"]).tolist()}
    out["nuts"] = nuts
    json.dump(out, sys.stdout)
    """
)


@pytest.fixture(scope="module")
def shard_runs():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    env["JAX_PLATFORMS"] = "cpu"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", _WORKER], capture_output=True, text=True, env=env, cwd=root, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


CASES = ["full_map_weighted", "diag_ml", "full_partial_fit_weighted"]


@pytest.mark.parametrize("case", CASES)
def test_shard_fit_matches_single_device(shard_runs, case):
    one, four = shard_runs[case]["one"], shard_runs[case]["four"]
    assert shard_runs["sharded_estep_used"] >= 1  # the 4-device runs took the sharded pass
    # the sums over devices differ from one scan only in rounding (float64 here)
    for key in ("weights", "means", "covariances"):
        np.testing.assert_allclose(four[key], one[key], rtol=1e-7, atol=1e-9, err_msg=key)
    assert four["n_iter"] == one["n_iter"]
    np.testing.assert_allclose(four["lower_bound"], one["lower_bound"], rtol=1e-10)


@pytest.mark.parametrize("case", CASES)
def test_shard_scoring_matches_single_device(shard_runs, case):
    one, four, ref = (shard_runs[case][k] for k in ("one", "four", "four_on_one"))
    assert four["predict"] == one["predict"] == ref["predict"]
    assert len(four["score_samples"]) == len(ref["score_samples"])  # padding rows are cut off
    # the same parameters scored sharded and on one device: rounding only (float64)
    np.testing.assert_allclose(four["score_samples"], ref["score_samples"], rtol=1e-12)
    np.testing.assert_allclose(four["proba"], ref["proba"], atol=1e-12)
    # the two fits agree to their parameters' rtol 1e-7, which moves log densities by ~1e-8
    np.testing.assert_allclose(four["score_samples"], one["score_samples"], rtol=1e-7)
    np.testing.assert_allclose(four["proba"], one["proba"], atol=1e-7)


def test_parallel_chains_draw_the_chains_run_in_turn(shard_runs):
    """chain_method="parallel" (one chain per device, pmap) runs the same NUTS transitions as the
    chains in turn: the same draws and log densities, bit for bit on CPU."""
    seq, par = shard_runs["nuts"]["sequential"], shard_runs["nuts"]["parallel"]
    assert (seq["chain_method"], par["chain_method"]) == ("sequential", "parallel")
    assert np.asarray(par["means"]).shape == (2, 20, 2, 2)  # chains, draws, components, features
    for key in ("means", "lp"):
        np.testing.assert_array_equal(par[key], seq[key], err_msg=key)
    assert np.ptp(np.asarray(par["means"]), axis=1).min() > 0  # the chains move


def test_shard_devices_param_is_stored_and_cloned():
    gm = GaussianMixture(2, devices=1)
    assert gm.get_params()["devices"] == 1
    assert clone(gm).devices == 1
    assert GaussianMixture(2).devices is None


def test_shard_bad_devices_error():
    n = len(jax.local_devices())
    with pytest.raises(ValueError, match="devices=99"):
        data_mesh(99)
    with pytest.raises(TypeError, match="sequence of jax devices"):
        data_mesh(["cpu:0"])
    with pytest.raises(TypeError, match="devices must be"):
        data_mesh(object())
    assert data_mesh(1) is None  # one device: the unsharded path
    if n == 1:
        assert data_mesh(None) is None
    x = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="devices=99"):
        GaussianMixture(2, devices=99).fit(x)
