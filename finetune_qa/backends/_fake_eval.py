"""Offline base-model behaviour for the library's eval prompts (see _tasks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["answer"]


def answer(messages: Sequence[Mapping[str, Any]], variant: int = 0) -> str | None:
    """The reply to a eval prompt, or None when messages is not one."""
    return None
