"""`SyncClient`: the streaming client for scripts and notebooks, without
asyncio in sight. A background thread runs the asyncio `Client`; the
methods block, and `next(timeout)` waits for one event."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

from .client import DEFAULT_CHANNELS, Client
from .events import Stopped


class SyncClient:
    """Blocking wrapper of `Client` (same arguments).

    ```
    with SyncClient("ws://127.0.0.1:8080/v1/ws") as c:
        c.subscribe(["AAPL"])
        for event in c:          # blocks; ends after `Stopped`
            print(event)
    ```
    """

    def __init__(self, urls: Union[str, Sequence[str]], **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mdhub", daemon=True)
        self._thread.start()
        self._client: Client = self._call(self._make(urls, options))
        self._closed = False

    @staticmethod
    async def _make(urls: Any, options: Any) -> Client:
        client = Client(urls, **options)
        client.start()
        return client

    def _call(self, coro: Any, timeout: Optional[float] = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def subscribe(self, symbols: Iterable[str], channels: Iterable[str] = DEFAULT_CHANNELS) -> None:
        """See `Client.subscribe`."""
        self._call(self._client.subscribe(list(symbols), list(channels)))

    def unsubscribe(self, symbols: Iterable[str], channels: Optional[Iterable[str]] = None) -> None:
        """See `Client.unsubscribe`."""
        self._call(self._client.unsubscribe(list(symbols), None if channels is None else list(channels)))

    def next(self, timeout: Optional[float] = None) -> Any:
        """The next event; `TimeoutError` when none comes within `timeout` seconds."""
        fut = asyncio.run_coroutine_threadsafe(self._client.__anext__(), self._loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError(f"no event within {timeout} s") from None

    def positions(self) -> Any:
        """See `Client.positions`."""
        return self._client.positions()

    @property
    def stats(self) -> Any:
        return dict(self._client.stats)

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                event = self.next()
            except StopAsyncIteration:
                return
            yield event
            if isinstance(event, Stopped):
                return

    def close(self) -> None:
        """Closes the connection and stops the background thread."""
        if self._closed:
            return
        self._closed = True
        self._call(self._client.close(), timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)

    def __enter__(self) -> "SyncClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
