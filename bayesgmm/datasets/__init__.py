"""Data sets: the embedded Old Faithful data, a CSV reader, and synthetic known-truth mixtures.

Only numpy and the standard library are used; pandas is imported only for
``load_faithful(as_frame=True)``. Provenance and licence of the embedded data: ``PROVENANCE.md``
in this folder.
"""

from ._csv import FAITHFUL_FEATURES, CSVData, load_csv, load_faithful
from ._synthetic import make_blobs_1d_three, make_mixture

__all__ = [
    "FAITHFUL_FEATURES",
    "CSVData",
    "load_csv",
    "load_faithful",
    "make_blobs_1d_three",
    "make_mixture",
]
