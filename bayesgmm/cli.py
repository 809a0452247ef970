"""Command-line front: ``bayesgmm fit [DATA.csv] ...`` fits a MAP Gaussian mixture and prints a summary.

The work is split so that new options slot in without reshaping it: :func:`build_parser` declares
the options, :func:`load_data` turns them into a :class:`Dataset`, a *fitter* (one per inference
method, see ``_FITTERS``) turns data and :class:`FitSettings` into a fitted estimator, and
:func:`format_map_summary` renders the text. Every user error is a :class:`CLIError`, printed as one
line ``bayesgmm: error: ...`` with exit status 2; no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from importlib import resources
from typing import Callable, Sequence

import numpy as np

__all__ = ["main", "build_parser", "CLIError", "Dataset", "FitSettings", "load_data", "format_map_summary"]

PROG = "bayesgmm"
COVARIANCE_CHOICES = ("full", "tied", "diag", "spherical")
#: Components fitted when ``--components`` is not given and the data set has no default of its own.
DEFAULT_COMPONENTS = 2
DEFAULT_N_INIT = 5
DEFAULT_SEED = 0


class CLIError(Exception):
    """A problem with the user's input or options: reported as one line, exit status ``status``."""

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


class _ArgumentParser(argparse.ArgumentParser):
    """argparse, but usage errors become a :class:`CLIError` (one line, exit 2, no usage dump)."""

    def error(self, message):  # noqa: D401 - argparse's hook
        raise CLIError(f"{message} (see '{self.prog} --help')")


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Dataset:
    """Data ready to fit, with what the summary says about it."""

    name: str
    X: np.ndarray
    feature_names: tuple
    n_dropped: int = 0
    default_components: int = DEFAULT_COMPONENTS

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


def load_data(path: str | None, columns: str | None = None, dropna: bool = False) -> Dataset:
    """Read ``path`` (a CSV file) or, when ``path`` is None, the embedded Old Faithful data.

    Raises
    ------
    CLIError
        With the reader's message when the file is missing or its columns are unusable.
    """
    from .datasets import load_csv

    try:
        if path is None:
            ref = resources.files("bayesgmm.datasets") / EMBEDDED.file
            with resources.as_file(ref) as file:
                X, names, n_dropped = load_csv(file, columns=columns, dropna=dropna)
            return Dataset(EMBEDDED.name, X, names, n_dropped, EMBEDDED.default_components)
        X, names, n_dropped = load_csv(path, columns=columns, dropna=dropna)
    except (OSError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    return Dataset(str(path), X, names, n_dropped)


# ----------------------------------------------------------------------------------------------
# fitting
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FitSettings:
    """The model and algorithm options shared by every inference method."""

    n_components: int
    covariance_type: str = "full"
    seed: int = DEFAULT_SEED
    n_init: int = DEFAULT_N_INIT


@dataclasses.dataclass
class FitOutcome:
    """A fitted estimator and the warnings its fit raised (shown as notes, not tracebacks)."""

    estimator: object
    notes: list


def _fit_map(data: Dataset, settings: FitSettings) -> FitOutcome:
    """MAP-EM with the default prior: ``GaussianMixture(prior="default")``."""
    from .estimator import GaussianMixture

    if data.n_samples < settings.n_components:
        raise CLIError(
            f"too few rows for {settings.n_components} components: {data.name} has "
            f"{data.n_samples} usable row(s); use fewer --components or more data"
        )
    # The default prior takes its scales from each column's spread, so a constant column has none.
    constant = [name for name, col in zip(data.feature_names, data.X.T) if np.ptp(col) == 0]
    if constant:
        raise CLIError(
            f"constant column(s) {', '.join(repr(c) for c in constant)} in {data.name}: the default "
            "prior takes its scales from each column's spread; leave them out with --columns"
        )
    gm = GaussianMixture(
        n_components=settings.n_components,
        covariance_type=settings.covariance_type,
        prior="default",
        n_init=settings.n_init,
        random_state=settings.seed,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            gm.fit(data.X)
        except ValueError as exc:  # input the model cannot take (e.g. a constant column)
            raise CLIError(str(exc)) from None
        except FloatingPointError as exc:  # the fit itself failed; the message says what to change
            raise CLIError(str(exc), status=1) from None
    notes = [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)]
    return FitOutcome(gm, notes)


#: Inference methods by name. A later ``--method map|nuts|vi|all`` chooses among these.
_FITTERS: dict[str, Callable[[Dataset, FitSettings], FitOutcome]] = {"map": _fit_map}


# ----------------------------------------------------------------------------------------------
# output
# ----------------------------------------------------------------------------------------------
def _num(value: float) -> str:
    return f"{value:.5g}"


def _table(rows: list[list[str]], indent: str = "  ", right: Sequence[int] = ()) -> list[str]:
    """Columns padded to their widest cell; indices in ``right`` are right-aligned."""
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [c.rjust(w) if j in right else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths))]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def _component_sds(gm, n_features: int) -> np.ndarray:
    """Per-component, per-feature standard deviations (K, D) for any covariance type."""
    cov = np.asarray(gm.covariances_, dtype=np.float64)
    k = gm.weights_.shape[0]
    ct = gm.covariance_type
    if ct == "full":
        var = np.diagonal(cov, axis1=-2, axis2=-1)
    elif ct == "tied":
        var = np.broadcast_to(np.diag(cov), (k, n_features))
    elif ct == "diag":
        var = cov
    else:  # spherical
        var = np.repeat(cov[:, None], n_features, axis=1)
    return np.sqrt(var)


def _correlation(cov: np.ndarray) -> np.ndarray:
    sd = np.sqrt(np.diag(cov))
    return cov / np.outer(sd, sd)


def _correlation_lines(label: str, corr: np.ndarray, names: Sequence[str]) -> list[str]:
    if len(names) == 2:
        return [f"  {label}: r({names[0]}, {names[1]}) = {corr[0, 1]:+.3f}"]
    rows = [[""] + list(names)]
    rows += [[names[i]] + [f"{corr[i, j]:+.3f}" for j in range(len(names))] for i in range(len(names))]
    return [f"  {label}:"] + _table(rows, indent="    ", right=range(1, len(names) + 1))


def format_map_summary(data: Dataset, settings: FitSettings, outcome: FitOutcome, bic: float) -> str:
    """The text that ``bayesgmm fit`` prints for a MAP-EM fit."""
    from . import __version__

    gm = outcome.estimator
    names = data.feature_names
    d = data.n_features
    ct = gm.covariance_type
    weights = np.asarray(gm.weights_, dtype=np.float64)
    means = np.asarray(gm.means_, dtype=np.float64)
    sds = _component_sds(gm, d)
    # Components are ordered by the mean of the first feature so that repeated runs read alike.
    order = np.argsort(means[:, 0], kind="stable")

    dropped = f"; {data.n_dropped} row(s) with missing values dropped" if data.n_dropped else ""
    out = [
        f"{PROG} {__version__}: Gaussian mixture, MAP estimate by EM",
        "",
        f"data      {data.name}",
        f"          N = {data.n_samples} samples, D = {d} feature(s): {', '.join(names)}{dropped}",
        f"settings  K = {settings.n_components} components, covariance = {ct}, "
        "prior = default (bayesgmm.Prior())",
        f"          n_init = {settings.n_init} start(s), seed = {settings.seed}",
        "",
        f"components (ordered by mean {names[0]})",
    ]
    rows = [["k", "weight", "feature", "mean", "sd"]]
    for rank, k in enumerate(order, start=1):
        for j, name in enumerate(names):
            first = j == 0
            empty = weights[k] == 0
            rows.append(
                [
                    str(rank) if first else "",
                    f"{weights[k]:.3f}" if first else "",
                    name,
                    "(empty)" if empty else _num(means[k, j]),
                    "" if empty else _num(sds[k, j]),
                ]
            )
    out += _table(rows, right=(0, 3, 4))

    out.append("")
    if ct == "full" and d > 1:
        out.append("correlations (full covariance: one matrix per component)")
        cov = np.asarray(gm.covariances_, dtype=np.float64)
        for rank, k in enumerate(order, start=1):
            if weights[k] > 0:
                out += _correlation_lines(f"component {rank}", _correlation(cov[k]), names)
    elif ct == "tied" and d > 1:
        out.append("correlations (tied covariance: shared by all components)")
        out += _correlation_lines("all components", _correlation(np.asarray(gm.covariances_)), names)
    elif d > 1:
        out.append(f"correlations: none ({ct} covariance: features independent within a component)")
    if d > 1:
        out.append("")

    converged = "yes" if gm.converged_ else "NO"
    out += [
        "fit",
        f"  log posterior / N  {_num(gm.lower_bound_)}  (lower_bound_, MAP objective per sample)",
        f"  converged          {converged}, after {gm.n_iter_} EM iteration(s); best of {settings.n_init} start(s)",
        f"  BIC                {_num(bic)}  (at the MAP; lower is better)",
    ]
    for note in outcome.notes:
        out.append(f"note: {' '.join(note.split())}")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------------------------------
def _int_at_least(minimum: int, description: str) -> Callable[[str], int]:
    """An argparse ``type`` for integers >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {description}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "positive integer")
_seed = _int_at_least(0, "non-negative integer")


def _cmd_fit(args: argparse.Namespace) -> int:
    data = load_data(args.data, columns=args.columns, dropna=args.dropna)
    settings = FitSettings(
        n_components=args.components if args.components is not None else data.default_components,
        covariance_type=args.covariance,
        seed=args.seed,
        n_init=args.n_init,
    )
    outcome = _FITTERS["map"](data, settings)
    bic = outcome.estimator.bic(data.X)
    print(format_map_summary(data, settings, outcome, bic))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``bayesgmm`` argument parser (subcommands: ``fit``)."""
    from . import __version__

    parser = _ArgumentParser(
        prog=PROG,
        description="Bayesian Gaussian mixtures on JAX and NumPyro.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    fit = commands.add_parser(
        "fit",
        help="fit a Gaussian mixture (MAP) and print a summary",
        description=(
            "Fit a Gaussian mixture by MAP-EM with bayesgmm's default prior and print the "
            "components, the log posterior, convergence and BIC. Without DATA, fits the embedded "
            "Old Faithful geyser data (272 x 2) with 2 components."
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} fit\n"
            f"  {PROG} fit --components 3 --covariance diag\n"
            f"  {PROG} fit measurements.csv --columns length,width --components 4 --dropna"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fit.add_argument(
        "data", nargs="?", metavar="DATA.csv",
        help="CSV file with a header row (default: the embedded Old Faithful data)",
    )
    fit.add_argument(
        "--columns", metavar="A,B,...",
        help="comma-separated numeric columns to use (default: all columns)",
    )
    fit.add_argument(
        "--components", "-k", type=_positive_int, metavar="K",
        help=f"number of mixture components (default: {DEFAULT_COMPONENTS})",
    )
    fit.add_argument(
        "--covariance", choices=COVARIANCE_CHOICES, default="full",
        help="covariance structure (default: full)",
    )
    fit.add_argument(
        "--seed", type=_seed, default=DEFAULT_SEED, metavar="N",
        help=f"random seed of the initialisation (default: {DEFAULT_SEED})",
    )
    fit.add_argument(
        "--n-init", type=_positive_int, default=DEFAULT_N_INIT, metavar="N",
        help=f"number of EM starts, run together; the best is kept (default: {DEFAULT_N_INIT})",
    )
    fit.add_argument(
        "--dropna", action="store_true",
        help="drop rows with missing values instead of stopping with an error",
    )
    fit.set_defaults(handler=_cmd_fit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 on success, 2 for bad input).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).
    """
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help and --version
            return int(exc.code or 0)
        if args.command is None:
            raise CLIError(f"choose a command: fit (see '{PROG} --help')")
        return args.handler(args)
    except CLIError as exc:
        message = " ".join(str(exc).split())
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return exc.status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
