"""Delivering one batch: POST it to the HTTP API, or hand it straight to the ingestion queue."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Protocol
from typing import cast
from urllib.parse import urlsplit

import orjson

# Statuses after which the same batch is sent again: overload or a server-side failure.
RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class Reply:
    """What the target answered to one attempt."""

    status: int
    body: dict[str, Any]
    retry_after_s: float | None = None


class SendError(Exception):
    """The batch did not get an answer at all; the message says why in a few words."""


class Transport(Protocol):
    """Something a batch body can be posted to."""

    target: str

    async def post(self, body: bytes) -> Reply:
        """Send one JSON array body and return the answer; raise SendError if there is none."""
        ...

    async def aclose(self) -> None:
        """Release connections or threads."""
        ...


class HttpTransport:
    """POST batches to the ingestion endpoint over HTTP/1.1, keeping connections alive.

    A minimal client: every request is a POST of a JSON body, so the request head is built once
    and each connection carries one request at a time (at most --concurrency are open). Answers
    may have a Content-Length, be chunked or end with the connection. The host name is resolved
    once; later connections go to the address that accepted one.
    """

    def __init__(
        self, url: str, *, concurrency: int, timeout_s: float, key: str | None = None
    ) -> None:
        self.target = url
        parts = urlsplit(url)
        self._host = parts.hostname or ""
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._port = parts.port or (443 if self._ssl else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        authorization = f"Authorization: Bearer {key}\r\n" if key else ""
        self._head = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc.rpartition('@')[2]}\r\n"
            f"User-Agent: segs-simulator\r\n{authorization}"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self._timeout_s = timeout_s
        self._capacity = concurrency
        self._idle: list[_Connection] = []
        self._addresses: list[tuple[str, int]] = []

    async def post(self, body: bytes) -> Reply:
        """POST *body* and decode the JSON answer."""
        connection = None
        while self._idle and connection is None:
            connection = self._idle.pop()
            if connection.closed:
                connection = None
        answer = None
        try:
            async with asyncio.timeout(self._timeout_s):
                if connection is None:
                    connection = await self._connect()
                answer = await connection.request(self._head + b"%d\r\n\r\n" % len(body), body)
        except TimeoutError as exc:
            phase = "connecting" if connection is None else "waiting for the answer"
            raise SendError(f"timed out {phase}") from exc
        except OSError as exc:
            raise SendError(describe_transport_error(exc)) from exc
        except ValueError as exc:
            raise SendError(f"invalid HTTP answer: {exc}") from exc
        finally:
            if connection is not None and answer is None:
                connection.abort()
        if answer.keep_alive and not connection.closed and len(self._idle) < self._capacity:
            self._idle.append(connection)
        else:
            connection.abort()
        return Reply(
            status=answer.status,
            body=parse_body(answer.body),
            retry_after_s=parse_retry_after(answer.retry_after),
        )

    async def _connect(self) -> _Connection:
        """A new connection, to the first address of the host that accepts one."""
        loop = asyncio.get_running_loop()
        addresses = self._addresses
        if not addresses:
            found = await loop.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)
            addresses = [(str(info[4][0]), int(info[4][1])) for info in found]
        first_error = None
        for address in addresses:
            try:
                _, connection = await loop.create_connection(
                    _Connection,
                    *address,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl else None,
                )
            except OSError as exc:
                first_error = first_error or exc
            else:
                self._addresses = [address]  # from now on, straight to the one that answered
                return connection
        self._addresses = []  # resolve again next time: the host may have moved
        raise first_error or OSError(f"{self._host} resolves to no address")

    async def aclose(self) -> None:
        """Close the idle connections."""
        while self._idle:
            self._idle.pop().abort()


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer, as much of it as the simulator uses."""

    status: int
    body: bytes
    retry_after: str | None
    keep_alive: bool


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection carrying one request at a time."""

    _transport: asyncio.Transport  # set by connection_made, before anyone sees the connection

    def __init__(self) -> None:
        self.closed = False
        self._received = bytearray()
        self._answer: asyncio.Future[Answer] | None = None

    def request(self, head: bytes, body: bytes) -> asyncio.Future[Answer]:
        """Send a request; the future gets its answer, or the error that stopped it."""
        self._answer = asyncio.get_running_loop().create_future()
        self._received.clear()
        self._transport.write(head)
        self._transport.write(body)
        return self._answer

    def abort(self) -> None:
        """Drop the connection at once."""
        self.closed = True
        self._transport.abort()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport to write requests to."""
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        """Collect the answer; settle the request once it is complete."""
        self._received += data
        self._settle(eof=False)

    def eof_received(self) -> bool:
        """The server is done: an answer without a length ends here."""
        self.closed = True
        self._settle(eof=True)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail a request still waiting for its answer."""
        self.closed = True
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_exception(
                exc or ConnectionError("server closed the connection without answering")
            )

    def _settle(self, *, eof: bool) -> None:
        answer = self._answer
        if answer is None or answer.done():
            self.abort()  # nothing was asked: the connection is not fit for another request
            return
        try:
            complete = parse_answer(self._received, eof=eof)
        except ValueError as exc:
            answer.set_exception(exc)
            self.abort()
            return
        if complete is not None:
            answer.set_result(complete)


def parse_answer(data: bytes | bytearray, *, eof: bool) -> Answer | None:
    """The HTTP answer at the start of *data*; None while incomplete; ValueError if malformed.

    *eof*: the server closed its side, so an answer without Content-Length or chunks is complete.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if eof:
            raise ValueError("connection closed inside the head")
        return None
    status_line, *lines = bytes(data[:end]).decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/") or not rest[:3].isdigit():
        raise ValueError(f"bad status line {status_line[:80]!r}")
    status = int(rest[:3])
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    start = end + 4
    if status < 200:  # an interim answer such as 100 Continue: the real one follows
        return parse_answer(data[start:], eof=eof)
    body: bytes | None
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(data, start)
    elif "content-length" in headers:
        stop = start + int(headers["content-length"])
        body = bytes(data[start:stop]) if len(data) >= stop else None
    elif status in (204, 304):
        body = b""
    else:
        body = bytes(data[start:]) if eof else None
    if body is None:
        if eof:
            raise ValueError("connection closed inside the body")
        return None
    keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return Answer(status, body, headers.get("retry-after"), keep_alive)


def _dechunk(data: bytes | bytearray, start: int) -> bytes | None:
    """A chunked body starting at *start*, or None while incomplete."""
    body = bytearray()
    while True:
        line_end = data.find(b"\r\n", start)
        if line_end < 0:
            return None
        size = int(bytes(data[start:line_end]).split(b";")[0], 16)
        start = line_end + 2
        if size == 0:
            break
        if len(data) < start + size + 2:
            return None
        body += data[start : start + size]
        start += size + 2
    while True:  # trailer lines, up to an empty one
        line_end = data.find(b"\r\n", start)
        if line_end < 0:
            return None
        if line_end == start:
            return bytes(body)
        start = line_end + 2


class QueueTransport:
    """Call segs.ingestion_client.submit_batch in a thread pool, bypassing HTTP (the key is
    checked all the same)."""

    target = "the ingestion queue"

    def __init__(self, *, concurrency: int, key: str) -> None:
        # Imported here so the HTTP target works without the backend's dependencies installed.
        from segs.ingestion_client import submit_batch

        self._submit: Callable[[bytes, str], tuple[int, dict[str, Any]]] = submit_batch
        self._key = key
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sim-queue")

    async def post(self, body: bytes) -> Reply:
        """Submit *body* on a pool thread; any exception counts as no answer."""
        loop = asyncio.get_running_loop()
        try:
            status, answer = await loop.run_in_executor(self._pool, self._submit, body, self._key)
        except Exception as exc:
            raise SendError(f"{type(exc).__name__}: {exc}") from exc
        return Reply(status=status, body=answer if isinstance(answer, dict) else {})

    async def aclose(self) -> None:
        """Let running submissions finish, then stop the threads."""
        self._pool.shutdown(wait=True)


def open_transport(
    target: str, *, url: str, key: str | None, concurrency: int, timeout_s: float
) -> Transport:
    """The transport for --target; raises ImportError if the queue target is not available."""
    if target == "queue":
        return QueueTransport(concurrency=concurrency, key=key or "")
    return HttpTransport(url, concurrency=concurrency, timeout_s=timeout_s, key=key)


def describe_transport_error(exc: OSError) -> str:
    """A short reason such as "connection refused"."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "cannot resolve host name"
    return str(exc) or type(exc).__name__


def parse_body(content: bytes) -> dict[str, Any]:
    """The JSON object of an answer, or {} when there is none."""
    try:
        decoded = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header; None when absent or an HTTP date (not worth parsing)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(seconds, 0.0)


def is_retryable(status: int) -> bool:
    """Whether a batch answered with *status* should be sent again (429 and 5xx)."""
    return status == 429 or status >= 500


def retry_delay(attempt: int, base_delay_s: float, reply: Reply | None) -> float:
    """Wait after failed attempt number *attempt* (1-based): Retry-After if given, else backoff."""
    if (
        reply is not None
        and reply.status in RETRY_AFTER_STATUSES
        and reply.retry_after_s is not None
    ):
        return reply.retry_after_s
    return base_delay_s * 2 ** (attempt - 1)


def _count(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    return value if isinstance(value, int) else 0


def tally(reply: Reply, count: int) -> tuple[int, int, int]:
    """(accepted, duplicates, rejected) of a final answer to a batch of *count* readings."""
    status, body = reply.status, reply.body
    if (200 <= status < 300 or status == 422) and any(
        key in body for key in ("accepted", "duplicates", "rejected")
    ):
        return _count(body, "accepted"), _count(body, "duplicates"), _count(body, "rejected")
    if 200 <= status < 300:
        return count, 0, 0
    # Any other final status (400, 413, 422 without a body...) refuses the whole batch.
    return 0, 0, count


@dataclass(slots=True)
class Outcome:
    """Everything that happened to one batch across its attempts."""

    final: Reply | None = None  # None: gave up after the last attempt
    statuses: list[int] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    transport_errors: int = 0
    error: str | None = None  # why the last failed attempt failed
    error_status: int | None = None  # its status code, None when there was no answer


async def send_with_retries(
    transport: Transport, body: bytes, *, attempts: int, base_delay_s: float
) -> Outcome:
    """Send *body* up to *attempts* times, retrying on no answer, 429 and 5xx."""
    outcome = Outcome()
    for attempt in range(1, attempts + 1):
        reply: Reply | None = None
        started = time.perf_counter()
        try:
            reply = await transport.post(body)
        except SendError as exc:
            outcome.transport_errors += 1
            outcome.error, outcome.error_status = str(exc), None
        else:
            outcome.latencies_s.append(time.perf_counter() - started)
            outcome.statuses.append(reply.status)
            if not is_retryable(reply.status):
                outcome.final = reply
                return outcome
            outcome.error, outcome.error_status = f"HTTP {reply.status}", reply.status
        if attempt < attempts:
            await asyncio.sleep(retry_delay(attempt, base_delay_s, reply))
    return outcome
