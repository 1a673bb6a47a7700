"""The API's names for the fields a service's error names by meaning.

A service knows what a value means (``new_password``, ``range_end``), not what a request calls
it (``newPassword``, ``endDate``, ``end``): a view wraps its service call in
:func:`answering_with` and the error's details answer with the request's names.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager

from segs.errors import SegsError


def renamed(details: object, names: Mapping[str, str]) -> object:
    """*details* with every dictionary key that *names* maps replaced by its API name."""
    if isinstance(details, dict):
        return {names.get(key, key): renamed(value, names) for key, value in details.items()}
    return details


@contextmanager
def answering_with(names: Mapping[str, str]) -> Iterator[None]:
    """Let a SegsError raised inside through with its details' fields named as in *names*."""
    try:
        yield
    except SegsError as error:
        error.details = renamed(error.details, names)
        raise
