"""Where an outgoing webhook may go: the public internet only, on a few ports, over https.

A webhook URL is an instruction from a customer to make SEGS's workers open a connection. So
it is checked twice, when it is saved and again when it is sent, and the connection goes to the
address that was checked (segs.services.alerts.webhook_client), not to whatever the name resolves to
a moment later. These are the rules both checks apply.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

SIGNATURE_HEADER = "X-SEGS-Signature"
TIMESTAMP_HEADER = "X-SEGS-Timestamp"
DELIVERY_HEADER = "X-SEGS-Delivery"
MAX_URL_LENGTH = 2000

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class WebhookTargetError(ValueError):
    """The URL or the address it resolves to is not allowed; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # lower-case name or address literal (IPv6 without brackets)
    port: int
    path: str  # path and query, at least "/"

    @property
    def host_header(self) -> str:
        literal = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return literal if self.port == default else f"{literal}:{self.port}"

    def url_for(self, address: str) -> str:
        """The URL that reaches *address* directly, the name kept for Host and TLS."""
        literal = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{literal}:{self.port}{self.path}"


def _describe(ports: tuple[tuple[int, int], ...]) -> str:
    return ", ".join(str(low) if low == high else f"{low}-{high}" for low, high in ports)


def parse_target(url: str, *, allow_http: bool, ports: tuple[tuple[int, int], ...]) -> Target:
    """Check the parts of *url* that need no lookup: scheme, user info, host and port."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookTargetError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(char) < 33 or ord(char) == 127 for char in url):
        raise WebhookTargetError("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookTargetError(f"the URL cannot be parsed: {exc}") from exc
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise WebhookTargetError(f"the URL must start with {' or '.join(schemes)}://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise WebhookTargetError("the URL must not carry a user name or password")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise WebhookTargetError("the URL has no host")
    port = port if port is not None else (443 if parts.scheme == "https" else 80)
    if not any(low <= port <= high for low, high in ports):
        raise WebhookTargetError(f"port {port} is not allowed; use {_describe(ports)}")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(parts.scheme, host.lower(), port, path)


def literal_address(host: str) -> IPAddress | None:
    """The address when *host* is an IP literal, else None (a name to resolve)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_problem(address: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why a webhook must not connect to *address*, or None for a public unicast address.

    Refused: loopback, private, link-local (the cloud metadata address), CGNAT (100.64/10),
    multicast, reserved, unspecified, and IPv6 forms that carry one of those IPv4 addresses.
    *allow_loopback* is for the tests' local receiver only.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return address_problem(embedded, allow_loopback=allow_loopback)
    if address.is_loopback:
        return None if allow_loopback else f"{address} is a loopback address"
    for flag, what in (
        (address.is_unspecified, "the unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address in _SHARED, "a shared (CGNAT) address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
    ):
        if flag:
            return f"{address} is {what}"
    if not address.is_global:
        return f"{address} is not a public address"
    return None
