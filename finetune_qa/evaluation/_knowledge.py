"""Knowledge files: questions a person wrote about a site, with the facts a right answer states.

One JSON object per line::

    {"question": "How many people work at Lumenfield?", "kind": "on_topic",
     "facts": ["42 employees"], "page": "about.md"}

``kind`` is ``on_topic`` (a question the site answers), ``rephrasing`` (one asked in other
words) or ``off_topic`` (one the bot should refuse); ``facts`` are the phrases one of
which a right answer contains (whole words, case and punctuation aside: "€6" is not found
in "€60"); ``page`` names the source page, relative to the site's folder (empty or absent
for an off-topic question). Other keys are ignored.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finetune_qa._text import question_key
from finetune_qa.evaluation._build import _CaseIds
from finetune_qa.evaluation._files import _lines
from finetune_qa.evaluation._scorers import EvalCase
from finetune_qa.exceptions import JSONLFormatError, RecordError

KnowledgeKind = Literal["on_topic", "rephrasing", "off_topic"]
"""What a knowledge file's question is: on the site's topic, a rephrasing, or off-topic."""


class KnowledgeQuestion(BaseModel):
    """One line of a knowledge file: a question, its kind, the facts of a right answer."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    question: str = Field(min_length=1, description="The question, as a person asks it.")
    kind: KnowledgeKind = Field(description="on_topic, rephrasing or off_topic.")
    facts: tuple[str, ...] = Field(
        default=(), description="Phrases one of which a right answer contains."
    )
    page: str | None = Field(default=None, description="The page the facts come from.")


def read_knowledge(path: str | os.PathLike[str]) -> list[KnowledgeQuestion]:
    """The questions of a knowledge file, in file order.

    Raises:
        InputFileError: the file is missing, not a regular file, or unreadable.
        JSONLFormatError: a line is not JSON.
        RecordError: a line is not a knowledge question (named, with what is wrong).
    """
    return [item for _, item in _numbered(path)]


def _numbered(path: str | os.PathLike[str]) -> list[tuple[int, KnowledgeQuestion]]:
    out: list[tuple[int, KnowledgeQuestion]] = []
    for line_no, raw in _lines(path):
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise JSONLFormatError(
                f"not JSON ({exc})", path=str(path), line=line_no, hint="fix or remove the line"
            ) from None
        try:
            out.append((line_no, KnowledgeQuestion.model_validate(obj)))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "record"
            raise RecordError(
                f"not a knowledge question: {where}: {err['msg']}",
                path=str(path),
                line=line_no,
                hint='each line needs "question", "kind" (on_topic, rephrasing or off_topic) '
                'and, for on-topic questions, "facts"',
            ) from None
    return out


def _page_key(page: str, pages: Mapping[str, str]) -> str | None:
    """The key of ``pages`` that ``page`` names: the same path, file name or stem."""
    if page in pages:
        return page
    want = PurePosixPath(page.replace("\\", "/"))
    for key in pages:
        have = PurePosixPath(key)
        if have.name == want.name or have.stem == want.name or have.stem == want.stem:
            return key
    return None


def knowledge_cases(
    path: str | os.PathLike[str], pages: Mapping[str, str], dropped: Counter[str]
) -> list[EvalCase]:
    """The cases of a knowledge file, grouped by kind (file order within one)."""
    ids = _CaseIds()
    seen: set[tuple[str, str]] = set()
    by_kind: dict[str, list[EvalCase]] = {"on_topic": [], "rephrasing": [], "off_topic": []}
    for line, item in _numbered(path):
        key = question_key(item.question)
        if not key:
            dropped["blank_question"] += 1
            continue
        if (item.kind, key) in seen:
            dropped[f"duplicate_{item.kind}"] += 1
            continue
        seen.add((item.kind, key))
        page = item.page or None  # an off-topic question's page is often ""
        if page is not None and pages:
            page = _page_key(page, pages)
            if page is None:
                raise RecordError(
                    f"the page {item.page!r} is not among the pages given",
                    path=str(path),
                    line=line,
                    hint=f"name one of: {', '.join(sorted(pages)) or 'none'}",
                )
        facts = tuple(f.strip() for f in item.facts if f.strip())
        by_kind[item.kind].append(
            EvalCase(
                id=ids.new(item.kind, item.question),
                set=item.kind,
                question=item.question.strip(),
                reference="; ".join(facts) or None,
                facts=facts,
                page=page,
            )
        )
    return [c for cases in by_kind.values() for c in cases]
