"""Text keys, hashes and exact streaming statistics shared by dataset building and validation."""

from __future__ import annotations

import hashlib
import unicodedata
from collections import Counter
from collections.abc import Sequence

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
