"""A page of a listing: the items, where the page starts, its size, and how many items there are in all."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

Item = TypeVar("Item")

#: Largest page a listing returns.
MAX_LIMIT = 500


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    total: int = Field(description="Number of items matching the query, over all pages.")
    offset: int
    limit: int
