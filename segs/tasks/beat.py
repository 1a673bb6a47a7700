"""The beat scheduler: RedBeat, kept alive through a Redis outage or a Redis that lost its memory.

RedBeat keeps the schedule in Redis under a lock, so one beat sends the periodic tasks and a
standby waits (celeryconfig). As shipped, its beat exits on the first Redis error of a tick, and
after Redis restarted empty it could never renew its lock nor find its schedule again: the flush,
the sweeps and the healing after the loss (segs.services.spine.healing) would stop with it. So:
- while Redis does not answer, a tick sends nothing and beat tries again a moment later;
- when the lock is gone (Redis lost it, or another beat took it over after this one stalled),
  beat waits to hold it again, as a standby does, and then writes its schedule back.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from redbeat import RedBeatScheduler
from redis.exceptions import LockNotOwnedError

logger = logging.getLogger(__name__)


class SegsBeatScheduler(RedBeatScheduler):
    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            return float(super().tick(*args, **kwargs))
        except LockNotOwnedError:
            logger.warning("beat: lost its lock (Redis restarted, or another beat took over)")
            self.lock.acquire()
            logger.warning("beat: holds the lock again; writing the schedule back")
            self.setup_schedule()
            return 0.0
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            logger.warning("beat: Redis does not answer (%s); trying again", exc)
            return float(self.max_interval)
