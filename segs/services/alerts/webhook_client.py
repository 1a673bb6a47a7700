"""Sending one webhook request: to a checked public address, with an overall deadline, reading
no more of the answer than its status line and headers.

The name in the URL is resolved once, every address it resolves to is checked
(segs.domain.webhooks.address_problem), and the connection goes to the first of them, the name
kept for the Host header and TLS (SNI and certificate check). So a name that resolves to a
public address when checked and to 127.0.0.1 a moment later (DNS rebinding) cannot steer the
request, and proxies from the environment are ignored. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from collections.abc import Mapping

import httpx

from segs.config import Settings
from segs.domain.webhooks import Target
from segs.domain.webhooks import WebhookTargetError
from segs.domain.webhooks import address_problem
from segs.domain.webhooks import literal_address
from segs.domain.webhooks import parse_target

# (host, port) -> the addresses it resolves to
Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses DNS (and the hosts file) give for *host*, in the resolver's order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookTargetError(f"{host} cannot be resolved") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def fixed_resolver(table: Mapping[str, str]) -> Resolver:
    """Resolve names from *table* only; anything else does not resolve (no DNS query)."""

    def resolve(host: str, _port: int) -> list[str]:
        if host not in table:
            raise WebhookTargetError(f"{host} cannot be resolved")
        return [table[host]]

    return resolve


def resolver_for(settings: Settings) -> Resolver:
    """DNS, except under SEGS_ENV=testing, where SEGS_WEBHOOK_TEST_HOSTS stands in for it."""
    if settings.is_testing:
        return fixed_resolver(dict(settings.webhook_test_hosts))
    return system_resolver


def checked_destination(url: str, settings: Settings, resolve: Resolver) -> tuple[Target, str]:
    """The parsed URL and the address to connect to, after every rule is checked.

    :raises WebhookTargetError: a rule is broken; the message says which.
    """
    target = parse_target(url, allow_http=settings.webhook_allow_http, ports=settings.webhook_ports)
    literal = literal_address(target.host)
    if literal is not None:
        addresses = [literal]
    else:
        addresses = []
        for text in resolve(target.host, target.port):
            address = literal_address(text)
            if address is None:
                raise WebhookTargetError(f"{target.host} resolves to something not an address")
            addresses.append(address)
        if not addresses:
            raise WebhookTargetError(f"{target.host} cannot be resolved")
    for address in addresses:
        problem = address_problem(address, allow_loopback=settings.webhook_allow_loopback)
        if problem is not None:
            where = "" if literal is not None else f"{target.host} resolves to "
            raise WebhookTargetError(f"{where}{problem}; webhooks reach public addresses only")
    return target, str(addresses[0])


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    settings: Settings,
    resolve: Resolver,
) -> int:
    """POST *body* to *url* and return the answer's status; everything, from the lookup to the
    last header byte, within SEGS_WEBHOOK_TIMEOUT_S.

    :raises WebhookTargetError: the URL is not allowed (now).
    :raises httpx.HTTPError, TimeoutError, OSError: the request failed or took too long.
    """
    target, address = checked_destination(url, settings, resolve)
    return asyncio.run(_post(target, address, body, headers, settings.webhook_timeout_s))


async def _post(
    target: Target, address: str, body: bytes, headers: Mapping[str, str], deadline_s: float
) -> int:
    # asyncio.timeout bounds the whole exchange: httpx's own timeouts bound each read, so a
    # receiver trickling a byte at a time could otherwise hold the worker indefinitely.
    async with asyncio.timeout(deadline_s):
        async with httpx.AsyncClient(
            trust_env=False, follow_redirects=False, timeout=deadline_s
        ) as client:
            extensions = {} if literal_address(target.host) else {"sni_hostname": target.host}
            request = client.build_request(
                "POST",
                target.url_for(address),
                content=body,
                headers={**headers, "Host": target.host_header},
                extensions=extensions,
            )
            # Streamed, and closed unread: the status is all a delivery needs, so an answer of
            # any size costs the worker no memory.
            response = await client.send(request, stream=True)
            await response.aclose()
            return response.status_code
