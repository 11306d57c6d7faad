"""``python -m gossamer``: the same as the ``gossamer`` command."""

import sys

from gossamer.cli import main

sys.exit(main())
