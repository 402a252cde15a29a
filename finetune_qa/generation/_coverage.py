"""Fact coverage: which sentences of a page state a fact, and which of them no pair covers.

A sentence is **fact-bearing** when it states something a visitor could ask about: a
number, a price or a percentage, a duration, a date or a day, a time of day, a name or a
place (a capitalized word inside the sentence), a rule (``only``, ``must``, ``free``,
``refund``, ``cancel``, ...), or a step (an item of a list). Table rows count, one each.

A pair **covers** a sentence when its answer states the sentence's *fact terms* (its
numbers, number words, days and months, and names, compared case-insensitively, numbers
by their digits so ``€6`` matches ``6 euros``) and the pair shares at least half of the
sentence's content words. Terms spread over several pairs of the same page count too,
when those pairs together share half of the content words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from finetune_qa._text import SENTENCE_BREAK
from finetune_qa.generation._models import _STRICT, Block, Chunk, MarkdownPage


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_WORD = re.compile(r"[A-Za-z][\w'’-]*")
_NUMBER_WORDS = _words(
    "one two three four five six seven eight nine ten eleven twelve fifteen twenty thirty "
    "forty fifty hundred thousand million twice half dozen"
)
_TIME_WORDS = _words(
    "monday tuesday wednesday thursday friday saturday sunday mondays tuesdays wednesdays "
    "thursdays fridays saturdays sundays january february march april may june july august "
    "september october november december daily weekly monthly yearly annually hourly "
    "weekend weekends noon midnight"
)
_POLICY = re.compile(
    r"\b(?:must|only|never|not|no|free|refunds?|refunded|cancel\w*|discounts?|fees?|"
    r"charged?|requires?|required|allowed|welcome|includes?|included|available|valid|"
    r"within|at least|at most|up to|warranty|guarantee\w*|accepts?)\b",
    re.IGNORECASE,
)
_STOP = _words(
    "the a an and or but of to in on at by for with from as is are was were be been it its "
    "this that these those there their they them you your our we us can will may any all "
    "each every some more most than then also into over under about which who what when "
    "where how why has have had does do did not no so if such per own"
)
_MIN_WORDS = 3
_MIN_SHARE = 0.5


class FactSentence(BaseModel):
    """A fact-bearing sentence of a page, with where it is."""

    model_config = _STRICT

    file: str = Field(description="The Markdown file.")
    line: int = Field(
        ge=1,
        description="1-based line where the sentence's paragraph, list item or table row starts.",
    )
    chunk: int = Field(ge=0, description="Index of the chunk that holds it.")
    text: str = Field(description="The sentence, as cleaned.")

    def render(self) -> str:
        """Short ``file:line: sentence`` form."""
        return f"{self.file}:{self.line}: {self.text}"


class CoverageReport(BaseModel):
    """How many fact-bearing sentences the generated pairs cover, and which they miss.

    ``sentences`` counts the fact-bearing sentences of the pages read (see
    :func:`fact_sentences`), ``covered`` those that at least one kept pair states, and
    ``uncovered`` lists the others with their file and line, so the missing facts can be
    asked for again (or the page rewritten).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sentences: int = Field(default=0, ge=0, description="Fact-bearing sentences found.")
    covered: int = Field(default=0, ge=0, description="Of those, covered by a kept pair.")
    uncovered: list[FactSentence] = Field(
        default_factory=list, description="The fact-bearing sentences no kept pair covers."
    )

    @property
    def ratio(self) -> float:
        """``covered / sentences`` (1.0 when there is no fact-bearing sentence)."""
        return self.covered / self.sentences if self.sentences else 1.0

    def to_text(self, *, limit: int = 10) -> str:
        """The coverage line, then up to ``limit`` uncovered sentences as ``file:line: text``."""
        lines = [
            f"  fact coverage: {self.covered} of {self.sentences} fact-bearing sentences "
            f"({self.ratio:.0%})"
        ]
        if self.uncovered:
            lines.append(f"  uncovered ({len(self.uncovered)}):")
            lines.extend(f"    {s.render()}" for s in self.uncovered[:limit])
            if len(self.uncovered) > limit:
                lines.append(f"    ... and {len(self.uncovered) - limit} more")
        return "\n".join(lines)


def _split(block: Block) -> list[tuple[int, str]]:
    """The block's sentences, each with the file line it starts on."""
    if block.kind == "table":
        rows = block.text.split("\n")
        return [(block.start_line + 2 + k, row) for k, row in enumerate(rows)]
    out: list[tuple[int, str]] = []
    cursor = 0
    for unit in block.text.split("\n"):
        for sentence in SENTENCE_BREAK.split(unit):
            if sentence.strip():
                at = block.text.find(sentence, cursor)
                cursor = max(cursor, at)
                out.append((block.line_of(max(at, 0)), sentence.strip()))
    return out


def _names(sentence: str) -> list[str]:
    """Capitalized words after the first: names and places."""
    words = _WORD.findall(sentence.removeprefix("- "))
    return [w for w in words[1:] if w[:1].isupper() and w != "I"]


def is_fact_bearing(sentence: str) -> bool:
    """Whether a sentence states a fact (see the module docs): a number, day, name, rule, step.

    Example:
        >>> is_fact_bearing("The basic tune-up costs €45 and takes about one hour.")
        True
        >>> is_fact_bearing("We love bikes.")
        False
    """
    if len(_WORD.findall(sentence)) < _MIN_WORDS:
        return False
    if sentence.startswith("- "):
        return True  # a step or an item of a list
    words = {w.casefold() for w in _WORD.findall(sentence)}
    return bool(
        _NUMBER.search(sentence)
        or words & (_NUMBER_WORDS | _TIME_WORDS)
        or _names(sentence)
        or _POLICY.search(sentence)
    )


def fact_sentences(page: MarkdownPage, chunks: Sequence[Chunk]) -> list[list[FactSentence]]:
    """The fact-bearing sentences of each of a page's chunks, in page order.

    Args:
        page: the cleaned page.
        chunks: its chunks (:func:`~finetune_qa.generation.chunk_page`).

    Returns:
        One list per chunk, in the order of ``chunks``.
    """
    out: list[list[FactSentence]] = [[] for _ in chunks]
    texts = [" ".join(c.text.split()) for c in chunks]
    for block in page.blocks:
        if block.kind == "heading":
            continue
        for line, raw in _split(block):
            text = raw.removeprefix("- ")
            if not is_fact_bearing(raw):
                continue
            flat = " ".join(text.split())
            for k, chunk in enumerate(chunks):
                if chunk.start_line <= line <= chunk.end_line and flat in texts[k]:
                    out[k].append(
                        FactSentence(file=page.path, line=line, chunk=chunk.index, text=text)
                    )
                    break
    return out


def _terms(text: str) -> set[str]:
    """The fact terms of a text: numbers (digits only), number and time words, names."""
    terms = {n.replace(",", "") for n in _NUMBER.findall(text)}
    words = [w.casefold() for w in _WORD.findall(text)]
    terms.update(w for w in words if w in _NUMBER_WORDS or w in _TIME_WORDS)
    terms.update(w.casefold() for w in _names(text))
    return terms


def _all_terms(text: str) -> set[str]:
    """Every word and number of a text, lower-cased (what a sentence's terms are found in)."""
    found = {n.replace(",", "") for n in _NUMBER.findall(text)}
    found.update(w.casefold() for w in _WORD.findall(text))
    return found


def _content(text: str) -> set[str]:
    words = {w.casefold() for w in _WORD.findall(text)}
    return {w for w in words if len(w) > 2 and w not in _STOP} | {
        n.replace(",", "") for n in _NUMBER.findall(text)
    }


def covers(sentence: str, pairs: Iterable[tuple[str, str]]) -> bool:
    """Whether the ``(question, answer)`` pairs state the sentence's fact (see the module docs).

    Example:
        >>> covers("Membership costs €30 per year.",
        ...        [("How much is membership?", "Membership is 30 euros a year.")])
        True
        >>> covers("Membership costs €30 per year.", [("Who founded it?", "Ana, in 2011.")])
        False
    """
    terms = _terms(sentence)
    content = _content(sentence)
    pairs = list(pairs)

    def shares(texts: Sequence[str]) -> bool:
        if not content:
            return True
        found = set().union(*(_content(t) for t in texts))
        return len(content & found) >= _MIN_SHARE * len(content)

    helping: list[str] = []
    for question, answer in pairs:
        stated = _all_terms(answer)
        if terms <= stated and shares([question, answer]):
            return True
        if terms & stated:
            helping.extend((question, answer))
    if len(terms) < 2 or not helping:
        return False
    together = set().union(*(_all_terms(t) for t in helping[1::2]))
    return terms <= together and shares(helping)


def coverage(
    facts: Sequence[FactSentence], pairs: Iterable[tuple[str, str, str]]
) -> CoverageReport:
    """The coverage of ``facts`` by ``(file, question, answer)`` pairs of the same file."""
    by_file: dict[str, list[tuple[str, str]]] = {}
    for file, question, answer in pairs:
        by_file.setdefault(file, []).append((question, answer))
    uncovered = [f for f in facts if not covers(f.text, by_file.get(f.file, []))]
    return CoverageReport(
        sentences=len(facts), covered=len(facts) - len(uncovered), uncovered=uncovered
    )
