"""NUTS mass matrix and start: diagonal vs dense, from the MAP vs a broad start, at (1000, 2, 3).

Usage::

    python bench/nuts_mass.py            # 500 warm-up + 1000 draws x 4 chains, 3 seeds
    python bench/nuts_mass.py --quick    # 300 + 300 draws

The same data, prior and measure as ``bench/nuts_speed.py`` (its ``--mass`` table; see its
docstring): min bulk ESS per 1000 leapfrog steps (independent of the machine's load) and per
sampling second, medians over seeds run interleaved.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nuts_speed  # noqa: E402


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    return nuts_speed.main(["--mass"] + argv)


if __name__ == "__main__":
    sys.exit(main())
