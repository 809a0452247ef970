"""NUTS speed: bayesgmm's run_nuts vs a hand-written NumPyro model vs PyMC, in min bulk-ESS/s.

Usage::

    python bench/nuts_speed.py                 # N=1000, D=2, K=3, 500 warm-up + 1000 draws x 4
    python bench/nuts_speed.py --quick         # 300 + 300 draws, no PyMC
    python bench/nuts_speed.py --no-pymc

Method
------
* One data set: N=1000 points from a well-separated 3-component, 2-feature Gaussian mixture with
  full covariances (seeded). One prior, bayesgmm's default resolved in data units: weights
  ``Dirichlet(1)``, means ``Normal(mean_loc, mean_scale)``, per-feature scales
  ``LogNormal(log(scale_scale), 1)``, correlations ``LKJCholesky(2, eta=2)``. The hand-written
  NumPyro model and the PyMC model are written with exactly these hyperparameters.
* Every sampler starts all 4 chains at the same MAP (``bayesgmm.infer.fit_map``), uses a diagonal
  mass matrix, target acceptance 0.8, 500 warm-up and 1000 kept draws per chain (PyMC: 200 + 200
  by default, ``--pymc-warmup/--pymc-draws``: at ~20 ms per gradient on this model it would take
  over half an hour otherwise; ESS per second is a rate, the shorter run is just noisier).
  bayesgmm: ``run_nuts(chain_method="vectorized")``; NumPyro: ``MCMC(NUTS(model,
  init_strategy=init_to_value(MAP)), chain_method="vectorized")``, a ``MixtureSameFamily`` of
  ``MultivariateNormal(scale_tril=diag(scales) @ L)``; PyMC: ``pm.Mixture`` of
  ``pm.MvNormal.dist(chol=...)`` with ``pm.LKJCholeskyCov`` (same LKJ and scale priors),
  ``pm.sample(chains=4, cores=<CPU count>, initvals=MAP)``.
* Efficiency = min over the K weights and K*D means of the bulk ESS (``arviz.ess``) of draws
  relabelled to the MAP (each draw's component permutation minimising the distance of its means
  to the MAP's), divided by the *sampling* seconds (post-warm-up draws). The table also gives it
  per warm-up + sampling second; compilation is reported apart.
* Timings. bayesgmm reports compile / warm-up / sampling seconds itself (AOT compilation; an
  in-program clock at the end of warm-up). NumPyro: ``MCMC.warmup`` then ``MCMC.run``, each
  timed by wall clock, minus the JAX tracing / lowering / XLA compile spans reported by
  ``jax.monitoring`` during the call (``MCMC.run`` recompiles its sampling loop). PyMC: wall clock
  of ``pm.sample``; its ``sampling_time`` (tune + draws, after compiling the model) is split into
  warm-up and draws in proportion to the per-iteration ``perf_counter_diff`` stats; the rest of
  the wall clock is model compilation and process start-up.
* bayesgmm is also timed on a second fit of the same-shaped data (its compiled program is
  cached): that row's compile time is ~0.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import time
import warnings

import numpy as np

N, D, K = 1000, 2, 3
LKJ_ETA = 2.0


# ----------------------------------------------------------------------------------------------
# data, prior, MAP
# ----------------------------------------------------------------------------------------------
def make_data(seed=0):
    rng = np.random.default_rng(seed)
    weights = np.array([0.3, 0.45, 0.25])
    means = np.array([[-4.0, 0.0], [0.0, 4.0], [4.0, -1.0]])
    covs = np.array([
        [[1.0, 0.4], [0.4, 0.8]],
        [[0.6, -0.2], [-0.2, 1.2]],
        [[1.4, 0.0], [0.0, 0.5]],
    ])
    z = rng.choice(K, N, p=weights)
    x = np.empty((N, D))
    for k in range(K):
        idx = z == k
        x[idx] = rng.multivariate_normal(means[k], covs[k], idx.sum())
    return x, weights, means


def relabel(weights, means, pivot):
    """Relabel draws (chain, draw, K[, D]) to the pivot means (K, D)."""
    perms = np.array(list(itertools.permutations(range(K))))
    cost = ((means[..., perms, :] - pivot) ** 2).sum((-2, -1))
    best = perms[np.argmin(cost, axis=-1)]
    w = np.take_along_axis(weights, best, axis=-1)
    m = np.take_along_axis(means, best[..., None], axis=-2)
    return w, m, float(np.mean(np.any(best != np.arange(K), axis=-1)))


def min_bulk_ess(weights, means, pivot):
    import arviz as az

    w, m, switched = relabel(np.asarray(weights, np.float64), np.asarray(means, np.float64), pivot)
    ds = az.convert_to_dataset({"weights": w, "means": m})
    ess = az.ess(ds, method="bulk")
    return float(min(ess["weights"].min(), ess["means"].min())), switched


# ----------------------------------------------------------------------------------------------
# runners: each returns dict(compile, warmup, sampling, weights, means, divergences)
# ----------------------------------------------------------------------------------------------
def run_bayesgmm(x, prior, init, nw, ns, seed):
    import jax

    from bayesgmm.infer.nuts import run_nuts

    r = run_nuts(jax.random.PRNGKey(seed), x, n_components=K, covariance_type="full", prior=prior,
                 init=init, num_warmup=nw, num_samples=ns, num_chains=4,
                 chain_method="vectorized")
    return dict(compile=r.info["compile_seconds"], warmup=r.info["warmup_seconds"],
                sampling=r.info["sampling_seconds"], weights=r.draws.weights,
                means=r.draws.means, divergences=r.info["n_divergent"],
                steps=float(r.sample_stats["n_steps"].mean()))


class _CompileClock:
    """Union of the JAX trace / lowering / compile time spans reported while active."""

    def __init__(self):
        import jax.monitoring as mon

        self.spans = []
        self._listener = lambda name, start, end, **kw: (
            self.spans.append((start, end)) if name.startswith("/jax/core/compile/") else None
        )
        mon.register_event_time_span_listener(self._listener)

    def seconds_between(self, t0, t1):
        spans = sorted((max(s, t0), min(e, t1)) for s, e in self.spans if e > t0 and s < t1)
        total, cur_s, cur_e = 0.0, None, None
        for s, e in spans:
            if cur_e is None or s > cur_e:
                if cur_e is not None:
                    total += cur_e - cur_s
                cur_s, cur_e = s, e
            else:
                cur_e = max(cur_e, e)
        if cur_e is not None:
            total += cur_e - cur_s
        return total


def run_numpyro(x, rprior, init, nw, ns, seed, clock):
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS, init_to_value

    alpha = np.asarray(rprior.weight_concentration, np.float32)
    mean_loc = np.asarray(rprior.mean_loc, np.float32)
    mean_scale = np.asarray(rprior.mean_scale, np.float32)
    log_ss = np.log(np.asarray(rprior.scale_scale, np.float32))

    def model(x):
        w = numpyro.sample("weights", dist.Dirichlet(jnp.asarray(alpha)))
        with numpyro.plate("component", K):
            mu = numpyro.sample("means", dist.Normal(mean_loc, mean_scale).to_event(1))
            sd = numpyro.sample("scales", dist.LogNormal(log_ss, 1.0).to_event(1))
            corr = numpyro.sample("corr_chol", dist.LKJCholesky(D, LKJ_ETA))
        comps = dist.MultivariateNormal(mu, scale_tril=sd[..., :, None] * corr)
        with numpyro.plate("obs", x.shape[0]):
            numpyro.sample("x", dist.MixtureSameFamily(dist.Categorical(probs=w), comps), obs=x)

    values = {"weights": jnp.asarray(init.weights, jnp.float32),
              "means": jnp.asarray(init.means, jnp.float32),
              "scales": jnp.asarray(init.scales, jnp.float32),
              "corr_chol": jnp.asarray(init.corr_chol, jnp.float32)}
    mcmc = MCMC(NUTS(model, init_strategy=init_to_value(values=values)), num_warmup=nw,
                num_samples=ns, num_chains=4, chain_method="vectorized", progress_bar=False)
    xj = jnp.asarray(x, jnp.float32)
    key = jax.random.PRNGKey(seed)
    t0 = time.time()
    mcmc.warmup(key, xj)
    jax.block_until_ready(mcmc.last_state)
    t1 = time.time()
    mcmc.run(key, xj, extra_fields=("diverging", "num_steps"))
    s = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(s)
    t2 = time.time()
    c_warm = clock.seconds_between(t0, t1)
    c_run = clock.seconds_between(t1, t2)
    extra = mcmc.get_extra_fields()
    div = int(np.asarray(extra["diverging"]).sum())
    return dict(compile=c_warm + c_run, warmup=(t1 - t0) - c_warm, sampling=(t2 - t1) - c_run,
                weights=np.asarray(s["weights"]), means=np.asarray(s["means"]),
                divergences=div, steps=float(np.asarray(extra["num_steps"]).mean()))


def run_pymc(x, rprior, init, nw, ns, seed):
    import pymc as pm

    alpha = np.asarray(rprior.weight_concentration, np.float64)
    mean_loc = np.asarray(rprior.mean_loc, np.float64)
    mean_scale = np.asarray(rprior.mean_scale, np.float64)
    ss = np.asarray(rprior.scale_scale, np.float64)
    cov_chol = np.asarray(init.scales, np.float64)[..., :, None] * np.asarray(init.corr_chol)
    tril = np.tril_indices(D)
    with pm.Model():
        w = pm.Dirichlet("w", a=alpha)
        mu = pm.Normal("mu", mu=mean_loc, sigma=mean_scale, shape=(K, D))
        comps = []
        for k in range(K):
            chol, _, _ = pm.LKJCholeskyCov(
                f"chol{k}", n=D, eta=LKJ_ETA,
                sd_dist=pm.LogNormal.dist(mu=np.log(ss), sigma=1.0, shape=D), compute_corr=True,
            )
            comps.append(pm.MvNormal.dist(mu=mu[k], chol=chol))
        pm.Mixture("x", w=w, comp_dists=comps, observed=x)
        initvals = {"w": np.asarray(init.weights, np.float64),
                    "mu": np.asarray(init.means, np.float64)}
        for k in range(K):
            initvals[f"chol{k}"] = cov_chol[k][tril]
        t0 = time.time()
        idata = pm.sample(draws=ns, tune=nw, chains=4, cores=min(4, os.cpu_count() or 1),
                          initvals=initvals, random_seed=seed, target_accept=0.8,
                          progressbar=False, compute_convergence_checks=False,
                          discard_tuned_samples=False)
        wall = time.time() - t0
    t_sampling = float(idata.sample_stats.attrs["sampling_time"])
    post = float(idata.sample_stats["perf_counter_diff"].sum())
    warm = float(idata.warmup_sample_stats["perf_counter_diff"].sum())
    frac = post / (post + warm)
    div = int(idata.sample_stats["diverging"].sum())
    return dict(compile=wall - t_sampling, warmup=t_sampling * (1 - frac),
                sampling=t_sampling * frac, weights=idata.posterior["w"].values,
                means=idata.posterior["mu"].values, divergences=div,
                steps=float(idata.sample_stats["n_steps"].mean()))


# ----------------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-pymc", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pymc-warmup", type=int, default=200)
    ap.add_argument("--pymc-draws", type=int, default=200)
    args = ap.parse_args(argv)
    nw, ns = (300, 300) if args.quick else (500, 1000)

    import jax

    from bayesgmm import Prior
    from bayesgmm.core.prior import resolve_prior
    from bayesgmm.infer import fit_map

    x, _, _ = make_data(args.seed)
    prior = Prior(lkj_concentration=LKJ_ETA)
    rprior = resolve_prior(prior, x, K, "full")
    fit = fit_map(jax.random.PRNGKey(0), x, n_components=K, covariance_type="full", prior=prior,
                  tol=1e-8, max_iter=500)
    init = fit.params
    pivot = np.asarray(init.means, np.float64)
    clock = _CompileClock()

    rows = []
    results = {}
    print(f"data: N={N}, D={D}, K={K}, full covariance; {nw} warm-up + {ns} draws x 4 chains; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"jax {jax.__version__} ({jax.default_backend()})", flush=True)
    results["bayesgmm"] = run_bayesgmm(x, prior, init, nw, ns, args.seed + 1)
    results["bayesgmm (2nd fit, cached)"] = run_bayesgmm(x, prior, init, nw, ns, args.seed + 2)
    results["numpyro hand-written"] = run_numpyro(x, rprior, init, nw, ns, args.seed + 1, clock)
    pymc_note = None
    if args.quick or args.no_pymc:
        pymc_note = "PyMC not measured (--quick/--no-pymc)."
    else:
        try:
            import pymc  # noqa: F401
        except Exception as exc:  # pragma: no cover - depends on the environment
            pymc_note = f"PyMC not measured: cannot import pymc ({exc!r}); pip install pymc."
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results["pymc"] = run_pymc(x, rprior, init, args.pymc_warmup, args.pymc_draws,
                                           args.seed + 1)

    for name, r in results.items():
        ess, switched = min_bulk_ess(r["weights"], r["means"], pivot)
        rows.append((name, r["compile"], r["warmup"], r["sampling"], ess, switched,
                     r["divergences"], r["steps"]))

    ref = {name: ess / samp for name, _, _, samp, ess, _, _, _ in rows}
    ours = ref["bayesgmm"]
    hdr = (f"{'sampler':28s} {'compile s':>9s} {'warmup s':>9s} {'sample s':>9s} "
           f"{'min ESS':>8s} {'ESS/s':>9s} {'ESS/s(w+s)':>10s} {'ours/this':>9s} {'div':>4s} "
           f"{'steps/draw':>10s} {'us/step':>8s} {'relabelled':>10s}")
    print(hdr)
    print("-" * len(hdr))
    draws = {name: ns for name in results}
    if "pymc" in results:
        draws["pymc"] = args.pymc_draws
    for name, comp, warm, samp, ess, switched, div, steps in rows:
        us_step = 1e6 * samp / (steps * draws[name] * 4)  # wall time per leapfrog step and chain
        print(f"{name:28s} {comp:9.2f} {warm:9.2f} {samp:9.2f} {ess:8.0f} {ess / samp:9.0f} "
              f"{ess / (warm + samp):10.0f} {ours / (ess / samp):9.2f} {div:4d} "
              f"{steps:10.1f} {us_step:8.1f} {switched:10.1%}")
    if pymc_note:
        print(pymc_note)
    else:
        print(f"PyMC ran {args.pymc_warmup} warm-up + {args.pymc_draws} draws x 4 chains (its "
              "sampler is ~100x slower per gradient here; ESS/s is a rate, so the shorter run "
              "only makes its estimate noisier).")
    print("ours/this = bayesgmm's min bulk-ESS per sampling second / this sampler's "
          "(goal: >= 1 vs the hand-written NumPyro model, >= 50 vs PyMC); "
          "steps/draw = mean leapfrog steps per draw; us/step = sampling wall time per leapfrog "
          "step and chain (4 chains); relabelled = share of draws whose labels differ from the "
          "MAP's.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
