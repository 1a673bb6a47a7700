"""Wait until a URL answers 200 (used to start the simulator once the API is ready)."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request


def main() -> int:
    url = sys.argv[1]
    deadline = time.monotonic() + (float(sys.argv[2]) if len(sys.argv) > 2 else 60.0)
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (local URL)
                if response.status == 200:
                    return 0
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    print(f"{url} did not become ready", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
