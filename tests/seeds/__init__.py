"""The five seed workflows of the project (``../shared/seeds``, 000--004), as functions of the
``GaussianMixture`` class they use, so that the same code runs with scikit-learn's estimator and
with bayesgmm's (``tests/test_seeds.py``; ``bench/seeds.py`` times seed 003).

Each ``seedNNN.run(GaussianMixture, full=False)`` executes the seed's code with ``GaussianMixture``
swapped in and returns a dict of what the seed reports (choices, counts, integrals) plus the
fitted objects the test compares (seed 004 uses no estimator: ``seed004.run(full=False)``; seed
003 is also split into stage functions). The code is the seeds' own, line for line where it touches the
estimator; every change is marked ``# ADAPTED:`` with the reason (a seed bug, data that must be
fetched from the network, plotting, a missing random seed, or a reduced size in CI). Plotting is
left out throughout: it does not touch the estimator beyond the attributes the tests read.
``full=True`` runs the seeds' own sizes (``BAYESGMM_SEEDS_FULL=1`` in the test module).
"""
