"""The Makefile's commands can import what they use: a tool run as a script (python tools/x.py)
has tools/ itself, not the repository, on its path, so it must not import from the tools package;
one that does runs as a module (python -m tools.x)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AS_SCRIPT = re.compile(r"^\t.*\s(tools/\w+\.py)", re.MULTILINE)
IMPORTS_TOOLS = re.compile(r"^\s*(from tools\b|import tools\b)", re.MULTILINE)


def scripts_the_makefile_runs() -> list[str]:
    return AS_SCRIPT.findall((ROOT / "Makefile").read_text())


def test_no_tool_run_as_a_script_imports_the_tools_package():
    scripts = scripts_the_makefile_runs()
    assert scripts, "the Makefile runs some tools as scripts"
    assert [path for path in scripts if IMPORTS_TOOLS.search((ROOT / path).read_text())] == []


def test_the_stack_runs_as_a_module():
    assert "-m tools.run_stack" in (ROOT / "Makefile").read_text()
