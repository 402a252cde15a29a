"""Scoring functions: one answer against one reference (or alone), each a number in 0-1.

Exact match, normalized containment, token F1, ROUGE-L, stop-marker compliance and
refusal detection; the scorers of :mod:`._scorers` wrap them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence

from finetune_qa._text import ARTICLES, overlap_f1, plain_words
from finetune_qa.config import DEFAULT_STOP
from finetune_qa.evaluation._banks import DEFAULT_REFUSAL_PHRASES


def _strip_markers(text: str, markers: Sequence[str]) -> str:
    for marker in markers:
        if marker:
            text = text.replace(marker, " ")
    return text


def _plain(text: str, markers: Sequence[str] = (DEFAULT_STOP,)) -> list[str]:
    """Words of ``text``: NFKC, case-folded, stop markers and punctuation removed."""
    return plain_words(_strip_markers(text, markers))


def normalize_answer(text: str, *, stop: str | Sequence[str] | None = DEFAULT_STOP) -> str:
    """SQuAD-style normal form: case-folded, punctuation and articles removed, one space.

    Args:
        text: an answer.
        stop: stop marker(s) to remove first (``None``: none).

    Example:
        >>> normalize_answer("The Pro plan: 8 dollars! **STOP**")
        'pro plan 8 dollars'
    """
    markers = _markers(stop)
    return " ".join(w for w in _plain(text, markers) if w not in ARTICLES)


def _markers(stop: str | Sequence[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(stop)


def exact_match(output: str, reference: str) -> float:
    """1.0 when the output is the reference, surrounding white space aside; else 0.0.

    Example:
        >>> exact_match(" Yes, it is. ", "Yes, it is."), exact_match("yes, it is.", "Yes, it is.")
        (1.0, 0.0)
    """
    return float(output.strip() == reference.strip())


def normalized_contains(
    output: str, reference: str, *, stop: str | Sequence[str] | None = DEFAULT_STOP
) -> float:
    """1.0 when the reference's words appear, in order and together, in the output.

    Case, spacing, punctuation and the stop marker are ignored; whole words only.

    Example:
        >>> normalized_contains("Sure! It costs €5 per month.", "it costs €5 per month")
        1.0
    """
    markers = _markers(stop)
    ref = " ".join(_plain(reference, markers))
    out = " ".join(_plain(output, markers))
    if not ref:
        return float(not out)
    return float(f" {ref} " in f" {out} ")


def token_f1(output: str, reference: str) -> float:
    """SQuAD token F1 of the output against the reference (see :func:`normalize_answer`).

    Example:
        >>> round(token_f1("Lumen Pro costs 5 euros", "Lumen Pro costs €5 per month"), 4)
        0.7273
    """
    return overlap_f1(normalize_answer(output).split(), normalize_answer(reference).split())


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(output: str, reference: str) -> float:
    """ROUGE-L F-measure: longest common subsequence of words, F1 of its precision and recall.

    Words are case-folded with punctuation and the stop marker removed (articles kept).

    Example:
        >>> round(rouge_l("the cat was under the bed", "the cat was found under the bed"), 4)
        0.9231
    """
    out, ref = _plain(output), _plain(reference)
    if not out or not ref:
        return float(out == ref)
    common = _lcs(out, ref)
    if not common:
        return 0.0
    precision, recall = common / len(out), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def stop_compliance(raw: str, *, markers: str | Sequence[str] = DEFAULT_STOP) -> float:
    """1.0 when the model emitted its stop marker in ``raw``; else 0.0.

    ``raw`` must be the output of a request sent *without* the stop sequence: an API
    that is sent ``stop`` cuts the marker off and reports ``finish_reason == "stop"``
    for a natural end just the same, so a model that never learnt the marker would
    pass. :meth:`EvalSuite.run` asks that way and cuts at the marker itself.

    Example:
        >>> stop_compliance("Yes. **STOP**"), stop_compliance("Yes.")
        (1.0, 0.0)
    """
    return float(any(m and m in raw for m in _markers(markers)))


# Courtesy words a refusal may open with before saying that it declines (contractions
# expanded, see _refusal_words).
_REFUSAL_OPENERS: tuple[tuple[str, ...], ...] = tuple(
    tuple(o.split())
    for o in (
        "i am very sorry",
        "i am sorry",
        "very sorry",
        "sorry",
        "unfortunately",
        "i apologize",
        "i apologise",
        "my apologies",
        "apologies",
        "i am afraid",
        "afraid",
        "but",
        "however",
        "hmm",
        "well",
        "oh",
        "no",
    )
)

_CONTRACTIONS = {
    "im": "i am",
    "cant": "cannot",
    "dont": "do not",
    "doesnt": "does not",
    "isnt": "is not",
    "wont": "will not",
    "thats": "that is",
    "ive": "i have",
}


def _refusal_words(text: str) -> list[str]:
    """Plain words with the usual contractions expanded ("I'm" and "I am" alike)."""
    return " ".join(_CONTRACTIONS.get(w, w) for w in _plain(text)).split()


def _openings(words: list[str]) -> Iterator[str]:
    """The answer's words, then again after each courtesy word it opens with."""
    while True:
        yield " ".join(words) + " "
        opener = next((o for o in _REFUSAL_OPENERS if tuple(words[: len(o)]) == o), None)
        if opener is None:
            return
        words = words[len(opener) :]


def is_refusal(
    output: str,
    *,
    refusal_texts: Sequence[str] = (),
    phrases: Sequence[str] = DEFAULT_REFUSAL_PHRASES,
) -> bool:
    """Whether an answer declines to answer (an empty answer counts as one).

    A generic phrase counts only where the answer *starts* with it, after courtesy words
    ("Sorry,", "Unfortunately,", "I'm afraid", ...): a normal answer that mentions "I don't
    know" or "outside the scope of our warranty" further on is not a refusal. Your own
    ``refusal_texts`` count anywhere in the answer. Both are matched ignoring case,
    spacing and punctuation, on whole words.

    Args:
        output: the answer.
        refusal_texts: refusals your bot is configured to give (e.g. a guarded model's
            refusal text); matched anywhere in the answer.
        phrases: generic refusal phrases; matched at the start of the answer.

    Example:
        >>> is_refusal("Sorry, I can only answer questions about Lumen Notes.")
        True
        >>> is_refusal("Click 'I do not know my password' on the sign-in page.")
        False
    """
    words = _refusal_words(output)
    if not words:
        return True
    padded = f" {' '.join(words)} "
    for text in refusal_texts:
        own = " ".join(_refusal_words(text))
        if own and f" {own} " in padded:
            return True
    generic = [f"{g} " for g in (" ".join(_refusal_words(p)) for p in phrases) if g]
    return any(o.startswith(g) for o in _openings(words) for g in generic)


# -------------------------------------------------------------------- grounded answers

GROUNDED_THRESHOLD = 0.6
"""Share of a fact's weighted content an answer must state (see :func:`grounded_overlap`)."""

# Words that carry no fact: function words, question words, auxiliaries, pronouns.
_FUNCTION_WORDS_TEXT = """
    a an the and or but nor so yet if then than as of at by for from in into on onto to up
    down out over under with without about above below after before between through during
    per via within across against among around behind beyond near off since till until upon
    i me my mine we us our ours you your yours he him his she her hers it its they them
    their theirs this that these those there here who whom whose which what when where why
    how whatever whoever whichever is am are was were be been being do does did doing done
    have has had having can could may might must shall should will would ought not no yes
    also just only very too quite rather really still even ever all any some each every
    both either neither other another such own same more most much many few less least lot
    lots s t ll d m re ve get gets got getting let lets make makes made tell told know
    known say says said please thanks thank sure okay ok well oh hi hello
"""
_FUNCTION_WORDS = frozenset(_FUNCTION_WORDS_TEXT.split())
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_TOKEN = re.compile(rf"{_NUMBER.pattern}|{_WORD.pattern}")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_LINK = re.compile(r"\]\([^)]*\)|https?://\S+")
_PIECE_BREAK = re.compile(r"\n+|;\s+|(?<=[.!?])[\"')\]”’]*\s+(?=[\"'(\[“‘*_]?[A-Z0-9])")
_NUMBER_WEIGHT, _NAME_WEIGHT, _WORD_WEIGHT = 3.0, 2.0, 1.0
# what states a fact however long its sentence: a number; a name and a word; three words
_KEY_WEIGHT = 3.0
# a page sentence lighter than this says too little to tell a fact from a chance match
_PAGE_MIN_WEIGHT = 3.0


def _stem(word: str) -> str:
    """A word's plain form: case-folded, apostrophes out, a plural ``s`` off."""
    w = word.casefold().replace("'", "").replace("’", "")
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        w = w[:-1]
    return w


def _number(text: str) -> str:
    """One spelling of a number: ``1,200`` and ``1200`` alike, ``9:00`` as ``9:00``."""
    return _THOUSANDS.sub("", text).rstrip(".,:")


def _names(*texts: str) -> set[str]:
    """Words written with a capital inside a sentence (names, products, places)."""
    names: set[str] = set()
    for text in texts:
        for piece in _PIECE_BREAK.split(text):
            words = _WORD.findall(piece)
            for word in words[1:]:
                if word[:1].isupper() and word.casefold() not in _FUNCTION_WORDS:
                    names.add(_stem(word))
    return names


def _content(
    text: str, names: set[str], skip: frozenset[str] | set[str] = frozenset()
) -> dict[str, float]:
    """Content tokens of ``text`` with their weights: numbers 3, names 2, other words 1."""
    out: dict[str, float] = {}
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    for token in _TOKEN.findall(_LINK.sub(" ", _strip_markers(text, (DEFAULT_STOP,)))):
        if token[0].isdigit():
            key, weight = _number(token), _NUMBER_WEIGHT
        else:
            key = _stem(token)
            if token.casefold() in _FUNCTION_WORDS or key in _FUNCTION_WORDS or len(key) < 2:
                continue
            weight = _NAME_WEIGHT if key in names else _WORD_WEIGHT
        if key not in skip:
            out[key] = max(weight, out.get(key, 0.0))
    return out


def _pieces(text: str) -> list[str]:
    """The sentences (lines, clauses after ``;``) of a text, each a candidate fact."""
    return [p.strip() for p in _PIECE_BREAK.split(text) if p.strip()]


def _stated(
    candidates: Sequence[str],
    output: str,
    question: str | None,
    *,
    min_weight: float = 0.0,
) -> float | None:
    """The best share of a candidate fact the output states; None when none has content."""
    names = _names(*candidates, output, question or "")
    skip = set(_content(question, names)) if question else set()
    said = _content(output, names, skip)
    best: float | None = None
    for text in candidates:
        fact = _content(text, names, skip)
        total = sum(fact.values())
        if total <= 0 or total < min_weight:
            continue
        found = sum(w for k, w in fact.items() if k in said)
        share = 1.0 if found >= _KEY_WEIGHT else found / total
        best = share if best is None else max(best, share)
    return best


def grounded_overlap(output: str, reference: str, *, question: str | None = None) -> float:
    """How much of one fact of ``reference`` the output states, 0-1 (1.0: nothing to state).

    Each sentence of the reference (and the whole of it) is a candidate fact. Its content
    tokens are weighted, numbers and prices 3, names 2 (words written with a capital
    inside a sentence), other content words 1; function words, question words and, when
    ``question`` is given, the question's own words do not count (repeating the
    question states nothing). The score is the best candidate's weighted share found in
    the output, or 1.0 once the output holds 3 of a candidate's weight (a number; a name
    and a word; three words): a long sentence is stated by its key part. A reference with no
    content beyond the question scores 1.0.

    Args:
        output: the answer.
        reference: the expected answer (or a page's text).
        question: the question asked.

    Example:
        >>> filler = "Many people work at Lumenfield is a well-known topic. It is widely discussed."
        >>> round(grounded_overlap(filler, "Lumenfield has 42 employees."), 2)
        0.33
        >>> grounded_overlap("It has 42 employees.", "Lumenfield has 42 employees.")
        1.0
    """
    best = _stated([reference, *_pieces(reference)], output, question)
    return 1.0 if best is None else best


def states_fact(
    output: str,
    reference: str,
    *,
    question: str | None = None,
    threshold: float = GROUNDED_THRESHOLD,
) -> bool:
    """Whether the output states a fact of ``reference`` (:func:`grounded_overlap` >= threshold).

    Example:
        >>> ref = "Lumenfield has 42 employees."
        >>> states_fact("Many people work at Lumenfield is a well-known topic.", ref)
        False
        >>> states_fact("About 42 people (employees) work there.", ref)
        True
    """
    return grounded_overlap(output, reference, question=question) >= threshold


def states_page_fact(
    output: str,
    pages: Iterable[str],
    *,
    question: str | None = None,
    threshold: float = GROUNDED_THRESHOLD,
) -> bool:
    """Whether the output states a fact of any sentence of ``pages`` (the source texts).

    As :func:`states_fact`, over every sentence (or Markdown line) of the pages; a
    sentence with less content than a number or a name and a word is left out, since so
    little matches by chance.
    """
    candidates = [p for page in pages for p in _pieces(page)]
    best = _stated(candidates, output, question, min_weight=_PAGE_MIN_WEIGHT)
    return best is not None and best >= threshold


def contains_fact(output: str, facts: Iterable[str]) -> bool:
    """Whether the output contains one of ``facts`` (:func:`normalized_contains`, whole words).

    Example:
        >>> contains_fact("We have 42 employees in Leeds.", ["42 employees", "Leeds and Lisbon"])
        True
    """
    return any(normalized_contains(output, f) == 1.0 for f in facts if f.strip())
