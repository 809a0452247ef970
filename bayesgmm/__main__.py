"""``python -m bayesgmm``: the same command line as the ``bayesgmm`` script."""

import sys

from .cli import main

sys.exit(main())
