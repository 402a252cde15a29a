"""Backends: who trains and serves the model, behind one small protocol, chosen by name.

``"openai"`` is :class:`OpenAIBackend` (OpenAI, Azure OpenAI, OpenAI-compatible servers);
``"offline"`` is :class:`OfflineBackend`, the same code over a built-in fake of the API;
``"together"`` is :class:`~finetune_qa.backends.together.TogetherBackend` (Together AI,
``pip install 'finetune-qa[together]'``; the SDK is imported only when one is built);
``"local"`` is :class:`~finetune_qa.backends.local.LocalBackend` (open models trained and
served on this machine with TRL/PEFT/accelerate, ``pip install 'finetune-qa[local]'``;
torch is imported only when it trains or answers).
Third parties register their own with :func:`register_backend`, or through the
``finetune_qa.backends`` entry-point group (``name = "package.module:factory"``).

Example:
    >>> from finetune_qa.backends import get_backend
    >>> get_backend("offline").name
    'offline'
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from typing import Any

from finetune_qa.backends.base import (
    TERMINAL_STATUSES,
    Backend,
    ChatRequest,
    ChatResponse,
    Checkpoint,
    FileInfo,
    JobEvent,
    JobInfo,
    JobRequest,
    JobStatus,
    Usage,
)
from finetune_qa.backends.local import LocalBackend
from finetune_qa.backends.offline import OfflineBackend
from finetune_qa.backends.openai import OpenAIBackend
from finetune_qa.backends.together import TogetherBackend
from finetune_qa.exceptions import UnknownBackendError, UsageError

__all__ = [
    "TERMINAL_STATUSES",
    "Backend",
    "BackendFactory",
    "ChatRequest",
    "ChatResponse",
    "Checkpoint",
    "FileInfo",
    "JobEvent",
    "JobInfo",
    "JobRequest",
    "JobStatus",
    "LocalBackend",
    "OfflineBackend",
    "OpenAIBackend",
    "TogetherBackend",
    "Usage",
    "available_backends",
    "get_backend",
    "register_backend",
]

BackendFactory = Callable[..., Backend]
"""Anything that builds a backend from keyword arguments (a class is fine)."""

_registry: dict[str, BackendFactory] = {}
_entry_points_loaded = False


def register_backend(name: str, factory: BackendFactory, *, replace: bool = False) -> None:
    """Make ``get_backend(name, **kwargs)`` build a backend with ``factory(**kwargs)``.

    Raises:
        UsageError: ``name`` is taken and ``replace`` is False.
    """
    if name in _registry and not replace:
        raise UsageError(f"a backend named {name!r} is already registered; pass replace=True")
    _registry[name] = factory


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in metadata.entry_points(group="finetune_qa.backends"):
        if ep.name not in _registry:
            _registry[ep.name] = ep.load()


def available_backends() -> list[str]:
    """Names of the registered backends (built-in, registered and entry points)."""
    _load_entry_points()
    return sorted(_registry)


def get_backend(backend: str | Backend, **kwargs: Any) -> Backend:
    """A backend by name (built with ``kwargs``), or the backend given, unchanged.

    Raises:
        UnknownBackendError: no backend has that name.
    """
    if not isinstance(backend, str):
        if kwargs:
            raise UsageError("options are for building a backend by name, not for an instance")
        return backend
    factory = _registry.get(backend)
    if factory is None:
        _load_entry_points()
        factory = _registry.get(backend)
    if factory is None:
        raise UnknownBackendError(backend, sorted(_registry))
    return factory(**kwargs)


register_backend("openai", OpenAIBackend)
register_backend("offline", OfflineBackend)
register_backend("together", TogetherBackend)  # imports the together SDK only when built
register_backend("local", LocalBackend)  # imports torch only when it trains or answers
