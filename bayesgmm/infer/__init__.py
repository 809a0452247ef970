"""Runners: ``(rng_key, data, spec) -> immutable result``.

- :mod:`~bayesgmm.infer.map_em`: the MAP / maximum-likelihood EM fit (:func:`fit_map`);
  :mod:`~bayesgmm.infer.online_em`: one stepwise online-EM update per chunk (``partial_fit``);
  :mod:`~bayesgmm.infer.scoring`: log responsibilities and densities of host data (the scoring
  methods).
- :mod:`~bayesgmm.infer.nuts`: NUTS (:func:`~bayesgmm.infer.nuts.run_nuts`,
  :func:`~bayesgmm.infer.nuts.extend_nuts`); :mod:`~bayesgmm.infer.svi`: variational inference
  (:func:`~bayesgmm.infer.svi.run_svi`). Both return a :class:`~bayesgmm.infer.state.SamplerResult`.
- :mod:`~bayesgmm.infer.problem` (their shared set-up), :mod:`~bayesgmm.infer.programs` (the
  compiled-program cache), :mod:`~bayesgmm.infer.state` (results and saved sampler state, no
  NumPyro), :mod:`~bayesgmm.infer._numpyro` (the only module that touches NumPyro's internals).

Only :mod:`~bayesgmm.infer.map_em` is imported here: the samplers import NumPyro, which
``import bayesgmm`` does not.
"""

from .map_em import MAPResult, fit_map

__all__ = ["MAPResult", "fit_map"]
