"""Command-line front: ``bayesgmm fit [DATA.csv] ...`` fits a Gaussian mixture three ways and writes a report.

The work is split so that new options slot in without reshaping it, one module per job:
:mod:`bayesgmm.cli.arguments` declares the options (:func:`build_parser`) and the error type;
:mod:`bayesgmm.cli.data` turns them into a :class:`Dataset` (:func:`load_data`);
:mod:`bayesgmm.cli.run` fits -- a *fitter* per inference method turns data and
:class:`FitSettings` into a fitted estimator or posterior -- writes the report directory
(:func:`write_outputs`, the policy for ``--out`` is described there) and holds :func:`main`;
:mod:`bayesgmm.cli.text` renders the text (the ``format_*`` functions). The HTML report itself is
assembled by :func:`bayesgmm.report.build_report`. Every user error is a :class:`CLIError`,
printed as one line ``bayesgmm: error: ...`` with exit status 2; no traceback reaches the user.

This package re-exports the names that ``bayesgmm.cli`` has always offered; ``main`` is the
``bayesgmm`` console script.
"""

from .arguments import (
    COVARIANCE_CHOICES, CRITERION_CHOICES, DEFAULT_CHAINS, DEFAULT_COMPONENTS, DEFAULT_METHOD, DEFAULT_N_INIT,
    DEFAULT_OUT, DEFAULT_SAMPLES, DEFAULT_SEED, DEFAULT_VI_STEPS, DEFAULT_WARMUP, METHOD_CHOICES, MODEL_FILE, PROG,
    UNCERTAIN_BELOW, CLIError, build_parser,
)
from .data import EMBEDDED, Dataset, load_data
from .run import (
    MAX_ROWS_BINDER, REPORT_FILES, FitOutcome, FitSettings, PosteriorOutcome, RunResult, main, write_model,
    write_outputs,
)
from .text import (
    format_comparison, format_diagnostics, format_map_summary, format_run, format_selection, format_uncertainty,
)

__all__ = [
    "main", "build_parser", "CLIError", "Dataset", "FitSettings", "load_data", "format_map_summary",
    "REPORT_FILES", "write_outputs",
]
