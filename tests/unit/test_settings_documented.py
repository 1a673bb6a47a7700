"""The README's Configuration table lists every setting segs.config reads, with its default."""

from __future__ import annotations

import re
from decimal import Decimal
from decimal import InvalidOperation
from pathlib import Path

from segs.config import Settings

ROOT = Path(__file__).resolve().parents[2]
# An environment variable read by load_settings, and the Settings field holding its default.
_READ = re.compile(r'"((?:SEGS|DATABASE|REDIS|CELERY|JWT)_[A-Z0-9_]+)",\s*Settings\.(\w+)')


def _configuration_table() -> dict[str, str]:
    """Each variable named in the first cell of a row, and that row's default cell."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
            defaults = re.findall(r"`[^`]*`", cells[1])
            # A row of several variables gives their defaults in the same order.
            paired = len(names) > 1 and len(defaults) == len(names)
            for index, name in enumerate(names):
                rows[name] = defaults[index] if paired else cells[1]
    return rows


def _as_documented(value: object) -> str | None:
    """How a default is written in the table, when it has one plain form."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float | Decimal | str):
        return str(value)
    return None


def _same(documented: str, default: str) -> bool:
    """Whether the cell's first code span (``604800` (7 days)` -> 604800) is the default."""
    span = re.match(r"`([^`]*)`", documented)
    cell = (span[1] if span else documented).replace(",", "")
    try:
        return Decimal(cell) == Decimal(default)
    except InvalidOperation:
        return cell == default


def test_every_setting_is_in_the_configuration_table_with_its_default():
    source = (ROOT / "segs" / "config.py").read_text()
    read = _READ.findall(source)
    assert len(read) > 80  # the pattern still finds the settings
    table = _configuration_table()
    missing = [name for name, _ in read if name not in table]
    assert missing == []
    wrong = {
        name: (table[name], default)
        for name, field in read
        if (default := _as_documented(getattr(Settings, field))) is not None
        and not _same(table[name], default)
    }
    assert wrong == {}
