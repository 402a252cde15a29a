"""The optional packages the local backend needs, and the hint when they are missing."""

from __future__ import annotations

import importlib.util

from finetune_qa.exceptions import ConfigError

__all__ = ["INSTALL_HINT", "REQUIRED", "missing", "require"]

INSTALL_HINT = "pip install 'finetune-qa[local]'"
"""How to install what the local backend needs (torch, transformers, trl, peft, accelerate)."""

REQUIRED = ("torch", "transformers", "trl", "peft", "accelerate", "tokenizers", "datasets")
"""Import names the local backend uses."""


def missing() -> list[str]:
    """The required packages that cannot be imported here."""
    return [name for name in REQUIRED if importlib.util.find_spec(name) is None]


def require() -> None:
    """Raise a clear error naming what to install when a required package is missing.

    Raises:
        ConfigError: one or more of :data:`REQUIRED` is not installed.
    """
    gone = missing()
    if gone:
        raise ConfigError(
            f"the local backend needs {', '.join(gone)}, which "
            f"{'is' if len(gone) == 1 else 'are'} not installed: {INSTALL_HINT}"
        )
