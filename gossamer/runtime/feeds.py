"""Bounded queues of items the engine fills and the application reads with ``async for``.

The base of ``Node.events()``, ``Node.subscribe()`` and the registry's
monitors: one consumer each, filled on any thread, shedding its oldest item
when the consumer falls behind (counted).
"""

from __future__ import annotations

__all__ = ["Feed"]

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Protocol, Self, TypeVar

_I = TypeVar("_I")


class _Host(Protocol):
    """What a feed needs of the node: run on the application's loop, and forget it."""

    def _on_app_loop(self, callback: Callable[[], object]) -> None: ...

    def _unsubscribe(self, feed: Feed[Any]) -> None: ...


class Feed(Generic[_I]):
    """A bounded queue of items for one consumer, filled by the engine on any
    thread and read with ``async for`` on the application's loop.

    It holds at most ``limit`` items, even while the application's loop is
    blocked: the engine fills it under a lock and schedules at most one
    wake-up at a time.  When the consumer falls behind, the oldest items are
    shed and counted in :attr:`shed`.  It ends when the node stops, or when
    :meth:`close` is called.
    """

    def __init__(self, node: _Host, limit: int) -> None:
        self._node = node
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._queue: deque[_I] = deque()
        self._limit = limit
        self._ended = False  # the node stopped: end once the queue is read
        self._wake_pending = False
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.shed = 0
        """Items dropped because this consumer fell behind."""

    def push(self, items: list[_I], *, end: bool = False) -> None:
        """Called by the engine, on any thread: queue ``items`` (and end the feed)."""
        with self._lock:
            if self._closed:
                return
            for item in items:
                if len(self._queue) >= self._limit:
                    self._queue.popleft()
                    self.shed += 1
                self._queue.append(item)
            self._ended = self._ended or end
            if self._wake_pending:
                return
            self._wake_pending = True
        self._node._on_app_loop(self._wake)

    def _wake(self) -> None:
        with self._lock:
            self._wake_pending = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> _I:
        while True:
            with self._lock:
                if self._queue:
                    return self._queue.popleft()
                if self._closed or self._ended:
                    break
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self.close()
        raise StopAsyncIteration

    def close(self) -> None:
        """Stop receiving; iteration ends once the queued items are read."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._node._unsubscribe(self)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
