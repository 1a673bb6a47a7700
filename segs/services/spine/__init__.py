"""The reading path: ingestion keys and the meter registry the API checks, the dedupe marks,
the pending ledger, the archive and fold, the window store and its flush, anomaly detection
state, partitions, dead letters and quarantined windows, and healing after a Redis loss.

What other rooms may use of it is named here.
"""

from segs.services.spine.detection import DetectionStore
from segs.services.spine.detection import MeterFinding
from segs.services.spine.registry_cache import announce_after_commit

__all__ = ["DetectionStore", "MeterFinding", "announce_after_commit"]
