"""The systemd units in deploy/systemd are ones systemd accepts as written."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
INSTALLED_AT = "/opt/segs"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_accepts_every_unit_without_a_warning(tmp_path):
    # systemd checks that each ExecStart program exists: point the units at this checkout,
    # whose virtualenv (make install) holds the same programs.
    root = str(ROOT)
    units = sorted([*UNITS.glob("*.service"), *UNITS.glob("*.target")])
    for unit in units:
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED_AT, root))
    checked = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / unit.name) for unit in units)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (checked.returncode, checked.stderr) == (0, "")
    assert {unit.name for unit in units} >= {
        "segs-api.service",
        "segs-worker.service",
        "segs.target",
    }


def test_every_long_running_unit_stops_its_main_process_first():
    """KillMode=mixed: SIGTERM to the main process alone (a Celery worker's warm shutdown,
    gunicorn's graceful stop), SIGKILL to what is left after TimeoutStopSec."""
    for unit in UNITS.glob("*.service"):
        text = unit.read_text()
        if "Type=oneshot" in text:
            continue
        assert "\nKillMode=mixed\n" in text, unit.name
        assert "\nTimeoutStopSec=" in text, unit.name
