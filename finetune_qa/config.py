"""Named defaults, in one place.

Every default the library applies is a constant here, so a reader can see what a
call does without its arguments, and so the CLI, the docs and the code agree.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

__all__ = [
    "DEFAULT_MIN_ANSWER_LENGTH",
    "DEFAULT_MIN_QUESTION_LENGTH",
    "DEFAULT_MODEL",
    "DEFAULT_SEED",
    "DEFAULT_STOP",
    "DEFAULT_SYSTEM_PROMPT",
    "DEFAULT_VALIDATION_FRACTION",
    "DEFAULT_VALIDATION_SAMPLE",
    "EXAMPLES_PER_REASON",
    "MIN_TRAINING_EXAMPLES",
    "RETIREMENT_WARNING_DAYS",
    "cache_dir",
    "today",
]

DEFAULT_MODEL = "gpt-4o-mini-2024-07-18"
"""Base model used for token limits and prices when none is named."""

DEFAULT_SYSTEM_PROMPT = "You are a factual chatbot that answers questions about our website."
"""System message put in front of every training example built from a QA pair."""

DEFAULT_STOP = "**STOP**"
"""Stop marker appended (after one space) to every assistant answer, as the seed workflow does.
Query the fine-tuned model with the same marker as its ``stop`` sequence."""

DEFAULT_MIN_QUESTION_LENGTH = 9
"""Shortest question kept, in characters after the numbering is stripped.

The seed kept lines longer than 10 characters *including* a 2-character ``"1."``
prefix, i.e. items of at least 9 characters once stripped."""

DEFAULT_MIN_ANSWER_LENGTH = 9
"""Shortest answer kept, in characters after the numbering is stripped (see above)."""

DEFAULT_VALIDATION_FRACTION = 0.0
"""Share of distinct questions held out of training for the validation file (0: none).

A QA bot must know every fact of its source, so by default nothing is held out."""

DEFAULT_VALIDATION_SAMPLE = 0.1
"""Share of training examples repeated in the validation file when validation is asked for
without a hold-out fraction (``DatasetBuilder.sample_validation``, ``build --validation``)."""

DEFAULT_SEED = 42
"""Seed of the train/validation split; the same seed gives the same split."""

EXAMPLES_PER_REASON = 3
"""How many examples of each drop reason or error kind a report keeps."""

MIN_TRAINING_EXAMPLES = 10
"""OpenAI rejects training files with fewer examples than this."""

RETIREMENT_WARNING_DAYS = 90
"""Warn when a model's fine-tuning or serving ends within this many days."""


def today() -> dt.date:
    """The date retirement warnings and end-date checks are judged on.

    ``$FINETUNE_QA_TODAY`` (``YYYY-MM-DD``) if set — for reproducible reports and
    tests — else the system's date.
    """
    pinned = os.environ.get("FINETUNE_QA_TODAY")
    if pinned:
        try:
            return dt.date.fromisoformat(pinned)
        except ValueError:
            from finetune_qa.exceptions import ConfigError

            raise ConfigError(
                f"FINETUNE_QA_TODAY={pinned!r} is not a date; write it as YYYY-MM-DD"
            ) from None
    return dt.date.today()


def cache_dir() -> Path:
    """Directory for finetune_qa's own cache files.

    ``$FINETUNE_QA_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/finetune_qa``,
    else ``~/.cache/finetune_qa``. The directory is not created here.

    Raises:
        ConfigError: ``$FINETUNE_QA_CACHE_DIR`` names something that is not a directory.
    """
    explicit = os.environ.get("FINETUNE_QA_CACHE_DIR")
    if explicit:
        if os.path.lexists(explicit) and not os.path.isdir(explicit):
            from finetune_qa.exceptions import ConfigError

            raise ConfigError(
                f"FINETUNE_QA_CACHE_DIR={explicit!r} is not a directory; point it at a "
                "directory (it is created when missing) or unset it"
            )
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "finetune_qa"
