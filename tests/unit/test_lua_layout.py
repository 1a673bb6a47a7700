"""The KEYS and ARGV layout a script file declares, and how Python binds values to it."""

from __future__ import annotations

import pytest

from segs.services.shared.lua import Layout

FOLD_LIKE = (
    "--- KEYS: open markers[batches] windows[...]\n"
    "--- ARGV: ttl batches blob batch_ids[batches] ends[...]\n"
    "return 1\n"
)


def test_values_by_name_take_their_declared_places_and_the_counts_are_filled_in():
    layout = Layout.parse("fold", FOLD_LIKE)
    keys, args = layout.bind(
        {"open": "o", "markers": ["m1", "m2"], "windows": ["w1", "w2", "w3"]},
        {"ttl": 60, "blob": b"x", "batch_ids": ["b1", "b2"], "ends": [1, 2, 3]},
    )
    assert keys == ["o", "m1", "m2", "w1", "w2", "w3"]
    assert args == [60, 2, b"x", "b1", "b2", 1, 2, 3]


def test_lua_binds_the_same_names_from_the_same_places():
    assert Layout.parse("fold", FOLD_LIKE).lua_bindings().splitlines() == [
        "local ttl = ARGV[1]",
        "local batches = tonumber(ARGV[1 + 1])",
        "local blob = ARGV[1 + 1 + 1]",
        "local batch_ids = _slice(ARGV, 1 + 1 + 1 + 1, batches)",
        "local ends = _slice(ARGV, 1 + 1 + 1 + 1 + batches, #ARGV - (1 + 1 + 1 + batches))",
        "local open = KEYS[1]",
        "local markers = _slice(KEYS, 1 + 1, batches)",
        "local windows = _slice(KEYS, 1 + 1 + batches, #KEYS - (1 + batches))",
    ]


@pytest.mark.parametrize(
    ("keys", "args", "reason"),
    [
        (
            {"open": "o", "markers": [], "windows": []},
            {"ttl": 1, "blob": b"", "ends": []},
            "missing ['batch_ids']",
        ),
        (
            {"open": "o", "markers": [], "windows": [], "extra": "x"},
            {"ttl": 1, "blob": b"", "batch_ids": [], "ends": []},
            "unknown ['extra']",
        ),
        (
            {"open": "o", "markers": ["m"], "windows": []},
            {"ttl": 1, "blob": b"", "batch_ids": [], "ends": []},
            "differ in length",
        ),
        (
            {"open": "o", "markers": [], "windows": []},
            {"ttl": 1, "batches": 0, "blob": b"", "batch_ids": [], "ends": []},
            "unknown ['batches']",
        ),
    ],
)
def test_a_wrong_call_is_refused_before_it_reaches_redis(keys, args, reason):
    with pytest.raises(ValueError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        Layout.parse("fold", FOLD_LIKE).bind(keys, args)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("--- KEYS: a\nreturn 1", "first two lines"),
        ("--- KEYS: a b[...] c\n--- ARGV:", "only the last name"),
        ("--- KEYS: a[n]\n--- ARGV: x[...]", "must be a plain argument"),
        ("--- KEYS: a[n]\n--- ARGV: x[m] n m", "must come before"),
        ("--- KEYS: a\n--- ARGV: a", "declared twice"),
        ("--- KEYS: A-B\n--- ARGV:", "is not a name"),
    ],
)
def test_a_wrong_declaration_is_refused_when_loaded(header, reason):
    with pytest.raises(ValueError, match=reason):
        Layout.parse("bad", header)
