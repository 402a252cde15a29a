"""Scoring functions: one answer against one reference (or alone), each a number in 0-1.

Exact match, normalized containment, token F1, ROUGE-L, stop-marker compliance and
refusal detection; the scorers of :mod:`._scorers` wrap them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

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
