"""One page of a query and the total over all pages, for the list endpoints."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from typing import Generic
from typing import TypeVar

from sqlalchemy import ColumnElement
from sqlalchemy import Select
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.orm import Session

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int


Comparison = Callable[[Any, Any], ColumnElement[bool]]


def where_given(
    statement: Select[Any], filters: Iterable[tuple[Any, Comparison, object | None]]
) -> Select[Any]:
    """Add ``compare(column, value)`` for each (column, compare, value) whose value was given;
    an absent filter (None) matches everything."""
    for column, compare, value in filters:
        if value is not None:
            statement = statement.where(compare(column, value))
    return statement


def fetch_page(
    session: Session, statement: Select[Any], *, page: int, page_size: int
) -> tuple[list[Any], int]:
    """Run *statement* (already ordered) for one 1-based page; also count every matching row."""
    total = session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    rows = session.scalars(statement.limit(page_size).offset((page - 1) * page_size)).all()
    return list(rows), int(total or 0)
