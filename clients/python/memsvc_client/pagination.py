"""Pages of list results that fetch the next page when iteration reaches it."""

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Page(Generic[T]):
    """One page of a list (`data`, `next_cursor`). Iterating it yields every item of this page and of every
    later one, fetching each page as the iteration reaches it."""

    def __init__(self, data: list[T], next_cursor: str | None, fetch: Callable[[str], "Page[T]"]) -> None:
        self.data = data
        self.next_cursor = next_cursor
        self._fetch = fetch

    def has_next_page(self) -> bool:
        return self.next_cursor is not None

    def next_page(self) -> "Page[T] | None":
        """The following page, or None after the last."""
        return self._fetch(self.next_cursor) if self.next_cursor is not None else None

    def iter_pages(self) -> Iterator["Page[T]"]:
        page: Page[T] | None = self
        while page is not None:
            yield page
            page = page.next_page()

    def __iter__(self) -> Iterator[T]:
        for page in self.iter_pages():
            yield from page.data

    def __repr__(self) -> str:
        return f"Page(items={len(self.data)}, next_cursor={self.next_cursor!r})"


class AsyncPage(Generic[T]):
    """The async twin of `Page`: `async for` yields every item of this page and of every later one."""

    def __init__(
        self, data: list[T], next_cursor: str | None, fetch: Callable[[str], Awaitable["AsyncPage[T]"]]
    ) -> None:
        self.data = data
        self.next_cursor = next_cursor
        self._fetch = fetch

    def has_next_page(self) -> bool:
        return self.next_cursor is not None

    async def next_page(self) -> "AsyncPage[T] | None":
        """The following page, or None after the last."""
        return await self._fetch(self.next_cursor) if self.next_cursor is not None else None

    async def iter_pages(self) -> AsyncIterator["AsyncPage[T]"]:
        page: AsyncPage[T] | None = self
        while page is not None:
            yield page
            page = await page.next_page()

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.iter_pages():
            for item in page.data:
                yield item

    def __repr__(self) -> str:
        return f"AsyncPage(items={len(self.data)}, next_cursor={self.next_cursor!r})"
