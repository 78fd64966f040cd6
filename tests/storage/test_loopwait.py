"""Synchronous code run on the event loop's thread, its socket waits awaited on the loop
(`storage.loopwait`)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest

from storage.loopwait import READ, WRITE, run_on_loop, wait_socket


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Two connected sockets, non-blocking."""
    left, right = socket.socketpair()
    left.setblocking(False)
    right.setblocking(False)
    yield left, right
    left.close()
    right.close()


def _receive(sock: socket.socket, steps: list[str], name: str) -> bytes:
    """Wait for the socket to be readable, as the database code does, then read."""
    steps.append(f"{name} waits")
    assert wait_socket(sock.fileno(), READ) == READ
    steps.append(f"{name} reads")
    return sock.recv(100)


def test_outside_the_loop_a_wait_blocks_until_the_socket_is_ready(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    assert wait_socket(left.fileno(), WRITE) == WRITE  # an empty buffer: writable at once
    timer = threading.Timer(0.05, right.send, args=(b"late",))
    timer.start()
    try:
        assert _receive(left, [], "left") == b"late"
    finally:
        timer.join()


async def test_the_loop_runs_while_the_function_waits_and_gets_its_result(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    steps: list[str] = []
    task = asyncio.ensure_future(run_on_loop(_receive, left, steps, "left"))
    for _ in range(5):  # the function waits; the loop goes on meanwhile
        await asyncio.sleep(0)
    assert steps == ["left waits"]
    assert not task.done()
    steps.append("the loop sends")
    right.send(b"hello")
    assert await task == b"hello"
    assert steps == ["left waits", "the loop sends", "left reads"]
    # The function ran on this thread, and left no reader on the loop.
    assert not asyncio.get_running_loop().remove_reader(left.fileno())


async def test_two_functions_wait_at_once_and_resume_in_the_order_their_sockets_are_ready() -> None:
    first, first_end = socket.socketpair()
    second, second_end = socket.socketpair()
    steps: list[str] = []
    try:
        one = asyncio.ensure_future(run_on_loop(_receive, first, steps, "one"))
        two = asyncio.ensure_future(run_on_loop(_receive, second, steps, "two"))
        await asyncio.sleep(0.01)
        second_end.send(b"2")
        assert await two == b"2"
        first_end.send(b"1")
        assert await one == b"1"
    finally:
        for sock in (first, first_end, second, second_end):
            sock.close()
    assert steps == ["one waits", "two waits", "two reads", "one reads"]


async def test_the_functions_exception_is_the_coroutines(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair

    def fails_after_a_wait() -> None:
        wait_socket(left.fileno(), READ)
        raise LookupError("after the wait")

    task = asyncio.ensure_future(run_on_loop(fails_after_a_wait))
    await asyncio.sleep(0)
    right.send(b"x")
    with pytest.raises(LookupError, match="after the wait"):
        await task


async def test_cancelled_while_waiting_the_function_gets_the_cancellation_at_its_wait(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, _ = pair
    seen: list[BaseException] = []

    def waits_forever() -> None:
        try:
            wait_socket(left.fileno(), READ)
        except BaseException as error:
            seen.append(error)  # (the database code closes its connection here)
            raise

    task = asyncio.ensure_future(run_on_loop(waits_forever))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [type(error) for error in seen] == [asyncio.CancelledError]
    assert not asyncio.get_running_loop().remove_reader(left.fileno())


async def test_a_function_that_never_waits_runs_through() -> None:
    assert await run_on_loop(sum, [1, 2, 3]) == 6
