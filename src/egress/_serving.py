"""Stopping the in-process HTTP servers (the dashboard, the fake Stripe) without leaking a socket.

On CPython 3.11 a connection accepted by an ``asyncio.Server`` is set up by a task of the loop one
turn later. If the server is closed in between (aiohttp's ``site.stop()`` closes it), that setup
fails (``Server._attach`` asserts the server is still open) and nobody closes the accepted socket:
its transport, referenced by nothing, is left for the garbage collector, which reports an
"unclosed transport" ResourceWarning at whatever later moment it runs. It takes a client that
connects in the same turn of the loop as the shutdown begins: rare on an idle machine, not on a
loaded one, where the loop's thread is starved and both wait together for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol

__all__ = ["stop_accepting"]


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


async def stop_accepting(sockets: Iterable[_HasFileno]) -> None:
    """Stop accepting on the listening ``sockets`` (left open: the server closes them) and let
    the loop finish setting up every connection it has already accepted.

    Call it on the server's loop before ``runner.cleanup()`` or ``server.close()``.
    """
    loop = asyncio.get_running_loop()
    for sock in sockets:
        fd = sock.fileno()
        if fd >= 0:
            loop.remove_reader(fd)  # from now on no accept callback is queued
    # A setup task queued before that runs in the next turn; an accept callback already queued in
    # this turn (its readiness was polled before the reader was removed) queues its setup task
    # for the next turn, which then runs in the one after. Two turns finish both, after which
    # each accepted connection is an attached transport that the server's shutdown closes.
    await asyncio.sleep(0)
    await asyncio.sleep(0)
