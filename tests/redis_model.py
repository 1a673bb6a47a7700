"""Holding a Redis script to its Python specification: what the script leaves in Redis is read
back whole, in the same plain shape the specification writes, and compared.

A specification is a Python function over a ``Model``: a dict from key to value, where a string
is bytes, a hash a dict of bytes to bytes, a sorted set a dict of bytes to float, a set a set of
bytes and a stream the list of its entries' fields (their ids are the server's clock). Keys with
an expiry are listed in ``Model.expiring``.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any

import redis


@dataclass
class Model:
    """What a specification says Redis holds."""

    data: dict[bytes, Any] = field(default_factory=dict)
    expiring: set[bytes] = field(default_factory=set)

    def drop(self, key: bytes) -> None:
        self.data.pop(key, None)
        self.expiring.discard(key)

    def drop_if_empty(self, key: bytes) -> None:
        """Redis deletes a hash, set or sorted set when its last member goes."""
        if key in self.data and not self.data[key] and not isinstance(self.data[key], bytes):
            self.drop(key)


def b(value: str | bytes | int | float) -> bytes:
    """A value as Redis stores it."""
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def read_redis(client: redis.Redis) -> Model:
    """Everything the client's database holds, in a Model's shape. Read in two pipelined round
    trips, not a few per key, so a test can check it after every step."""
    keys = list(client.scan_iter(count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
        pipe.ttl(key)
    kinds_and_ttls = pipe.execute()
    kinds = [kind.decode() for kind in kinds_and_ttls[0::2]]
    for key, kind in zip(keys, kinds, strict=True):
        if kind == "string":
            pipe.get(key)
        elif kind == "hash":
            pipe.hgetall(key)
        elif kind == "zset":
            pipe.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            pipe.smembers(key)
        elif kind == "stream":
            pipe.xrange(key)
        else:
            raise AssertionError(f"{key!r}: a {kind} is not modelled")
    held = Model()
    values = pipe.execute()
    for key, kind, ttl, value in zip(keys, kinds, kinds_and_ttls[1::2], values, strict=True):
        if kind == "zset":
            value = dict(value)
        elif kind == "stream":
            value = [fields for _, fields in value]
        held.data[key] = value
        if ttl >= 0:
            held.expiring.add(key)
    return held


def assert_holds(client: redis.Redis, model: Model) -> None:
    """Redis holds exactly what the model says, expiries included."""
    held = read_redis(client)
    # pytest does not rewrite asserts outside test modules: the message says what differs.
    assert held.data == model.data, differences(held.data, model.data)
    assert held.expiring == model.expiring, (
        f"expiring in Redis only: {sorted(held.expiring - model.expiring)}, "
        f"in the model only: {sorted(model.expiring - held.expiring)}"
    )


def differences(held: dict[bytes, Any], modelled: dict[bytes, Any], shown: int = 5) -> str:
    """The first keys whose values differ, what Redis holds and what the model says."""
    differing = [
        key for key in sorted(held.keys() | modelled.keys()) if held.get(key) != modelled.get(key)
    ]
    lines = [
        f"{key!r}: Redis {_brief(held.get(key))}, model {_brief(modelled.get(key))}"
        for key in differing[:shown]
    ]
    if len(differing) > shown:
        lines.append(f"... and {len(differing) - shown} more keys")
    return "\n".join(lines)


def _brief(value: Any) -> str:
    text = "nothing" if value is None else repr(value)
    return text if len(text) <= 400 else text[:400] + "..."
