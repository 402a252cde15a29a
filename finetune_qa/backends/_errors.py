"""What the SDK backends share when they translate a provider's HTTP errors.

``openai`` and ``together`` raise status errors of the same shape; both backends pick
finetune_qa's class by status code, end the provider's message as a sentence and read
``retry-after-ms`` / ``retry-after`` the same way, here.
"""

from __future__ import annotations

from typing import Any

from finetune_qa.exceptions import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)

__all__ = ["STATUS_CLASSES", "retry_after", "sentence", "status_error_class"]

STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}
"""The finetune_qa class for each HTTP status an SDK reports by name."""


def status_error_class(status: int) -> type[APIStatusError]:
    """The class for ``status``: by code, else ``InternalServerError`` for 5xx, else the base."""
    return STATUS_CLASSES.get(status, InternalServerError if status >= 500 else APIStatusError)


def sentence(text: str) -> str:
    """``text`` stripped and ending in ``.``, ``!`` or ``?`` (a ``.`` is added when needed)."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (preferred) or ``retry-after``; None if absent.

    A value that is not a number (an HTTP date, say) also gives None.
    """
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return float(ms) / 1000.0
        value = headers.get("retry-after")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
