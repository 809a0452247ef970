"""The options of the ``bayesgmm`` command line: the argument parser, its option types and defaults.

:func:`build_parser` declares the ``fit`` command and its options; the option types
(``_positive_int``, ``_seed``, ``_draws``, ``_k_range``) turn an argument into a value or into
argparse's one-line error; the ``*_CHOICES`` and ``DEFAULT_*`` constants are the choices and
defaults that the help text quotes. Every user error of the command line is a :class:`CLIError`
(one line ``bayesgmm: error: ...``, exit status 2), argparse's usage errors included
(:class:`_ArgumentParser`). What the options do is :mod:`bayesgmm.cli.run`'s job.
"""

from __future__ import annotations

import argparse
from typing import Callable

from .. import __version__
from ..core.params import COVARIANCE_TYPES

PROG = "bayesgmm"
COVARIANCE_CHOICES = COVARIANCE_TYPES
METHOD_CHOICES = ("map", "nuts", "vi", "all")
CRITERION_CHOICES = ("bic", "aic", "icl", "loo", "waic")
#: Components fitted when ``--components`` is not given and the data set has no default of its own.
DEFAULT_COMPONENTS = 2
DEFAULT_N_INIT = 5
DEFAULT_SEED = 0
DEFAULT_METHOD = "all"
DEFAULT_CHAINS = 4
DEFAULT_WARMUP = 500
DEFAULT_SAMPLES = 500
DEFAULT_VI_STEPS = 2000
DEFAULT_OUT = "bayesgmm_report"
#: A point is "uncertain" when its largest assignment probability is below this.
UNCERTAIN_BELOW = 0.9

#: The MAP model written by :func:`bayesgmm.cli.run.write_model` (in ``--out``; ``bayesgmm.load`` reads it).
MODEL_FILE = "model.npz"


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
# option types
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
_draws = _int_at_least(4, "integer of at least 4")


def _k_range(text: str) -> tuple:
    """``--select``: ``A..B`` (inclusive), ``A-B`` or a list ``A,B,C`` of positive integers."""
    t = text.strip()
    try:
        if ".." in t or ("-" in t and not t.startswith("-")):
            lo, hi = (int(v) for v in t.replace("..", "-").split("-"))
            ks = tuple(range(lo, hi + 1)) if 1 <= lo <= hi else ()
        else:
            ks = tuple(sorted({int(v) for v in t.split(",")}))
    except ValueError:
        ks = ()
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(
            f"expected a range of positive component counts like 1..8 or a list like 2,3,5, got {text!r}")
    return ks


# ----------------------------------------------------------------------------------------------
# the parser
# ----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The ``bayesgmm`` argument parser (subcommands: ``fit``; the chosen one is ``args.command``)."""
    parser = _ArgumentParser(
        prog=PROG,
        description="Bayesian Gaussian mixtures on JAX and NumPyro.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    fit = commands.add_parser(
        "fit",
        help="fit a Gaussian mixture (MAP, NUTS, VI) and write a report",
        description=(
            "Fit a Gaussian mixture with bayesgmm's default prior three ways -- the MAP by EM, the "
            "posterior by NUTS (started at the MAP) and by variational inference -- print the MAP "
            "components, the EM estimate next to the posterior, the diagnostics and how many points "
            "have uncertain assignments, and write a report directory (--out): report.html "
            "(self-contained, with plots), summary.csv, posterior_nuts.nc / posterior_vi.nc (ArviZ "
            f"netCDF) and the MAP model ({MODEL_FILE}). Without DATA, fits the embedded Old Faithful "
            "geyser data (272 x 2) with 2 components.\n\n"
            "The files are built beside --out and moved in at the end: a failed run leaves --out as "
            "it was. In an existing --out only this command's files are replaced (and those this run "
            "does not produce are removed); other files are kept."
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} fit\n"
            f"  {PROG} fit --method map --components 3 --covariance diag --no-report\n"
            f"  {PROG} fit --select 1..6 --covariance auto --out faithful_report\n"
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
    k = fit.add_mutually_exclusive_group()
    k.add_argument(
        "--components", "-k", type=_positive_int, metavar="K",
        help=f"number of mixture components (default: {DEFAULT_COMPONENTS})",
    )
    k.add_argument(
        "--select", type=_k_range, metavar="A..B",
        help="choose the number of components among A..B (or a list A,B,C) with bayesgmm.select, by "
             "--criterion (default BIC)",
    )
    fit.add_argument(
        "--covariance", choices=COVARIANCE_CHOICES + ("auto",), default="full",
        help="covariance structure; 'auto' chooses it by --criterion (default: full)",
    )
    fit.add_argument(
        "--criterion", choices=CRITERION_CHOICES, default=None,
        help="how --select / --covariance auto choose: bic, aic, icl (at the MAP), or loo, waic "
             "(from a NUTS posterior at every grid point, with --chains/--warmup/--samples; slower) "
             "(default: bic)",
    )
    fit.add_argument(
        "--method", choices=METHOD_CHOICES, default=DEFAULT_METHOD,
        help="map: EM only; nuts / vi: the MAP and that posterior; all: MAP, NUTS and VI "
             f"(default: {DEFAULT_METHOD})",
    )
    fit.add_argument(
        "--chains", type=_positive_int, default=DEFAULT_CHAINS, metavar="N",
        help=f"NUTS chains (in turn on a CPU, together on an accelerator) (default: {DEFAULT_CHAINS})",
    )
    fit.add_argument(
        "--warmup", type=_positive_int, default=DEFAULT_WARMUP, metavar="N",
        help=f"NUTS warm-up iterations per chain (default: {DEFAULT_WARMUP})",
    )
    fit.add_argument(
        "--samples", type=_draws, default=DEFAULT_SAMPLES, metavar="N",
        help=f"NUTS draws per chain; VI keeps chains x samples draws (default: {DEFAULT_SAMPLES})",
    )
    fit.add_argument(
        "--vi-steps", type=_positive_int, default=DEFAULT_VI_STEPS, metavar="N",
        help=f"optimisation steps of variational inference (default: {DEFAULT_VI_STEPS})",
    )
    fit.add_argument(
        "--seed", type=_seed, default=DEFAULT_SEED, metavar="N",
        help=f"random seed of the initialisation and the samplers (default: {DEFAULT_SEED})",
    )
    fit.add_argument(
        "--n-init", type=_positive_int, default=DEFAULT_N_INIT, metavar="N",
        help=f"number of EM starts; the best is kept (default: {DEFAULT_N_INIT})",
    )
    fit.add_argument(
        "--out", default=DEFAULT_OUT, metavar="DIR",
        help=f"report directory (default: {DEFAULT_OUT})",
    )
    fit.add_argument(
        "--no-report", action="store_true",
        help="print the summary only; write no files",
    )
    fit.add_argument(
        "--dropna", action="store_true",
        help="drop rows with missing values instead of stopping with an error",
    )
    fit.add_argument(
        "--missing", choices=("error", "marginalize"), default="error",
        help="what an empty or NA cell means: 'error' (default; or drop its row with --dropna) or "
             "'marginalize': a missing cell (missing at random), integrated out of the likelihood "
             "of EM, NUTS and VI; the report lists its imputation (mean and 90%% interval)",
    )
    fit.add_argument(
        "--quiet", "-q", action="store_true",
        help="no progress output on stderr",
    )
    return parser
