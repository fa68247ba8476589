"""``python -m looklisten ...``: the ``looklisten`` command."""

import sys

from looklisten.cli.main import main

sys.exit(main())
