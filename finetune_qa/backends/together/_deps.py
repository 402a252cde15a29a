"""The ``together`` SDK, imported only when a Together backend is used, and its install hint."""

from __future__ import annotations

from typing import Any

from finetune_qa.exceptions import ConfigError

__all__ = ["INSTALL_HINT", "import_sdk"]

INSTALL_HINT = "pip install 'finetune-qa[together]'"
"""How to install the SDK this backend needs."""


def import_sdk() -> Any:
    """The ``together`` module.

    Raises:
        ConfigError: the package is not installed; the message says how to install it.
    """
    try:
        import together
    except ImportError as exc:  # pragma: no cover - the test environment has the SDK
        raise ConfigError(
            f"the Together AI backend needs the together package: {INSTALL_HINT}"
        ) from exc
    return together
