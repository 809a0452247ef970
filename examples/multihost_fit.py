"""Fit one Gaussian mixture with the samples split over several processes (hosts) with jax.distributed.

Every process runs this same script. ``jax.distributed.initialize`` connects them; afterwards
``jax.devices()`` lists the devices of *all* processes, and ``GaussianMixture(devices=jax.devices())``
splits the samples over all of them: each process standardises and holds only the rows of its own
devices (read here from a ``numpy.memmap`` that every host opens, e.g. on a shared file system),
each device scans its blocks, and the sufficient statistics (a few K x D x D arrays) are summed
across all devices and hosts by XLA's collectives. Every process ends with the same fitted model.

On a cluster (one process per host, or per GPU), e.g. with 2 hosts::

    # host 0                                              # host 1
    python examples/multihost_fit.py --coordinator host0:12345 --num-processes 2 --process-id 0 --data X.npy
    python examples/multihost_fit.py --coordinator host0:12345 --num-processes 2 --process-id 1 --data X.npy

(under SLURM or Open MPI, ``jax.distributed.initialize()`` without arguments finds these values.)

On one machine, as a demonstration with CPU processes that talk over gloo::

    python examples/multihost_fit.py --local-demo 2

which writes a data set, starts 2 processes with 2 CPU devices each (4 devices in all), fits, and
checks that every process got the same answer as a single-process fit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile


def worker(args):
    import jax

    if args.cpu_devices:  # CPU processes: local devices and a collectives backend for CPUs
        jax.config.update("jax_num_cpu_devices", args.cpu_devices)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(args.coordinator, num_processes=args.num_processes, process_id=args.process_id)
    import numpy as np

    from bayesgmm import GaussianMixture

    x = np.load(args.data, mmap_mode="r")  # each process reads (standardises) only its own rows
    gm = GaussianMixture(args.components, devices=jax.devices(), random_state=0).fit(x)
    ll = gm.score(x)  # scoring is sharded the same way
    result = {"process": jax.process_index(), "devices": len(jax.devices()),
              "local_devices": len(jax.local_devices()), "means": gm.means_.tolist(),
              "weights": gm.weights_.tolist(), "n_iter": gm.n_iter_, "mean_loglik": ll}
    print(json.dumps(result), flush=True)
    jax.distributed.shutdown()


def local_demo(n_proc, components=3):
    import numpy as np

    rng = np.random.default_rng(0)
    centres = np.array([[-4.0, 0.0], [0.0, 3.0], [4.0, -1.0]])
    x = centres[rng.integers(0, 3, 20_001)] + rng.normal(size=(20_001, 2))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "X.npy")
        np.save(path, x)
        port = 20000 + os.getpid() % 20000
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        procs = [subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--coordinator", f"localhost:{port}",
             "--num-processes", str(n_proc), "--process-id", str(i), "--data", path,
             "--components", str(components), "--cpu-devices", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for i in range(n_proc)]
        outs = [p.communicate(timeout=900) for p in procs]
        for p, (out, err) in zip(procs, outs):
            if p.returncode != 0:
                raise SystemExit(f"a process failed (exit {p.returncode}):\n{err[-3000:]}")
        results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
        sys.path.insert(0, root)  # the checkout's bayesgmm, as in the processes
        from bayesgmm import GaussianMixture

        single = GaussianMixture(components, devices=1, random_state=0).fit(x)
    for r in results:
        err = np.max(np.abs(np.asarray(r["means"]) - single.means_))
        print(f"process {r['process']}: {r['local_devices']} of {r['devices']} devices, n_iter {r['n_iter']}, "
              f"mean log-likelihood {r['mean_loglik']:.6f}; max |means - single-process means| = {err:.2e}")
    print(f"single process, one device: n_iter {single.n_iter_}, mean log-likelihood {single.score(x):.6f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--coordinator", type=str, default=None, help="host:port of process 0")
    ap.add_argument("--num-processes", type=int, default=None)
    ap.add_argument("--process-id", type=int, default=None)
    ap.add_argument("--data", type=str, default=None, help=".npy file of shape (n_samples, n_features)")
    ap.add_argument("--components", type=int, default=3)
    ap.add_argument("--cpu-devices", type=int, default=0, help="CPU devices per process (CPU demo)")
    ap.add_argument("--local-demo", type=int, default=0, metavar="P", help="run P local CPU processes")
    args = ap.parse_args(argv)
    if args.local_demo:
        local_demo(args.local_demo, args.components)
    else:
        worker(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
