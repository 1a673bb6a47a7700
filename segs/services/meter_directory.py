"""Where the API finds each meter's place (region over time, retirement) and registers the
meters a head-end key reports for the first time.

Places come from the process's cache (segs.services.registry_cache); the meters a request names
that the cache lacks cost one query for the whole request. Registration inserts the new meters
in one statement and reads back what is stored, so when two requests register the same meter
at once, both go on with the region that won.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Callable
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass

import psycopg

from segs.domain.registry import Move
from segs.domain.registry import Place
from segs.domain.registry import place_of
from segs.services.registry_cache import RegistryCache

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]

_PLACES = """
SELECT m.meter_id, m.region, (extract(epoch FROM m.retired_at) * 1000000)::bigint,
       coalesce(
           json_agg(json_build_array((extract(epoch FROM v.effective_from) * 1000000)::bigint,
                                     v.from_region, v.to_region))
               FILTER (WHERE v.id IS NOT NULL),
           '[]')
FROM meters m LEFT JOIN meter_moves v ON v.meter_id = m.meter_id
WHERE m.meter_id = ANY(%(meters)s)
GROUP BY m.meter_id
"""

_REGISTER = """
INSERT INTO meters (meter_id, region)
SELECT * FROM unnest(%(meters)s::text[], %(regions)s::text[])
ON CONFLICT (meter_id) DO NOTHING
"""


@dataclass
class MeterDirectory:
    cache: RegistryCache
    connect: Connect

    def places(self, meter_ids: set[str]) -> Mapping[str, Place]:
        """The place of each registered meter among *meter_ids* (unregistered ones are absent;
        the mapping may hold other meters too).

        :raises psycopg.Error: the database is unavailable.
        """
        cached = self.cache.meters
        missing = meter_ids.difference(cached)
        if not missing:
            # The usual request: every meter is cached, and nothing is copied.
            return cached
        with self.connect() as conn:
            loaded = self._load(conn, list(missing))
            conn.commit()
        self.cache.remember_meters(loaded)
        return ChainMap(loaded, cached)

    def register(self, regions: dict[str, str]) -> dict[str, Place]:
        """Register each new meter in its region; return the stored place of every one of them.

        :raises psycopg.Error: the database is unavailable.
        """
        meters = list(regions)
        with self.connect() as conn:
            conn.execute(_REGISTER, {"meters": meters, "regions": [regions[m] for m in meters]})
            loaded = self._load(conn, meters)
            conn.commit()
        self.cache.remember_meters(loaded)
        return loaded

    @staticmethod
    def _load(conn: psycopg.Connection, meter_ids: list[str]) -> dict[str, Place]:
        rows = conn.execute(_PLACES, {"meters": meter_ids}).fetchall()
        return {
            meter_id: place_of(
                region,
                (Move(effective, source, target) for effective, source, target in moves),
                retired_at_us,
            )
            for meter_id, region, retired_at_us, moves in rows
        }
