"""NextToken pagination of the local providers' list and result calls: a token is the next item's offset,
opaque to the client as AWS's are."""

from __future__ import annotations

import base64
from typing import Any


class InvalidToken(ValueError):
    """A NextToken this provider did not issue."""


def next_token(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def offset_of(token: Any) -> int:
    """The offset a NextToken stands for (0 without one); raises :class:`InvalidToken`."""
    if not token:
        return 0
    try:
        return max(0, int(base64.urlsafe_b64decode(str(token).encode()).decode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidToken("Invalid pagination token") from exc
