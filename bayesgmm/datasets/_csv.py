"""Reading numeric tables: the embedded Old Faithful data and user CSV files (numpy + csv only).

Errors are ``ValueError`` / ``FileNotFoundError`` whose messages say what is wrong and what to do,
because the command-line front prints them verbatim as its one-line error.
"""

from __future__ import annotations

import csv
import math
import os
from importlib import resources
from typing import NamedTuple, Sequence

import numpy as np

__all__ = ["CSVData", "load_csv", "load_faithful", "load_galaxies", "load_acidity", "load_enzyme", "FAITHFUL_FEATURES"]

#: Column names of the embedded Old Faithful data, in file order.
FAITHFUL_FEATURES = ("eruptions", "waiting")

# Cells read as missing values (compared case-insensitively after stripping blanks).
_MISSING = frozenset({"", "na", "nan", "n/a", "null", "none"})


class CSVData(NamedTuple):
    """Numeric columns read by :func:`load_csv`.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features), float64
        The selected columns, rows with missing values removed if ``dropna=True``.
    feature_names : tuple of str
        Names of the columns of ``X``, from the header row.
    n_dropped : int
        Number of rows removed because they had a missing value (always 0 unless ``dropna=True``).
    """

    X: np.ndarray
    feature_names: tuple
    n_dropped: int


def _parse_cell(cell: str) -> float | None:
    """The float value of ``cell``: NaN for a missing value, None if it is not a number."""
    text = cell.strip()
    if text.lower() in _MISSING:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None


def _quote_list(names) -> str:
    return ", ".join(repr(n) for n in names)


def load_csv(
    path, columns: Sequence[str] | str | None = None, dropna: bool = False, keep_missing: bool = False
) -> CSVData:
    """Read numeric columns from a comma-separated file with a header row.

    Only the standard library's :mod:`csv` module and numpy are used (pandas is not needed).
    Empty cells and ``NA``, ``NaN``, ``N/A``, ``null``, ``None`` (any case) are missing values.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file. The first row holds the column names.
    columns : sequence of str or str, optional
        Names of the columns to read, in the order wanted; a string is split at commas
        (``"a,b"``). Default: every column, which must then all be numeric.
    dropna : bool, default=False
        Remove the rows that have a missing value in a selected column (the number removed is
        returned as ``n_dropped``). If False, a missing value is an error.
    keep_missing : bool, default=False
        Keep missing values as NaN (for ``GaussianMixture(missing="marginalize")``); a row whose
        selected cells are all missing is still an error. Excludes ``dropna``.

    Returns
    -------
    CSVData
        A named tuple ``(X, feature_names, n_dropped)`` with ``X`` of shape
        (n_samples, n_features) and dtype float64.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (the message names the path).
    ValueError
        If the file has no header or no data rows, rows have the wrong number of cells, a
        requested column does not exist (the message lists the available ones), a selected column
        is not numeric (the message names it), a value is infinite, or a value is missing and
        ``dropna`` is False.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.csv"
    >>> _ = path.write_text("name,a,b\\nx,1.5,2\\ny,NA,3\\nz,0.5,4\\n")
    >>> X, names, n_dropped = load_csv(path, columns="a,b", dropna=True)
    >>> X
    array([[1.5, 2. ],
           [0.5, 4. ]])
    >>> names, n_dropped
    (('a', 'b'), 1)
    >>> load_csv(path, columns=["c"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: unknown column 'c' in ...toy.csv; available columns: 'name', 'a', 'b'
    """
    path_str = os.fspath(path)
    if not os.path.exists(path_str):
        raise FileNotFoundError(f"data file not found: {path_str}")
    if os.path.isdir(path_str):
        raise ValueError(f"{path_str} is a directory, not a CSV file")
    try:
        with open(path_str, newline="", encoding="utf-8-sig") as fh:
            rows = [row for row in csv.reader(fh) if any(cell.strip() for cell in row)]
    except UnicodeDecodeError:
        raise ValueError(f"{path_str} is not a UTF-8 text (CSV) file") from None
    except csv.Error as exc:
        raise ValueError(f"{path_str} is not a readable CSV file: {exc}") from None
    if not rows:
        raise ValueError(f"{path_str} is empty: expected a header row of column names")
    header = [name.strip() for name in rows[0]]
    body = rows[1:]
    if not body:
        raise ValueError(f"{path_str} has a header but no data rows")

    if columns is None:
        selected = header
    else:
        if isinstance(columns, str):
            selected = [c.strip() for c in columns.split(",") if c.strip()]
        else:
            selected = [str(c).strip() for c in columns]
        if not selected:
            raise ValueError("no columns selected: give at least one column name")
    unknown = [c for c in selected if c not in header]
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        raise ValueError(
            f"unknown column{plural} {_quote_list(unknown)} in {path_str}; "
            f"available columns: {_quote_list(header)}"
        )
    duplicated = sorted({c for c in selected if header.count(c) > 1 or selected.count(c) > 1})
    if duplicated:
        raise ValueError(f"column name(s) {_quote_list(duplicated)} are ambiguous (repeated) in {path_str}")
    index = [header.index(c) for c in selected]

    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ValueError(
                f"{path_str}, line {line}: {len(row)} cells, but the header has {len(header)} columns"
            )

    values = np.empty((len(body), len(selected)), dtype=np.float64)
    non_numeric = {}
    for j, col in enumerate(index):
        for i, row in enumerate(body):
            value = _parse_cell(row[col])
            if value is None:
                non_numeric.setdefault(selected[j], (i + 2, row[col].strip()))
                break
            values[i, j] = value
    if non_numeric:
        detail = "; ".join(f"{name!r} (line {line}: {cell!r})" for name, (line, cell) in non_numeric.items())
        hint = ""
        if columns is None:  # every column was asked for: suggest the numeric ones
            numeric = [c for c in header if c not in non_numeric]
            if numeric:
                hint = (
                    f"; select numeric columns, e.g. columns='{','.join(numeric)}'"
                    " (--columns on the command line)"
                )
        raise ValueError(f"non-numeric column(s) in {path_str}: {detail}{hint}")

    if np.isinf(values).any():
        i, j = np.argwhere(np.isinf(values))[0]
        raise ValueError(f"{path_str}, line {i + 2}: column {selected[j]!r} is infinite")
    if keep_missing:
        if dropna:
            raise ValueError("dropna=True and keep_missing=True exclude each other (--dropna, --missing marginalize)")
        empty = np.flatnonzero(np.isnan(values).all(axis=1))
        if empty.size:
            raise ValueError(
                f"{path_str}: {empty.size} row(s) have no value in the selected columns (first at line "
                f"{int(empty[0]) + 2}); a row needs one observed cell: remove them or use dropna=True (--dropna)"
            )
        return CSVData(values, tuple(selected), 0)
    missing = np.isnan(values).any(axis=1)
    n_missing = int(missing.sum())
    if n_missing:
        if not dropna:
            first = int(np.flatnonzero(missing)[0]) + 2
            raise ValueError(
                f"{path_str}: {n_missing} row(s) have missing values (first at line {first}); "
                "remove them, drop them with dropna=True (--dropna on the command line) or keep them "
                "as missing cells with keep_missing=True (--missing marginalize)"
            )
        values = values[~missing]
        if values.shape[0] == 0:
            raise ValueError(f"{path_str}: every row has a missing value; nothing is left after dropna")
    return CSVData(values, tuple(selected), n_missing)


def load_faithful(as_frame: bool = False):
    """Load the Old Faithful geyser data (272 eruptions, 2 features), embedded in the package.

    Columns: ``eruptions`` (eruption time, minutes) and ``waiting`` (waiting time to the next
    eruption, minutes). R's ``datasets::faithful`` (Härdle 1991; Azzalini & Bowman 1990); see
    ``bayesgmm/datasets/PROVENANCE.md`` for the source and licence (GPL-2 / GPL-3).

    Parameters
    ----------
    as_frame : bool, default=False
        Return a :class:`pandas.DataFrame` instead of an array (needs pandas, which is not a
        dependency of bayesgmm).

    Returns
    -------
    (X, feature_names) : tuple of ndarray of shape (272, 2) float64 and tuple of str
        If ``as_frame`` is False.
    frame : pandas.DataFrame of shape (272, 2)
        If ``as_frame`` is True, with columns ``eruptions`` and ``waiting``.

    Examples
    --------
    >>> X, names = load_faithful()
    >>> X.shape, X.dtype, names
    ((272, 2), dtype('float64'), ('eruptions', 'waiting'))
    >>> X[:2]
    array([[ 3.6, 79. ],
           [ 1.8, 54. ]])
    """
    with resources.as_file(resources.files(__package__) / "faithful.csv") as path:
        X, names, _ = load_csv(path, columns=FAITHFUL_FEATURES)
    if as_frame:
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError(
                "load_faithful(as_frame=True) needs pandas, which bayesgmm does not install; "
                "run `pip install pandas` or use as_frame=False"
            ) from None
        return pd.DataFrame(X, columns=list(names))
    return X, names


def _load_embedded(filename: str, column: str):
    """One numeric column of a CSV file shipped in this package, as an (n, 1) array."""
    with resources.as_file(resources.files(__package__) / filename) as path:
        X, names, _ = load_csv(path, columns=[column])
    return X, names


def load_galaxies():
    """Load the galaxy velocity data (82 galaxies, 1 feature), embedded in the package.

    Velocities (km/s) of 82 galaxies in the Corona Borealis region, R's ``MASS::galaxies``
    (Roeder 1990), a classic one-dimensional test of "how many components?" (Richardson &
    Green 1997). Observation 78 (26690) is a documented typo for 26960 and is kept
    as published. See ``bayesgmm/datasets/PROVENANCE.md`` (GPL-2 / GPL-3).

    Returns
    -------
    (X, feature_names) : tuple of ndarray of shape (82, 1) float64 and tuple of str
        ``feature_names`` is ``("velocity",)``.

    Examples
    --------
    >>> X, names = load_galaxies()
    >>> X.shape, names
    ((82, 1), ('velocity',))
    >>> X[:3, 0]
    array([9172., 9350., 9483.])
    """
    return _load_embedded("galaxies.csv", "velocity")


def load_acidity():
    """Load the lake acidity data (155 lakes, 1 feature), embedded in the package.

    ``log(ANC + 50)`` of the acid neutralising capacity (ANC) of 155 Wisconsin lakes, as used
    by Richardson & Green (1997) (R packages mixAK / Nmix); bimodal. See
    ``bayesgmm/datasets/PROVENANCE.md`` (GPL).

    Returns
    -------
    (X, feature_names) : tuple of ndarray of shape (155, 1) float64 and tuple of str
        ``feature_names`` is ``("log_acidity",)``.

    Examples
    --------
    >>> X, names = load_acidity()
    >>> X.shape, names
    ((155, 1), ('log_acidity',))
    """
    return _load_embedded("acidity.csv", "log_acidity")


def load_enzyme():
    """Load the enzyme activity data (245 individuals, 1 feature), embedded in the package.

    Enzyme activity of 245 unrelated individuals (Bechtel et al. 1993), as used by Richardson &
    Green (1997) (R packages mixAK / Nmix); skewed and bimodal. See
    ``bayesgmm/datasets/PROVENANCE.md`` (GPL).

    Returns
    -------
    (X, feature_names) : tuple of ndarray of shape (245, 1) float64 and tuple of str
        ``feature_names`` is ``("enzyme_activity",)``.

    Examples
    --------
    >>> X, names = load_enzyme()
    >>> X.shape, names
    ((245, 1), ('enzyme_activity',))
    """
    return _load_embedded("enzyme.csv", "enzyme_activity")


def load_diabetes():
    """Load the diabetes data (145 adults, 3 features, clinical classes), embedded in the package.

    Reaven & Miller's (1979) data as shipped by the R package mclust (``data/diabetes``), with
    mclust's documented correction (row 104's glucose 45 -> 455; the columns renamed ``fpg``,
    ``glucose``, ``insulin``): fasting plasma glucose, the area under the plasma glucose curve
    and the area under the plasma insulin curve of a glucose tolerance test. The clinical
    classification (``Normal``, ``Chemical``, ``Overt`` diabetes) is returned separately, for
    comparison with clusters. See ``bayesgmm/datasets/PROVENANCE.md`` (GPL (>= 2)).

    Returns
    -------
    (X, feature_names, classes) : ndarray of shape (145, 3) float64, tuple of str, ndarray of
        shape (145,) of str

    Examples
    --------
    >>> X, names, classes = load_diabetes()
    >>> X.shape, names, sorted(set(classes.tolist()))
    ((145, 3), ('fpg', 'glucose', 'insulin'), ['Chemical', 'Normal', 'Overt'])
    """
    import csv

    with resources.as_file(resources.files(__package__) / "diabetes.csv") as path:
        X, names, _ = load_csv(path, columns=["fpg", "glucose", "insulin"])
        with open(path, newline="") as f:
            classes = np.array([row["class"] for row in csv.DictReader(f)])
    return X, names, classes
