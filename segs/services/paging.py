"""One page of a query and the total over all pages, for the list endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from typing import Generic
from typing import TypeVar

from sqlalchemy import Select
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.orm import Session

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int


def fetch_page(
    session: Session, statement: Select[Any], *, page: int, page_size: int
) -> tuple[list[Any], int]:
    """Run *statement* (already ordered) for one 1-based page; also count every matching row."""
    total = session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    rows = session.scalars(statement.limit(page_size).offset((page - 1) * page_size)).all()
    return list(rows), int(total or 0)
