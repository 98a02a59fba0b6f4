"""``python -m tools.ingest --env NAME FILE...`` (see tools/ingest/__init__.py)."""

import sys

from tools.ingest.cli import main

sys.exit(main())
