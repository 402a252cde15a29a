"""Rephrasings of training questions, from a writer model, cached on disk.

Fine-tuning injects a fact well only when the model sees it asked in several wordings
(knowledge augmentation). :class:`Rephraser` asks a *writer model* (any backend's base
model, through a :class:`~finetune_qa.chat.ChatModel`) for ``k`` rephrasings of each
question: the same meaning in other words and other question forms ("Who founded X?" ->
"Who started X?", "Which people set up X?", "X was founded by whom?"). The reply must be a
numbered list; :func:`parse_rephrasings` keeps only well-formed, new wordings.

Answers are cached in a JSONL file keyed by writer model, question, ``k`` and prompt
version, so building the same data again asks the writer nothing. The offline backend's
base models answer :data:`REPHRASE_PROMPT` by rules (no key, deterministic).

Example:
    >>> from finetune_qa import ChatModel
    >>> writer = ChatModel.offline("gpt-4o-mini")
    >>> Rephraser(writer, k=2, cache=False).rephrase("Who founded Lumenfield?")
    ['Who started Lumenfield?', 'Which people set up Lumenfield?']
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import orjson
from pydantic import BaseModel, ConfigDict, Field

from finetune_qa._fs import atomic_write, open_regular
from finetune_qa._text import key_hash, question_key
from finetune_qa.chat import ChatModel
from finetune_qa.config import cache_dir
from finetune_qa.exceptions import InputFileError, UsageError

__all__ = [
    "MAX_REPHRASINGS",
    "REPHRASE_PROMPT",
    "REPHRASE_PROMPT_VERSION",
    "REPHRASE_TASK_PHRASE",
    "RephraseStats",
    "Rephraser",
    "parse_rephrasings",
]

REPHRASE_TASK_PHRASE = "rephrase questions for fine-tuning data"
"""The phrase that identifies :data:`REPHRASE_PROMPT` (the offline backend keys on it)."""

REPHRASE_PROMPT = (
    f"You {REPHRASE_TASK_PHRASE}. The user gives a question and how many rephrasings "
    "are wanted. Write that many questions that ask for exactly the same information, "
    "each worded differently: use other words (synonyms) and other question forms "
    "(active and passive, 'who'/'which people', 'how much'/'what is the price'), as "
    "different people would ask it. Keep names, products and numbers as they are; do not "
    "add or remove facts. Reply with a numbered list, one question per line "
    '("1. ..."), and nothing else.'
)
"""System prompt of the writer model."""

REPHRASE_PROMPT_VERSION = 1
"""Part of every cache key: raise it when the prompt's meaning changes."""

MAX_REPHRASINGS = 20
"""Most rephrasings asked per question."""

_CACHE_FILE = "rephrasings.jsonl"
_MAX_ITEM_CHARS = 300
_NUMBERED = re.compile(r"^\s*(?:\d{1,2}[.)]|\(\d{1,2}\))\s+(.+?)\s*$")
_REFUSAL = re.compile(
    r"^(?:sorry|i'?m sorry|i can(?:no|')t|i am unable|as an ai|unfortunately)\b", re.IGNORECASE
)


class RephraseStats(BaseModel):
    """What a :class:`Rephraser` did: questions, cache hits, requests, failures."""

    model_config = ConfigDict(extra="forbid")

    writer: str = Field(description="The writer model.")
    k: int = Field(description="Rephrasings asked per question.")
    questions: int = Field(default=0, description="Distinct questions rephrased.")
    cache_hits: int = Field(default=0, description="Questions answered from the cache.")
    requests: int = Field(default=0, description="Requests sent to the writer.")
    failed: int = Field(default=0, description="Questions that got no usable rephrasing.")
    rephrasings: int = Field(default=0, description="Rephrasings returned in all.")


def parse_rephrasings(reply: str, question: str, k: int | None = None) -> list[str]:
    r"""The rephrasings in a writer's reply: a numbered list, one question per line.

    Strict: lines that are not numbered items are ignored (chatter, a preamble), and so
    are items that repeat the question or an earlier item (by
    :func:`~finetune_qa._text.question_key`), refusals, items of one word and items over
    300 characters.

    Example:
        >>> parse_rephrasings("Sure!\n1. Who started Acme?\n2. who started acme\n3) Acme was founded by whom?", "Who founded Acme?")
        ['Who started Acme?', 'Acme was founded by whom?']
    """  # noqa: E501
    seen = {question_key(question)}
    out: list[str] = []
    for line in reply.splitlines():
        m = _NUMBERED.match(line)
        if m is None:
            continue
        text = m.group(1).strip().strip('"“”').strip()
        key = question_key(text)
        if (
            not key
            or key in seen
            or len(text) > _MAX_ITEM_CHARS
            or len(text.split()) < 2
            or _REFUSAL.match(text)
        ):
            continue
        seen.add(key)
        out.append(text)
    return out[:k] if k is not None else out


class Rephraser:
    """Asks a writer model for ``k`` rephrasings of questions, with an on-disk cache.

    Args:
        writer: the writer model (a base model; its own system prompt and stop marker
            are not used).
        k: rephrasings per question, 1 to :data:`MAX_REPHRASINGS`.
        cache: a JSONL file to read and update; ``True`` (default) for
            ``rephrasings.jsonl`` in :func:`~finetune_qa.config.cache_dir`; ``False``
            for none (kept in memory for this object only).
        concurrency: requests in flight at once (default: the writer's).
        max_tokens: cap on each reply.
        prompt: the system prompt (its text is part of the cache key).

    Raises:
        UsageError: a bad ``k`` or writer.
    """

    def __init__(
        self,
        writer: ChatModel,
        *,
        k: int = 3,
        cache: str | os.PathLike[str] | bool = True,
        concurrency: int | None = None,
        max_tokens: int | None = 400,
        prompt: str = REPHRASE_PROMPT,
    ) -> None:
        if not isinstance(writer, ChatModel):
            raise UsageError(f"writer must be a ChatModel, got {type(writer).__name__}")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_REPHRASINGS:
            raise UsageError(f"k must be a whole number from 1 to {MAX_REPHRASINGS}, got {k!r}")
        self.k = k
        self.concurrency = concurrency
        self.prompt = prompt
        self.task = writer.with_options(
            system_prompt=prompt,
            stop=None,
            max_tokens=max_tokens,
            logprobs=False,
            top_logprobs=None,
            card=False,  # a task of its own: a fine-tune's training prompt does not apply
        )
        if cache is True:
            self.cache_path: Path | None = cache_dir() / _CACHE_FILE
        elif cache is False:
            self.cache_path = None
        else:
            self.cache_path = Path(cache)
        self.version = f"{REPHRASE_PROMPT_VERSION}:{key_hash(prompt):016x}"
        self._stored: dict[str, list[str]] | None = None
        self.stats = RephraseStats(writer=writer.model, k=k)
        self.errors: list[str] = []

    @property
    def writer(self) -> str:
        """The writer model's name."""
        return self.task.model

    def __repr__(self) -> str:
        return f"Rephraser({self.writer!r}, k={self.k}, cache={str(self.cache_path)!r})"

    def rephrase(self, question: str) -> list[str]:
        """Up to ``k`` rephrasings of one question (fewer if the writer gave fewer)."""
        return self.rephrase_many([question])[0]

    def rephrase_many(self, questions: Iterable[str]) -> list[list[str]]:
        """Rephrasings of each question, in order; cached ones are not asked again.

        A question whose request fails, or whose reply holds no usable rephrasing, gets
        an empty list (see :attr:`errors` and ``stats.failed``).

        Raises:
            InputFileError: the cache cannot be written.
        """
        if isinstance(questions, str):
            raise UsageError("rephrase_many takes an iterable of questions, not one string")
        qs = [q.strip() for q in questions]
        stored = self._load()
        keys = [self._key(q) for q in qs]
        todo: dict[str, str] = {}
        for q, key in zip(qs, keys, strict=True):
            if key not in stored and key not in todo and q:
                todo[key] = q
        self.stats.questions += len({k for k in keys if k in stored}) + len(todo)
        self.stats.cache_hits += len({k for k in keys if k in stored})
        if todo:
            self._ask(todo, stored)
        out = [list(stored.get(key, [])) if q else [] for q, key in zip(qs, keys, strict=True)]
        self.stats.rephrasings += sum(len(x) for x in out)
        return out

    # -------------------------------------------------------------------- internals
    def _key(self, question: str) -> str:
        return orjson.dumps([self.writer, question_key(question), self.k, self.version]).decode()

    def _ask(self, todo: dict[str, str], stored: dict[str, list[str]]) -> None:
        messages = [f"Rephrasings wanted: {self.k}\nQuestion: {q}" for q in todo.values()]
        items = self.task.ask_many(messages, concurrency=self.concurrency)
        self.stats.requests += len(items)
        for (key, q), item in zip(todo.items(), items, strict=True):
            if item.answer is None:
                self.stats.failed += 1
                self.errors.append(f"{q}: {item.error}")
                continue
            texts = parse_rephrasings(item.answer.text, q, self.k)
            if not texts:
                self.stats.failed += 1
                shown = " ".join(item.answer.text.split())[:120]
                self.errors.append(f"{q}: no rephrasing in the reply {shown!r}")
                continue
            stored[key] = texts
        if self.cache_path is not None:
            self._save(stored)

    def _load(self) -> dict[str, list[str]]:
        if self._stored is not None:
            return self._stored
        self._stored = {}
        path = self.cache_path
        if path is None or not path.exists():
            return self._stored
        try:
            with open_regular(path, kind="rephrasings cache") as f:
                data = f.read()
        except OSError as exc:
            raise InputFileError(
                f"cannot read: {exc.strerror or exc}",
                path=path,
                hint="delete the cache file, or pass cache=False",
            ) from exc
        for raw in data.splitlines():
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue  # a damaged line costs one request, nothing more
            if not isinstance(obj, dict):
                continue
            key, texts = obj.get("key"), obj.get("rephrasings")
            if (
                isinstance(key, str)
                and isinstance(texts, list)
                and all(isinstance(t, str) for t in texts)
            ):
                self._stored[key] = list(texts)
        return self._stored

    def _save(self, stored: dict[str, list[str]]) -> None:
        assert self.cache_path is not None
        lines = [
            orjson.dumps({"key": key, "rephrasings": texts}) + b"\n"
            for key, texts in sorted(stored.items())
        ]
        atomic_write(
            self.cache_path,
            b"".join(lines),
            problem="cannot write the rephrasings cache",
            hint="check that the folder is writable, or pass cache=False",
        )
