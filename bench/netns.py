"""Worker "hosts" on this machine: network namespaces of their own, behind a bridge.

Each namespace has its own network stack (its own loopback, no route to the machine's), joined
to a bridge by a veth pair. The services stay where they are, on the machine's loopback; a
socat forwarder per service listens on the bridge's address and connects to it, so a worker in a
namespace reaches PostgreSQL, Redis and the broker only across the bridge, as a worker on another
host would reach them across the network. The addresses are from 198.18.0.0/15, the block
RFC 2544 reserves for benchmarks: not a private range, and routed nowhere off this machine.
Needs root (``ip netns``); everything is removed on the way out.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

BRIDGE = "segsbr0"
BRIDGE_ADDRESS = "198.18.0.1"
PREFIX = 24
# PostgreSQL, Redis, RabbitMQ: reached on the bridge address, forwarded to the loopback.
SERVICE_PORTS = (5432, 6379, 5672)


@dataclass(frozen=True)
class WorkerHost:
    namespace: str
    address: str

    def command(self, argv: list[str]) -> list[str]:
        """*argv* run inside the host's namespace."""
        return ["ip", "netns", "exec", self.namespace, *argv]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _remove() -> None:
    """Whatever an earlier run left behind."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith("segs-host"):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


@contextmanager
def worker_hosts(count: int) -> Iterator[list[WorkerHost]]:
    """*count* namespaces on a bridge, with the services forwarded to the bridge's address."""
    _remove()
    forwarders: list[subprocess.Popen[bytes]] = []
    hosts = [WorkerHost(f"segs-host{n}", f"198.18.0.{10 + n}") for n in range(1, count + 1)]
    try:
        _ip("link", "add", BRIDGE, "type", "bridge")
        _ip("addr", "add", f"{BRIDGE_ADDRESS}/{PREFIX}", "dev", BRIDGE)
        _ip("link", "set", BRIDGE, "up")
        for host in hosts:
            outside, inside = f"{host.namespace}a", f"{host.namespace}b"
            _ip("netns", "add", host.namespace)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", outside, "master", BRIDGE, "up")
            _ip("link", "set", inside, "netns", host.namespace)
            _ip("-n", host.namespace, "addr", "add", f"{host.address}/{PREFIX}", "dev", inside)
            _ip("-n", host.namespace, "link", "set", inside, "up")
            _ip("-n", host.namespace, "link", "set", "lo", "up")
        for port in SERVICE_PORTS:
            forwarders.append(
                subprocess.Popen(
                    [
                        "socat",
                        f"TCP-LISTEN:{port},bind={BRIDGE_ADDRESS},reuseaddr,fork",
                        f"TCP:127.0.0.1:{port}",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        _wait_reachable(hosts[0])
        yield hosts
    finally:
        for forwarder in forwarders:
            forwarder.terminate()
            forwarder.wait(timeout=10)
        _remove()


def _wait_reachable(host: WorkerHost, timeout: float = 10.0) -> None:
    """Until Redis answers through the bridge from inside *host*."""
    deadline = time.monotonic() + timeout
    while True:
        probe = subprocess.run(
            host.command(["redis-cli", "-h", BRIDGE_ADDRESS, "-p", "6379", "PING"]),
            capture_output=True,
            text=True,
        )
        if probe.stdout.strip() == "PONG":
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{host.namespace} does not reach Redis through the bridge")
        time.sleep(0.2)


def across_the_bridge(url: str, user: str) -> str:
    """*url* (a service on this machine's loopback or socket) as a worker host reaches it."""
    parts = urlsplit(url)
    if parts.scheme.startswith("postgresql"):
        # A socket path or no host: the database by TCP, as the machine's user.
        return urlunsplit((parts.scheme, f"{user}@{BRIDGE_ADDRESS}:5432", parts.path, "", ""))
    credentials = parts.netloc.rpartition("@")[0]
    port = parts.port or {"redis": 6379, "amqp": 5672}[parts.scheme]
    netloc = f"{credentials + '@' if credentials else ''}{BRIDGE_ADDRESS}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
