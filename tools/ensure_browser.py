"""Make sure headless Chromium and its ChromeDriver are on this machine, for the browser tests.

Debian's packages (chromium, chromium-driver) put them at /usr/bin/chromium and
/usr/bin/chromedriver. When either is missing and we run as root, they are installed with
apt-get; otherwise this says how to install them, in one line, and exits 1.

Standard library only, so it runs before the virtualenv exists (like check_services.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PACKAGES = ("chromium", "chromium-driver")
HINT = f"sudo apt-get install -y --no-install-recommends {' '.join(PACKAGES)}"


def _present() -> bool:
    return all(path.is_file() and os.access(path, os.X_OK) for path in (CHROMIUM, CHROMEDRIVER))


def _apt_get(*args: str) -> int:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = ["apt-get", "-q", *args]
    print("+", " ".join(command), flush=True)
    return subprocess.call(command, env=env)  # noqa: S603 - fixed arguments


def main() -> int:
    if _present():
        return 0
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(f"Chromium is not installed; install it with: {HINT}", file=sys.stderr)
        return 1
    # Recommends would bring udev, upower and a notification daemon: nothing a headless
    # browser needs. The package lists may be missing or stale on a new machine.
    install = ("install", "-y", "--no-install-recommends", *PACKAGES)
    if _apt_get("update") != 0 or _apt_get(*install) != 0 or not _present():
        print(f"Chromium could not be installed; try: {HINT}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
