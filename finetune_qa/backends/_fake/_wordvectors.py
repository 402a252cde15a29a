"""Word knowledge for the offline backend's fine-tunes: what a pretrained model knows of words.

A real fine-tune starts from a pretrained model that already knows that a guarantee is a
warranty and a shop a workshop; fine-tuning adds the site's facts on top. The
offline backend's answerer (:mod:`._answers`) matches words it was trained on, so a
question worded unlike every trained one misses its fact. With word knowledge on
(``OfflineBackend(word_knowledge=True)``, ``FINETUNE_QA_OFFLINE_WORDS=1`` for the CLI),
the answerer also compares sentence vectors from WordLlama's ``l2_supercat`` static
embeddings: the token embeddings of Llama 2, trained further for sentence similarity,
256 numbers per token, mean-pooled and normalised. Its 16 MB of weights and its tokenizer
ship inside the ``wordllama`` wheel (MIT), so nothing is downloaded: install the
``offline-words`` extra.

Why a library and not a hand-made synonym list: a list tuned to the questions one knows
of tunes the benchmark, not the model; WordLlama's vectors were trained on general
English by others, and they are fast (about 0.05 ms to embed a question on this project's
2-core CPU). Static vectors know common words better than rare ones, which the tokenizer
splits into pieces: "guarantee" finds "warranty", "puncture" does not reliably find "flat
tyre". A real pretrained model knows more.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune_qa.exceptions import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "ENVIRONMENT_VARIABLE",
    "INSTALL_HINT",
    "WordIndex",
    "available",
    "embed",
    "require",
    "words_from_environment",
]

ENVIRONMENT_VARIABLE = "FINETUNE_QA_OFFLINE_WORDS"
"""``1`` gives new offline APIs (the CLI's, ``serve``'s) word knowledge; ``0`` or unset: none."""

INSTALL_HINT = "pip install 'finetune-qa[offline-words]'"
"""What to run to give the offline backend's fine-tunes word knowledge."""

_lock = threading.Lock()
_model: Any = None


def available() -> bool:
    """Whether the ``offline-words`` extra (the ``wordllama`` package) is installed."""
    return importlib.util.find_spec("wordllama") is not None


def words_from_environment() -> bool:
    """Whether ``$FINETUNE_QA_OFFLINE_WORDS`` asks for word knowledge.

    Raises:
        ConfigError: it holds something other than ``1``/``true``/``yes``/``on`` or
            ``0``/``false``/``no``/``off``/empty.
    """
    raw = os.environ.get(ENVIRONMENT_VARIABLE, "").strip().casefold()
    if raw in {"", "0", "false", "no", "off"}:
        return False
    if raw in {"1", "true", "yes", "on"}:
        return True
    raise ConfigError(
        f"${ENVIRONMENT_VARIABLE} is {raw!r}: set it to 1 for word knowledge, or 0 (or unset it)"
    )


def require() -> None:
    """Raise :class:`ConfigError` with the install hint unless :func:`available`."""
    if not available():
        raise ConfigError(
            "word knowledge for the offline backend needs the wordllama package, which is "
            f"not installed: run {INSTALL_HINT}, or leave word knowledge off"
        )


def _import_quietly() -> Any:
    """``import wordllama`` without its ``logging.basicConfig(level=INFO)``.

    wordllama configures the root logger when imported, which would make the host
    application print every INFO record (its HTTP clients' request lines, ...). basicConfig
    does nothing while the root logger has a handler, so one is held there for the import.
    """
    root = logging.getLogger()
    guard = logging.NullHandler()
    root.addHandler(guard)
    try:
        import wordllama
    finally:
        root.removeHandler(guard)
    return wordllama


def _load() -> Any:
    """WordLlama's default model, from the files inside its wheel (never downloaded)."""
    global _model
    with _lock:
        if _model is None:
            require()
            wordllama = _import_quietly()

            # The wheel holds the weights and the tokenizer; pointing the cache at the
            # package finds both there, and disable_download makes a missing file an
            # error instead of a request to the Hugging Face Hub.
            _model = wordllama.WordLlama.load(
                cache_dir=Path(wordllama.__file__).parent, disable_download=True
            )
        return _model


def embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """Unit-length sentence vectors of ``texts``, one row each (256 columns)."""
    import numpy as np

    vectors = _load().embed(list(texts), norm=True)
    return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)


class WordIndex:
    """Sentence vectors of trained texts, each owned by a group (a fact, or one input).

    Args:
        texts: the texts to index.
        owners: the group of each text (same length as ``texts``).

    Example:
        >>> idx = WordIndex(["How long is the warranty?", "Where is the shop?"], [0, 1])
        >>> best = idx.best("How long is the guarantee?")
        >>> max(best, key=best.__getitem__)
        0
    """

    def __init__(self, texts: Sequence[str], owners: Sequence[int]) -> None:
        if len(texts) != len(owners):
            raise ValueError("every text needs an owner")
        self._owners = list(owners)
        self._vectors = embed(texts) if texts else None

    def similarities(self, text: str) -> list[float]:
        """Cosine similarity of ``text`` to every indexed text, in index order."""
        if self._vectors is None:
            return []
        sims = self._vectors @ embed([text])[0]
        return [float(s) for s in sims]

    def best(self, text: str) -> dict[int, float]:
        """Per owner, the highest cosine similarity of ``text`` to one of its texts."""
        out: dict[int, float] = {}
        for owner, sim in zip(self._owners, self.similarities(text), strict=True):
            if sim > out.get(owner, -1.0):
                out[owner] = sim
        return out
