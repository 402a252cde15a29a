"""The generation prompt, and the parser of a model's reply to it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from finetune_qa.generation._models import (
    DEFAULT_PAIRS_PER_CHUNK,
    GENERATION_MARKER,
    Chunk,
    _one_line,
)


def build_prompt(chunk: Chunk, pairs: int = DEFAULT_PAIRS_PER_CHUNK) -> str:
    """The user message that asks for ``pairs`` QA pairs about ``chunk``.

    The reply format asked for is the seed layout's: a ``Questions:`` line, the questions
    numbered ``1.``, ``2.``, ..., an ``Answers:`` line, and the answers numbered the same.
    """
    return (
        f"Write {pairs} {GENERATION_MARKER}.\n"
        "\n"
        "Rules:\n"
        "- Ask what a visitor of the website would ask. The excerpt alone must answer each "
        "question.\n"
        "- Answer each question in one to three complete sentences, using only facts stated "
        "in the excerpt. Repeat the subject instead of writing 'it' or 'the excerpt'.\n"
        "- Cover every fact: each sentence that states a number, a price, a duration, a date "
        "or a day, a name, a place, a rule or a step needs at least one question whose answer "
        "states it.\n"
        "- Word each question as a visitor would ask it: 'Who founded X?', 'How many people "
        "work at X?', 'How much does X cost?', 'How long does X take?', 'Where is X based?', "
        "'When does X open?'; never 'What is <section title>?'.\n"
        "- Every question must be different. If the excerpt does not hold "
        f"{pairs} distinct facts, write fewer pairs; never invent facts.\n"
        "- Write each question and each answer on a single line.\n"
        "\n"
        "Reply in exactly this format, with nothing before or after it: the line "
        "'Questions:', the questions numbered 1., 2., ..., the line 'Answers:', and the "
        "answers numbered the same way, answer k answering question k.\n"
        "\n"
        "Questions:\n"
        "1. <first question>\n"
        "2. <second question>\n"
        "Answers:\n"
        "1. <answer to the first question>\n"
        "2. <answer to the second question>\n"
        "\n"
        f"Page: {chunk.title}\n"
        f"Section: {chunk.heading or chunk.title}\n"
        "<excerpt>\n"
        f"{chunk.text}\n"
        "</excerpt>"
    )


@dataclass(frozen=True)
class ParsedReply:
    """What :func:`parse_reply` found.

    Attributes:
        pairs: the usable ``(question, answer)`` pairs, in reply order.
        issues: ``(reason, message, dropped)`` for each problem (see REPLY_ISSUE_REASONS).
    """

    pairs: list[tuple[str, str]]
    issues: list[tuple[str, str, int]]


_HEADER = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]*)?(?:\*\*|__)?[ \t]*(questions?|answers?)[ \t]*(?:\*\*|__)?[ \t]*:?"
    r"[ \t]*(?:\*\*|__)?[ \t]*$",
    re.IGNORECASE,
)
_NUMBERED = re.compile(
    r"^[ \t]*(?:[-*•][ \t]+)?(?:\*\*|__)?[ \t]*(?:(?:q(?:uestion)?|a(?:nswer)?)[ \t]*)?"
    r"(?:\((\d{1,4})\)|(\d{1,4})[ \t]*[.):\]])(?!\d)[ \t]*(?:\*\*|__)?[ \t]*(.*)$",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^[ \t]*[-*•][ \t]+(.*)$")
_QA_LINE = re.compile(
    r"^[ \t]*(?:[-*•][ \t]+)?(?:\*\*|__)?[ \t]*(q(?:uestion)?|a(?:nswer)?)[ \t]*(\d{1,4})?"
    r"[ \t]*[:.)][ \t]*(?:\*\*|__)?[ \t]*(.*)$",
    re.IGNORECASE,
)
_LEAD_LABEL = re.compile(r"^(?:q(?:uestion)?|a(?:nswer)?)[ \t]*\d{0,4}[ \t]*:[ \t]*", re.IGNORECASE)
_TRIM = re.compile(r"^(?:\*\*|__)|(?:\*\*|__)$")


def _item_text(text: str) -> str:
    text = _LEAD_LABEL.sub("", text.strip())
    text = _TRIM.sub("", text.strip()).strip()
    return _one_line(text)


def _list_items(lines: list[str]) -> tuple[list[tuple[int | None, str]], bool]:
    """Items of a list section and whether text around them was ignored.

    A line that starts a numbered or bulleted item starts an item; a line without a
    marker continues the item above it, unless a blank line came first (then it is
    chatter). Lines before the first item are chatter.
    """
    items: list[tuple[int | None, str]] = []
    extra = False
    blank = False
    for raw in lines:
        if not raw.strip() or raw.strip() in ("```", "---"):
            blank = True
            continue
        m = _NUMBERED.match(raw)
        if m is not None:
            number = int(m[1] or m[2])
            items.append((number, _item_text(m[3])))
        elif (b := _BULLET.match(raw)) is not None:
            items.append((None, _item_text(b[1])))
        elif items and not blank:
            last_number, text = items[-1]
            items[-1] = (last_number, _one_line(f"{text} {raw.strip()}"))
        else:
            extra = True
        blank = False
    return items, extra


def _match(
    questions: list[tuple[int | None, str]],
    answers: list[tuple[int | None, str]],
) -> ParsedReply:
    pairs: list[tuple[str, str]] = []
    issues: list[tuple[str, str, int]] = []
    qn = [n for n, _ in questions]
    an = [n for n, _ in answers]
    numbered = (
        None not in qn and None not in an and len(set(qn)) == len(qn) and len(set(an)) == len(an)
    )
    if numbered and set(qn) != set(an):
        by_number = {n: text for n, text in answers}
        for n, q in questions:
            a = by_number.get(n)
            if a is None:
                issues.append(("unmatched_question", f"question {n} has no answer numbered {n}", 1))
            else:
                pairs.append((q, a))
        for n in sorted(set(an) - set(qn), key=lambda v: v or 0):
            issues.append(("unmatched_answer", f"answer {n} has no question numbered {n}", 1))
    elif numbered:
        by_number = {n: text for n, text in answers}
        pairs = [(q, by_number[n]) for n, q in questions]
    elif len(questions) == len(answers):
        pairs = [(q, a) for (_, q), (_, a) in zip(questions, answers, strict=True)]
    else:
        return ParsedReply(
            [],
            [
                (
                    "unbalanced_lists",
                    f"{len(questions)} questions but {len(answers)} answers, not numbered "
                    "uniquely, so they cannot be matched",
                    max(len(questions), len(answers)),
                )
            ],
        )
    kept = []
    empty = 0
    for q, a in pairs:
        if q and a:
            kept.append((q, a))
        else:
            empty += 1
    if empty:
        issues.append(("empty_item", f"{empty} pair(s) with an empty question or answer", empty))
    return ParsedReply(kept, issues)


def parse_reply(text: str) -> ParsedReply:
    r"""Parse a model's reply into ``(question, answer)`` pairs, reporting what is wrong.

    The expected layout is :func:`build_prompt`'s: a ``Questions:`` line and a numbered
    list, an ``Answers:`` line and a numbered list. Also accepted: headers in bold or as
    Markdown headings, numbers written ``1.``, ``1)``, ``(1)``, ``Q1:``, ``**1.**``,
    bulleted items, items over several lines, chatter before, between and after the lists
    (reported as ``extra_text``), and replies that alternate ``Q:`` and ``A:`` lines.

    Numbered lists are matched by number (an item whose number the other list lacks is
    reported and dropped); unnumbered lists only when they have the same length, else
    the whole reply is dropped (``unbalanced_lists``): pairing by position would put
    answers under the wrong questions.

    Args:
        text: the reply.

    Returns:
        The pairs and the issues (reasons from :data:`REPLY_ISSUE_REASONS`).

    Example:
        >>> reply = "Questions:\n1) Is there a free plan?\n2) Who makes it?\nAnswers:\n1) Yes."
        >>> parsed = parse_reply(reply)
        >>> parsed.pairs
        [('Is there a free plan?', 'Yes.')]
        >>> parsed.issues
        [('unmatched_question', 'question 2 has no answer numbered 2', 1)]
    """
    lines = text.replace("\r\n", "\n").split("\n")
    q_at = a_at = None
    for k, line in enumerate(lines):
        m = _HEADER.match(line)
        if m is None:
            continue
        word = m[1].lower()
        if word.startswith("q") and q_at is None:
            q_at = k
        elif word.startswith("a") and a_at is None and q_at is not None:
            a_at = k
    if q_at is not None and a_at is not None:
        before = any(s.strip() and s.strip() != "```" for s in lines[:q_at])
        questions, extra_q = _list_items(lines[q_at + 1 : a_at])
        answers, extra_a = _list_items(lines[a_at + 1 :])
        if not questions and not answers:
            return ParsedReply([], [("no_pairs", "the Questions: and Answers: lists are empty", 0)])
        if not answers:
            return ParsedReply(
                [],
                [("missing_answers", "the Answers: list is empty", len(questions))],
            )
        parsed = _match(questions, answers)
        if before or extra_q or extra_a:
            parsed.issues.insert(0, ("extra_text", "text around the lists was ignored", 0))
        return parsed
    if q_at is not None:
        questions, _ = _list_items(lines[q_at + 1 :])
        if questions:
            return ParsedReply(
                [],
                [("missing_answers", "there is no Answers: list", len(questions))],
            )
    return _parse_alternating(lines)


def _parse_alternating(lines: list[str]) -> ParsedReply:
    """``Q: ...`` / ``A: ...`` lines in turn (numbers optional)."""
    pairs: list[tuple[str, str]] = []
    issues: list[tuple[str, str, int]] = []
    question: str | None = None
    answer: str | None = None
    extra = False
    seen = False
    unanswered = 0

    def close() -> None:
        nonlocal question, answer, unanswered
        if question is not None:
            if answer:
                if question:
                    pairs.append((question, answer))
                else:
                    issues.append(("empty_item", "a question is empty", 1))
            elif answer is None:
                unanswered += 1
            else:
                issues.append(("empty_item", "an answer is empty", 1))
        question = answer = None

    last: Literal["q", "a", ""] = ""
    for raw in lines:
        if not raw.strip():
            last = "" if last == "a" else last
            continue
        m = _QA_LINE.match(raw)
        if m is not None:
            seen = True
            if m[1][0].lower() == "q":
                close()
                question = _item_text(m[3])
                last = "q"
            else:
                if question is None:
                    issues.append(("unmatched_answer", "an answer follows no question", 1))
                    last = ""
                    continue
                answer = _item_text(m[3])
                last = "a"
            continue
        if last == "q" and question is not None:
            question = _one_line(f"{question} {raw.strip()}")
        elif last == "a" and answer is not None:
            answer = _one_line(f"{answer} {raw.strip()}")
        else:
            extra = True
    close()
    if not seen or (not pairs and not unanswered and not issues):
        return ParsedReply([], [("no_pairs", "no Questions:/Answers: lists or Q:/A: lines", 0)])
    if unanswered:
        reason = "missing_answers" if not pairs else "unmatched_question"
        issues.append((reason, f"{unanswered} question(s) have no answer", unanswered))
    if extra:
        issues.insert(0, ("extra_text", "text around the pairs was ignored", 0))
    return ParsedReply(pairs, issues)
