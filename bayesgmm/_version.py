"""The package version, in a module of its own so that :mod:`bayesgmm.io` can stamp it on files
without importing the package's front."""

__version__ = "0.1.0"
