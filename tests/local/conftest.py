"""Tests of the local AWS (localcloud): its manager, driftloop's LocalStack extension, and the real thing.

The extension (``localcloud/extension``) is its own distribution, installed into LocalStack's venv; its
standard-library modules (``runtime_api``, ``runtime_process``) are importable here for unit tests. The fixtures
for a running instance (``local_cloud`` ...) are in ``tests/plugins/local_cloud.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

EXTENSION = Path(__file__).resolve().parents[2] / "localcloud" / "extension"
if str(EXTENSION) not in sys.path:
    sys.path.insert(0, str(EXTENSION))
