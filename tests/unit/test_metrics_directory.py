"""The Prometheus multiprocess directory segs.metrics makes for itself does not outlive the
process that made it; one given in the environment is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Forks a child that exits first (running the exit handlers it inherited), then reports.
PROGRAM = """
import os, sys
import segs.metrics
directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
child = os.fork()
if child == 0:
    sys.exit(0)
os.waitpid(child, 0)
print(directory, os.path.isdir(directory))
"""


def run(env: dict[str, str]) -> tuple[Path, bool]:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, check=True
    )
    directory, exists = done.stdout.split()
    return Path(directory), exists == "True"


def test_a_directory_it_made_is_removed_when_its_maker_exits():
    env = {name: value for name, value in os.environ.items() if name != "PROMETHEUS_MULTIPROC_DIR"}
    directory, existed_after_the_child = run(env)
    assert directory.name.startswith("segs-metrics-")
    assert existed_after_the_child
    assert not directory.exists()


def test_a_directory_from_the_environment_stays(tmp_path):
    given = tmp_path / "metrics"
    directory, _ = run(dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(given)))
    assert directory == given
    assert given.is_dir()
