"""``python -m looklisten.cli ...`` (as ``torchrun -m looklisten.cli train ...`` runs it)."""

import sys

from looklisten.cli.main import main

sys.exit(main())
