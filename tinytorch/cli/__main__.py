"""``python -m tinytorch.cli``: the same as the ``tito`` script."""

import sys

from . import main

sys.exit(main())
