"""Fresh-process behaviour: import side effects, the persistent compilation cache, program counts.

Each test runs fresh Python processes (a new user's first fit), with its own cache directory; the
two tests that start from a first and a second fit share those two processes (``fit_twice``).
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

#: The one-operation program compiled once per process to learn which XLA:CPU options this jaxlib
#: accepts (bayesgmm.core.programs._accepted_options).
PROBE = 1
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_COUNTING = textwrap.dedent(
    """
    import json, sys
    import jax, jax.monitoring
    from bayesgmm.core import executables
    counts = {"programs": 0, "cache_hits": 0, "loaded": 0, "stored": 0, "trace_names": []}
    def on_duration(event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            counts["programs"] += 1
        elif event == "/jax/core/compile/jaxpr_trace_duration":
            counts["trace_names"].append(str(kw.get("fun_name")))
    def on_event(event, **kw):
        if event == "/jax/compilation_cache/cache_hits":  # (a hit is a backend_compile event too)
            counts["cache_hits"] += 1
            counts["programs"] -= 1
        elif event == executables.HIT_EVENT:  # a program loaded whole: not traced, lowered or compiled
            counts["loaded"] += 1
        elif event == executables.STORE_EVENT:
            counts["stored"] += 1
    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(on_event)
    """
)


def _run(code: str, cache, extra_env=None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["BAYESGMM_COMPILATION_CACHE"] = str(cache)
    env.update(extra_env or {})
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


_FIT = _COUNTING + textwrap.dedent(
    """
    from bayesgmm import GaussianMixture
    from bayesgmm.datasets import load_faithful
    X, _ = load_faithful()
    gm = GaussianMixture(2, random_state=0).fit(X)
    p = gm.predict_proba(X)
    counts["means"] = gm.means_.tolist()
    counts["proba"] = p[:5].tolist()
    counts["cache_dir"] = jax.config.jax_compilation_cache_dir
    from bayesgmm.core.programs import TRACE_COUNTS
    counts["traced"] = TRACE_COUNTS["em_start"]
    print(json.dumps(counts))
    """
)


def test_import_has_no_side_effects(tmp_path):
    """Import changes no JAX setting, writes no file and imports none of the heavy optional stacks."""
    code = textwrap.dedent(
        """
        import json, sys
        import jax
        before = (jax.config.jax_compilation_cache_dir, jax.config.jax_enable_x64,
                  jax.config.jax_persistent_cache_min_compile_time_secs)
        import bayesgmm
        after = (jax.config.jax_compilation_cache_dir, jax.config.jax_enable_x64,
                 jax.config.jax_persistent_cache_min_compile_time_secs)
        # (pandas is left out: scikit-learn's base imports it where it is installed)
        heavy = sorted({m.split(".")[0] for m in sys.modules} & {"numpyro", "arviz", "matplotlib", "optax"})
        print(json.dumps({"same": before == after, "heavy": heavy}))
        """
    )
    out = _run(code, tmp_path / "cache")
    assert out == {"same": True, "heavy": []}
    assert not (tmp_path / "cache").exists()


@pytest.fixture(scope="module")
def fit_twice(tmp_path_factory):
    """The cache directory and the counts of a first fit on an empty cache and of a second process's
    fit on the same cache (read-only for the tests: copy the directory to change it)."""
    cache = tmp_path_factory.mktemp("fit-twice") / "cache"
    return cache, _run(_FIT, cache), _run(_FIT, cache)


def test_fit_compiles_two_programs_and_a_second_process_loads_them(fit_twice):
    """A first fit + predict_proba compiles one fit program and one scoring program (plus the
    one-operation program that probes which XLA options this jaxlib accepts) and stores the two
    whole; a second process with the same cache loads them without tracing, lowering or compiling
    anything, and gets the same numbers bit for bit."""
    cache, first, second = fit_twice
    assert first["programs"] == 2 + PROBE and first["cache_hits"] == 0
    assert (first["stored"], first["loaded"], first["traced"]) == (2, 0, 1)
    assert first["cache_dir"] == str(cache)
    assert any(cache.iterdir())
    assert second["programs"] == 0 and second["cache_hits"] == PROBE
    assert (second["stored"], second["loaded"], second["traced"]) == (0, 2, 0)
    assert second["means"] == first["means"] and second["proba"] == first["proba"]


def test_a_second_process_loads_the_nuts_program_whole(tmp_path):
    """The NUTS program (the main job's largest) is stored whole too: a second process neither
    traces nor compiles it and draws the same chains bit for bit."""
    code = _COUNTING + textwrap.dedent(
        """
        import warnings
        import numpy as np
        from bayesgmm import GaussianMixture
        from bayesgmm.datasets import load_faithful
        X, _ = load_faithful()
        warnings.simplefilter("ignore")
        gm = GaussianMixture(2, random_state=0).fit(X)
        post = gm.fit_posterior(X, "nuts", num_warmup=30, num_samples=20, num_chains=2, random_state=1)
        counts["draws"] = np.asarray(post.raw_draws.means).ravel().tolist()
        print(json.dumps(counts))
        """
    )
    cache = tmp_path / "cache"
    first = _run(code, cache)
    assert first["stored"] == 2 and first["loaded"] == 0  # the EM and the NUTS programs
    second = _run(code, cache)
    assert (second["stored"], second["loaded"]) == (0, 2), second
    # (the posterior's small helpers -- relabelling costs -- are still compiled; the samplers'
    # and the EM's programs are not even traced)
    assert "program" in first["trace_names"] and "em_start" in first["trace_names"], first["trace_names"]
    assert not {"program", "em_start"} & set(second["trace_names"]), second["trace_names"]
    assert second["draws"] == first["draws"]


def test_an_unreadable_stored_program_is_compiled_again_and_replaced(fit_twice, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(fit_twice[0], cache)  # the cache the first fit filled
    first = fit_twice[1]
    stored = sorted(cache.glob("bayesgmm-*-cache"))
    assert len(stored) == 2
    for path in stored:
        path.write_bytes(b"not a program")
    second = _run(_FIT, cache)
    assert (second["loaded"], second["stored"], second["traced"]) == (0, 2, 1)
    assert second["means"] == first["means"] and second["proba"] == first["proba"]
    third = _run(_FIT, cache)
    assert (third["loaded"], third["stored"], third["traced"]) == (2, 0, 0)
    assert third["means"] == first["means"]


def test_a_program_is_keyed_by_everything_that_changes_it(monkeypatch):
    """The cross-process key of a program: the same call gives the same digest; another static
    value, shape, dtype, weak type, JAX setting, source or package version, another."""
    import jax

    from bayesgmm.core import executables as ex

    x = np.zeros((3, 2), np.float32)

    def digest(static=(("k", 1),), args=(x,), name="f"):
        return ex.program_digest(name, ex.call_key(static, args))

    base = digest()
    assert digest() == base
    assert digest(static=(("k", 2),)) != base
    assert digest(name="g") != base
    assert digest(args=(np.zeros((4, 2), np.float32),)) != base
    assert digest(args=(np.zeros((3, 2), np.int32),)) != base
    assert digest(args=(1.0,)) != digest(args=(np.float32(1.0),))  # a weak type
    assert digest(args=((x, None),)) != digest(args=((None, x),))  # the tree structure
    assert ex.program_digest("f", ex.call_key((("k", 1),), (x,)), {"xla_backend_optimization_level": 0}) != base
    with jax.numpy_rank_promotion("raise"):
        assert digest() != base
    # a module-level function is named; a closure has no name stable across processes
    named = ex.program_digest("f", ex.call_key((("fn", ex.call_key),), (x,)))
    assert named != ex.program_digest("f", ex.call_key((("fn", ex.program_digest),), (x,)))
    with pytest.raises(ex._NotStorable):
        ex.program_digest("f", ex.call_key((("fn", lambda a: a),), (x,)))
    with pytest.raises(ex._NotStorable):
        jax.jit(lambda a: ex.call_key((), (a,)))(x)  # a traced argument
    monkeypatch.setitem(ex._memo, "environment", ex._environment() + "an edited source")
    assert digest() != base


def test_cache_can_be_turned_off_and_user_settings_are_kept(tmp_path):
    off = _run(_FIT, "0")
    assert off["cache_dir"] is None and off["programs"] == 2 + PROBE
    mine = tmp_path / "mine"
    user = _run(_FIT, tmp_path / "ours", extra_env={"JAX_COMPILATION_CACHE_DIR": str(mine)})
    assert user["cache_dir"] == str(mine)
    assert not (tmp_path / "ours").exists()


def test_a_grid_over_components_shares_its_programs(tmp_path):
    """n_components = 1..6 on small data share one fit program per covariance type (components
    padded to a bucket) and one scoring program for all covariance types (scored in the full
    layout): 2 + 1 programs for two types."""
    code = _COUNTING + textwrap.dedent(
        """
        import warnings
        import bayesgmm
        from bayesgmm.datasets import load_faithful
        X, _ = load_faithful()
        warnings.simplefilter("ignore")
        sel = bayesgmm.select(X, n_components=range(1, 7), covariance_types=("full", "diag"), n_init=3,
                              random_state=0, progress_bar=False)
        counts["best"] = sel.best_params_["n_components"]
        print(json.dumps(counts))
        """
    )
    out = _run(code, tmp_path / "cache")
    assert out["programs"] == 2 + 1 + PROBE, out
    assert out["best"] >= 2


def test_compilation_cache_settings(monkeypatch, tmp_path):
    from bayesgmm import _compile_cache as cc

    monkeypatch.setenv(cc.ENV_DIR, str(tmp_path / "x"))
    assert cc.cache_directory() == tmp_path / "x"
    for off in ("0", "off", "False", ""):
        monkeypatch.setenv(cc.ENV_DIR, off)
        assert cc.cache_directory() is None
    monkeypatch.delenv(cc.ENV_DIR)
    assert cc.cache_directory().parts[-2:] == ("bayesgmm", "xla")
    monkeypatch.setenv(cc.ENV_SIZE, "500M")
    assert cc._size_limit() == 500 << 20
    monkeypatch.setenv(cc.ENV_SIZE, "lots")
    with pytest.raises(ValueError, match=cc.ENV_SIZE):
        cc._size_limit()


def test_compile_options_this_xla_does_not_know_are_dropped(monkeypatch):
    """Option names change between jaxlib releases (0.12 dropped xla_cpu_use_fusion_emitters); an
    unknown one must be left out, not fail every fit."""
    import jax

    from bayesgmm.core import programs

    if jax.default_backend() != "cpu":
        pytest.skip("the profiles set XLA:CPU options only")
    monkeypatch.setattr(programs, "_ACCEPTED", {})
    bogus = {"xla_bayesgmm_no_such_option": True, "xla_backend_optimization_level": 0}
    monkeypatch.setitem(programs._CPU_OPTIONS, "cheap", bogus)
    assert programs.compiler_options("cheap") == {"xla_backend_optimization_level": 0}
    assert programs._ACCEPTED == {"xla_bayesgmm_no_such_option": False, "xla_backend_optimization_level": True}
    # The filtered options compile a real fit's program.
    from bayesgmm import GaussianMixture

    X = np.random.default_rng(0).normal(size=(40, 2))
    assert np.isfinite(GaussianMixture(2, random_state=0).fit(X).lower_bound_)


def test_a_function_kept_whole_runs_as_plain_jax_under_disable_jit():
    """``jax.disable_jit()`` is honoured: the function runs op by op, not as the stored program."""
    import jax

    from bayesgmm._compile_cache import enable_compilation_cache
    from bayesgmm.core.executables import persistent_jit, storable

    enable_compilation_cache()
    if not storable():
        pytest.skip("programs are not kept whole here (cache off or several devices)")
    seen = []

    def double(x):
        seen.append(isinstance(x, jax.core.Tracer))
        return x * 2

    double.__module__, double.__qualname__ = "bayesgmm._test_probe", "double"  # (only bayesgmm's are kept)
    f = persistent_jit(double)
    np.testing.assert_array_equal(f(np.arange(3.0)), [0.0, 2.0, 4.0])
    assert len(f._compiled) == 1  # held as a program kept whole, not by jax.jit
    with jax.disable_jit():
        np.testing.assert_array_equal(f(np.arange(3.0)), [0.0, 2.0, 4.0])
    assert seen == [True, False]
