"""``python -m metaspn_store`` is the ``metaspn-store`` command."""

import sys

from metaspn_store.cli import main

sys.exit(main())
