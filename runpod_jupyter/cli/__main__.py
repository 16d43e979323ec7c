"""``python -m runpod_jupyter.cli``: the same as the ``runpod-jupyter`` command."""

import sys

from . import main

sys.exit(main())
