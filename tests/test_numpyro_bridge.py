"""NumPyro's internals that bayesgmm relies on, all of them wrapped in bayesgmm/infer/_numpyro.py.

Each test checks that one internal (a private or unstable name, a signature, the fields of a state,
a behaviour of a handler) is still what the bridge expects, so that a NumPyro release that changes
one fails here, with a message naming the bridge, instead of deep inside a sampler. The last tests
keep the rule that no other module of bayesgmm touches those internals, and that the modules that
save and load sampler state do not import NumPyro at all.
"""

import ast
import inspect
import json
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro import handlers

from bayesgmm.infer import _numpyro

BRIDGE = "bayesgmm/infer/_numpyro.py"
ROOT = pathlib.Path(__file__).resolve().parent.parent

#: The leaf paths of a NUTS state (diagonal mass matrix, one site "a"). Saved posteriors store the
#: sampler state by these paths (bayesgmm.infer.state.FlatState): if NumPyro changes them, states
#: saved before cannot be extended.
STATE_PATHS = [
    ".i", ".z['a']", ".z_grad['a']", ".potential_energy", ".energy", ".trajectory_length",
    ".num_steps", ".accept_prob", ".mean_accept_prob", ".diverging", ".adapt_state.step_size",
    ".adapt_state.inverse_mass_matrix", ".adapt_state.mass_matrix_sqrt",
    ".adapt_state.mass_matrix_sqrt_inv", ".adapt_state.ss_state[0]", ".adapt_state.ss_state[1]",
    ".adapt_state.ss_state[2]", ".adapt_state.ss_state[3]", ".adapt_state.ss_state[4]",
    ".adapt_state.mm_state[0]", ".adapt_state.mm_state[1]", ".adapt_state.mm_state[2]",
    ".adapt_state.window_idx", ".adapt_state.rng_key", ".rng_key",
]


def require(condition, what):
    """Fail with a message that names the bridge module when NumPyro no longer provides ``what``."""
    if not condition:
        pytest.fail(
            f"NumPyro {numpyro.__version__} changed {what}; bayesgmm relies on it only in {BRIDGE}: "
            "update that module (and this test) to the new NumPyro.",
            pytrace=False,
        )


def require_params(func, names, what):
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        params = {}
    missing = [n for n in names if n not in params]
    require(not missing, f"the signature of {what} (no parameter {missing}; has {list(params)})")


def _lookup(dotted):
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(__import__(module, fromlist=[name]), name)
    except (ImportError, AttributeError):
        require(False, f"{dotted} (it no longer exists)")


def _normal_model(x=None):
    numpyro.sample("a", dist.Normal(0.0, 1.0))


# -- the functional NUTS kernel and its state ----------------------------------------------------
def test_functional_nuts_kernel_signatures():
    hmc = _lookup("numpyro.infer.hmc.hmc")
    require_params(hmc, ["potential_fn_gen", "algo"], "numpyro.infer.hmc.hmc")
    init_kernel, sample_kernel = hmc(potential_fn_gen=lambda **kw: (lambda z: 0.0), algo="NUTS")
    require_params(init_kernel, ["init_params", "num_warmup", "dense_mass", "target_accept_prob",
                                 "max_tree_depth", "model_kwargs", "rng_key"], "hmc's init_kernel")
    require_params(sample_kernel, ["hmc_state", "model_kwargs"], "hmc's sample_kernel")
    require_params(_lookup("numpyro.infer.util.potential_energy"),
                   ["model", "model_args", "model_kwargs", "params"], "numpyro.infer.util.potential_energy")


def test_hmc_state_fields():
    fields = getattr(_lookup("numpyro.infer.hmc.HMCState"), "_fields", ())
    used = ["i", "z", "potential_energy", "energy", "num_steps", "accept_prob", "diverging",
            "adapt_state", "rng_key"]
    require(all(f in fields for f in used), f"the fields of HMCState (used: {used}; has {fields})")
    adapt = getattr(_lookup("numpyro.infer.hmc_util.HMCAdaptState"), "_fields", ())
    require(all(f in adapt for f in ("step_size", "inverse_mass_matrix")),
            f"the fields of HMCAdaptState (has {adapt})")


def test_nuts_kernel_runs_and_its_state_has_the_saved_paths():
    """The bridge's kernel initialises and steps a chain; its record and accessors read the
    state, and the state flattens to the leaf paths that saved posteriors hold."""
    kernel = _numpyro.nuts_kernel(_normal_model, dense_mass=False, target_accept=0.8, max_tree_depth=5)

    @jax.jit
    def run(key):  # (one program: eagerly, NUTS compiles hundreds of small ones)
        state = kernel.init({"a": jnp.asarray(0.5)}, key, {}, _numpyro.warmup_schedule(5))
        return jax.lax.fori_loop(0, 3, lambda i, s: kernel.step(s, {}), state)

    state = run(jax.random.PRNGKey(0))
    rec = _numpyro.nuts_record(state)
    require(set(rec.z) == {"a"} and np.shape(rec.step_size) == () and int(rec.num_steps) >= 1,
            "the NUTS state's position / step size / leapfrog steps")
    require(np.isfinite(float(_numpyro.state_potential_energy(state))), "HMCState.potential_energy")
    require(int(_numpyro.state_num_steps(state)) == int(rec.num_steps), "HMCState.num_steps")
    require(np.shape(_numpyro.state_inverse_mass_matrix(state)) == (1,),
            "HMCAdaptState.inverse_mass_matrix (diagonal: one entry per unconstrained coordinate)")
    require(jnp.shape(_numpyro.state_rng_key(state)) == (2,), "HMCState.rng_key")
    flat, _ = jax.tree_util.tree_flatten_with_path(state)
    paths = [jax.tree_util.keystr(p) for p, _ in flat]
    require(paths == STATE_PATHS, f"the leaf paths of a NUTS state (saved states hold {STATE_PATHS}; now {paths})")
    require(_numpyro.position_path("a") in paths, "the path of the position in a NUTS state")


def test_warm_up_windows_are_numpyros_and_a_traced_warm_up_adapts_as_numpyros_own_kernel():
    """The warm-up's length and windows are arguments of the bridge's kernel (traced), its windows
    NumPyro's ``build_adaptation_schedule``: two warm-ups with the same number of windows run
    through one program, and every transition -- adaptation windows, their ends, the last
    warm-up step and the draws after it -- is bit for bit that of NumPyro's own kernel built with
    the length as a Python number. The schedule builder is NumPyro's again afterwards."""
    from numpyro.infer import hmc_util
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import potential_energy

    builder = _lookup("numpyro.infer.hmc_util.build_adaptation_schedule")
    require_params(builder, ["num_steps"], "numpyro.infer.hmc_util.build_adaptation_schedule")
    for n in (0, 19, 20, 149, 150, 210, 290, 1000):
        w = _numpyro.warmup_schedule(n)
        require(w.windows.tolist() == [list(a) for a in builder(n)] and int(w.num_warmup) == n,
                f"the adaptation windows of a warm-up of {n} transitions")
    assert [_numpyro.warmup_schedule(n).windows.shape[0] for n in (19, 20, 199, 200, 210, 290)] == [1, 3, 3, 4, 4, 4]

    kernel = _numpyro.nuts_kernel(_normal_model, dense_mass=False, target_accept=0.8, max_tree_depth=5)
    n_steps = 300  # past both warm-ups
    traces = []

    @jax.jit
    def ours(key, warmup):
        traces.append(1)
        state = kernel.init({"a": jnp.asarray(0.5)}, key, {}, warmup)
        return jax.lax.scan(lambda s, _: (kernel.step(s, {}), kernel.step(s, {})), state, None, n_steps)[1]

    def numpyros(key, n):
        init_kernel, sample_kernel = hmc(
            potential_fn_gen=lambda **data: (lambda z: potential_energy(_normal_model, (), data, z)), algo="NUTS")

        @jax.jit
        def run(key):
            state = init_kernel({"a": jnp.asarray(0.5)}, n, dense_mass=False, target_accept_prob=0.8,
                                max_tree_depth=5, model_kwargs={}, rng_key=key)
            return jax.lax.scan(lambda s, _: (sample_kernel(s, model_kwargs={}),) * 2, state, None, n_steps)[1]

        return run(key)

    key = jax.random.PRNGKey(3)
    for n in (210, 290):  # 4 windows each: the start buffer, two doubling windows, the end buffer
        got, want = ours(key, _numpyro.warmup_schedule(n)), numpyros(key, n)
        jax.tree_util.tree_map(np.testing.assert_array_equal, got, want)
        # the step size is adapted until the end of the warm-up, and fixed after it
        ss = np.asarray(got.adapt_state.step_size)
        assert ss[n - 2] != ss[n - 1] and np.all(ss[n - 1:] == ss[n - 1])
    assert len(traces) == 1  # one program for both lengths
    assert hmc_util.build_adaptation_schedule is builder


# -- progress bars ---------------------------------------------------------------------------------
def test_progress_bar_decorator():
    factory = _lookup("numpyro.util.progress_bar_factory")
    require_params(factory, ["num_samples", "num_chains", "progress_rate"], "numpyro.util.progress_bar_factory")
    out = _numpyro.fori_loop_with_progress_bar(10, 1, lambda i, c: c + i, jnp.asarray(0))
    require(int(out) == 45, "the loop body convention of progress_bar_factory ((i, (carry, bar)))")
    carry, ys = _numpyro.scan_with_progress_bar(4, lambda c, i: (c + 1, c * i), jnp.asarray(1))
    require(int(carry) == 5 and np.array_equal(ys, [0, 2, 6, 12]), "progress_bar_factory under lax.scan")


# -- SVI: optimiser class, init_to_value, ELBO, messengers, plates -------------------------------------
def test_numpyro_optimiser_base_class():
    import optax

    _lookup("numpyro.optim._NumPyroOptim")
    require(_numpyro.is_numpyro_optimizer(numpyro.optim.Adam(0.1)), "numpyro.optim._NumPyroOptim (base of Adam)")
    require(not _numpyro.is_numpyro_optimizer(optax.adam(0.1)), "numpyro.optim._NumPyroOptim")


def test_init_to_value_starts_an_autoguide():
    from numpyro.infer import SVI
    from numpyro.infer.autoguide import AutoNormal

    require_params(_lookup("numpyro.infer.initialization.init_to_value"), ["values"], "init_to_value")
    guide = AutoNormal(_normal_model, init_loc_fn=_numpyro.init_at({"a": jnp.asarray(0.3)}))
    svi = SVI(_normal_model, guide, numpyro.optim.Adam(0.1), _numpyro.OrderedTraceELBO())
    state = svi.init(jax.random.PRNGKey(0))
    require(np.isclose(float(guide.median(svi.get_params(state))["a"]), 0.3), "init_to_value(values=...)")


def test_ordered_elbo_is_what_svi_calls():
    from numpyro.infer import ELBO, SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal

    require_params(ELBO.loss_with_mutable_state, ["rng_key", "param_map", "model", "guide"],
                   "ELBO.loss_with_mutable_state")
    require_params(_lookup("numpyro.infer.util.log_density"),
                   ["model", "model_args", "model_kwargs", "params"], "numpyro.infer.util.log_density")
    calls = []

    class Spy(_numpyro.OrderedTraceELBO):
        def loss_with_mutable_state(self, *args, **kwargs):
            calls.append(1)
            return super().loss_with_mutable_state(*args, **kwargs)

    def model():
        a = numpyro.sample("a", dist.Normal(0.0, 1.0))
        numpyro.sample("x", dist.Normal(a, 1.0), obs=jnp.asarray([0.5, 1.0]))

    guide = AutoNormal(model)
    svi = SVI(model, guide, numpyro.optim.Adam(0.01), Spy())
    state = svi.init(jax.random.PRNGKey(0))
    state, loss = jax.jit(svi.update)(state)
    require(calls and np.isfinite(float(loss)), "how SVI computes its loss (ELBO.loss_with_mutable_state)")
    # the same objective as Trace_ELBO: equal on average over draws of the guide
    params = svi.get_params(state)
    keys = jax.random.split(jax.random.PRNGKey(1), 4000)
    def mean_loss(elbo, keys):
        return jnp.mean(jax.vmap(lambda k: elbo.loss(k, params, model, guide))(keys))

    mean_loss = jax.jit(mean_loss, static_argnums=0)
    ours, theirs = float(mean_loss(_numpyro.OrderedTraceELBO(), keys[:2000])), float(mean_loss(Trace_ELBO(), keys[2000:]))
    require(abs(ours - theirs) < 0.1, f"Trace_ELBO's objective (ours {ours:.3f}, Trace_ELBO {theirs:.3f})")


def test_global_latents_messenger_drops_plate_frames_of_latents_only():
    messenger = _lookup("numpyro.primitives.Messenger")
    require(callable(getattr(messenger, "process_message", None)), "numpyro.primitives.Messenger.process_message")

    def model():
        with numpyro.plate("component", 3):
            numpyro.sample("m", dist.Normal(0.0, 1.0))
        with numpyro.plate("obs", 2):
            numpyro.sample("x", dist.Normal(0.0, 1.0), obs=jnp.zeros(2))

    plain = handlers.trace(handlers.seed(model, 0)).get_trace()
    require(all("cond_indep_stack" in plain[s] for s in ("m", "x")) and plain["m"]["cond_indep_stack"],
            "the 'cond_indep_stack' of sample messages")
    tr = handlers.trace(handlers.seed(_numpyro.GlobalLatents(model), 0)).get_trace()
    require(tr["m"]["cond_indep_stack"] == [] and tr["m"]["value"].shape == (3,),
            "how a Messenger edits sample messages (process_message)")
    require(tr["x"]["cond_indep_stack"], "the 'is_observed' field of sample messages")


def test_subsampling_plate_indices_can_be_substituted():
    x = jnp.arange(10.0)

    def model():
        with numpyro.plate("obs", 10, subsample_size=4):
            return numpyro.subsample(x, event_dim=0)

    idx = jnp.asarray([7, 7, 0, 3])
    with handlers.seed(rng_seed=0), handlers.substitute(data={"obs": idx}):
        got = model()
    require(np.array_equal(got, x[idx]), "the substitution of a subsampling plate's indices (plate messages)")
    tr = handlers.trace(handlers.seed(_numpyro.with_replacement(model, 10, 4), 1)).get_trace()
    drawn = np.asarray(tr["obs"]["value"])
    require(drawn.shape == (4,) and np.all((drawn >= 0) & (drawn < 10)), "subsampling plate messages")
    require(np.array_equal(tr["obs"]["value"], drawn), "subsampling plate messages")


# -- the rule: only the bridge touches NumPyro's internals ------------------------------------------
#: Modules whose import (or any import from them) is reserved for the bridge.
INTERNAL_MODULES = ("numpyro.infer.hmc", "numpyro.infer.hmc_util", "numpyro.infer.util", "numpyro.primitives",
                    "numpyro.infer.initialization")
#: Names reserved for the bridge: imported from NumPyro, read as attributes, or used as message keys.
INTERNAL_IMPORTS = {"hmc", "HMCState", "potential_energy", "log_density", "progress_bar_factory",
                    "Messenger", "init_to_value", "_NumPyroOptim"}
INTERNAL_ATTRIBUTES = {"_NumPyroOptim", "progress_bar_factory", "HMCState", "adapt_state", "Messenger",
                       "loss_with_mutable_state", "init_to_value"}
INTERNAL_KEYS = {"cond_indep_stack"}


def test_only_the_bridge_uses_numpyro_internals():
    offences = []
    for path in sorted((ROOT / "bayesgmm").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel == BRIDGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=rel)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("numpyro"):
                if node.module.startswith(INTERNAL_MODULES) or {a.name for a in node.names} & INTERNAL_IMPORTS:
                    offences.append(f"{rel}:{node.lineno} from {node.module} import ...")
            elif isinstance(node, ast.Import):
                offences += [f"{rel}:{node.lineno} import {a.name}" for a in node.names
                             if a.name.startswith(INTERNAL_MODULES)]
            elif isinstance(node, ast.Attribute) and node.attr in INTERNAL_ATTRIBUTES:
                offences.append(f"{rel}:{node.lineno} .{node.attr}")
            elif isinstance(node, ast.Constant) and node.value in INTERNAL_KEYS:
                offences.append(f"{rel}:{node.lineno} {node.value!r}")
    assert not offences, f"NumPyro internals used outside {BRIDGE} (move them there): {offences}"


def test_saving_and_loading_sampler_state_does_not_import_numpyro():
    code = textwrap.dedent(
        """
        import json, sys
        import bayesgmm, bayesgmm.io, bayesgmm.infer, bayesgmm.infer.state, bayesgmm.infer.programs
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "numpyro")))
        """
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("name", ["normal", "multivariate_normal", "low_rank"])
def test_autoguide_takes_a_traced_initial_scale(name):
    """``_numpyro.autoguide`` starts the guide's scales at a traced ``init_scale`` (run_svi passes
    it as a program argument, so that data of every size share one program): the initial guide
    parameters under ``jit`` equal those of the guide built with the number."""
    import optax
    from numpyro.infer import SVI, Trace_ELBO

    from bayesgmm.infer.svi import GUIDES

    def model():
        numpyro.sample("a", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
        numpyro.sample("b", dist.HalfNormal(1.0))

    def initial(guide):
        svi = SVI(model, guide, optax.adam(0.1), Trace_ELBO())
        return svi.get_params(svi.init(jax.random.PRNGKey(0)))

    cls = GUIDES[name]
    program = jax.jit(lambda s: initial(_numpyro.autoguide(cls, model, init_scale=s)))
    for value in (0.037, 0.5):  # two values through one program: the argument, not a default
        traced = program(jnp.float32(value))
        want = jax.jit(lambda: initial(cls(model, init_scale=value)))()  # the number, a constant
        assert sorted(traced) == sorted(want)
        for k in want:
            np.testing.assert_allclose(traced[k], want[k], rtol=1e-6, err_msg=f"{k} at {value}")
    assert program._cache_size() == 1
