"""Failed logins: how long the next try must wait. A few mistakes are free; after them each
failure doubles the wait, up to a cap. Delays, not a lock: whoever is counted can always try
again later, and the owner's own client is counted apart from a stranger's."""

from __future__ import annotations


def delay_s(failures: int, free: int, max_delay_s: int) -> int:
    """Seconds to wait after the last of *failures* failed tries (0 while they are free)."""
    if failures < free:
        return 0
    # The exponent is bounded so a huge count cannot build a huge integer.
    return min(max_delay_s, 2 ** min(failures - free, 32))


def retry_after_s(failures: int, last_failure_s: float, now_s: float, free: int, cap: int) -> int:
    """Seconds until the next try is allowed (0: allowed now)."""
    wait = last_failure_s + delay_s(failures, free, cap) - now_s
    return max(0, int(wait + 0.999))
