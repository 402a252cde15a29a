"""Async clients per event loop, shared by the backends that wrap an SDK client.

An SDK's async client belongs to the event loop it first ran on. A backend that builds
its own clients therefore makes one per loop (so ``asyncio.run()`` twice in a row
works) and closes it on request; a client the user passed in is used as given.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from finetune_qa.exceptions import ConfigError

__all__ = ["LoopClients"]


class _AsyncClient(Protocol):
    async def close(self) -> None: ...


C = TypeVar("C", bound=_AsyncClient)
S = TypeVar("S")


class LoopClients(Generic[C]):
    """Mixin: ``async_client`` as given, or one made by ``_async_factory`` per running loop.

    Subclasses call :meth:`_init_loop_clients` in ``__init__`` and may set
    ``_async_factory`` (before or after it) to build clients themselves.
    """

    _async_factory: Callable[[], C] | None = None
    async_client: C | None

    def _init_loop_clients(self, async_client: C | None) -> None:
        self.async_client = async_client
        self._loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, C] = (
            weakref.WeakKeyDictionary()
        )

    def _init_sdk_clients(
        self,
        client: S | None,
        async_client: C | None,
        *,
        key: str | None,
        missing_key: str,
        make_sync: Callable[[str], S],
        make_async: Callable[[str], C],
    ) -> S:
        """The sync client as given, or made with ``key`` (then async ones are made per loop).

        Raises:
            ConfigError: ``missing_key``, when there is neither a client nor a key.
        """
        if client is None:
            if not key:
                raise ConfigError(missing_key)
            client = make_sync(key)
            if async_client is None:
                self._async_factory = lambda: make_async(key)  # no partial: its repr shows key
        self._init_loop_clients(async_client)
        return client

    @property
    def async_per_loop(self) -> bool:
        """True when ``achat`` uses a client made for the running event loop."""
        return self._async_factory is not None

    def _async_client(self) -> C | None:
        if self._async_factory is None:
            return self.async_client
        loop = asyncio.get_running_loop()
        client = self._loop_clients.get(loop)
        if client is None:
            client = self._loop_clients[loop] = self._async_factory()
        return client

    async def aclose_loop_client(self) -> None:
        """Close the async client made for the running event loop, if any."""
        if self._async_factory is None:
            return
        client: Any = self._loop_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()
