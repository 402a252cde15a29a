"""The per-pair stages of a build, shared by the sequential path and the worker processes.

A build runs, per pair: account for reader issues and changes -> normalize -> length
filters -> (custom filters, sequential path only) -> key -> dedupe -> split -> serialize
-> count tokens. Everything up to the key, plus serialization and token counting, is
independent per pair and runs in worker processes for large files; dedupe and the
split decision need the whole history and stay in the parent, which consumes the
workers' results in input order, so the output is the same whichever path ran.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import orjson

from finetune_qa.config import EXAMPLES_PER_REASON
from finetune_qa.readers import QASource, RawPair, ReadIssue, SourceFormat

# (file, line, row, item, question, answer, detail)
Example = tuple[str | None, int | None, int | None, int | None, str | None, str | None, str | None]

_SPACES = re.compile(r"[ \t\u00a0]{2,}|[\t\u00a0]")
_CH_UNICODE = "unicode_normalized"
_CH_SPACES = "whitespace_normalized"
_STOP_REMOVED = ("stop_marker_removed",)


def short(text: str | None, n: int = 80) -> str | None:
    """``text`` cut to ``n`` characters with an ellipsis."""
    if text is None:
        return None
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class Tally:
    """A count and the first few examples it covers."""

    count: int = 0
    examples: list[Example] = field(default_factory=list)

    def add(self, n: int, example: Example) -> None:
        self.count += n
        if len(self.examples) < EXAMPLES_PER_REASON:
            self.examples.append(example)


class Accounts:
    """Running totals of a build: pairs read, drops by reason, changes by reason tuple."""

    def __init__(self) -> None:
        self.read = 0
        self.drops: dict[str, Tally] = {}
        self.change_counts: dict[tuple[str, ...], int] = {}
        self.change_examples: dict[str, list[Example]] = {}
        self.change_full: set[tuple[str, ...]] = set()

    def drop(self, reason: str, n: int, example: Example) -> None:
        t = self.drops.get(reason)
        if t is None:
            t = self.drops[reason] = Tally()
        t.add(n, example)

    def change(self, kinds: tuple[str, ...], example: Example) -> None:
        self.change_counts[kinds] = self.change_counts.get(kinds, 0) + 1
        if kinds in self.change_full:
            return
        full = True
        for k in kinds:
            lst = self.change_examples.setdefault(k, [])
            if len(lst) < EXAMPLES_PER_REASON:
                lst.append(example)
            full = full and len(lst) >= EXAMPLES_PER_REASON
        if full:
            self.change_full.add(kinds)

    def changes(self) -> dict[str, Tally]:
        """Change counts per single reason (a pair may count under several)."""
        out: dict[str, Tally] = {}
        for kinds, n in self.change_counts.items():
            for k in kinds:
                t = out.get(k)
                if t is None:
                    t = out[k] = Tally(examples=list(self.change_examples.get(k, [])))
                t.count += n
        return out

    def merge(self, other: Accounts, row_offset: int) -> None:
        """Add ``other`` (a later range's accounts) with its rows shifted by ``row_offset``."""

        def shift(ex: Example) -> Example:
            f, line, row, item, q, a, d = ex
            return (f, line, None if row is None else row + row_offset, item, q, a, d)

        self.read += other.read
        for reason, t in other.drops.items():
            mine = self.drops.get(reason)
            if mine is None:
                mine = self.drops[reason] = Tally()
            mine.count += t.count
            for ex in t.examples[: max(0, EXAMPLES_PER_REASON - len(mine.examples))]:
                mine.examples.append(shift(ex))
        for kinds, n in other.change_counts.items():
            self.change_counts[kinds] = self.change_counts.get(kinds, 0) + n
        for k, exs in other.change_examples.items():
            lst = self.change_examples.setdefault(k, [])
            for ex in exs[: max(0, EXAMPLES_PER_REASON - len(lst))]:
                lst.append(shift(ex))


@dataclass(frozen=True)
class Options:
    """The builder settings a worker needs (picklable)."""

    normalize: bool
    min_question: int
    min_answer: int
    seed: int
    validation_fraction: float
    system_prompt: str | None
    suffix: str
    encoding: str | None = None
    cut: int = 0  # pairs whose split value is below this go to validation
    sample: bool = False  # validation pairs stay in training too

    @property
    def salt(self) -> bytes:
        return self.seed.to_bytes(8, "little", signed=True)

    @property
    def threshold(self) -> int:
        return self.cut


def normalize(text: str) -> str:
    """NFC form and single spaces; returns ``text`` itself (same object) when unchanged."""
    if text.isascii():
        if "  " not in text and "\t" not in text:
            return text
        out = text
    else:
        out = text
        if not unicodedata.is_normalized("NFC", out):
            out = unicodedata.normalize("NFC", out)
    if "  " in out or "\t" in out or "\u00a0" in out:
        collapsed = _SPACES.sub(" ", out)
        if collapsed != out:
            out = collapsed
    return out


def what_changed(before: str, after: str) -> set[str]:
    """Which normalization kinds turned ``before`` into ``after``."""
    if before is after:
        return set()
    kinds = set()
    if not before.isascii() and not unicodedata.is_normalized("NFC", before):
        kinds.add(_CH_UNICODE)
    if _SPACES.search(before):
        kinds.add(_CH_SPACES)
    return kinds


def screened(
    items: Iterable[RawPair | ReadIssue], acc: Accounts, opts: Options, label: str | None
) -> Iterator[tuple[str, str, int | None, int | None, int | None]]:
    """Stage 1: account for issues and changes, normalize, apply the length filters.

    Yields ``(question, answer, line, row, item)`` of the pairs that pass.
    """
    min_q, min_a, norm = opts.min_question, opts.min_answer, opts.normalize
    marker = opts.suffix.strip()
    drop, change = acc.drop, acc.change
    for item in items:
        if type(item) is not tuple:
            assert isinstance(item, ReadIssue)
            acc.read += item.count
            drop(
                item.reason,
                item.count,
                (
                    item.file,
                    item.line,
                    item.row,
                    item.item,
                    item.question,
                    item.answer,
                    item.message,
                ),
            )
            continue
        acc.read += 1
        q, a, line, row, idx, changed = item
        if changed:
            change(changed, (label, line, row, idx, q, a, None))
        if norm:
            q2, a2 = normalize(q), normalize(a)
            if q2 is not q or a2 is not a:
                kinds = tuple(sorted(what_changed(q, q2) | what_changed(a, a2)))
                change(kinds, (label, line, row, idx, q, a, None))
                q, a = q2, a2
        if marker:
            body = a.rstrip()
            if body.endswith(marker):  # already there: appending it again would double it
                a = body[: -len(marker)].rstrip()
                change(_STOP_REMOVED, (label, line, row, idx, q, body, None))
            if marker in a:
                drop(
                    "answer_contains_stop",
                    1,
                    (label, line, row, idx, q, a, f"the stop marker {marker!r} is in the text"),
                )
                continue
        if len(q) < min_q:
            drop(
                "question_too_short",
                1,
                (label, line, row, idx, q, a, f"{len(q)} < {min_q} characters"),
            )
            continue
        if len(a) < min_a:
            drop(
                "answer_too_short",
                1,
                (label, line, row, idx, q, a, f"{len(a)} < {min_a} characters"),
            )
            continue
        yield q, a, line, row, idx


class KeySet:
    """A set of 64-bit keys in 8 bytes a slot (open addressing, linear probing).

    Dedupe remembers every distinct question of a build; a Python ``set`` of ints costs
    about 64 bytes an entry (1M questions: ~64 MiB), this about 16 (load kept below 1/2).
    Keys are blake2b digests, so their low bits are already uniform.
    """

    __slots__ = ("_mask", "_n", "_slots")

    def __init__(self, capacity: int = 1 << 16) -> None:
        self._slots = array("Q", bytes(8 * capacity))
        self._mask = capacity - 1
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, key: int) -> bool:
        """Add ``key``; True if it was not there yet."""
        key = key or 1  # 0 marks an empty slot
        slots, mask = self._slots, self._mask
        i = key & mask
        while True:
            v = slots[i]
            if v == 0:
                slots[i] = key
                self._n += 1
                if self._n * 2 > mask:
                    self._grow()
                return True
            if v == key:
                return False
            i = (i + 1) & mask

    def _grow(self) -> None:
        old = self._slots
        capacity = 2 * len(old)
        self._slots = slots = array("Q", bytes(8 * capacity))
        self._mask = mask = capacity - 1
        for key in old:
            if key:
                i = key & mask
                while slots[i]:
                    i = (i + 1) & mask
                slots[i] = key


def pair_key(question_key: str, salt: bytes) -> tuple[int, int]:
    """(dedupe key, split value) of a normalized question: stable across processes and runs."""
    d = hashlib.blake2b(question_key.encode("utf-8"), digest_size=12, salt=salt).digest()
    return int.from_bytes(d[:8], "little"), int.from_bytes(d[8:], "little")


def line_parts(system_prompt: str | None) -> tuple[bytes, bytes, bytes]:
    """Pre-encoded pieces of one JSONL line: head + dumps(q) + mid + dumps(answer) + tail."""
    head = b'{"messages":['
    if system_prompt:
        head += orjson.dumps({"role": "system", "content": system_prompt}) + b","
    head += b'{"role":"user","content":'
    return head, b'},{"role":"assistant","content":', b"}]}"


# ------------------------------------------------------------------------- worker side


@dataclass
class SourceArgs:
    """How to reopen a source in a worker."""

    path: str
    format: SourceFormat
    question_column: str | None
    answer_column: str | None
    delimiter: str
    strict: bool
    stop: str | None
    columns: tuple[int, int] | None


@dataclass
class RangeResult:
    """What a worker sends back for one byte range of a source."""

    acc: Accounts
    rows: int
    keys: bytes  # array('Q'): dedupe key per screened pair
    splits: bytes  # array('I'): split value per screened pair
    blob: bytes  # the pairs' JSONL lines, each ending in a newline
    ends: bytes  # array('I'): end offset of each line in blob
    prov: bytes  # array('i'): all lines, then all rows, then all items (-1 for none)
    totals: bytes  # array('I'): total tokens per pair ('' when not counting)
    assistant: bytes  # array('I'): assistant tokens per pair


_worker_encode = None
_worker_fixed: dict[str | None, int] = {}


def worker_init(encoding: str | None) -> None:
    """Process-pool initializer: load the encoding once per worker."""
    global _worker_encode
    if encoding is not None:
        from finetune_qa.tokens import get_encoding

        enc = get_encoding(encoding)
        # the Rust core's method directly: the same result without the wrapper's Python frame
        core = getattr(enc, "_core_bpe", None)
        _worker_encode = getattr(core, "encode_ordinary", None) or enc.encode_ordinary


def fixed_tokens(encode: object, system_prompt: str | None) -> int:
    """Tokens of an example that do not depend on the pair (overheads, roles, system prompt)."""
    from finetune_qa.tokens import TOKENS_PER_EXAMPLE, TOKENS_PER_MESSAGE

    enc = encode  # a tiktoken encode_ordinary
    assert callable(enc)
    n = TOKENS_PER_EXAMPLE + 2 * TOKENS_PER_MESSAGE + len(enc("user")) + len(enc("assistant"))
    if system_prompt:
        n += TOKENS_PER_MESSAGE + len(enc("system")) + len(enc(system_prompt))
    return n


def run_range(
    task: tuple[SourceArgs, tuple[int, int, int], Options],
) -> RangeResult:
    """Worker: read one range, screen, key, serialize and count its pairs."""
    from finetune_qa._text import question_key

    src_args, (start, end, first_line), opts = task
    src = QASource(
        src_args.path,
        format=src_args.format,
        question_column=src_args.question_column,
        answer_column=src_args.answer_column,
        delimiter=src_args.delimiter,
        strict=src_args.strict,
        stop=src_args.stop,
    )
    acc = Accounts()
    keys, splits, ends = array("Q"), array("I"), array("I")
    p_line, p_row, p_item = array("i"), array("i"), array("i")
    qtok, atok = array("I"), array("I")
    pieces: list[bytes] = []
    head, mid, tail = line_parts(opts.system_prompt)
    suffix, salt = opts.suffix, opts.salt
    dumps = orjson.dumps
    encode = _worker_encode
    size = 0
    for q, a, line, row, idx in screened(
        src.iter_range(start, end, first_line, src_args.columns), acc, opts, src.path
    ):
        k, sv = pair_key(question_key(q), salt)
        keys.append(k)
        splits.append(sv)
        answer = a + suffix
        text = b"".join((head, dumps(q), mid, dumps(answer), tail, b"\n"))
        pieces.append(text)
        size += len(text)
        ends.append(size)
        p_line.append(line or 0)
        p_row.append(row or 0)
        p_item.append(-1 if idx is None else idx)
        if encode is not None:
            qtok.append(len(encode(q)))
            atok.append(len(encode(answer)))
    totals = b""
    if encode is not None:
        fixed = _worker_fixed.get(opts.system_prompt)
        if fixed is None:
            fixed = _worker_fixed[opts.system_prompt] = fixed_tokens(encode, opts.system_prompt)
        totals = array("I", [fixed + x + y for x, y in zip(qtok, atok, strict=True)]).tobytes()
    return RangeResult(
        acc=acc,
        rows=src.rows_read,
        keys=keys.tobytes(),
        splits=splits.tobytes(),
        blob=b"".join(pieces),
        ends=ends.tobytes(),
        prov=p_line.tobytes() + p_row.tobytes() + p_item.tobytes(),
        totals=totals,
        assistant=atok.tobytes(),
    )


def unpack(fmt: str, raw: bytes) -> array[int]:
    """An array of type ``fmt`` from its bytes."""
    out = array(fmt)
    out.frombytes(raw)
    return out
