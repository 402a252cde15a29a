"""Offline base-model behaviour for the library's generate prompts (see _tasks).

A base model asked by :func:`finetune_qa.generation.build_prompt` for N question/answer
pairs about a page excerpt answers here, deterministically, in exactly the layout the
prompt asks for (``Questions:`` and a numbered list, ``Answers:`` and a numbered list).
The pairs come from the excerpt's headings and sentences:

* a heading that is a question (an FAQ entry) is asked as is, answered by the first
  sentences under it;
* sentences of a few common shapes become questions answered by the sentence itself:
  ``The Pro plan costs $8 per month.`` -> ``What does the Pro plan cost?``;
  ``Lumen Notes is a note-taking app.`` -> ``What is Lumen Notes?``;
  ``Sync is end-to-end encrypted.`` -> ``Is sync end-to-end encrypted?``;
  ``You can export your notes as PDF.`` -> ``Can I export my notes as PDF?``;
  ``To reset your password, open ...`` -> ``How do I reset my password?``;
  ``There is a free plan ...`` -> ``Is there a free plan ...?``;
* a heading gives ``What is <heading>?`` answered by the first sentences of its section,
  or, over a list, ``What are the <heading>?`` answered by the list's items.

Sections are visited in turn so the pairs cover the whole excerpt; fewer than N pairs
come back when the excerpt holds fewer facts, as the prompt allows. The sampling
``variant`` is ignored: the same excerpt always gives the same pairs.

This module must not import :mod:`finetune_qa.generation` (backends sit below it);
:data:`PROMPT_MARKER` duplicates its ``GENERATION_MARKER``, and a test keeps them equal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from finetune_qa._text import SENTENCE_BREAK, last_user_text

__all__ = ["PROMPT_MARKER", "answer", "pairs_for_excerpt"]

PROMPT_MARKER = "question/answer pairs for a website chatbot from the excerpt below"
"""The phrase that marks a generation prompt (equal to generation.GENERATION_MARKER)."""

_COUNT = re.compile(r"Write (\d{1,3}) " + re.escape(PROMPT_MARKER))
_EXCERPT = re.compile(r"<excerpt>\n(.*?)\n?</excerpt>", re.DOTALL)
_SECTION = re.compile(r"^Section: (.*)$", re.MULTILINE)
_HEADING = re.compile(r"^(#{1,6}) (.+)$")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_LOWER_WORDS = _words("the a an your our every each all any some most many no new")
_PRONOUNS = _words(
    "it this that these those they there here we he she i if when while after before for "
    "in on at by with from as once"
)
_VERBS = (
    "costs|cost|includes|include|offers|offer|supports|support|adds|add|provides|provide|"
    "requires|require|stores|store|keeps|keep|runs on|run on|works with|work with|"
    "lets you|let you|allows you to|allow you to|uses|use|has|have|comes with|come with|"
    "syncs|sync|encrypts|encrypt|exports|export|imports|import|gives you|give you|covers|"
    "cover|contains|contain|sends|send|accepts|accept|connects to|connect to|answers|answer|"
    "creates|create|shows|show|saves|save|checks|check|means|mean|replies|reply|handles|handle"
)
_SUBJECT = r"(?P<subj>[A-Z][\w'’&.+-]*(?: [\w'’&.+-]+){0,5}?)"
_VERB_RULE = re.compile(rf"^{_SUBJECT} (?P<verb>{_VERBS}) (?P<rest>.+)$")
_BE_RULE = re.compile(rf"^{_SUBJECT} (?P<verb>is|are) (?P<rest>.+)$")
_MODAL_RULE = re.compile(rf"^{_SUBJECT} (?P<verb>can|cannot|can't|will|won't) (?P<rest>.+)$")
_YOU_CAN = re.compile(r"^You (?:can|may) (?P<rest>.+)$")
_TO_DO = re.compile(r"^To (?P<rest>[^,]{3,80}), .+$")
_THERE = re.compile(r"^There (?P<verb>is|are) (?P<rest>.+)$")
_DEFINITE = re.compile(r"^(?:a|an|the|one of|our|your)\b")
_ROW = re.compile(r"^([A-Z][\w ]{0,20}): ([^;]{1,40}); .+$")
_NOT_A_TOPIC = _words(
    "about other more next related introducing welcome our your how why what when where "
    "who contact overview summary install installing setup sign get start use"
)
_IRREGULAR = {"has": "have", "lets you": "let me do", "allows you to": "allow me to do"}


def answer(messages: Sequence[Mapping[str, Any]], variant: int = 0) -> str | None:
    """The reply to a generate prompt, or None when messages is not one."""
    text = last_user_text(messages)
    if PROMPT_MARKER not in text:
        return None
    count = _COUNT.search(text)
    wanted = int(count[1]) if count else 5
    excerpt = _EXCERPT.search(text)
    section = _SECTION.search(text)
    context = section[1].split(" > ")[-1].strip() if section else ""
    pairs = pairs_for_excerpt(excerpt[1] if excerpt else "", wanted, context=context)
    questions = "\n".join(f"{i}. {q}" for i, (q, _) in enumerate(pairs, 1))
    answers = "\n".join(f"{i}. {a}" for i, (_, a) in enumerate(pairs, 1))
    return f"Questions:\n{questions}\nAnswers:\n{answers}"


@dataclass
class _Section:
    heading: str
    level: int
    paragraphs: list[list[str]] = field(default_factory=list)  # sentences per paragraph
    list_items: list[str] = field(default_factory=list)
    table_rows: list[str] = field(default_factory=list)
    first_is_list: bool = False


def _sections(excerpt: str, context: str) -> list[_Section]:
    sections = [_Section(context, 0)]
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            text = " ".join(paragraph)
            sections[-1].paragraphs.append(
                [s.strip() for s in SENTENCE_BREAK.split(text) if s.strip()]
            )
            paragraph.clear()

    for raw in excerpt.split("\n"):
        line = raw.strip()
        heading = _HEADING.match(line)
        if heading is not None:
            flush()
            sections.append(_Section(heading[2].strip(), len(heading[1])))
        elif not line:
            flush()
        elif _ROW.match(line):
            flush()
            sections[-1].table_rows.append(line)
        elif line.startswith("- "):
            flush()
            current = sections[-1]
            if not current.paragraphs and not current.list_items:
                current.first_is_list = True
            current.list_items.append(line[2:].strip())
        else:
            paragraph.append(line)
    flush()
    return [s for s in sections if s.paragraphs or s.list_items]


def _proper(word: str, excerpt: str) -> bool:
    """True when ``word`` reads as a name in the excerpt, so it keeps its capital.

    A name is written in capitals, or capitalized in the middle of a sentence, or followed
    by another capitalized word, or never written in lower case (outside addresses such
    as fernhill.app) and capitalized at least twice.
    """
    if not word[:1].isupper():
        return False
    if (word.isupper() and len(word) > 1) or any(c.isupper() for c in word[1:]):
        return True
    if word.lower() in _LOWER_WORDS:
        return False
    escaped = re.escape(word)
    if re.search(rf"[a-z0-9,;:(] {escaped}\b|\b{escaped} [A-Z0-9]", excerpt) is not None:
        return True  # capitalized mid-sentence, or the first word of a name ("Fernhill Tasks")
    lower = re.escape(word.lower())
    if re.search(rf"(?<![\w.@/-]){lower}(?![\w@/-]|\.\w)", excerpt) is not None:
        return False
    return len(re.findall(rf"\b{escaped}\b", excerpt)) >= 2


def _noun(phrase: str, excerpt: str) -> str:
    """A phrase as it reads inside a sentence: its first word lowercased unless a name."""
    first, _, rest = phrase.partition(" ")
    if not _proper(first, excerpt):
        first = first[:1].lower() + first[1:]
    return f"{first} {rest}".strip()


def _me(text: str) -> str:
    """The visitor's point of view: 'your' -> 'my', 'you' -> 'I', 'our' -> 'your'."""
    swaps = {"your": "my", "yours": "mine", "yourself": "myself", "you": "I", "our": "your"}
    return re.sub(
        r"\b(your|yours|yourself|you|our)\b",
        lambda m: swaps[m[1].lower()],
        text,
        flags=re.IGNORECASE,
    )


def _bare(sentence: str) -> str:
    return sentence.rstrip().rstrip(".!").rstrip()


def _question_for(sentence: str, excerpt: str) -> str | None:
    """A question the sentence answers, or None when it has none of the known shapes."""
    text = _bare(sentence)
    if text.endswith("?") or len(text) < 12:
        return None
    if m := _TO_DO.match(text):
        return f"How do I {_me(m['rest'])}?"
    if m := _YOU_CAN.match(text):
        return f"Can I {_me(m['rest'])}?"
    if m := _THERE.match(text):
        return f"{m['verb'].capitalize()} there {_me(m['rest'])}?"
    for rule in (_BE_RULE, _MODAL_RULE, _VERB_RULE):
        m = rule.match(text)
        if m is None:
            continue
        subject = m["subj"]
        first = subject.split(" ")[0].lower()
        if first in _PRONOUNS or first == "you":
            return None
        noun = _me(_noun(subject, excerpt))
        verb = m["verb"]
        rest = m["rest"]
        if len(subject.split(" ")) == 1 and first in _LOWER_WORDS:
            return None  # "The" alone is no subject
        if rule is _BE_RULE:
            if _DEFINITE.match(rest):
                return f"What {verb} {noun}?"
            return f"{verb.capitalize()} {noun} {_me(_clause(rest))}?"
        if rule is _MODAL_RULE:
            modal = {"cannot": "can", "can't": "can", "won't": "will"}.get(verb, verb)
            return f"{modal.capitalize()} {noun} {_me(_clause(rest))}?"
        plural = not verb.split(" ")[0].endswith("s")
        if plural and not subject.endswith("s"):
            return None  # "The new sync engine": 'sync' is a noun there, not the verb
        base = _IRREGULAR.get(verb)
        if base is None:
            words = verb.split(" ")
            head = words[0]
            if not plural:
                head = head[:-2] if head.endswith(("ches", "shes", "sses")) else head[:-1]
            base = " ".join([head, *words[1:]])
        if verb.startswith("give"):
            base = "give me"
        return f"What {'do' if plural else 'does'} {noun} {base}?"
    return None


_CLAUSE_END = re.compile(r",? and (?:has|have|is|are|never|does|do|can|will)\b|, and |; ")


def _clause(rest: str) -> str:
    """The first clause of a sentence's remainder, for a yes/no question."""
    m = _CLAUSE_END.search(rest)
    return rest[: m.start()] if m else rest


def _summary(sentences: list[str]) -> str:
    """The first sentence, or the first two when the first is short."""
    if len(sentences) > 1 and len(sentences[0]) < 80:
        return f"{sentences[0]} {sentences[1]}"
    return sentences[0]


def _candidates(section: _Section, excerpt: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    heading = section.heading
    first = section.paragraphs[0] if section.paragraphs else []
    if heading.endswith("?") and (first or section.list_items):
        answer_text = _summary(first) if first else "; ".join(section.list_items)
        out.append((heading, answer_text))
    for paragraph in section.paragraphs:
        for sentence in paragraph:
            question = _question_for(sentence, excerpt)
            if question is not None:
                out.append((question, sentence))
    for item in section.list_items:
        question = _question_for(item, excerpt)
        if question is not None:
            out.append((question, item))
    words = heading.split()
    if (
        words
        and not heading.endswith("?")
        and len(words) <= 5
        and words[0].lower() not in _NOT_A_TOPIC
        and not words[0].lower().endswith("ing")
    ):
        name = _noun(heading, excerpt)
        if section.first_is_list and section.list_items:
            items = [_bare(i) for i in section.list_items]
            out.append((f"What are the {name}?", "; ".join(items) + "."))
        elif first:
            verb = "are" if words[-1].endswith("s") and not words[-1].endswith("ss") else "is"
            out.append((f"What {verb} {name}?", _summary(first)))
    for row in section.table_rows:
        m = _ROW.match(row)
        if m is not None:
            out.append((f"What are the details of the {m[2]} {m[1].lower()}?", row))
    return out


def pairs_for_excerpt(excerpt: str, wanted: int, *, context: str = "") -> list[tuple[str, str]]:
    """Up to ``wanted`` distinct (question, answer) pairs from an excerpt's Markdown.

    Args:
        excerpt: the chunk's cleaned Markdown, headings marked with #.
        wanted: the number of pairs asked for.
        context: the heading the excerpt sits under, for text before its first heading.
    """
    body = re.sub(r"^#{1,6} .*$", "", excerpt, flags=re.MULTILINE)  # names: judged on prose
    per_section = [_candidates(s, body) for s in _sections(excerpt, context)]
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    depth = 0
    while len(pairs) < wanted and any(depth < len(c) for c in per_section):
        for candidates in per_section:
            if depth < len(candidates) and len(pairs) < wanted:
                question, text = candidates[depth]
                question = " ".join(question.split())
                key = question.casefold().rstrip("?").strip()
                if key not in seen:
                    seen.add(key)
                    pairs.append((question, " ".join(text.split())))
        depth += 1
    return pairs
