"""Named points where a test can kill the hub process, to prove crash safety.

`HUB_FAILPOINT=after_merge` (or `after_merge:3` for the third time the point is
reached) makes the process SIGKILL itself there: no cleanup, no rollback
handler, exactly like an OOM kill or a pulled plug. Unset, a failpoint costs a
dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_hits: dict[str, int] = {}


def failpoint(name: str) -> None:
    wanted = os.environ.get("HUB_FAILPOINT")
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
