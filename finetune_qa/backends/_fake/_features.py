"""The offline fine-tune's text features: words, stems, kinds of fact, TF-IDF vectors.

What :mod:`._answers` matches a question against its training pairs with, and what its
classifier scores a gate's input with. Saved offline state names ``_TfIdf`` and the two
feature functions, so they keep their names.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from finetune_qa._text import question_key

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")

_STOPWORDS = frozenset(
    """
    a about above after again all also am an and any anyone anything are as at be been
    being but by can could describe did do does doing done explain for from get give got
    had has have having he her here hers him his how i if in into is it its itself just
    know let like may me mean means might more most much must my no not now of on once
    only or our ours out over please really say she should so some something tell than
    that the their theirs them then there these they this those to too under until up us
    very want was we were what whats when where which while who whom whose why will with
    would you your yours
    what's who's where's when's how's there's it's i'm i'd i've i'll you're we're they're
    don't doesn't didn't isn't aren't can't won't wouldn't
    thanks thank hello hi hey cheers
    """.split()  # noqa: SIM905 - a word list reads better as text
)


# ------------------------------------------------------------------------- text features


def _words(text: str) -> list[str]:
    return _WORD.findall(question_key(text))


def _content(words: Iterable[str]) -> list[str]:
    return [w for w in words if w not in _STOPWORDS]


def _stem(word: str) -> str:
    # Deliberately small: "makes"/"make", "cancelled"/"cancel", "employees"/"employee",
    # "founders"/"founded", "quickly"/"quick", "charities"/"charity".
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-2] if word.endswith(("ches", "shes", "xes", "sses")) else word[:-1]
    for suffix in ("ing", "ed", "er", "ly"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiousl":
                word = word[:-1]  # "stopp" -> "stop"
            break
    return word


# What kind of fact a question asks for, and what kind an answer holds: "how much" and
# "€12", "where" and "Sleepstraat 42", "when" and "2011". A fine-tune learns these
# associations; the lookup gets them as features shared by question and answer.
_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern, re.IGNORECASE))
    for kind, pattern in (
        (
            "money",
            r"\bhow much\b(?! time)|\b(?:price|prices|cost|costs|charge|fee|fees|pay)\b"
            r"|[€$£]\s?\d|\d\s?(?:euros?|dollars?|pounds?)\b",
        ),
        (
            "place",
            r"\bwhere\b|\b(?:address|located|location|based|city|street)\b"
            r"|\b\w+(?:straat|street|road|laan|weg|avenue)\b|\b\d{4,5} [A-Z][a-z]+",
        ),
        (
            "time",
            r"\bwhen\b|\bwhat (?:time|year|day)s?\b|\bwhich days?\b|\b(?:open|opening|hours)\b"
            r"|\b(?:19|20)\d\d\b|\b\d{1,2}:\d\d\b"
            r"|\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)s?\b",
        ),
        (
            "duration",
            r"\bhow long\b|\bhow (?:quickly|soon|often)\b"
            r"|\b\d+\s?(?:minutes?|hours?|days?|weeks?|months?|years?)\b"
            r"|\b(?:one|two|three|four|five|six|seven|ten|thirty)"
            r" (?:minutes?|hours?|days?|weeks?|months?)\b",
        ),
        (
            "count",
            r"\bhow many\b|\bnumber of\b|\b(?:at most|up to|at least) \d+\b"
            r"|\b\d+ (?!(?:minutes|hours|days|weeks|months|years)\b)[a-z-]+s\b",
        ),
        ("person", r"\bwho\b|\bfounded by\b|\b[A-Z][a-z]+ (?:[a-z]{2,3} )?[A-Z][a-z]+ and [A-Z]"),
    )
)


def _kinds(text: str) -> list[str]:
    return [kind for kind, pattern in _KINDS if pattern.search(text)]


# The question words that ask for one kind of fact: "how much is X" wants a price even
# when X's other words would suggest something else.
_ASKS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern, re.IGNORECASE))
    for kind, pattern in (
        ("money", r"^(?:how much\b(?! time)|what (?:does|do|will) .+ cost\b)"),
        ("place", r"^where\b"),
        ("time", r"^(?:when|what (?:time|year|day)s?|which days?|since when)\b"),
        ("duration", r"^how (?:long|quickly|soon)\b"),
        ("count", r"^how many\b"),
        ("person", r"^who\b|^(?:which|what) (?:\w+ )?(?:people|persons?)\b|\bnames? of\b"),
    )
)

# The values an answer states, by kind: what a question of that kind is answered with.
_VALUES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        ("money", r"[€$£]\s?\d|\d\s?(?:euros?|dollars?|pounds?|EUR|USD)\b|\d\s?%|\b[Ff]ree\b"),
        (
            "place",
            r"\b(?:in|at|from|near) (?:the )?[A-Z][a-z]+"
            r"|\b\w+(?:straat|street|road|laan|weg|avenue|square|plein)\b|\b\d{4,5} [A-Z][a-z]+",
        ),
        (
            "time",
            r"\b(?:19|20)\d\d\b|\b\d{1,2}[:.]\d\d\b|\b\d{1,2} ?[ap]\.?m\b"
            r"|\b(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)days?\b|\b(?:January|February|March"
            r"|April|May|June|July|August|September|October|November|December)\b"
            r"|\b(?:daily|weekly|monthly|yearly|every (?:day|week|month|year))\b",
        ),
        (
            "duration",
            r"(?i)\b(?:\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
            r"|fifteen|twenty|thirty|forty|sixty|ninety)[ -](?:working |business )?"
            r"(?:seconds?|minutes?|hours?|days?|weeks?|months?|years?)\b",
        ),
        (
            "count",
            r"(?i)\b\d+ (?!(?:seconds|minutes|hours|days|weeks|months|years)\b)[a-z-]+s\b"
            r"|\b(?:at most|up to|at least|maximum of|minimum of) \d+\b",
        ),
        ("person", r"\b[A-Z][a-z]+ (?:(?:de|van|von|da|di|le|la) )?[A-Z][a-z]+\b"),
    )
)

_KIND_MISMATCH = 0.6
"""Factor on the score of a fact that holds none of the kinds of fact a question asks for."""


def _values(answer: str) -> frozenset[str]:
    return frozenset(kind for kind, pattern in _VALUES if pattern.search(answer))


def _asked_kinds(question: str) -> frozenset[str]:
    text = " ".join(question.split())
    return frozenset(kind for kind, pattern in _ASKS if pattern.search(text))


def _features(text: str) -> Counter[str]:
    words = _content(_words(text))
    feats: Counter[str] = Counter("k:" + kind for kind in _kinds(text))
    stems = [_stem(w) for w in words]
    feats.update("w:" + s for s in stems)
    feats.update(f"b:{a} {b}" for a, b in itertools.pairwise(stems))
    for w in words:
        padded = f" {w} "
        feats.update("c:" + padded[i : i + 3] for i in range(len(padded) - 2))
    return feats


def _word_features(text: str) -> Counter[str]:
    # a classifier votes on words only: character 3-grams (or the kind of fact asked
    # for) shared by chance with one of many unrelated questions make noise, not evidence
    return Counter({t: n for t, n in _features(text).items() if t[:2] not in ("c:", "k:")})


class _TfIdf:
    """Sparse TF-IDF vectors with unit length, fitted on the trained questions."""

    def __init__(
        self, docs: Sequence[str], features: Callable[[str], Counter[str]] = _features
    ) -> None:
        self._features = features
        feats = [features(d) for d in docs]
        df: Counter[str] = Counter()
        for f in feats:
            df.update(f.keys())
        n = len(docs)
        self._idf = {t: math.log((1 + n) / (1 + c)) + 1.0 for t, c in df.items()}
        self._unseen = math.log(1 + n) + 1.0
        self.vectors = [self._weigh(f) for f in feats]
        # inverted index: feature -> [(doc, weight)], so a query touches only sharing docs
        self._index: dict[str, list[tuple[int, float]]] = {}
        for i, vec in enumerate(self.vectors):
            for t, w in vec.items():
                self._index.setdefault(t, []).append((i, w))

    def _weigh(self, feats: Counter[str]) -> dict[str, float]:
        vec = {t: (1.0 + math.log(c)) * self._idf.get(t, self._unseen) for t, c in feats.items()}
        norm = math.sqrt(sum(w * w for w in vec.values()))
        return {t: w / norm for t, w in vec.items()} if norm else {}

    def similarities(self, text: str) -> tuple[dict[int, float], float]:
        """Cosine similarity to every document sharing a feature, and the unseen share.

        The unseen share is the part of the query's squared (unit) length made of
        features no document has: 0.0 for familiar text, 1.0 for entirely new words
        (and for text without content words at all).
        """
        query = self._weigh(self._features(text))
        scores: dict[int, float] = {}
        unseen = 0.0 if query else 1.0
        for t, qw in query.items():
            postings = self._index.get(t)
            if postings is None:
                unseen += qw * qw
                continue
            for i, dw in postings:
                scores[i] = scores.get(i, 0.0) + qw * dw
        return scores, min(1.0, unseen)

    def knows(self, feature: str) -> bool:
        """Whether any document has ``feature``."""
        return feature in self._idf

    def coverage(self, text: str) -> dict[int, float]:
        """Share of the query's squared (unit) length each document holds.

        How much of the question a long document (many wordings and an answer) accounts for.
        """
        query = self._weigh(self._features(text))
        out: dict[int, float] = {}
        for t, qw in query.items():
            for i, _dw in self._index.get(t, ()):
                out[i] = out.get(i, 0.0) + qw * qw
        return out

    def nearest(self, text: str) -> tuple[int, float] | None:
        """Index and cosine similarity of the closest document, or None if nothing is shared."""
        scores, _ = self.similarities(text)
        if not scores:
            return None
        # highest score; the earliest trained question wins ties (deterministic)
        best = min(scores, key=lambda i: (-scores[i], i))
        return best, scores[best]
