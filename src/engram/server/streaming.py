"""The thread -> server-sent-events bridge shared by ``/v1/namespaces/{ns}/ask`` and
``/v1/chat/completions``: the model runs in a worker thread and its tokens reach the event
loop through a queue; a client that leaves stops the work at its next token."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

OnToken = Callable[[str], None]


class Cancelled(Exception):
    """Raised in the worker thread at the next token once the client has gone."""


def sse(event: str, data: Any) -> bytes:
    """One server-sent event with a JSON payload."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def threaded(
    work: Callable[[OnToken], Any], name: str = "engram-stream"
) -> AsyncIterator[tuple[str, Any]]:
    """Run ``work(on_token)`` in a thread; yield ``("token", piece)``s, then ``("done",
    result)`` or ``("error", exception)``."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancelled = threading.Event()

    def put(item: tuple[str, Any]) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is gone: the client left
            cancelled.set()

    def on_token(piece: str) -> None:
        if cancelled.is_set():
            raise Cancelled
        put(("token", piece))

    def run() -> None:
        try:
            put(("done", work(on_token)))
        except Cancelled:
            pass
        except Exception as exc:  # reported to the client as an error event
            put(("error", exc))

    threading.Thread(target=run, name=name, daemon=True).start()
    try:
        while True:
            kind, value = await queue.get()
            yield kind, value
            if kind != "token":
                return
    finally:
        cancelled.set()
