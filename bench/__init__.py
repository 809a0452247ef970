"""bayesgmm's benchmark suite: ``python -m bench [--quick]`` runs every comparison and rewrites
``bench/RESULTS.md``; each script also runs on its own (``python bench/<name>.py --help``)."""
