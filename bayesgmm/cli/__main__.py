"""``python -m bayesgmm.cli``: the same command line as the ``bayesgmm`` script."""

import sys

from . import main

sys.exit(main())
