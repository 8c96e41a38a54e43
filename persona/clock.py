"""The local time as every record stores it (locks, run manifests, the live server's record)."""

from __future__ import annotations

import time


def now() -> str:
    """ISO 8601 with the UTC offset, to the second: 2026-12-01T18:30:00+0000."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
