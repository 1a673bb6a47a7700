"""Both ways of starting the API run the same gunicorn hooks: the plain command (which reads
./gunicorn.conf.py) and the deployed one (deploy/gunicorn.conf.py)."""

from __future__ import annotations

import gc
import importlib.util
import logging
from pathlib import Path
from types import ModuleType
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def configs(monkeypatch, tmp_path):
    # Both files set PROMETHEUS_MULTIPROC_DIR when it is unset: keep it out of this process.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    root = _load(ROOT / "gunicorn.conf.py", "root_gunicorn_conf")
    deployed = _load(ROOT / "deploy" / "gunicorn.conf.py", "deployed_gunicorn_conf")
    return root, deployed


def test_the_deployed_config_runs_the_root_configs_hooks(configs):
    root, deployed = configs
    for hook in ("on_starting", "child_exit", "on_exit", "post_worker_init"):
        assert getattr(deployed, hook).__code__.co_filename == root.__file__, hook


def test_a_started_worker_leaves_its_loaded_heap_out_of_collections(configs):
    root, _ = configs
    gc.unfreeze()
    # A later worker (age 2): the first one also logs the durability check, which needs settings.
    worker = SimpleNamespace(age=2, log=logging.getLogger(__name__))
    try:
        root.post_worker_init(worker)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
