"""Redis scripts: each a ``.lua`` file beside the store that runs it, loaded once per process.

A script file names its keys and arguments in its first two lines, the one place its layout is
declared::

    --- KEYS: open_windows markers[batches] windows[...]
    --- ARGV: marker_ttl batches batch_ids[batches] window_ends[...]

- ``name`` is one key or argument;
- ``name[count]`` is a list whose length is the argument *count* (a number in Lua); the caller
  does not pass *count*, it is filled in from the list;
- ``name[...]`` is a list of all the rest, so it comes last.

The loader binds every name as a Lua local before the script's body, so the body never counts
positions in KEYS or ARGV, and the Python caller passes values by the same names
(LuaScript.prepare): a missing, unknown or mis-sized one raises before anything reaches Redis.

Libraries (LuaLibrary) are chunks of Lua functions that scripts share. Values of the Python rules
(thresholds, packing formats) reach Lua as named constants, so each rule lives in Python only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis
from redis.exceptions import NoScriptError

_NAME = re.compile(r"^([a-z_][a-z0-9_]*)(?:\[([a-z_][a-z0-9_]*|\.\.\.)\])?$")
_HEADER = re.compile(r"^--- (KEYS|ARGV):(.*)$")
_REST = "..."

# Values by name for a script's KEYS or ARGV.
Names = Mapping[str, Any]


@dataclass(frozen=True)
class _Slot:
    name: str
    count: str | None = None  # None: one value; _REST: all the rest; else its count's name


@dataclass(frozen=True)
class Layout:
    """The names of a script's keys and arguments, in order (see the module's docstring)."""

    keys: tuple[_Slot, ...]
    args: tuple[_Slot, ...]

    @classmethod
    def parse(cls, source: str, text: str) -> Layout:
        declared: dict[str, tuple[_Slot, ...]] = {}
        for line in text.splitlines()[:2]:
            match = _HEADER.match(line)
            if match:
                declared[match[1]] = tuple(_slot(source, word) for word in match[2].split())
        if set(declared) != {"KEYS", "ARGV"}:
            raise ValueError(f"{source}: the first two lines must be '--- KEYS:' and '--- ARGV:'")
        layout = cls(declared["KEYS"], declared["ARGV"])
        layout._check(source)
        return layout

    @property
    def counts(self) -> frozenset[str]:
        return frozenset(
            slot.count
            for slot in (*self.keys, *self.args)
            if slot.count is not None and slot.count != _REST
        )

    def bind(self, keys: Names, args: Names) -> tuple[list[Any], list[Any]]:
        """KEYS and ARGV in declared order from values by name, the counts filled in."""
        counts: dict[str, int] = {}
        for slots, given in ((self.keys, keys), (self.args, args)):
            for slot in slots:
                if slot.count is not None and slot.count != _REST and slot.name in given:
                    length = len(given[slot.name])
                    if counts.setdefault(slot.count, length) != length:
                        raise ValueError(f"the lists counted by {slot.count!r} differ in length")
        return _flatten(self.keys, keys, {}), _flatten(self.args, args, counts)

    def lua_bindings(self) -> str:
        """Lua binding every name from KEYS and ARGV (arguments first: they hold the counts)."""
        lines: list[str] = []
        for table, slots in (("ARGV", self.args), ("KEYS", self.keys)):
            offset: list[str] = []  # where the next slot starts, as a sum added to 1
            for slot in slots:
                position = " + ".join(["1", *offset])
                if slot.count is None:
                    read = f"{table}[{position}]"
                    if slot.name in self.counts:
                        read = f"tonumber({read})"
                    lines.append(f"local {slot.name} = {read}")
                    offset.append("1")
                elif slot.count == _REST:
                    lines.append(
                        f"local {slot.name} = _slice({table}, {position}, "
                        f"#{table} - ({' + '.join(offset) or '0'}))"
                    )
                else:
                    lines.append(f"local {slot.name} = _slice({table}, {position}, {slot.count})")
                    offset.append(slot.count)
        return "\n".join(lines)

    def _check(self, source: str) -> None:
        names = [slot.name for slot in (*self.keys, *self.args)]
        if len(set(names)) != len(names):
            raise ValueError(f"{source}: a name is declared twice")
        for slots in (self.keys, self.args):
            if any(slot.count == _REST for slot in slots[:-1]):
                raise ValueError(f"{source}: only the last name of a line may take the rest")
        plain_args = [slot.name for slot in self.args if slot.count is None]
        if not self.counts <= set(plain_args):
            raise ValueError(f"{source}: a list's count must be a plain argument")
        # ARGV is bound in order, so each count comes before the first list.
        first_list = next((i for i, s in enumerate(self.args) if s.count is not None), None)
        if first_list is not None and any(
            slot.name in self.counts for slot in self.args[first_list:]
        ):
            raise ValueError(f"{source}: a count must come before the lists of ARGV")


def _slot(source: str, word: str) -> _Slot:
    match = _NAME.match(word)
    if not match:
        raise ValueError(f"{source}: {word!r} is not a name, name[count] or name[...]")
    return _Slot(match[1], match[2])


def _flatten(slots: Sequence[_Slot], given: Names, counts: Mapping[str, int]) -> list[Any]:
    expected = {slot.name for slot in slots} - counts.keys()
    if set(given) != expected:
        missing, unknown = sorted(expected - set(given)), sorted(set(given) - expected)
        raise ValueError(f"script names: missing {missing}, unknown {unknown}")
    values: list[Any] = []
    for slot in slots:
        if slot.name in counts:
            values.append(counts[slot.name])
        elif slot.count is None:
            values.append(given[slot.name])
        else:
            values.extend(given[slot.name])
    return values


def _read(package: str | None, file: str) -> str:
    if not package:
        raise ValueError(f"{file}: a script is read from a package")
    return resources.files(package).joinpath(file).read_text(encoding="utf-8")


def _lua_constant(name: str, value: int | str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"Lua constant {name} must be an int or a str")
    if isinstance(value, int):
        return f"local {name} = {value}"
    if not re.fullmatch(r"[ -~]*", value) or "\\" in value or "'" in value:
        raise ValueError(f"Lua constant {name} must be plain printable text")
    return f"local {name} = '{value}'"


@dataclass(frozen=True)
class LuaLibrary:
    """A chunk of Lua functions from *file* in *package*, with the libraries it builds on and the
    constants it reads."""

    package: str | None
    file: str
    uses: tuple[LuaLibrary, ...] = ()
    constants: Mapping[str, int | str] | None = None

    def chain(self) -> list[LuaLibrary]:
        """This library after everything it builds on, each once."""
        chained: list[LuaLibrary] = []
        for library in self.uses:
            chained.extend(used for used in library.chain() if used not in chained)
        return [*chained, self]

    def text(self) -> str:
        constants = [_lua_constant(name, value) for name, value in (self.constants or {}).items()]
        return "\n".join([*constants, _read(self.package, self.file)])


# hmget_all(key, fields) and call_pairs(command, key, pairs, option): bulk reads and writes.
BULK = LuaLibrary(__package__, "lua.bulk.lua")

# Copies a part of a table (KEYS or ARGV) without unpack, which stops at Lua's stack limit.
_SLICE = """
local function _slice(list, first, count)
  local part = {}
  for i = 1, count do part[i] = list[first + i - 1] end
  return part
end
"""

# Runs the body once per section of the call (see run_sections), each with its own KEYS and
# ARGV: the call's ARGV starts with the number of sections, then each section's key count and
# argument count, then all the sections' arguments.
_SECTIONS = """
local function section(KEYS, ARGV)
%BODY%
end
local sections = tonumber(ARGV[1])
local results = {}
local key, arg = 1, 2 + 2 * sections
for s = 1, sections do
  local key_count, arg_count = tonumber(ARGV[2 * s]), tonumber(ARGV[2 * s + 1])
  results[s] = section(_slice(KEYS, key, key_count), _slice(ARGV, arg, arg_count))
  key, arg = key + key_count, arg + arg_count
end
return results
"""


class LuaScript:
    """A script from *file* in *package*: its text, sha and layout, read once.

    *uses* are the libraries it calls, *constants* the named values of the Python rules it reads.
    A *sectioned* script runs its body once per section of a call (run_sections).
    """

    def __init__(
        self,
        package: str | None,
        file: str,
        *,
        uses: Sequence[LuaLibrary] = (),
        constants: Mapping[str, int | str] | None = None,
        sectioned: bool = False,
    ) -> None:
        source = _read(package, file)
        self.name = f"{package}/{file}"
        self.layout = Layout.parse(self.name, source)
        self.sectioned = sectioned
        libraries: list[LuaLibrary] = []
        for library in uses:
            libraries.extend(used for used in library.chain() if used not in libraries)
        body = "\n".join([self.layout.lua_bindings(), source])
        if sectioned:
            body = _SECTIONS.replace("%BODY%", body)
        self.text = "\n".join(
            [
                _SLICE,
                *(library.text() for library in libraries),
                *(_lua_constant(name, value) for name, value in (constants or {}).items()),
                body,
            ]
        )
        # Redis names a script by the SHA-1 of its text (EVALSHA).
        self.sha = hashlib.sha1(self.text.encode(), usedforsecurity=False).hexdigest()

    def prepare(self, *, keys: Names, args: Names) -> ScriptCall:
        """A call of this script with values by name, for call() or run_scripts."""
        if self.sectioned:
            raise TypeError(f"{self.name} runs in sections: use run_sections")
        bound_keys, bound_args = self.layout.bind(keys, args)
        return ScriptCall(self, bound_keys, bound_args)

    def call(self, client: redis.Redis, *, keys: Names, args: Names) -> Any:
        """Run the script once with values by name; its reply."""
        return self.prepare(keys=keys, args=args).run(client)


@dataclass(frozen=True)
class ScriptCall:
    """One call of a script, its KEYS and ARGV in order (on keys of one cluster slot)."""

    script: LuaScript
    keys: list[Any]
    args: list[Any]

    def run(self, client: redis.Redis) -> Any:
        try:
            return client.evalsha(self.script.sha, len(self.keys), *self.keys, *self.args)
        except NoScriptError:  # new, or the server restarted or was flushed
            client.script_load(self.script.text)
            return client.evalsha(self.script.sha, len(self.keys), *self.keys, *self.args)


def run_sections(
    client: redis.Redis, script: LuaScript, sections: Sequence[tuple[Names, Names]]
) -> list[Any]:
    """Run a sectioned script over *sections* (keys and arguments by name, each section on keys
    of one hash tag); what it returned for each, in order. A single Redis runs them all in one
    call. A cluster runs each in a call of its own, since a call's keys must lie in one slot;
    so the same code serves both."""
    if not script.sectioned:
        raise TypeError(f"{script.name} does not run in sections")
    bound = [script.layout.bind(keys, args) for keys, args in sections]
    if isinstance(client, redis.RedisCluster):
        calls = [_sectioned_call(script, [section]) for section in bound]
        return [replies[0] for replies in run_scripts(client, calls)]
    if not bound:
        return []
    return list(_sectioned_call(script, bound).run(client))


def _sectioned_call(
    script: LuaScript, sections: Sequence[tuple[list[Any], list[Any]]]
) -> ScriptCall:
    counts: list[Any] = [len(sections)]
    keys: list[Any] = []
    args: list[Any] = []
    for section_keys, section_args in sections:
        counts.extend((len(section_keys), len(section_args)))
        keys.extend(section_keys)
        args.extend(section_args)
    return ScriptCall(script, keys, counts + args)


def run_scripts(client: redis.Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    """Run script calls (each on keys of one slot) and return their replies in order, or raise
    the first error. On a single Redis they go in one pipeline, one round trip; a cluster's
    pipeline refuses scripts, so there they run one after the other.

    A script the server does not hold yet (new, or the server restarted) fails alone: it is
    loaded, and only the calls that failed run again, since the others have done their work.
    """
    if isinstance(client, redis.RedisCluster):
        return [call.run(client) for call in calls]
    replies: list[Any] = [None] * len(calls)
    todo = list(range(len(calls)))
    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        for index in todo:
            call = calls[index]
            pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
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
        for script in {calls[index].script for index in missing}:
            client.script_load(script.text)
        todo = missing
    return replies
