"""Offline base-model behaviour for the library's generate prompts (see _tasks).

A base model asked by :func:`finetune_qa.generation.build_prompt` for N question/answer
pairs about a page excerpt answers here, deterministically, in exactly the layout the
prompt asks for (``Questions:`` and a numbered list, ``Answers:`` and a numbered list).
The pairs come from the excerpt's headings and sentences:

* a heading that is a question (an FAQ entry) is asked as is, answered by the first
  sentences under it;
* a sentence that states a fact is asked about the way a visitor would ask, answered by
  the sentence itself: ``X was founded in 2011 by A and B.`` -> ``Who founded X?``;
  ``The team has 24 people.`` -> ``How many people does the team have?``;
  ``The tune-up costs €45.`` -> ``How much does the tune-up cost?``;
  ``The full service takes 3 days.`` -> ``How long does the full service take?``;
  ``The workshop is at Sleepstraat 42.`` -> ``Where is the workshop?``;
  ``The counter is open Tuesday to Friday ...`` -> ``When is the counter open?``;
  ``Members get 15% off ...`` -> ``What discount do members get?``;
  ``If you book twice, ...`` -> ``What happens if I book twice?``;
  ``The feed updates every 15 minutes.`` -> ``How often does the feed update?``;
* sentences of other common shapes become questions answered by the sentence itself:
  ``Lumen Notes is a note-taking app.`` -> ``What is Lumen Notes?``;
  ``Sync is end-to-end encrypted.`` -> ``Is sync end-to-end encrypted?``;
  ``You can export your notes as PDF.`` -> ``Can I export my notes as PDF?``;
  ``To reset your password, open ...`` -> ``How do I reset my password?``;
  ``There is a free plan ...`` -> ``Is there a free plan ...?``;
* the steps under a "How to ..." heading give ``How do I ...?``, answered by the steps,
  and ``What is the first step to ...?`` for each;
  a table row with a price column gives ``How much does the <row> cost?``;
* any other sentence gives ``What should I know about <its subject>?``. A heading is
  never asked about as a topic ("What is careers?").

Sections are visited in turn so the pairs cover the whole excerpt; fewer than N pairs
come back when the excerpt holds fewer sentences, as the prompt allows. The sampling
``variant`` is ignored: the same excerpt always gives the same pairs.

This module must not import :mod:`finetune_qa.generation` (backends sit below it);
:data:`PROMPT_MARKER` duplicates its ``GENERATION_MARKER``, and a test keeps them equal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
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
            sections[-1].list_items.append(line[2:].strip())
        else:
            paragraph.append(line)
    flush()
    return [s for s in sections if s.paragraphs or s.list_items or s.table_rows]


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
    natural = _natural(text, excerpt)
    if natural is not None:
        return natural
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


# a subject: a capitalized word and up to six more, none of them a verb, pronoun or preposition
# that would show the subject has ended ("Membership starts on the day you pay")
_S = (
    r"(?P<subj>[A-Z][\w'’&.+-]*(?: (?!(?:on|at|from|to|by|when|if|you|your|we|our|they|it|is|"
    r"are|was|were|has|have|can|will|keep|keeps)\b)[\w'’&.+-]+){0,6}?)"
)
_UNIT = r"(?:minutes?|hours?|(?:working )?days?|weeks?|months?|years?)"
_NUM = r"(?:\d[\d,.]*|two|three|four|five|six|seven|eight|nine|ten|twelve|fifteen|twenty|thirty)"
_DAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)s?"
_MONEY = re.compile(r"[€$£] ?\d|\d ?(?:euros?|dollars?|pounds?)\b")
_WHEN = re.compile(rf"^(?:on |every |from \d|daily|weekly|monthly|{_DAY}|\d{{1,2}}:\d\d)")
_EVERY = re.compile(rf"^(?P<obj>.*?) ?\bevery (?:{_NUM} )?{_UNIT}\b")
_FOUNDED = re.compile(
    rf"^{_S} (?:was|were) (?P<verb>founded|started|set up|established|created)\b(?P<rest>.*)$"
)
_SINCE = re.compile(rf"^{_S} (?P<verb>is|are|has been|have been) (?P<what>.+?) since .+$")
_MADE_BY = re.compile(rf"^{_S} (?:is|are) (?:made|run|owned) by .+$")
_IF = re.compile(r"^If (?P<cond>[^,]{3,90}), .+$")
_ON_WHEN = re.compile(
    r"^(?P<prep>On|During|After|Before|In) (?P<when>[^,]+?),? (?P<subj>the [\w -]+?) "
    r"(?P<verb>is|are) (?P<rest>.+)$"
)
_PLEASE_BEFORE = re.compile(r"^Please (?P<verb>\w+) at least .+? before (?P<obj>.+)$")
_PLEASE = re.compile(r"^Please (?P<rest>.+)$")
_WE = re.compile(r"^We (?P<verb>[a-z]+) (?P<rest>.+)$")
_HAPPENS = re.compile(
    rf"^{_S} (?P<rel>that|who|which) (?P<clause>.+?) (?P<verb>is|are) "
    r"(?P<rest>(?:\w+ed|given|sent|kept|taken|shown|done|moved)\b.*)$"
)
_COST = re.compile(rf"^{_S} (?P<verb>costs?|pays?|charges?) .+$")
_OFF = re.compile(rf"^{_S} (?P<verb>gets?|receives?|pays?) \d+ ?% (?:off|less|discount)\b.*$")
_COUNTED = re.compile(
    rf"^{_S} (?P<verb>has|have|includes?|takes?|comes? with|employs?|offers?|lasts?|"
    rf"(?:is|are) made up of) (?:at most |up to |about |more than |over |around )?"
    rf"(?P<n>{_NUM}) (?P<noun>[a-z][\w-]*(?: [a-z][\w-]*){{0,2}})"
)
_WITHIN = re.compile(rf"^{_S} (?:is|are) (?:ready |done |\w+ed )?within {_NUM} {_UNIT}\b.*$")
_VALID_FOR = re.compile(
    rf"^{_S} (?P<verb>is|are) (?P<adj>valid|kept|stored|available|open) for {_NUM} {_UNIT}\b.*$"
)
_PLACE = re.compile(
    rf"^{_S} (?P<verb>is|are) (?P<part>based|located|stored|kept|hosted|held) in [A-Z].*$"
)
_AT = re.compile(rf"^{_S} (?:is|are) at [A-Z0-9].*$")
_WHERE_VERB = re.compile(
    rf"^{_S} (?P<verb>stops|meets|operates|works|lives|sits) (?:at|in) [A-Z].*$"
)
_QUICK = re.compile(
    rf"^{_S} (?P<verb>gets?|receives?|answers?|replies|reply|responds?) (?P<obj>.*?) ?within .+$"
)
_OPEN = re.compile(rf"^{_S} (?P<verb>is|are) (?P<state>open|closed)\b.*$")
_BE_WHEN = re.compile(rf"^{_S} (?P<verb>is|are) (?P<rest>.+)$")
_DOES = re.compile(rf"^{_S} (?P<verb>[a-z]+s|meet|work|open|close|run) (?P<rest>.+)$")
_NOUN_END = _words("and or of for in on per who that which with to a an the so but")
_UNIT_WORD = re.compile(rf"^{_UNIT}$")


def _subject(m: re.Match[str], excerpt: str) -> str | None:
    """The match's subject as it reads mid-sentence, or None for a pronoun."""
    subject = m["subj"]
    first = subject.split(" ")[0].lower()
    if first in _PRONOUNS or first == "you" or subject.lower() in _LOWER_WORDS:
        return None
    return _me(_noun(subject, excerpt))


def _base(verb: str) -> tuple[str, str]:
    """``(do or does, the verb's base form)`` for a verb as the sentence writes it."""
    head, _, tail = verb.partition(" ")
    if head in ("has", "have"):
        return ("does" if head == "has" else "do"), "have"
    if head.endswith("s") and not head.endswith("ss"):
        stem = head[:-2] if head.endswith(("ches", "shes", "sses")) else head[:-1]
        return "does", f"{stem} {tail}".strip()
    return "do", verb


def _natural(text: str, excerpt: str) -> str | None:
    """The question a visitor asks about a fact sentence (who, how many, how much, ...)."""
    if m := _IF.match(text):
        return f"What happens if {_me(m['cond'])}?"
    if m := _PLEASE_BEFORE.match(text):
        return f"How long before {_me(m['obj'])} should I {m['verb']}?"
    if m := _PLEASE.match(text):
        return f"Should I {_me(_clause(m['rest']))}?"
    if m := _WE.match(text):
        return f"Do you {_base(m['verb'])[1]} {_me(_clause(m['rest']))}?"
    if m := _ON_WHEN.match(text):
        state = m["rest"].split(" ")[0]
        if state in ("open", "closed"):
            return f"When {m['verb']} {m['subj']} {state} {m['prep'].lower()} {m['when']}?"
        if m["prep"] == "On":
            return f"What happens on {_me(m['when'])}?"
        return f"What happens to {_me(m['subj'])} {m['prep'].lower()} {_me(m['when'])}?"
    return _about_subject(text, excerpt)


def _about_subject(text: str, excerpt: str) -> str | None:
    """A wh-question about the subject of a sentence, chosen by what the sentence states."""
    for rule, ask in _RULES:
        m = rule.match(text)
        if m is None:
            continue
        subject = _subject(m, excerpt)
        if subject is None:
            return None
        question = ask(m, subject)
        if question is not None:
            return question
    return None


def _cost(m: re.Match[str], subject: str) -> str:
    do, base = _base(m["verb"])
    return f"How much {do} {subject} {'cost' if base.startswith('cost') else base}?"


def _since(verb: str, subject: str) -> str:
    if verb in ("is", "are"):
        return f"{verb} {subject}"
    aux = verb.split(" ")[0]
    return f"{aux} {subject} been"


def _how_many(m: re.Match[str], subject: str) -> str:
    words = []
    for word in m["noun"].split(" "):
        if word in _NOUN_END:
            break
        words.append(word)
    noun = " ".join(words) or m["noun"].split(" ")[0]
    verb = m["verb"]
    if _UNIT_WORD.match(noun) or noun.startswith("working"):
        do, base = _base(verb)
        return f"How long {do} {subject} {base}?"
    if verb.endswith("made up of"):
        return f"How many {noun} are in {subject}?"
    do, base = _base(verb)
    return f"How many {noun} {do} {subject} {base}?"


def _quick(m: re.Match[str], subject: str) -> str:
    do, base = _base(m["verb"])
    obj = f" {_me(m['obj'])}" if m["obj"] else ""
    return f"How quickly {do} {subject} {base}{obj}?"


def _be_when(m: re.Match[str], subject: str) -> str | None:
    rest = m["rest"]
    every = _EVERY.match(rest)
    if every is not None and every["obj"]:
        return f"How often {m['verb']} {subject} {_me(every['obj'].split(' and ')[0])}?"
    if _WHEN.match(rest):
        return f"When {m['verb']} {subject}?"
    return None


def _does_when(m: re.Match[str], subject: str) -> str | None:
    do, base = _base(m["verb"])
    rest = m["rest"]
    every = _EVERY.match(rest)
    if every is not None:
        obj = f" {_me(every['obj'])}" if every["obj"] else ""
        return f"How often {do} {subject} {base}{obj}?"
    if _WHEN.match(rest):
        return f"When {do} {subject} {base}?"
    return None


# the first rule that matches a sentence asks its question; the order matters
_RULES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str], str], str | None]], ...] = (
    (
        _FOUNDED,
        lambda m, s: f"Who founded {s}?" if " by " in m["rest"] else f"When was {s} {m['verb']}?",
    ),
    (_MADE_BY, lambda m, s: f"Who makes {s}?"),
    (_HAPPENS, lambda m, s: f"What happens to {s} {m['rel']} {_me(m['clause'])}?"),
    (_OFF, lambda m, s: f"What discount {_base(m['verb'])[0]} {s} get?"),
    (_COST, lambda m, s: _cost(m, s)),
    (_COUNTED, _how_many),
    (_WITHIN, lambda m, s: f"How long does {s} take?"),
    (_VALID_FOR, lambda m, s: f"How long {m['verb']} {s} {m['adj']}?"),
    (_SINCE, lambda m, s: f"Since when {_since(m['verb'], s)} {_me(m['what'])}?"),
    (_PLACE, lambda m, s: f"Where {m['verb']} {s} {m['part']}?"),
    (_AT, lambda m, s: f"Where is {s}?"),
    (_WHERE_VERB, lambda m, s: f"Where {_base(m['verb'])[0]} {s} {_base(m['verb'])[1]}?"),
    (_OPEN, lambda m, s: f"When {m['verb']} {s} {m['state']}?"),
    (_QUICK, lambda m, s: _quick(m, s)),
    (_BE_WHEN, lambda m, s: _be_when(m, s)),
    (_DOES, lambda m, s: _does_when(m, s)),
)


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


_HOW_TO = re.compile(r"^How to (?P<rest>.+?)\??$", re.IGNORECASE)
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")
_PRICE_COLUMN = re.compile(r"(?:^|; )(?:Price|Cost|Fee|Rate)s?: ")


def _candidates(section: _Section, excerpt: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    heading = section.heading
    first = section.paragraphs[0] if section.paragraphs else []
    answered: set[str] = set()
    if heading.endswith("?") and (first or section.list_items):
        answer_text = _summary(first) if first else "; ".join(section.list_items)
        out.append((heading, answer_text))
        answered.update(first[:2] if first else [])
    steps = _HOW_TO.match(heading)
    if steps is not None and section.list_items:
        items = [i if i.endswith((".", "!", "?")) else f"{i}." for i in section.list_items]
        goal = _me(steps["rest"])
        out.append((f"How do I {goal}?", " ".join(items)))
        for k, item in enumerate(items):
            nth = _ORDINALS[k] if k < len(_ORDINALS) else f"number {k + 1}"
            out.append((f"What is the {nth} step to {goal}?", item))
        answered.update(section.list_items)
    topic = _me(_noun(re.sub(r"^About ", "", heading), excerpt)) if heading else ""
    asked: set[str] = set()
    for sentence in [*(s for p in section.paragraphs for s in p), *section.list_items]:
        if sentence in answered:
            continue
        question = _question_for(sentence, excerpt)
        if question is None:
            question = _fallback(sentence, topic, asked)
        if question is not None:
            asked.add(question.casefold())
            out.append((question, sentence))
    for row in section.table_rows:
        m = _ROW.match(row)
        if m is not None:
            thing = f"{m[2]} {m[1].lower()}"
            if _PRICE_COLUMN.search(row):
                out.append((f"What is the price of the {thing}?", row))
            else:
                out.append((f"What are the details of the {thing}?", row))
    return out


def _fallback(sentence: str, topic: str, asked: set[str]) -> str | None:
    """A plain question for a sentence of no known shape: what to know about its section."""
    if len(_bare(sentence).split()) < 3 or sentence.rstrip().endswith("?") or not topic:
        return None
    for question in (
        f"What should I know about {topic}?",
        f"What else should I know about {topic}?",
        f"Is there anything more to know about {topic}?",
    ):
        if question.casefold() not in asked:
            return question
    return None


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
