"""Accept a batch of readings: validate them, hold them to the key's scope and the meter
registry, drop duplicates, and durably queue one task per shard.

The API answers 2xx only once every accepted reading is in the broker. Whatever goes wrong
before that (Redis, the broker, a full backlog) becomes :class:`IngestionUnavailableError`, and
the dedupe marks this request set are released first, so the client's retry is not mistaken
for a duplicate of readings that were never queued.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any
from typing import Protocol

import psycopg
from sqlalchemy.exc import SQLAlchemyError

from segs import metrics
from segs.config import Settings
from segs.domain.ingestion_keys import KeyScope
from segs.domain.readings import ROW_METER
from segs.domain.readings import ROW_REGION
from segs.domain.readings import ROW_TS
from segs.domain.readings import DecodedBatch
from segs.domain.readings import ReadingError
from segs.domain.readings import ReadingRow
from segs.domain.readings import TimeBounds
from segs.domain.readings import check_row
from segs.domain.readings import first_of_each_key
from segs.domain.readings import to_epoch_us
from segs.domain.readings import to_row
from segs.domain.registry import Place
from segs.domain.registry import check_places
from segs.domain.registry import registrations
from segs.domain.sharding import shard_for

logger = logging.getLogger(__name__)


class IngestionUnavailableError(Exception):
    """The readings cannot be taken now; the client should retry after ``retry_after`` seconds."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class DedupeMarks(Protocol):
    def mark_new(self, keys: dict[int, list[tuple[str, int]]]) -> dict[int, list[bool]]:
        """Mark each (meter, ts_us) key; True where this call set it (not seen recently)."""

    def release(self, keys: dict[int, list[tuple[str, int]]]) -> None:
        """Remove marks this request set but could not honour."""


class Directory(Protocol):
    @property
    def cached(self) -> Mapping[str, Place]:
        """The places this process holds."""

    def places(self, meter_ids: set[str]) -> dict[str, Place]:
        """Look up the place of each registered meter among *meter_ids*."""

    def register(self, first_readings: dict[str, tuple[str, int]]) -> dict[str, Place]:
        """Register new meters in their regions, first seen then; the stored place of each."""


class Publisher(Protocol):
    def __call__(self, by_shard: dict[int, list[ReadingRow]], received_at_us: int) -> None:
        """Durably enqueue each shard's rows as one batch; raise if the broker did not take
        them all (it may have taken some: a batch sent again folds nothing twice)."""


@dataclass
class IngestResult:
    """What happened to each reading of one request."""

    accepted: int = 0
    duplicates: int = 0
    errors: list[ReadingError] = field(default_factory=list)
    valid: int = 0

    @property
    def rejected(self) -> int:
        return len(self.errors)

    @property
    def status(self) -> int:
        if self.accepted:
            return 202
        # Nothing queued: 422 when nothing was valid, 200 when everything valid was a duplicate.
        return 200 if self.valid else 422

    def body(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": [error.as_dict() for error in self.errors],
        }


@dataclass
class Ingestor:
    """Ingestion with its collaborators injected, so tests can drive it against real services."""

    settings: Settings
    known_regions: Callable[[], frozenset[str]]
    directory: Directory
    marks: DedupeMarks
    publish: Publisher
    backlog_exceeded: Callable[[], bool]

    def ingest(self, batch: DecodedBatch, scope: KeyScope, now: datetime) -> IngestResult:
        """Validate and queue the decoded readings of a request received at *now*, sent with
        a key of *scope*.

        :raises IngestionUnavailableError: nothing further could be queued right now.
        """
        started = time.perf_counter()
        result = IngestResult()
        errors = list(batch.errors)
        checked = self._validate(batch, now, errors)
        rows = self._check_registry(checked, scope, errors)
        errors.sort(key=lambda error: error.index)
        result.errors = errors
        result.valid = len(rows)
        fresh = first_of_each_key(rows)
        result.duplicates = len(rows) - len(fresh)
        if fresh:
            self._queue(fresh, to_epoch_us(now), result)
        self._record(batch.size, result, time.perf_counter() - started)
        return result

    def _validate(
        self, batch: DecodedBatch, now: datetime, errors: list[ReadingError]
    ) -> list[tuple[int, ReadingRow]]:
        """The rows of known regions and timestamps in range, with their index."""
        try:
            regions = self.known_regions()
        except Exception as exc:
            raise self._database_unavailable(exc) from exc
        bounds = TimeBounds.around(
            now,
            max_age_s=self.settings.max_reading_age_s,
            max_skew_s=self.settings.max_future_skew_s,
        )
        oldest, newest = bounds.oldest_us, bounds.newest_us
        rows: list[tuple[int, ReadingRow]] = []
        for index, reading in batch.readings:
            row = to_row(reading)
            # The usual case inline, as it runs for every reading; check_row says what is wrong.
            if row[ROW_REGION] in regions and oldest <= row[ROW_TS] <= newest:
                rows.append((index, row))
                continue
            error = check_row(index, row, known_regions=regions, bounds=bounds)
            if error is None:
                rows.append((index, row))
            else:
                errors.append(error)
        return rows

    def _check_registry(
        self, rows: list[tuple[int, ReadingRow]], scope: KeyScope, errors: list[ReadingError]
    ) -> list[ReadingRow]:
        """The rows *scope* may send, each in its meter's registered region (segs.domain.registry);
        meters this process does not hold are looked up, and a head-end key's new meters are
        registered, before their rows are checked."""
        kept, refused, unknown = check_places(rows, self.directory.cached, scope, final=False)
        errors.extend(refused)
        if not unknown:
            return kept
        try:
            places = self.directory.places({row[ROW_METER] for _, row in unknown})
            new = registrations(unknown, places, scope)
            if new:
                places.update(self.directory.register(new))
        except (psycopg.Error, SQLAlchemyError) as exc:
            raise self._database_unavailable(exc) from exc
        more, refused, _ = check_places(unknown, places, scope)
        errors.extend(refused)
        return kept + more

    def _database_unavailable(self, exc: Exception) -> IngestionUnavailableError:
        return IngestionUnavailableError(
            f"the database is unavailable: {exc.__class__.__name__}", self.settings.retry_after_s
        )

    def _queue(self, rows: list[ReadingRow], received_at_us: int, result: IngestResult) -> None:
        retry_after = self.settings.retry_after_s
        try:
            exceeded = self.backlog_exceeded()
        except Exception as exc:
            raise IngestionUnavailableError(
                f"the broker is unavailable: {exc}", retry_after
            ) from exc
        if exceeded:
            raise IngestionUnavailableError(
                "the reading queues are over their backlog bound", retry_after
            )

        by_shard = self._by_shard(rows)
        keys = {
            shard: [(row[ROW_METER], row[ROW_TS]) for row in listed]
            for shard, listed in by_shard.items()
        }
        try:
            marked = self.marks.mark_new(keys)
        except Exception as exc:
            # Some shards' marks may be set: the retry must find none of them.
            self._release_quietly(keys)
            raise IngestionUnavailableError(f"Redis is unavailable: {exc}", retry_after) from exc
        new_by_shard: dict[int, list[ReadingRow]] = {}
        for shard, listed in by_shard.items():
            new = [row for row, is_new in zip(listed, marked[shard], strict=True) if is_new]
            if new:
                new_by_shard[shard] = new
        accepted = sum(len(listed) for listed in new_by_shard.values())
        result.duplicates += len(rows) - accepted

        if not new_by_shard:
            return
        try:
            self.publish(new_by_shard, received_at_us)
        except Exception as exc:
            # The whole request must be retryable, so every mark it set goes. A shard's batch
            # the broker took all the same finds its readings taken when the retry's copy runs.
            self._release_quietly(
                {
                    shard: [(row[ROW_METER], row[ROW_TS]) for row in listed]
                    for shard, listed in new_by_shard.items()
                }
            )
            raise IngestionUnavailableError(
                f"the broker did not take the readings: {exc}", retry_after
            ) from exc
        result.accepted = accepted

    def _by_shard(self, rows: list[ReadingRow]) -> dict[int, list[ReadingRow]]:
        shards = self.settings.shards
        if shards == 1:
            return {0: rows}
        by_shard: dict[int, list[ReadingRow]] = {}
        for row in rows:
            by_shard.setdefault(shard_for(row[ROW_METER], shards), []).append(row)
        return by_shard

    def _release_quietly(self, keys: dict[int, list[tuple[str, int]]]) -> None:
        try:
            self.marks.release(keys)
        except Exception:
            # Redis failing too: the marks expire after SEGS_DEDUPE_MARK_TTL_S on their own.
            count = sum(len(listed) for listed in keys.values())
            logger.exception("could not release %d dedupe marks", count)

    @staticmethod
    def _record(size: int, result: IngestResult, elapsed: float) -> None:
        metrics.INGEST_BATCH_SIZE.observe(size)
        metrics.INGEST_LATENCY.observe(elapsed)
        metrics.READINGS_ACCEPTED.inc(result.accepted)
        if result.duplicates:
            metrics.READINGS_DUPLICATE.labels("api").inc(result.duplicates)
        for error in result.errors:
            metrics.READINGS_REJECTED.labels(error.field).inc()
