"""Lua helpers shared by the Redis scripts, and running many script calls in one round trip.

Each ``redis.call`` from a script has a fixed cost; one call per meter cost more Redis CPU than
the work itself when measured. BULK_LUA's helpers send a whole batch's fields in chunks instead
(chunks keep ``unpack`` within Lua's stack limit).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

BULK_LUA = """
local BULK = 1000

local function hmget_all(key, fields)
  local values = {}
  for i = 1, #fields, BULK do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + BULK - 1, #fields)))
    for j = 1, #part do values[#values + 1] = part[j] end
  end
  return values
end

-- command key [option] a1 b1 a2 b2 ..., in chunks of whole pairs
local function call_pairs(command, key, pairs, option)
  for i = 1, #pairs, BULK do
    local last = math.min(i + BULK - 1, #pairs)
    if option then
      redis.call(command, key, option, unpack(pairs, i, last))
    else
      redis.call(command, key, unpack(pairs, i, last))
    end
  end
end
"""


ScriptCall = tuple[Script, Sequence[str], Sequence[Any]]

# A script's keys and arguments for one hash tag (one Redis Cluster slot).
Section = tuple[Sequence[str], Sequence[Any]]


def per_section(body: str) -> str:
    """A script that runs *body* once per section of its call and returns the list of what
    each run returned. *body* reads KEYS and ARGV, which are the section's own. The call's
    ARGV starts with the number of sections, then each section's key count and argument count;
    its arguments follow. See run_sections."""
    return f"""
local function section(KEYS, ARGV)
{body}
end
local sections = tonumber(ARGV[1])
local results = {{}}
local key, arg = 1, 2 + 2 * sections
for s = 1, sections do
  local key_count, arg_count = tonumber(ARGV[2 * s]), tonumber(ARGV[2 * s + 1])
  results[s] = section({{unpack(KEYS, key, key + key_count - 1)}},
                       {{unpack(ARGV, arg, arg + arg_count - 1)}})
  key, arg = key + key_count, arg + arg_count
end
return results
"""


def run_sections(client: redis.Redis, script: Script, sections: Sequence[Section]) -> list[Any]:
    """Run a per_section script over *sections*; what it returned for each, in order. A single
    Redis runs them all in one call. A cluster runs each in a call of its own, since a call's
    keys must lie in one slot; so the same code serves both."""
    if isinstance(client, redis.RedisCluster):
        calls = [_sectioned_call(script, [section]) for section in sections]
        return [replies[0] for replies in run_scripts(client, calls)]
    if not sections:
        return []
    _, keys, args = _sectioned_call(script, sections)
    return list(script(keys=keys, args=args, client=client))


def _sectioned_call(script: Script, sections: Sequence[Section]) -> ScriptCall:
    counts: list[Any] = [len(sections)]
    keys: list[str] = []
    args: list[Any] = []
    for section_keys, section_args in sections:
        counts.extend((len(section_keys), len(section_args)))
        keys.extend(section_keys)
        args.extend(section_args)
    return script, keys, counts + args


def run_scripts(client: redis.Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    """Run script calls (each on keys of one slot) and return their replies in order, or raise
    the first error. On a single Redis they go in one pipeline, one round trip; a cluster's
    pipeline refuses scripts, so there they run one after the other.

    A script the server does not hold yet (new, or the server restarted) fails alone: it is
    loaded, and only the calls that failed run again, since the others have done their work.
    """
    if isinstance(client, redis.RedisCluster):
        return [script(keys=keys, args=args, client=client) for script, keys, args in calls]
    replies: list[Any] = [None] * len(calls)
    todo = list(range(len(calls)))
    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        for index in todo:
            script, keys, args = calls[index]
            pipe.evalsha(_sha_and_text(script)[0], len(keys), *keys, *args)
        missing = []
        for index, reply in zip(todo, pipe.execute(raise_on_error=False), strict=True):
            if isinstance(reply, NoScriptError) and attempt == 1:
                missing.append(index)
            elif isinstance(reply, Exception):
                raise reply
            else:
                replies[index] = reply
        if not missing:
            break
        for script in {calls[index][0] for index in missing}:
            client.script_load(_sha_and_text(script)[1])
        todo = missing
    return replies


def _sha_and_text(script: Script) -> tuple[str, Any]:
    # redis-py's Script holds both; the types-redis stubs do not declare them.
    return script.sha, script.script  # type: ignore[attr-defined]
