"""``python -m gossamer.cli``: the same as the ``gossamer`` command."""

import sys

from gossamer.cli.main import main

sys.exit(main())
