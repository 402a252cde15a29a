"""Small text helpers shared across the package, written once.

Text keys, hashes and exact streaming statistics (dataset building and validation);
byte-order marks, plurals, number formatting and timestamps (readers, reports, journals).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

UTF8_BOM = b"\xef\xbb\xbf"
"""The UTF-8 byte-order mark some editors (Excel, Notepad) put at the start of a file."""

UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
"""The UTF-16 byte-order marks (little-endian, big-endian): a file that is not UTF-8."""


def plural(count: int, word: str) -> str:
    """``count`` and ``word``, with an ``s`` unless ``count`` is 1.

    Example:
        >>> plural(1, "answer"), plural(3, "question")
        ('1 answer', '3 questions')
    """
    return f"{count} {word}{'' if count == 1 else 's'}"


def is_int(value: object) -> bool:
    """True for a whole number that is not a bool (JSON's ``true`` is not a count).

    Example:
        >>> is_int(3), is_int(True), is_int(3.0)
        (True, False, False)
    """
    return isinstance(value, int) and not isinstance(value, bool)


def fmt_number(x: float) -> str:
    """A number for a report: thousands separated, one decimal unless it is whole.

    Example:
        >>> fmt_number(1234), fmt_number(2.25)
        ('1,234', '2.2')
    """
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"


def utc_now() -> dt.datetime:
    """The current UTC time, to the second (for records and file headers)."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def utc_now_iso() -> str:
    """:func:`utc_now` as ISO 8601 text, e.g. ``2026-12-02T19:51:56+00:00``."""
    return utc_now().isoformat(timespec="seconds")


_EDGE_PUNCT = " \t\n\r.?!,;:¿¡\"'“”‘’()[]"


def question_key(text: str) -> str:
    """The form two questions share when they are "the same question".

    Unicode NFKC, case-folded, runs of white space collapsed to one space, and surrounding
    punctuation and quotes removed: ``"  What is  Acme? "`` and ``"what is acme"`` match.
    """
    if not text.isascii() and not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return " ".join(text.casefold().split()).strip(_EDGE_PUNCT)


def key_hash(key: str | bytes, salt: bytes = b"") -> int:
    """A stable 64-bit hash of ``key`` (same value in every process and run).

    Python's own ``hash()`` is not: it differs between spawned worker processes.
    """
    data = key.encode("utf-8") if isinstance(key, str) else key
    return int.from_bytes(hashlib.blake2b(data, digest_size=8, salt=salt[:16]).digest(), "little")


_SECRET_PARAM = re.compile(r"key|token|secret|sig|pass|auth|cred", re.IGNORECASE)


def scrub_url(url: str) -> str:
    """``url`` without anything secret, to store or show.

    No ``user:password@``, secret-looking query values replaced by ``[REDACTED]``, then
    any key-like text redacted as in error messages.

    Example:
        >>> scrub_url("http://u:sk-abc123456789@host:8/v1?api-key=sk-abc123456789&v=2")
        'http://host:8/v1?api-key=[REDACTED]&v=2'
    """
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    from finetune_qa.exceptions import redact

    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        query = [
            (k, "[REDACTED]" if _SECRET_PARAM.search(k) else redact(v))
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        path = redact(parts.path)
        return urlunsplit((parts.scheme, netloc, path, urlencode(query, safe="[]"), ""))
    except ValueError:  # not a URL at all: keep nothing but the key-free text
        return redact(url)


class Histogram:
    """Exact distribution of integer values in memory bounded by the number of distinct values.

    Percentiles use numpy's default (linear interpolation between order statistics), so
    they equal ``numpy.quantile(values, q)`` on the full list of values.
    """

    __slots__ = ("_counts", "count", "total")

    def __init__(self) -> None:
        self._counts: Counter[int] = Counter()
        self.count = 0
        self.total = 0

    def add(self, value: int) -> None:
        """Record one value."""
        self._counts[value] += 1
        self.count += 1
        self.total += value

    def update(self, values: Sequence[int]) -> None:
        """Record many values."""
        self._counts.update(values)
        self.count += len(values)
        self.total += sum(values)

    def merge(self, other: Histogram) -> None:
        """Add every value recorded by ``other``."""
        self._counts.update(other._counts)
        self.count += other.count
        self.total += other.total

    def _order_stat(self, sorted_items: list[tuple[int, int]], k: int) -> int:
        seen = 0
        for value, n in sorted_items:
            seen += n
            if k < seen:
                return value
        raise IndexError(k)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0 <= q <= 1), linear interpolation as numpy does by default."""
        if not self.count:
            raise ValueError("no values")
        items = sorted(self._counts.items())
        h = (self.count - 1) * q
        lo = int(h)
        v_lo = self._order_stat(items, lo)
        if lo + 1 >= self.count:
            return float(v_lo)
        v_hi = self._order_stat(items, lo + 1)
        return v_lo + (h - lo) * (v_hi - v_lo)

    @property
    def min(self) -> int:
        """Smallest value."""
        return min(self._counts)

    @property
    def max(self) -> int:
        """Largest value."""
        return max(self._counts)

    @property
    def mean(self) -> float:
        """Arithmetic mean."""
        return self.total / self.count


SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]”’]*\s+(?=[\"'(\[“‘]?[A-Z0-9])")
"""Where one sentence ends and the next begins: ``.``/``!``/``?``, closing quotes, space, a
capital or a digit (optionally after an opening quote). ``SENTENCE_BREAK.split(text)``."""


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """Text of the last user message (text parts joined); empty if there is none."""
    for m in reversed(messages):
        if m.get("role") != "user":
            continue
        content = m.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(
                str(p.get("text", ""))
                for p in content
                if isinstance(p, Mapping) and p.get("type") == "text"
            )
        return ""
    return ""


_NOT_WORD = re.compile(r"[^\w\s]|_")
ARTICLES = frozenset(("a", "an", "the"))
"""Words SQuAD-style answer normalization drops."""


def plain_words(text: str) -> list[str]:
    """Words of ``text``: NFKC, case-folded, punctuation removed (``"don't"`` -> ``"dont"``)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return _NOT_WORD.sub("", text.casefold()).split()


def answer_words(text: str) -> list[str]:
    """:func:`plain_words` without articles: the tokens of SQuAD token F1."""
    return [w for w in plain_words(text) if w not in ARTICLES]


def overlap_f1(output: Sequence[str], reference: Sequence[str]) -> float:
    """F1 of the multiset overlap of two token lists (1.0 when both are empty)."""
    if not output or not reference:
        return float(not output and not reference)
    same = sum((Counter(output) & Counter(reference)).values())
    if not same:
        return 0.0
    precision, recall = same / len(output), same / len(reference)
    return 2 * precision * recall / (precision + recall)
