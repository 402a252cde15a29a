"""Together's exceptions as finetune_qa's, with keys redacted from every message."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

from finetune_qa.backends._errors import retry_after, sentence, status_error_class
from finetune_qa.backends.together._deps import import_sdk
from finetune_qa.exceptions import (
    APIConnectionError,
    APITimeoutError,
    BackendError,
    FineTuneQAError,
    RateLimitError,
    UsageError,
    redact,
)

__all__ = ["map_together_errors"]

# Together keys: 64 hex digits (older accounts) or tgp_v1_... (newer ones).
_KEYLIKE = re.compile(r"tgp_v\d+_[A-Za-z0-9_\-]{8,}|\b[0-9a-f]{64}\b")


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for s in secrets:
        if s and len(s) >= 8:
            text = text.replace(s, "[REDACTED]")
    return redact(_KEYLIKE.sub("[REDACTED]", text))


@contextlib.contextmanager
def map_together_errors(*secrets: str) -> Iterator[None]:
    """Translate ``together`` exceptions raised inside the block into finetune_qa's own.

    Status classes by code (5xx to ``InternalServerError``), ``retry-after`` kept on
    ``RateLimitError``, ``x-request-id`` as the request id, the original as ``__cause__``.
    ``secrets`` (the client's key) and anything key-like are removed from the message.
    The SDK's own argument checks (``ValueError``) become ``UsageError``.
    """
    sdk = import_sdk()
    try:
        yield
    except FineTuneQAError:
        raise
    except sdk.APITimeoutError as exc:
        raise APITimeoutError(
            "Together AI did not answer in time; the request may still have been carried "
            "out. Retry, or raise the client's timeout."
        ) from exc
    except sdk.APIConnectionError as exc:
        cause = _scrub(str(exc.__cause__ or exc), secrets)
        raise APIConnectionError(
            f"could not reach Together AI ({cause}); the request may or may not have been "
            "carried out. Check the network and the base URL, then retry."
        ) from exc
    except sdk.APIStatusError as exc:
        status = int(exc.status_code)
        body = exc.body if isinstance(exc.body, dict) else {}
        err = body.get("error") if isinstance(body.get("error"), dict) else body
        code = err.get("code") if isinstance(err, dict) else None
        if code is None and isinstance(err, dict):
            code = err.get("type")
        param = err.get("param") if isinstance(err, dict) else None
        message = (err.get("message") if isinstance(err, dict) else None) or (
            body.get("error") if isinstance(body.get("error"), str) else None
        )
        message = _scrub(str(message or exc.message or exc), secrets)
        hint = {
            401: " Check the API key (TOGETHER_API_KEY); backend='offline' runs without one.",
            404: " Check the id or model name; see Together's list of fine-tunable models.",
            429: " Wait and retry; check the account's rate limits and credit.",
        }.get(status, "")
        cls = status_error_class(status)
        headers = exc.response.headers
        kwargs: dict[str, Any] = {
            "status_code": status,
            "request_id": headers.get("x-request-id") or headers.get("request-id"),
            "code": str(code) if code is not None else None,
            "param": param if isinstance(param, str) else None,
        }
        text = f"{status} from Together AI: {sentence(message)}{hint}"
        if cls is RateLimitError:
            raise RateLimitError(text, retry_after=retry_after(headers), **kwargs) from exc
        raise cls(text, **kwargs) from exc
    except sdk.TogetherError as exc:
        raise BackendError(f"together client error: {_scrub(str(exc), secrets)}") from exc
    except ValueError as exc:  # the SDK checks arguments locally before sending
        raise UsageError(
            f"Together AI's SDK refused the request: {_scrub(str(exc), secrets)}"
        ) from exc
