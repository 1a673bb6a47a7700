"""The retry policies the tasks declare in their decorators (``@app.task(..., **POLICY)``).

An outage (segs.services.shared.outages) only delays the work: the task is retried with
exponential backoff (jittered, at most a minute apart) instead of failing, which would
acknowledge its message and lose the run. Other failures are not retried by these policies.

A run that beat sends keeps its expiry in its retries: a retry due after it is dropped, and the
next run does the work instead.
"""

from __future__ import annotations

from typing import Any

from segs.services.shared.outages import OUTAGES

# Up to about five minutes of outage: retries 1, 2, 4, ... 32 s, then 60 s apart (jittered:
# each wait is at most that).
_BOUNDED_OUTAGE_RETRIES = 10


def _outage_retry(max_retries: int | None) -> dict[str, Any]:
    """Decorator options retrying a task that met an outage, at most *max_retries* times
    (None: for as long as the outage lasts)."""
    return {
        "autoretry_for": OUTAGES,
        "max_retries": max_retries,
        "retry_backoff": True,
        "retry_backoff_max": 60,
    }


# Work nothing else would redo, such as a notification: never lost to an outage.
RETRY_UNTIL_OUTAGE_ENDS = _outage_retry(None)

# Work that a later run redoes or supersedes (beat's next run, the next flush's evaluation):
# retried through a short outage; after a longer one the run fails and that later run does it.
RETRY_SHORT_OUTAGES = _outage_retry(_BOUNDED_OUTAGE_RETRIES)

# Beat sends these every few seconds, and the next run is their retry: one retrying meanwhile
# would only run alongside it.
RETRIED_BY_NEXT_RUN: dict[str, Any] = {"max_retries": 0}
