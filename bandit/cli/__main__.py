"""``python -m bandit.cli``: the ``cartwheel`` command."""

import sys

from bandit.cli.main import main

sys.exit(main())
