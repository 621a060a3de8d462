"""The search backends a server can use, created by name on first use and closed at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from service.errors import BackendUnavailableError, InvalidRequestError
from service.search.base import SearchBackend

logger = logging.getLogger(__name__)

BackendFactory = Callable[[str], Awaitable[SearchBackend]]


class BackendPool:
    """Backends by name. Injected instances are used as they are; others come from ``factory``."""

    def __init__(
        self,
        names: Sequence[str],
        factory: BackendFactory | None = None,
        instances: Mapping[str, SearchBackend] | None = None,
    ) -> None:
        self._instances: dict[str, SearchBackend] = dict(instances or {})
        self.names = tuple(dict.fromkeys([*names, *self._instances]))
        self._factory = factory
        self._creating: dict[str, asyncio.Task[SearchBackend]] = {}

    def instances(self) -> tuple[str, ...]:
        """The backends made so far (or given at start), by name."""
        return tuple(self._instances)

    async def get(self, name: str) -> SearchBackend:
        if name not in self.names:
            raise InvalidRequestError(
                f"unknown search backend '{name}'; valid backends: {', '.join(self.names)}",
                param="search.backend",
                code="invalid_backend",
            )
        if name in self._instances:
            return self._instances[name]
        if self._factory is None:
            raise BackendUnavailableError(f"search backend '{name}' is not configured")
        task = self._creating.get(name)
        if task is None:
            task = asyncio.ensure_future(self._factory(name))
            self._creating[name] = task
        try:
            backend = await asyncio.shield(task)
        except Exception:  # BackendUnavailableError (a 400) or a failure to start; the next call retries
            self._creating.pop(name, None)
            raise
        self._instances[name] = backend
        return backend

    async def warm(self, name: str) -> None:
        """Create a backend ahead of the first request (the local index takes a while)."""
        try:
            await self.get(name)
        except InvalidRequestError as exc:  # not usable here (no key, missing package): say so once
            logger.warning("search backend '%s' is not ready: %s", name, exc.message)
        except Exception:
            logger.exception("search backend '%s' could not be prepared", name)

    async def aclose(self) -> None:
        for task in self._creating.values():
            task.cancel()
        for backend in self._instances.values():
            try:
                await backend.aclose()
            except Exception:
                logger.exception("closing search backend '%s' failed", backend.name)
        self._instances.clear()
