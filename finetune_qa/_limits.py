"""The providers' limits, written once: epochs, batch size, upload sizes.

Every check of a limit (the SDK's request checks, ``migrate``, the CLI's options) reads
these names, so a provider changing a limit is a one-line change here. A backend may
declare a larger epoch limit of its own (``Backend.max_epochs``; the local trainer takes
up to 1000).
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "FILES_API_LIMIT",
    "MAX_BATCH_SIZE",
    "MAX_EPOCHS",
    "MULTIPART_THRESHOLD",
    "check_epochs",
    "parse_epochs",
]

MAX_EPOCHS = 50
"""The most epochs a hosted fine-tuning job takes (OpenAI and Together alike)."""

MAX_BATCH_SIZE = 256
"""The largest batch size a hosted job takes."""

MULTIPART_THRESHOLD = 100 * 1024 * 1024
"""Files larger than this are sent with the Uploads API in parts (OpenAI's rule)."""

FILES_API_LIMIT = 512 * 1024 * 1024
"""The largest file the Files API takes in one request."""


def check_epochs(value: object, *, most: int = MAX_EPOCHS) -> str | None:
    """The problem with an epoch count, as a sentence, or None when it is fine.

    ``value`` is ``"auto"``, ``None`` (the default) or a whole number from 1 to ``most``.
    """
    if value is None or value == "auto":
        return None
    if type(value) is int and 1 <= value <= most:
        return None
    return f"epochs must be 'auto' or a whole number from 1 to {most}, got {value!r}"


def parse_epochs(text: str, *, most: int = MAX_EPOCHS) -> int | Literal["auto"]:
    """A command-line ``--epochs`` value: ``auto`` or 1..``most``; ValueError otherwise."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= most:
        raise ValueError(f"--epochs takes 1 to {most} or 'auto', got {text!r}")
    return n
