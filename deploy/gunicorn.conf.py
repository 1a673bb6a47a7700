"""Gunicorn settings for the deployed SEGS API.

Used as ``gunicorn "segs.web:create_app()" --config deploy/gunicorn.conf.py``. Flags given on the
command line win over the values here, so these env-driven defaults only matter for launches that
leave ``--bind``/``--workers`` out. The server hooks (multiprocess metrics, the frozen heap of each
worker) are the repository root's gunicorn.conf.py, the one the plain command reads, loaded here
so that both commands run the same hooks.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType


def _root_config() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "gunicorn.conf.py"
    spec = importlib.util.spec_from_file_location("segs_root_gunicorn_conf", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Loaded first: it sets PROMETHEUS_MULTIPROC_DIR before anything imports prometheus_client.
_root_hooks = _root_config()
on_starting = _root_hooks.on_starting
child_exit = _root_hooks.child_exit
on_exit = _root_hooks.on_exit
post_worker_init = _root_hooks.post_worker_init


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name) or str(default)
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


# All interfaces by default: inside a container the API is reached through the published port.
bind = [os.environ.get("SEGS_API_BIND") or "0.0.0.0:8000"]  # noqa: S104
workers = _env_int("SEGS_API_WORKERS", 2)
# Sync workers: request handling is short and CPU/IO-bound on Redis and the broker, and
# prometheus-client's multiprocess mode assumes one process per worker.
worker_class = "sync"
timeout = 30
keepalive = 5
# Workers must import the app themselves, after on_starting has cleaned the metrics directory.
# Preloading would create metric files in the master before the wipe and then delete them.
preload_app = False
