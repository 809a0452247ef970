"""NUTS speed: bayesgmm's run_nuts vs a hand-written NumPyro model vs PyMC, in min bulk-ESS/s.

Usage::

    python bench/nuts_speed.py                 # N=1000, D=2, K=3, 500 warm-up + 1000 draws x 4,
                                               # then the large-N rows (100k, 4, 4), (1M, 2, 3)
    python bench/nuts_speed.py --quick         # 300 + 300 draws, no PyMC, no large-N rows
    python bench/nuts_speed.py --no-pymc
    python bench/nuts_speed.py --large-only    # only the large-N rows
    python bench/nuts_speed.py --shapes 100000x4x4 --large-warmup 100 --large-draws 100
    python bench/nuts_speed.py --mass          # diagonal vs dense mass matrix, MAP vs broad start

Method
------
* One data set: N=1000 points from a well-separated 3-component, 2-feature Gaussian mixture with
  full covariances (seeded). One prior, bayesgmm's default resolved in data units: weights
  ``Dirichlet(1)``, means ``Normal(mean_loc, mean_scale)``, per-feature scales
  ``LogNormal(log(scale_scale), 1)``, correlations ``LKJCholesky(2, eta=2)``, and no covariance
  floor (``Prior(covariance_floor=0)``: the default floor's factor ``-tr(Psi Sigma^-1) / 2`` is
  not in the other models). The hand-written NumPyro model and the PyMC model are written with
  exactly these hyperparameters, so all three sample the same posterior.
* Large-N rows (full mode and ``--large-only``; shapes ``--shapes``): (N, D, K) = (100k, 4, 4)
  and (1M, 2, 3), well-separated random mixtures with full covariances (seeded by the shape),
  bayesgmm vs the hand-written NumPyro model only, on the same data, prior and MAP start. Each
  row gives the cost of one potential-energy value-and-gradient of both models, timed side by
  side at the MAP, and bayesgmm's NUTS run: ``--large-chains`` (2) vectorized chains of
  ``--large-warmup`` + ``--large-draws`` (100 + 100), short so that the full run stays near ten
  minutes on two cores. The hand-written model costs 15-20x more per gradient there, so its NUTS
  run (``--large-handwritten``) takes 30+ minutes per shape; without it, its ESS/s is estimated
  as bayesgmm's divided by the ratio of the costs per gradient (marked "est.").
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
* Compile times are cold: the benchmark turns bayesgmm's persistent compilation cache off
  (``BAYESGMM_COMPILATION_CACHE=off``) unless that variable is set.
* bayesgmm is also timed on a second fit of the same-shaped data (its compiled program is
  cached): that row's compile time is ~0.
* ``--mass``: bayesgmm only, at (1000, 2, 3): a diagonal and a dense mass matrix, each from the
  MAP and from a broad start (equal weights, means at K data points drawn at random, every
  covariance the data's), ``--mass-repeats`` seeds interleaved; min bulk-ESS per 1000 leapfrog
  steps (independent of the machine's load) and per sampling second.
* The hand-written model's gradient calls LAPACK's triangular solve; on a shared machine its time
  grows far more with the load than bayesgmm's (20x at a load average of 5-9 on 2 cores, against
  <1.5x for bayesgmm): compare the ratios of runs made at a low load (printed with each table).
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
def make_data(seed=0, n=N, d=D, k=K):
    """``(x, weights, means)``: the (1000, 2, 3) data set, or a random well-separated mixture."""
    if (n, d, k) != (N, D, K):
        return make_mixture(n, d, k, seed)
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


def make_mixture(n, d, k, seed=0):
    """N points of a random K-component mixture with full covariances, components ~8 sd apart."""
    rng = np.random.default_rng([seed, n, d, k])
    weights = rng.dirichlet(np.full(k, 5.0))
    means = rng.normal(0.0, 6.0, (k, d))
    a = rng.normal(size=(k, d, d)) / np.sqrt(d)
    chol = np.linalg.cholesky(a @ np.swapaxes(a, -1, -2) + 0.5 * np.eye(d))
    z = rng.choice(k, n, p=weights)
    x = means[z] + np.einsum("nde,ne->nd", chol[z], rng.normal(size=(n, d)))
    return x, weights, means


def relabel(weights, means, pivot):
    """Relabel draws (chain, draw, K[, D]) to the pivot means (K, D)."""
    k = pivot.shape[0]
    perms = np.array(list(itertools.permutations(range(k))))
    cost = ((means[..., perms, :] - pivot) ** 2).sum((-2, -1))
    best = perms[np.argmin(cost, axis=-1)]
    w = np.take_along_axis(weights, best, axis=-1)
    m = np.take_along_axis(means, best[..., None], axis=-2)
    return w, m, float(np.mean(np.any(best != np.arange(k), axis=-1)))


def min_bulk_ess(weights, means, pivot):
    import arviz as az

    w, m, switched = relabel(np.asarray(weights, np.float64), np.asarray(means, np.float64), pivot)
    ds = az.convert_to_dataset({"weights": w, "means": m})
    ess = az.ess(ds, method="bulk")
    return float(min(ess["weights"].min(), ess["means"].min())), switched


# ----------------------------------------------------------------------------------------------
# runners: each returns dict(compile, warmup, sampling, weights, means, divergences)
# ----------------------------------------------------------------------------------------------
def run_bayesgmm(x, prior, init, nw, ns, seed, dense_mass=False, chains=4):
    import jax

    from bayesgmm.infer.nuts import run_nuts

    r = run_nuts(jax.random.PRNGKey(seed), x, n_components=init.means.shape[0],
                 covariance_type="full", prior=prior, init=init, num_warmup=nw, num_samples=ns,
                 num_chains=chains, chain_method="vectorized", dense_mass=dense_mass)
    return dict(compile=r.info["compile_seconds"], warmup=r.info["warmup_seconds"],
                sampling=r.info["sampling_seconds"], weights=r.draws.weights,
                means=r.draws.means, divergences=r.info["n_divergent"],
                steps=float(r.sample_stats["n_steps"].mean()),
                total_steps=float(r.sample_stats["n_steps"].sum()))


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


def numpyro_model(rprior, k, d):
    """The hand-written NumPyro model ``model(x)`` of the benchmark's prior and its MAP start values."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    alpha = np.asarray(rprior.weight_concentration, np.float32)
    mean_loc = np.asarray(rprior.mean_loc, np.float32)
    mean_scale = np.asarray(rprior.mean_scale, np.float32)
    log_ss = np.log(np.asarray(rprior.scale_scale, np.float32))

    def model(x):
        w = numpyro.sample("weights", dist.Dirichlet(jnp.asarray(alpha)))
        with numpyro.plate("component", k):
            mu = numpyro.sample("means", dist.Normal(mean_loc, mean_scale).to_event(1))
            sd = numpyro.sample("scales", dist.LogNormal(log_ss, 1.0).to_event(1))
            corr = numpyro.sample("corr_chol", dist.LKJCholesky(d, LKJ_ETA))
        comps = dist.MultivariateNormal(mu, scale_tril=sd[..., :, None] * corr)
        with numpyro.plate("obs", x.shape[0]):
            numpyro.sample("x", dist.MixtureSameFamily(dist.Categorical(probs=w), comps), obs=x)

    return model


def _start_values(init):
    import jax.numpy as jnp

    return {"weights": jnp.asarray(init.weights, jnp.float32),
            "means": jnp.asarray(init.means, jnp.float32),
            "scales": jnp.asarray(init.scales, jnp.float32),
            "corr_chol": jnp.asarray(init.corr_chol, jnp.float32)}


def run_numpyro(x, rprior, init, nw, ns, seed, clock, chains=4):
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS, init_to_value

    model = numpyro_model(rprior, *init.means.shape)
    values = _start_values(init)
    mcmc = MCMC(NUTS(model, init_strategy=init_to_value(values=values)), num_warmup=nw,
                num_samples=ns, num_chains=chains, chain_method="vectorized", progress_bar=False)
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
                divergences=div, steps=float(np.asarray(extra["num_steps"]).mean()),
                total_steps=float(np.asarray(extra["num_steps"]).sum()))


def gradient_seconds(x, prior, rprior, init, loops=10, repeats=3):
    """Seconds per potential-energy value-and-gradient at the MAP: ``{"bayesgmm": s, "numpyro
    hand-written": s}``, each the median of ``repeats`` interleaved timings of a jitted loop of
    ``loops`` evaluations (compiled first). bayesgmm's is its NUTS model's potential on the
    standardised data, compiled with the NUTS programs' XLA options; the hand-written model's
    with JAX's defaults (as NumPyro's MCMC compiles it)."""
    import jax
    import jax.numpy as jnp
    from functools import partial
    from numpyro.infer import init_to_value
    from numpyro.infer.util import initialize_model, potential_energy

    from bayesgmm.models.gmm import gmm_model
    from bayesgmm.infer.problem import _prepare, _site_transforms
    from bayesgmm.infer.programs import nuts_compile_options

    k = init.means.shape[0]
    pb = _prepare(x, k, "full", prior, init, None, "bench")
    transforms = _site_transforms(pb)
    u_ours = {name: t.inv(pb.init_sites[name]) for name, t in transforms.items()}
    ours = partial(gmm_model, n_components=k, covariance_type="full")
    hand = numpyro_model(rprior, *init.means.shape)
    xj = jnp.asarray(x, jnp.float32)
    u_hand = initialize_model(jax.random.PRNGKey(0), hand, model_args=(xj,),
                              init_strategy=init_to_value(values=_start_values(init))).param_info.z

    def looped(pe):
        vg = jax.value_and_grad(pe)

        def prog(u, data):
            def body(i, carry):
                u, acc = carry
                v, g = vg(u, data)  # a tiny move, so that no evaluation is loop-invariant
                return jax.tree_util.tree_map(lambda a, b: a - 1e-9 * b, u, g), acc + v
            return jax.lax.fori_loop(0, loops, body, (u, jnp.zeros((), jnp.float32)))
        return prog

    progs = {
        "bayesgmm": (jax.jit(looped(lambda u, data: potential_energy(ours, (), data, u)))
                     .lower(u_ours, pb.data).compile(compiler_options=nuts_compile_options()),
                     (u_ours, pb.data)),
        "numpyro hand-written": (jax.jit(looped(lambda u, x: potential_energy(hand, (x,), {}, u)))
                                 .lower(u_hand, xj).compile(), (u_hand, xj)),
    }
    times = {name: [] for name in progs}
    for _ in range(repeats):
        for name, (prog, args) in progs.items():
            t0 = time.perf_counter()
            jax.block_until_ready(prog(*args))
            times[name].append((time.perf_counter() - t0) / loops)
    return {name: float(np.median(v)) for name, v in times.items()}


def run_pymc(x, rprior, init, nw, ns, seed):
    import pymc as pm

    K, D = init.means.shape  # noqa: N806

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
LARGE_SHAPES = [(100_000, 4, 4), (1_000_000, 2, 3)]


def _parse_shapes(text):
    shapes = []
    for item in text.replace(";", ",").split(","):
        n, d, k = (int(float(v)) for v in item.lower().strip().split("x"))
        shapes.append((n, d, k))
    return shapes


def _problem(x, k, seed):
    """The benchmark's prior (data units, resolved) and the MAP that every sampler starts from."""
    import jax

    from bayesgmm import Prior
    from bayesgmm.core.prior import resolve_prior
    from bayesgmm.infer import fit_map

    prior = Prior(lkj_concentration=LKJ_ETA, covariance_floor=0.0)
    rprior = resolve_prior(prior, x, k, "full")
    # four restarts: with one, the (1M, 2, 3) data's MAP-EM ends in a local optimum (one cluster
    # split in two, two merged) and NUTS started there needs hundreds of steps per draw
    fit = fit_map(jax.random.PRNGKey(seed), x, n_components=k, covariance_type="full",
                  prior=prior, tol=1e-8, max_iter=500, n_init=4)
    return prior, rprior, fit.params


def _header(n, d, k, nw, ns, chains):
    import jax

    from _machine import loadavg

    print(f"data: N={n}, D={d}, K={k}, full covariance; {nw} warm-up + {ns} draws x {chains} "
          f"chains; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"jax {jax.__version__} ({jax.default_backend()}); load average {loadavg()}", flush=True)


def _print_table(results, pivot, draws, chains):
    """One row per sampler: times, min bulk ESS, ESS/s, ratio to bayesgmm, us per leapfrog step."""
    from _machine import loadavg

    rows = []
    for name, r in results.items():
        ess, switched = min_bulk_ess(r["weights"], r["means"], pivot)
        rows.append((name, r["compile"], r["warmup"], r["sampling"], ess, switched,
                     r["divergences"], r["steps"]))
    ours = next(ess / samp for name, _, _, samp, ess, _, _, _ in rows if name == "bayesgmm")
    hdr = (f"{'sampler':28s} {'compile s':>9s} {'warmup s':>9s} {'sample s':>9s} "
           f"{'min ESS':>8s} {'ESS/s':>9s} {'ESS/s(w+s)':>10s} {'ours/this':>9s} {'div':>4s} "
           f"{'steps/draw':>10s} {'us/step':>8s} {'relabelled':>10s}")
    print(hdr)
    print("-" * len(hdr))
    for name, comp, warm, samp, ess, switched, div, steps in rows:
        us_step = 1e6 * samp / (steps * draws[name] * chains)  # wall time per leapfrog step and chain
        print(f"{name:28s} {comp:9.2f} {warm:9.2f} {samp:9.2f} {ess:8.0f} {ess / samp:9.1f} "
              f"{ess / (warm + samp):10.1f} {ours / (ess / samp):9.2f} {div:4d} "
              f"{steps:10.1f} {us_step:8.1f} {switched:10.1%}")
    print(f"load average at the end: {loadavg()}")


_LEGEND = ("ours/this = bayesgmm's min bulk-ESS per sampling second / this sampler's; "
           "steps/draw = mean leapfrog steps per draw; us/step = sampling wall time per leapfrog "
           "step and chain; relabelled = share of draws whose labels differ from the MAP's.")


def small_shape(args):
    """The (1000, 2, 3) table: bayesgmm (fresh and cached), hand-written NumPyro, PyMC."""
    nw, ns = (300, 300) if args.quick else (500, 1000)
    x, _, _ = make_data(args.seed)
    prior, rprior, init = _problem(x, K, 0)
    pivot = np.asarray(init.means, np.float64)
    clock = _CompileClock()
    results = {}
    _header(N, D, K, nw, ns, 4)
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
    draws = {name: ns for name in results}
    if "pymc" in results:  # its chains are scaled down below; its us/step uses its own draws
        draws["pymc"] = args.pymc_draws
    _print_table(results, pivot, draws, 4)
    if pymc_note:
        print(pymc_note)
    else:
        print(f"PyMC ran {args.pymc_warmup} warm-up + {args.pymc_draws} draws x 4 chains (its "
              "sampler is ~100x slower per gradient here; ESS/s is a rate, so the shorter run "
              "only makes its estimate noisier).")
    print(_LEGEND + " Goals: >= 1 vs the hand-written NumPyro model, >= 50 vs PyMC.")


def large_shapes(args, shapes):
    """bayesgmm vs the hand-written NumPyro model at large N (same data, prior and MAP start).

    Per gradient: both potentials timed side by side (:func:`gradient_seconds`). NUTS: bayesgmm's
    run, and the hand-written model's with ``--large-handwritten`` (it takes 30+ minutes per
    shape on two cores); without it, the hand-written model's ESS/s is *estimated* as bayesgmm's
    divided by the ratio of the costs per gradient (the same posterior and the same NUTS: equal
    ESS per gradient assumed, see the notes).
    """
    from _machine import loadavg

    nw, ns, chains = args.large_warmup, args.large_draws, args.large_chains
    for n, d, k in shapes:
        x, _, _ = make_data(args.seed, n, d, k)
        prior, rprior, init = _problem(x, k, 0)
        pivot = np.asarray(init.means, np.float64)
        clock = _CompileClock()
        _header(n, d, k, nw, ns, chains)
        grad = gradient_seconds(x, prior, rprior, init, loops=max(10, 2_000_000 // n))
        results = {"bayesgmm": run_bayesgmm(x, prior, init, nw, ns, args.seed + 1, chains=chains)}
        if args.large_handwritten:
            results["numpyro hand-written"] = run_numpyro(x, rprior, init, nw, ns, args.seed + 1,
                                                          clock, chains=chains)
        hdr = (f"{'sampler':28s} {'ms/grad':>8s} {'grad ratio':>10s} {'compile s':>9s} {'warmup s':>8s} "
               f"{'sample s':>8s} {'min ESS':>7s} {'ESS/1k steps':>12s} {'ESS/s':>8s} {'ours/this':>9s} "
               f"{'div':>4s} {'steps/draw':>10s} {'ms/step':>8s}")
        print(hdr)
        print("-" * len(hdr))
        ours = results["bayesgmm"]
        ours_ess, _ = min_bulk_ess(ours["weights"], ours["means"], pivot)
        ours_rate = ours_ess / ours["sampling"]
        for name, g in grad.items():
            ratio = g / grad["bayesgmm"]
            r = results.get(name)
            if r is not None:
                ess, _ = min_bulk_ess(r["weights"], r["means"], pivot)
                rate = ess / r["sampling"]
                ms_step = 1e3 * r["sampling"] / (r["steps"] * ns * chains)
                print(f"{name:28s} {1e3 * g:8.2f} {ratio:10.1f} {r['compile']:9.1f} {r['warmup']:8.1f} "
                      f"{r['sampling']:8.1f} {ess:7.0f} {1000 * ess / r['total_steps']:12.2f} {rate:8.2f} "
                      f"{ours_rate / rate:9.2f} {r['divergences']:4d} {r['steps']:10.1f} {ms_step:8.2f}")
            else:  # estimated: bayesgmm's ESS/s scaled by the ratio of the costs per gradient
                rate = ours_rate / ratio
                print(f"{name + ' (est.)':28s} {1e3 * g:8.2f} {ratio:10.1f} {'-':>9s} {'-':>8s} {'-':>8s} "
                      f"{'-':>7s} {'-':>12s} {rate:8.2f} {ours_rate / rate:9.2f} {'-':>4s} {'-':>10s} "
                      f"{1e3 * g:8.2f}")
        print(f"load average at the end: {loadavg()}")
        print()
    print("ms/grad = one potential-energy value-and-gradient at the MAP (jitted loop, median of 3, "
          "side by side); grad ratio = this / bayesgmm's; ESS/1k steps = min bulk ESS per 1000 "
          "leapfrog steps of all chains; ms/step = sampling wall time per leapfrog step and chain. "
          "(est.): the hand-written model's NUTS was not run (--large-handwritten runs it: 30+ "
          "minutes per shape here); its ESS/s is bayesgmm's divided by the grad ratio, i.e. equal "
          "ESS per gradient and equal overheads per step assumed (the same posterior and NUTS; after short "
          "warm-ups the two parameterisations can differ by ~2x in steps per draw). Goal at "
          "(100k, 4, 4): ours/this >= 1.5.")


def mass_and_start(args):
    """Diagonal vs dense mass matrix, MAP vs broad start: min bulk ESS per 1000 steps and per s."""
    from bayesgmm import GMMParams

    nw, ns = (300, 300) if args.quick else (500, 1000)
    x, _, _ = make_data(args.seed)
    prior, _, init = _problem(x, K, 0)
    pivot = np.asarray(init.means, np.float64)
    cov = np.cov(x.T)
    _header(N, D, K, nw, ns, 4)
    configs = [(dense, start) for start in ("MAP", "broad") for dense in (False, True)]
    out = {c: [] for c in configs}
    for rep in range(args.mass_repeats):
        rng = np.random.default_rng([args.seed, rep])
        broad = GMMParams.from_covariances(np.full(K, 1.0 / K), x[rng.choice(N, K, replace=False)],
                                           np.broadcast_to(cov, (K, D, D)), "full")
        for dense, start in configs:
            r = run_bayesgmm(x, prior, init if start == "MAP" else broad, nw, ns,
                             args.seed + 10 + rep, dense_mass=dense)
            ess, switched = min_bulk_ess(r["weights"], r["means"], pivot)
            out[(dense, start)].append((ess, ess / r["sampling"], 1000 * ess / r["total_steps"],
                                        r["steps"], r["divergences"], switched))
    hdr = (f"{'mass matrix':12s} {'start':6s} {'min ESS':>8s} {'ESS/s':>8s} {'ESS/1k steps':>12s} "
           f"{'steps/draw':>10s} {'div':>4s} {'relabelled':>10s}")
    print(hdr)
    print("-" * len(hdr))
    for (dense, start), v in out.items():
        med = np.median(np.asarray(v, np.float64), axis=0)
        print(f"{'dense' if dense else 'diagonal':12s} {start:6s} {med[0]:8.0f} {med[1]:8.0f} "
              f"{med[2]:12.1f} {med[3]:10.1f} {int(sum(r[4] for r in v)):4d} {med[5]:10.1%}")
    print(f"medians over {args.mass_repeats} seeds, run interleaved; div = total divergences; "
          "ESS/1k steps = min bulk ESS per 1000 leapfrog steps of all chains (post-warm-up), which "
          "the machine's load does not change. broad start: equal weights, means at K random data "
          "points, every covariance the data's.")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short chains, no PyMC, no large-N rows")
    ap.add_argument("--no-pymc", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pymc-warmup", type=int, default=200)
    ap.add_argument("--pymc-draws", type=int, default=200)
    ap.add_argument("--large-only", action="store_true", help="only the large-N rows")
    ap.add_argument("--shapes", type=str, default=None,
                    help="large-N shapes NxDxK,... (default: 100000x4x4,1000000x2x3); implies "
                         "--large-only")
    ap.add_argument("--large-warmup", type=int, default=100)
    ap.add_argument("--large-draws", type=int, default=100)
    ap.add_argument("--large-chains", type=int, default=2)
    ap.add_argument("--large-handwritten", action="store_true",
                    help="large-N rows: also run the hand-written model's NUTS (30+ min per shape "
                         "on 2 CPU cores); otherwise its ESS/s is estimated from its gradient time")
    ap.add_argument("--mass", action="store_true",
                    help="only the mass-matrix / start comparison at (1000, 2, 3)")
    ap.add_argument("--mass-repeats", type=int, default=3)
    args = ap.parse_args(argv)
    # compile columns are cold compiles: bayesgmm's on-disk cache (which, once on, also caches the
    # hand-written model's and PyMC's JAX programs) stays off unless the caller chose a directory
    os.environ.setdefault("BAYESGMM_COMPILATION_CACHE", "off")

    if args.mass:
        mass_and_start(args)
        return 0
    large_only = args.large_only or args.shapes is not None
    if not large_only:
        small_shape(args)
    if large_only or not args.quick:
        if not large_only:
            print()
        large_shapes(args, _parse_shapes(args.shapes) if args.shapes else LARGE_SHAPES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
