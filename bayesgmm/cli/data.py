"""The data of a ``bayesgmm fit`` run: a CSV file, or the embedded Old Faithful data, as a :class:`Dataset`.

:func:`load_data` reads DATA with :func:`bayesgmm.datasets.load_csv` (``--columns``, ``--dropna``,
``--missing``)
and turns the reader's errors into a :class:`~bayesgmm.cli.arguments.CLIError`;
:func:`_check_rows_and_columns` stops, before any work, on data that the requested number of
components cannot be fitted to (fewer rows than components, a constant column).
"""

from __future__ import annotations

import dataclasses
from importlib import resources

import numpy as np

from ..datasets import load_csv
from .arguments import DEFAULT_COMPONENTS, CLIError


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Data ready to fit, with what the summary says about it."""

    name: str
    X: np.ndarray
    feature_names: tuple
    n_dropped: int = 0
    default_components: int = DEFAULT_COMPONENTS

    @property
    def n_missing(self) -> int:
        """Missing (NaN) cells kept for marginalisation (``--missing marginalize``)."""
        return int(np.isnan(self.X).sum())

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]


@dataclasses.dataclass(frozen=True)
class _Embedded:
    file: str
    name: str
    default_components: int


#: The data set used when no DATA file is given.
EMBEDDED = _Embedded(
    file="faithful.csv",
    name="Old Faithful geyser (embedded; R datasets::faithful, 272 eruptions)",
    default_components=2,
)


def load_data(path: str | None, columns: str | None = None, dropna: bool = False, keep_missing: bool = False) -> Dataset:
    """Read ``path`` (a CSV file) or, when ``path`` is None, the embedded Old Faithful data.

    Raises
    ------
    CLIError
        With the reader's message when the file is missing or its columns are unusable.
    """
    try:
        if path is None:
            ref = resources.files("bayesgmm.datasets") / EMBEDDED.file
            with resources.as_file(ref) as file:
                X, names, n_dropped = load_csv(file, columns=columns, dropna=dropna, keep_missing=keep_missing)
            return Dataset(EMBEDDED.name, X, names, n_dropped, EMBEDDED.default_components)
        X, names, n_dropped = load_csv(path, columns=columns, dropna=dropna, keep_missing=keep_missing)
    except (OSError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    return Dataset(str(path), X, names, n_dropped)


def _check_rows_and_columns(data: Dataset, n_components: int, option: str = "--components") -> None:
    """Enough rows for ``n_components`` and no constant column (the default prior needs a spread)."""
    if data.n_samples < n_components:
        raise CLIError(
            f"too few rows for {n_components} components: {data.name} has "
            f"{data.n_samples} usable row(s); use fewer {option} or more data"
        )
    constant = [name for name, col in zip(data.feature_names, data.X.T) if np.nanmax(col) == np.nanmin(col)]
    if constant:
        raise CLIError(
            f"constant column(s) {', '.join(repr(c) for c in constant)} in {data.name}: the default "
            "prior takes its scales from each column's spread; leave them out with --columns"
        )
