"""Keep API keys out of the provider SDKs' own log records.

The ``openai`` and ``together`` SDKs log every request's options at DEBUG, and Together's
options hold the Weights & Biases key of a job with a wandb integration. The backends
register the secrets they hold with :func:`protect_secrets`, which installs one
:class:`logging.Filter` (once per logger) that replaces them with ``[REDACTED]`` in the
message and arguments of every record those loggers emit.

Example:
    >>> import logging
    >>> protect_secrets("secret-0123456789", loggers=("finetune_qa.example",))
    >>> record = logging.LogRecord(
    ...     "finetune_qa.example", logging.DEBUG, __file__, 1, "options: %s",
    ...     ({"wandb_key": "secret-0123456789"},), None)
    >>> bool(logging.getLogger("finetune_qa.example").filter(record))
    True
    >>> record.getMessage()
    "options: {'wandb_key': '[REDACTED]'}"
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

__all__ = ["SecretsFilter", "protect_secrets"]

MIN_SECRET_LENGTH = 8
"""Shorter strings are not treated as secrets (they would redact ordinary words)."""


class SecretsFilter(logging.Filter):
    """Replaces registered secrets in a record's message with ``[REDACTED]``.

    A record that holds none is passed on untouched (its arguments are kept); one that
    does is rewritten to its formatted, redacted message with no arguments.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: tuple[str, ...] = ()

    def add(self, secrets: Sequence[str | None]) -> None:
        """Register more secrets (empty and short ones are ignored)."""
        keep = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        if not keep <= set(self.secrets):
            # longest first, so a secret that contains another is replaced whole
            self.secrets = tuple(sorted(keep | set(self.secrets), key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; never drops it."""
        secrets = self.secrets
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted: leave it to the handler
            return True
        if any(s in message for s in secrets):
            for s in secrets:
                message = message.replace(s, "[REDACTED]")
            record.msg = message
            record.args = None
        return True


_FILTER = SecretsFilter()
_LOCK = threading.Lock()


def protect_secrets(*secrets: str | None, loggers: Sequence[str]) -> None:
    """Redact ``secrets`` from the records of ``loggers`` and of their existing children.

    Idempotent: the one shared filter is added to a logger only once, and a secret
    registered twice is kept once. A logger's filters see only the records logged to it,
    not those its children pass up, so each child logger that exists now gets the filter
    too (the SDKs create theirs on import, before a backend is built).
    """
    with _LOCK:
        _FILTER.add(secrets)
        existing = list(logging.root.manager.loggerDict)
        for root in loggers:
            names = [root, *(n for n in existing if n.startswith(root + "."))]
            for name in names:
                logger = logging.getLogger(name)
                if _FILTER not in logger.filters:
                    logger.addFilter(_FILTER)
