"""Row identities: the canonical 64-bit hash of a data row, the one contract for every place that hashes rows.

A row's hash is over its raw cells, in a given column order. Each cell is its text as read (CSV cells are text;
other values, e.g. Parquet numbers, as Python's ``str``), or JSON null when missing. The row is encoded as the
compact JSON array of those cells (``json.dumps(cells, ensure_ascii=False, separators=(",", ":"))``) in UTF-8,
and its hash is the first 8 bytes of the SHA-256 of that, read as an unsigned little-endian integer. The same row
copied into a later data set thus gives the same hash; 64 bits keep collisions negligible (about n^2 / 2^65 for n
rows: 3e-8 for a million rows).

Who hashes: the training program (the rows a model is fitted on, ``training/row_ids.py``, over
:func:`hashed_columns`), the Evaluate step (the held-out rows, over the same columns, to leave out a champion's fit
rows) and the HoldOut step (every column, to place each row in or out of the holdout). Standard library only: the
HoldOut Lambda carries no numpy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence

# The number of distinct hashes: a hash over this is a row's uniform position in [0, 1).
HASH_SPACE = float(1 << 64)


def hashed_columns(target: str, features: Iterable[str]) -> list[str]:
    """The columns a fitted row's hash covers, in hashing order: the target, then the features by name."""
    return [target, *sorted(features)]


def row_hash(cells: Sequence[object]) -> int:
    """The canonical hash of one row's cells (None: missing; anything but text is hashed as its ``str``)."""
    text = json.dumps(
        [None if cell is None else cell if isinstance(cell, str) else str(cell) for cell in cells],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
