"""Synchronous database code run on the event loop's thread, waiting for the server without
blocking the loop.

The ingest writer is synchronous code (SQLAlchemy sessions, `_pgpipeline`'s round trips), and on
PostgreSQL most of a group's time is spent waiting for the server. On writer threads that wait
costs nothing, but every hand-off between the loop and a thread does: the interpreter's lock
passed back and forth, a future completed across threads, the loop woken through its pipe.
`run_on_loop` runs such code on the loop's own thread instead, in a greenlet: where it waits for
its socket (`wait_socket`), the greenlet hands control back to the loop, which serves requests
(and other groups) until the socket is ready, then resumes it where it stopped. The code itself
does not change: outside `run_on_loop`, `wait_socket` simply blocks in `poll`.

Only the waits that go through `wait_socket` give the loop back (`_pgpipeline`'s: the ingest's
own round trips); anything else the code does (CPU work, a statement run through SQLAlchemy)
holds the loop as long as it runs. psycopg's waits were given the loop too, in a trial (a
connection class whose `wait` called `wait_socket`): a post that escalates runs a few such
statements, and the 1-in-6 escalating mix ran 4-13% slower, each wait now costing a turn of the
loop and its reader's registration where the blocking poll had cost one system call.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import Callable
from typing import Any, TypeVar

from greenlet import getcurrent, greenlet

__all__ = ["READ", "WRITE", "run_on_loop", "wait_socket"]

READ = select.POLLIN
WRITE = select.POLLOUT

_T = TypeVar("_T")


class _OnLoop(greenlet):  # type: ignore[misc]  # (greenlet's class is untyped)
    """A greenlet run by `run_on_loop`: its socket waits are the loop's."""


def wait_socket(fileno: int, events: int) -> int:
    """Wait until the socket `fileno` is ready for `events` (`READ`, `WRITE` or both); returns
    the events it is ready for. Inside `run_on_loop`, the loop runs meanwhile."""
    current = getcurrent()
    if isinstance(current, _OnLoop):
        ready: int = current.parent.switch((fileno, events))
        return ready
    poller = select.poll()
    poller.register(fileno, events)
    while True:
        answered = poller.poll()
        if answered:
            return answered[0][1]


async def run_on_loop(function: Callable[..., _T], *args: Any) -> _T:
    """`function(*args)` run on this thread, its `wait_socket` calls awaited on the running
    loop. Its result, or its exception, is this coroutine's. Cancelled while it waits, the
    function gets the CancelledError at its wait (and should let it go through)."""
    loop = asyncio.get_running_loop()
    child = _OnLoop(function)
    request = child.switch(*args)
    while not child.dead:
        fileno, events = request
        try:
            ready = await _ready(loop, fileno, events)
        except BaseException as error:
            request = child.throw(error)
        else:
            request = child.switch(ready)
    result: _T = request
    return result


async def _ready(loop: asyncio.AbstractEventLoop, fileno: int, events: int) -> int:
    future: asyncio.Future[int] = loop.create_future()

    def readable() -> None:
        if not future.done():
            future.set_result(READ)

    def writable() -> None:
        if not future.done():
            future.set_result(WRITE)

    if events & READ:
        loop.add_reader(fileno, readable)
    if events & WRITE:
        loop.add_writer(fileno, writable)
    try:
        return await future
    finally:
        if events & READ:
            loop.remove_reader(fileno)
        if events & WRITE:
            loop.remove_writer(fileno)
