"""docs/architecture.md names only files that exist, and names every room of segs/services."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
# A file or folder of the repository, as the page writes it: `segs/...`, `beat_schedule.py`.
NAMED_PATH = re.compile(r"`((?:segs|simulator|tests|docs|bench|tools)/[\w./-]*|[\w-]+\.py)`")


def named_paths(text: str) -> list[str]:
    return NAMED_PATH.findall(text)


def test_every_file_the_page_names_exists():
    paths = named_paths(DOC.read_text())
    assert len(paths) > 40, "the page should name the files it describes"
    missing = [path for path in paths if not (ROOT / path).exists()]
    assert missing == []


def test_every_room_of_the_services_is_on_the_page():
    rooms = {
        f"segs/services/{room.name}/"
        for room in (ROOT / "segs" / "services").iterdir()
        if (room / "__init__.py").exists()
    }
    assert rooms <= set(named_paths(DOC.read_text()))


def test_the_pattern_finds_paths_and_skips_routes():
    text = "`segs/domain/readings.py`, `POST /api/v1/telemetry`, `beat_schedule.py`, `readings.<k>`"
    assert named_paths(text) == ["segs/domain/readings.py", "beat_schedule.py"]
