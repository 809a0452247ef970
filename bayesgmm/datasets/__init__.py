"""Data sets: embedded real data (Old Faithful, galaxies, acidity, enzyme, diabetes), a CSV reader, and
synthetic known-truth mixtures (the seed examples' data).

Only numpy and the standard library are used; pandas is imported only for
``load_faithful(as_frame=True)``. Provenance and licence of the embedded data: ``PROVENANCE.md``
in this folder.
"""

from ._csv import (
    FAITHFUL_FEATURES, CSVData, load_acidity, load_csv, load_diabetes, load_enzyme, load_faithful, load_galaxies,
)
from ._synthetic import make_blobs_1d_three, make_mixture, make_stretched_blobs

__all__ = [
    "FAITHFUL_FEATURES",
    "CSVData",
    "load_acidity",
    "load_csv",
    "load_diabetes",
    "load_enzyme",
    "load_faithful",
    "load_galaxies",
    "make_blobs_1d_three",
    "make_mixture",
    "make_stretched_blobs",
]
