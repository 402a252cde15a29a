"""QA generation from Markdown: cleaning, chunking, the reply parser, the generator, bad inputs."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import threading
from pathlib import Path

import pytest

from finetune_qa import DatasetBuilder, FineTuneJob, OfflineBackend
from finetune_qa.backends._fake import _fake_generate
from finetune_qa.backends.base import ChatRequest, ChatResponse, Usage
from finetune_qa.chat import ChatModel
from finetune_qa.exceptions import InputError, InputFileError, RecordError, UsageError
from finetune_qa.generation import (
    GENERATION_MARKER,
    REMOVED_KINDS,
    REPLY_ISSUE_REASONS,
    SKIP_REASONS,
    Chunk,
    GenerationReport,
    QAGenerator,
    build_prompt,
    chunk_page,
    clean_markdown,
    iter_pages,
    load_markdown,
    parse_reply,
)
from finetune_qa.readers import QASource, read_qa
from finetune_qa.tokens import TokenCounter

DATA = Path(__file__).parents[1] / "data"
SITE = DATA / "markdown_site"
BAD = DATA / "bad_markdown"


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter("gpt-4o-mini")


def texts(markdown: str) -> list[str]:
    return [b.text for b in clean_markdown(markdown).blocks]


# ---------------------------------------------------------------------------- cleaning


def test_yaml_front_matter_gives_the_title_and_is_removed() -> None:
    page = clean_markdown('---\ntitle: "Pricing plans"\nlayout: page\n---\n\nPlans are cheap.\n')
    assert page.title == "Pricing plans"
    assert [b.text for b in page.blocks] == ["Plans are cheap."]
    assert page.removed == {"front_matter": 1}


def test_toml_front_matter_gives_the_title() -> None:
    page = clean_markdown('+++\ntitle = "About us"\n+++\nWe make tasks calm.\n')
    assert page.title == "About us"
    assert texts('+++\ntitle = "About us"\n+++\nWe make tasks calm.\n') == ["We make tasks calm."]


def test_title_falls_back_to_the_first_h1_then_the_file_name() -> None:
    assert clean_markdown("# Security\n\nText here.\n").title == "Security"
    assert clean_markdown("Text here.\n", path="site/faq.md").title == "faq"


@pytest.mark.parametrize(
    ("markdown", "kind"),
    [
        ("[Skip to content](#main)\n\nReal text.", "nav_links"),
        ("Skip to main content\n\nReal text.", "nav_text"),
        ("- [Home](/)\n- [Pricing](/pricing/)\n\nReal text.", "nav_links"),
        ("[Home](/) · [Docs](/docs/) | [Blog](/blog/)\n\nReal text.", "nav_links"),
        ('<a href="/">Home</a> | <a href="/docs/">Docs</a>\n\nReal text.', "nav_links"),
        ("[Home](/) > [Docs](/docs/) > Getting started\n\nReal text.", "breadcrumb"),
        ("Home / Docs / Getting started\n\nReal text.", "breadcrumb"),
        ("[Edit this page](https://github.com/x/y/edit/main/a.md)\n\nReal text.", "nav_links"),
        ("Edit this page\n\nReal text.", "nav_text"),
        ("Last updated on 2 November 2026\n\nReal text.", "nav_text"),
        ("← Previous\n\nReal text.", "nav_text"),
        ("Real text.\n\n© 2026 Fernhill Software B.V.", "footer"),
        ("Real text.\n\nCopyright 2026 Acme. All rights reserved.", "footer"),
        ("Real text.\n\nPowered by Docusaurus", "footer"),
        ("Real text.\n\n<!-- a comment\nover lines -->", "html_comment"),
        ("Real text.\n\n<!-- one line -->", "html_comment"),
        ("Real text.\n\n<script>\nvar x = 1;\n</script>", "script_or_style"),
        ("Real text.\n\n<style>body { color: red }</style>", "script_or_style"),
        ("Real text.\n\n<div class='x'>\n</div>", "html"),
        ("Real text.\n\n![A logo](/logo.png)", "image"),
        ("Real text.\n\n```python\nprint('code')\n```", "code_block"),
        ("Real text.\n\n~~~\nsome code\n~~~", "code_block"),
        ("Real text.\n\n[docs]: https://example.com/docs", "link_definition"),
        ("Real text.\n\n---\n\nMore.", "thematic_break"),
    ],
)
def test_each_kind_of_noise_is_removed_and_counted(markdown: str, kind: str) -> None:
    page = clean_markdown(markdown)
    assert kind in REMOVED_KINDS
    assert page.removed.get(kind, 0) >= 1, page.removed
    kept = " ".join(b.text for b in page.blocks)
    assert kept.startswith("Real text.")
    for noise in (
        "Skip",
        "Home",
        "Edit",
        "©",
        "Powered",
        "comment",
        "var x",
        "print",
        "logo",
        "example.com",
        "Previous",
        "Last updated",
        "color",
    ):
        assert noise not in kept, (noise, kept)


def test_inline_markup_keeps_its_text() -> None:
    got = texts(
        "The **Pro** plan adds _sync_ and `export`, see [the docs](/docs/) and "
        "<https://fernhill.app>.<br>It costs &euro;6 ~~€8~~. ![x](y.png)"
    )
    assert got == [
        "The Pro plan adds sync and export, see the docs and https://fernhill.app. It costs €6 €8."
    ]


def test_tables_become_text_rows() -> None:
    page = clean_markdown("| Plan | Price |\n|:-----|------:|\n| Free | €0 |\n| Pro | €6 |\n")
    assert [(b.kind, b.text) for b in page.blocks] == [
        ("table", "Plan: Free; Price: €0.\nPlan: Pro; Price: €6.")
    ]
    assert (page.blocks[0].start_line, page.blocks[0].end_line) == (1, 4)


def test_admonitions_keep_their_text_and_drop_their_markers() -> None:
    markdown = (
        '!!! note "Homebrew"\n    The CLI is on Homebrew.\n\n'
        ":::tip\nLogin opens your browser.\n:::\n\n"
        "> [!WARNING]\n> Keep the token private.\n"
    )
    page = clean_markdown(markdown)
    assert [b.text for b in page.blocks] == [
        "The CLI is on Homebrew.",
        "Login opens your browser.",
        "Keep the token private.",
    ]
    assert page.removed == {"admonition_marker": 4}


def test_headings_are_kept_as_structure_with_paths_and_lines() -> None:
    page = clean_markdown(
        "Pricing\n=======\n\nIntro.\n\n## Pro plan ##\n\nCosts €6.\n\nTeam plan\n---------\n\nCosts €11.\n"
        "\n### Extras {#extras}\n\n- One\n- Two\n  continued\n"
    )
    got = [(b.kind, b.level, b.text, b.headings, b.start_line, b.end_line) for b in page.blocks]
    assert got == [
        ("heading", 1, "Pricing", ("Pricing",), 1, 2),
        ("paragraph", 0, "Intro.", ("Pricing",), 4, 4),
        ("heading", 2, "Pro plan", ("Pricing", "Pro plan"), 6, 6),
        ("paragraph", 0, "Costs €6.", ("Pricing", "Pro plan"), 8, 8),
        ("heading", 2, "Team plan", ("Pricing", "Team plan"), 10, 11),
        ("paragraph", 0, "Costs €11.", ("Pricing", "Team plan"), 13, 13),
        ("heading", 3, "Extras", ("Pricing", "Team plan", "Extras"), 15, 15),
        ("list", 0, "- One\n- Two continued", ("Pricing", "Team plan", "Extras"), 17, 19),
    ]
    assert page.text.startswith("# Pricing\n\nIntro.\n\n## Pro plan")


def test_a_section_left_empty_by_cleaning_is_skipped_and_counted() -> None:
    page = clean_markdown(
        "# Docs\n\nText.\n\n## On this page\n\n- [A](#a)\n- [B](#b)\n\n## A\n\nMore.\n"
    )
    assert [b.text for b in page.blocks] == ["Docs", "Text.", "A", "More."]
    assert [(s.reason, s.line) for s in page.skipped_sections] == [("empty_section", 5)]
    assert "empty_section" in SKIP_REASONS


def test_bom_and_crlf_are_read_with_the_right_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "page.md"
    path.write_bytes(b"\xef\xbb\xbf# Title\r\n\r\nFirst.\r\n\r\nSecond line here.\r\n")
    page = load_markdown(path)
    assert [(b.text, b.start_line) for b in page.blocks] == [
        ("Title", 1),
        ("First.", 3),
        ("Second line here.", 5),
    ]


def test_iter_pages_reads_folders_in_order_and_skips_empty_pages_with_reasons(
    tmp_path: Path,
) -> None:
    (tmp_path / "b.md").write_text("# B\n\nText of b.\n", encoding="utf-8")
    (tmp_path / "a.md").write_text("# A\n\nText of a.\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.md").write_text("Text of c.\n", encoding="utf-8")
    (tmp_path / "empty.md").write_text("", encoding="utf-8")
    (tmp_path / "front.md").write_text("---\ntitle: x\n---\n", encoding="utf-8")
    (tmp_path / "menu.md").write_text("- [Home](/)\n- [Docs](/docs/)\n", encoding="utf-8")
    (tmp_path / "draft.md").write_text("---\ndraft: true\n---\nSoon.\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not markdown", encoding="utf-8")
    skipped = []
    pages = list(iter_pages(tmp_path, on_skip=skipped.append))
    assert [Path(p.path).name for p in pages] == ["a.md", "b.md", "c.md"]
    assert sorted((Path(s.file).name, s.reason) for s in skipped) == [
        ("draft.md", "draft"),
        ("empty.md", "empty"),
        ("front.md", "front_matter_only"),
        ("menu.md", "no_text"),
    ]
    assert all(s.reason in SKIP_REASONS for s in skipped)


def test_the_sample_site_is_cleaned_of_its_noise() -> None:
    page = load_markdown(SITE / "docs" / "getting-started.md")
    text = page.text
    assert page.title == "Getting started with the Fernhill CLI"
    for noise in (
        "npm install",
        "Skip to main content",
        "Edit this page",
        "Powered by",
        "analytics",
        "Docs",
        "On this page",
        "Last updated",
        "[!WARNING]",
        "!!!",
        ":::",
    ):
        assert noise not in text, noise
    assert "The Fernhill CLI requires Node.js 20 or later." in text
    assert "The Fernhill CLI is also available as a Homebrew formula called fernhill." in text
    assert page.removed["code_block"] == 3
    assert [s.reason for s in page.skipped_sections] == ["empty_section"]


# ---------------------------------------------------------------------------- chunking


@pytest.mark.parametrize("max_tokens", [40, 120, 800])
def test_chunks_respect_the_token_limit_and_keep_provenance(
    counter: TokenCounter, max_tokens: int
) -> None:
    pages = list(iter_pages(SITE))
    for page in pages:
        chunks = chunk_page(page, max_tokens=max_tokens, counter=counter)
        assert chunks
        lines = [b for b in page.blocks]
        for chunk in chunks:
            assert chunk.tokens == counter.count(chunk.text) <= max_tokens
            assert chunk.file == page.path and chunk.title == page.title
            assert lines[0].start_line <= chunk.start_line <= chunk.end_line
            assert chunk.end_line <= lines[-1].end_line
            assert not chunk.text.rstrip().splitlines()[-1].startswith("#")  # no dangling heading
        # chunks follow the page and lose nothing: every block's text is in some chunk
        joined = "\n".join(c.text for c in chunks)
        for block in page.blocks:
            if block.kind != "heading":
                for sentence in re.split(r"(?<=[.!?])\s+", block.text.replace("\n", " ")):
                    assert sentence.split()[0] in joined
        starts = [c.start_line for c in chunks]
        assert starts == sorted(starts)


def test_chunks_split_between_sentences_and_carry_the_heading_path(counter: TokenCounter) -> None:
    sentences = [f"Fact number {i} about the Pro plan is stated here." for i in range(40)]
    page = clean_markdown("# Pricing\n\n## Pro plan\n\n" + " ".join(sentences) + "\n")
    chunks = chunk_page(page, max_tokens=60, counter=counter)
    assert len(chunks) > 3
    assert all(c.tokens <= 60 for c in chunks)
    assert all(c.text.rstrip().endswith(".") for c in chunks)  # never mid-sentence
    assert all(c.headings == ("Pricing", "Pro plan") for c in chunks)
    assert all(c.heading == "Pricing > Pro plan" for c in chunks)
    # the first piece fills a chunk by itself, so the headings stay in the provenance only
    assert chunks[0].text.startswith("Fact number 0") and chunks[0].start_line == 5
    rebuilt = " ".join(c.text.split("\n\n")[-1] for c in chunks)
    assert rebuilt == " ".join(sentences)
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_a_huge_sentence_is_split_between_words(counter: TokenCounter) -> None:
    words = " ".join(f"word{i}" for i in range(400))
    chunks = chunk_page(clean_markdown(words + "."), max_tokens=50, counter=counter)
    assert len(chunks) > 5 and all(c.tokens <= 50 for c in chunks)
    assert " ".join(c.text for c in chunks) == words + "."


def test_sections_are_packed_and_balanced(counter: TokenCounter) -> None:
    faq = load_markdown(SITE / "faq.md")
    chunks = chunk_page(faq, max_tokens=800, counter=counter)
    total = counter.count(faq.text)
    assert total > 800 and len(chunks) == 2
    assert min(c.tokens for c in chunks) > total // 3  # two halves, not a chunk and a scrap


def test_chunk_page_rejects_a_tiny_limit() -> None:
    with pytest.raises(UsageError, match="max_tokens"):
        chunk_page(clean_markdown("Text."), max_tokens=5)


# ------------------------------------------------------------------------------ prompt


def test_prompt_asks_for_the_seed_layout_and_holds_the_marker() -> None:
    chunk = Chunk(
        index=0,
        file="p.md",
        title="Pricing",
        headings=("Pricing", "Pro plan"),
        start_line=3,
        end_line=9,
        text="## Pro plan\n\nThe Pro plan costs €6.",
        tokens=9,
    )
    prompt = build_prompt(chunk, 7)
    assert f"Write 7 {GENERATION_MARKER}." in prompt
    assert "Questions:\n1. <first question>" in prompt and "Answers:\n1. <answer" in prompt
    assert "Section: Pricing > Pro plan" in prompt
    assert "<excerpt>\n## Pro plan\n\nThe Pro plan costs €6.\n</excerpt>" in prompt


def test_the_offline_marker_matches_the_prompt_marker() -> None:
    assert _fake_generate.PROMPT_MARKER == GENERATION_MARKER


# ------------------------------------------------------------------------------ parser


@pytest.mark.parametrize(
    ("reply", "pairs", "reasons"),
    [
        (
            "Questions:\n1. What is A?\n2. What is B?\nAnswers:\n1. A is a.\n2. B is b.",
            [("What is A?", "A is a."), ("What is B?", "B is b.")],
            [],
        ),
        (  # numbering styles, bold headers, chatter around
            "Here you go!\n\n**Questions:**\n1) What is A?\n(2) What is B?\n\n## Answers\n"
            "**1.** A is a.\nQ2: B is b.\n\nLet me know if you need more.",
            [("What is A?", "A is a."), ("What is B?", "B is b.")],
            ["extra_text"],
        ),
        (  # answers over two lines, in another order, matched by number
            "Questions:\n1. What is A?\n2. What is B?\nAnswers:\n2. B is\n   b.\n1. A is a.",
            [("What is A?", "A is a."), ("What is B?", "B is b.")],
            [],
        ),
        (  # a missing answer: reported, the others kept
            "Questions:\n1. What is A?\n2. What is B?\n3. What is C?\nAnswers:\n1. A is a.\n3. C.",
            [("What is A?", "A is a."), ("What is C?", "C.")],
            ["unmatched_question"],
        ),
        (
            "Questions:\n1. What is A?\nAnswers:\n1. A is a.\n2. Stray answer.",
            [("What is A?", "A is a.")],
            ["unmatched_answer"],
        ),
        (  # unnumbered lists of different lengths: never zipped
            "Questions:\n- What is A?\n- What is B?\nAnswers:\n- A is a.",
            [],
            ["unbalanced_lists"],
        ),
        (  # duplicate numbers, same lengths: paired by position
            "Questions:\n1. What is A?\n1. What is B?\nAnswers:\n1. A is a.\n1. B is b.",
            [("What is A?", "A is a."), ("What is B?", "B is b.")],
            [],
        ),
        ("Questions:\n1. What is A?\n2. What is B?", [], ["missing_answers"]),
        ("Questions:\n1. What is A?\nAnswers:\n", [], ["missing_answers"]),
        ("I cannot help with that.", [], ["no_pairs"]),
        ("", [], ["no_pairs"]),
        ("Questions:\nAnswers:\n", [], ["no_pairs"]),
        (
            "Questions:\n1. What is A?\n2.\nAnswers:\n1. A is a.\n2. B is b.",
            [("What is A?", "A is a.")],
            ["empty_item"],
        ),
        (  # Q:/A: alternating layout
            "Sure.\nQ: What is A?\nA: A is a.\n\nQ2: What is B?\nA2: B is b.",
            [("What is A?", "A is a."), ("What is B?", "B is b.")],
            ["extra_text"],
        ),
        (
            "Q: What is A?\nA: A is a.\nQ: What is B?",
            [("What is A?", "A is a.")],
            ["unmatched_question"],
        ),
        ("Q: What is A?\nQ: What is B?", [], ["missing_answers"]),
        (
            "A: An answer alone.\nQ: What is B?\nA: B is b.",
            [("What is B?", "B is b.")],
            ["unmatched_answer"],
        ),
        (  # fenced reply, CRLF line ends
            "```\r\nQuestions:\r\n1. What is A?\r\nAnswers:\r\n1. A is a.\r\n```",
            [("What is A?", "A is a.")],
            [],
        ),
    ],
)
def test_parse_reply(reply: str, pairs: list[tuple[str, str]], reasons: list[str]) -> None:
    parsed = parse_reply(reply)
    assert parsed.pairs == pairs
    assert [r for r, _, _ in parsed.issues] == reasons
    assert all(r in REPLY_ISSUE_REASONS for r in reasons)


def test_parse_reply_counts_what_it_drops() -> None:
    parsed = parse_reply("Questions:\n- a?\n- b?\n- c?\nAnswers:\n- x\n- y")
    assert parsed.issues == [
        (
            "unbalanced_lists",
            "3 questions but 2 answers, not numbered uniquely, so they cannot be matched",
            3,
        )
    ]


# --------------------------------------------------------------- generator over stubs


class Replies:
    """A backend that answers generation prompts from a list, by the chunk's first line."""

    name = "replies"

    def __init__(self, replies: dict[str, str | Exception], finish: dict[str, str] | None = None):
        self.replies = replies
        self.finish = finish or {}
        self.requests: list[ChatRequest] = []

    def _reply(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        prompt = request.messages[-1]["content"]
        for key, reply in self.replies.items():
            if key in prompt:
                if isinstance(reply, Exception):
                    raise reply
                return ChatResponse(
                    id="c",
                    model=request.model,
                    content=reply,
                    finish_reason=self.finish.get(key, "stop"),
                    usage=Usage(prompt_tokens=100, completion_tokens=20, total_tokens=120),
                )
        raise AssertionError(f"no reply for {prompt!r}")

    def chat(self, request: ChatRequest) -> ChatResponse:
        return self._reply(request)

    async def achat(self, request: ChatRequest) -> ChatResponse:
        return self._reply(request)


def site(tmp_path: Path, pages: dict[str, str]) -> Path:
    for name, text in pages.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_malformed_replies_are_reported_with_chunk_and_reason(tmp_path: Path) -> None:
    from finetune_qa.exceptions import BadRequestError

    folder = site(
        tmp_path,
        {
            "a.md": "# Alpha\n\nAlpha text.\n",
            "b.md": "# Beta\n\nBeta text.\n",
            "c.md": "# Gamma\n\nGamma text.\n",
            "d.md": "# Delta\n\nDelta text.\n",
            "e.md": "# Epsilon\n\nEpsilon text.\n",
        },
    )
    backend = Replies(
        {
            "Alpha text.": "Questions:\n1. What is alpha?\n2. Why alpha?\nAnswers:\n1. Alpha is first.",
            "Beta text.": "Sorry, I can't do that.",
            "Gamma text.": BadRequestError("bad prompt", status_code=400),
            "Delta text.": "Questions:\n1. What is delta?\n2. What is alpha?\nAnswers:\n"
            "1. Delta is fourth.\n2. Alpha is first, again.",
            "Epsilon text.": "Questions:\n1. What is epsilon?\n2. Is it long?\nAnswers:\n"
            "1. Epsilon is fifth.\n2. It is cut off mid",
        },
        finish={"Epsilon text.": "length"},
    )
    generator = QAGenerator(ChatModel("any-model", backend=backend, retries=0), concurrency=2)
    result = generator.generate(folder)
    report = result.report
    assert [(p.question, p.file.endswith("a.md")) for p in result.pairs] == [
        ("What is alpha?", True),
        ("What is delta?", False),
        ("What is epsilon?", False),
    ]
    got = {(Path(i.where.split(":")[0]).name, i.reason, i.dropped) for i in result.issues}
    assert got == {
        ("a.md", "unmatched_question", 1),
        ("b.md", "no_pairs", 0),
        ("c.md", "request_failed", 0),
        ("e.md", "truncated", 1),
    }
    assert report.chunks == 5 and report.requests_failed == 1 and report.replies_malformed == 4
    assert report.reply_issues == {
        "no_pairs": 1,
        "request_failed": 1,
        "truncated": 1,
        "unmatched_question": 1,
    }
    assert report.pairs_dropped == {"truncated": 1, "unmatched_question": 1}
    assert report.pairs_parsed == 4 and report.duplicates_dropped == 1 and report.pairs_kept == 3
    assert report.prompt_tokens == 400 and report.completion_tokens == 80
    text = report.to_text()
    assert "duplicates dropped: 1" in text and "request_failed 1" in text
    assert "c.md:1-3 (Gamma): request_failed: BadRequestError" in text
    assert json.loads(report.to_json())["pairs_kept"] == 3
    assert GenerationReport.model_validate_json(report.to_json()) == report
    # the generator's own system prompt, no stop marker, the chat model left as it was
    request = backend.requests[0]
    assert (
        request.messages[0]["role"] == "system"
        and "question/answer pairs" in request.messages[0]["content"]
    )
    assert request.stop is None
    assert generator.chat.model == "any-model"


def test_duplicates_across_chunks_are_dropped_and_counted(tmp_path: Path) -> None:
    text = (
        "# Pro plan\n\nThe Pro plan costs €6 per member per month.\n"
        "The Pro plan adds time tracking.\n"
    )
    folder = site(tmp_path, {"a.md": text, "b.md": text, "c.md": text.replace("Pro", "Team")})
    chat = ChatModel.offline("gpt-4o-mini")
    result = QAGenerator(chat, cover_facts=False).generate(folder)
    questions = [p.question for p in result.pairs]
    assert len(questions) == len({q.casefold() for q in questions})
    per_page = len([p for p in result.pairs if p.file.endswith("a.md")])
    assert per_page >= 2
    assert not [p for p in result.pairs if p.file.endswith("b.md")]
    assert result.report.duplicates_dropped == per_page
    assert result.report.pairs_parsed == result.report.pairs_kept + per_page
    # b.md's facts are stated by no pair of b.md: the coverage report says so
    uncovered = {Path(f.file).name for f in result.report.coverage.uncovered}
    assert uncovered == {"b.md"}


def test_generator_checks_its_arguments() -> None:
    chat = ChatModel.offline("gpt-4o-mini")
    for kwargs in (
        {"pairs_per_chunk": 0},
        {"pairs_per_chunk": 51},
        {"max_chunk_tokens": 8},
        {"concurrency": 0},
        {"max_tokens": 0},
        {"pairs_per_chunk": True},
    ):
        with pytest.raises(UsageError):
            QAGenerator(chat, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="ChatModel"):
        QAGenerator("gpt-4o-mini")  # type: ignore[arg-type]


def test_no_page_with_text_is_an_input_error(tmp_path: Path) -> None:
    folder = site(tmp_path, {"a.md": "- [Home](/)\n", "b.md": ""})
    with pytest.raises(InputError, match=r"a\.md:1: no page holds any text"):
        QAGenerator(ChatModel.offline("gpt-4o-mini")).generate(folder)


# --------------------------------------------------------------- offline, end to end


@pytest.fixture(scope="module")
def site_result() -> object:
    return QAGenerator(ChatModel.offline("gpt-4o-mini")).generate([SITE])


def test_offline_generation_on_the_sample_site(site_result: object) -> None:
    from finetune_qa.generation import GenerationResult

    assert isinstance(site_result, GenerationResult)
    report = site_result.report
    assert report.pages_read == 11 and report.pages_skipped == {"draft": 1}
    assert report.pages_found == 12 == len(list(SITE.rglob("*.md")))
    assert report.chunks == len(site_result.chunks) == 12
    assert report.replies_malformed == 0 and report.reply_issues == {}
    assert 55 <= report.pairs_kept <= 150
    sources = {p.name: (SITE / p).read_text(encoding="utf-8") for p in SITE.rglob("*.md")}
    everything = " ".join(" ".join(t.split()) for t in sources.values())
    for pair in site_result.pairs:
        assert pair.question.endswith("?") and "\n" not in pair.question
        chunk = site_result.chunks[pair.chunk]
        assert (pair.file, pair.start_line, pair.end_line) == (
            chunk.file,
            chunk.start_line,
            chunk.end_line,
        )
        assert pair.heading == chunk.heading
        # every answer is the site's own words, from the chunk it was generated from
        first = pair.answer.split(". ")[0].rstrip(".")
        assert first.replace('"', "") in " ".join(chunk.text.split()).replace('"', ""), pair
        assert first.split()[0].rstrip(":") in everything  # a table row: "Plan: Free; ..."
    questions = {p.question: p.answer for p in site_result.pairs}
    assert questions["How much does the Pro plan cost?"] == (
        "The Pro plan costs €6 per member per month, or €60 per member per year when billed yearly."
    )
    assert questions["How do I reset my password?"].startswith('Click "Forgot password"')
    assert questions["What is Fernhill Tasks?"].startswith("Fernhill Tasks is a task manager")
    assert questions["Is two-factor authentication available on every plan?"] == (
        "Two-factor authentication is available on every plan."
    )
    assert questions["Can I reach Fernhill Support at help@fernhill.app?"]
    assert questions["How do I invite a teammate?"].startswith("To invite a teammate")


def test_the_csv_reads_back_into_the_same_pairs(site_result: object, tmp_path: Path) -> None:
    from finetune_qa.generation import GenerationResult

    assert isinstance(site_result, GenerationResult)
    path = site_result.write_csv(tmp_path / "qa.csv")
    source = QASource(path)
    assert source.format == "seed_csv"
    back = list(source.pairs())
    assert source.issues == []
    assert [(p.question, p.answer) for p in back] == [
        (p.question, p.answer) for p in site_result.pairs
    ]
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len({p.chunk for p in site_result.pairs})
    assert rows[0]["questions"].startswith("1. ") and rows[0]["lines"].count("-") == 1
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left nothing behind


def test_the_jsonl_reads_back_with_provenance(site_result: object, tmp_path: Path) -> None:
    from finetune_qa.generation import GenerationResult

    assert isinstance(site_result, GenerationResult)
    path = site_result.write_jsonl(tmp_path / "qa.jsonl")
    back = list(read_qa(path))
    assert [(p.question, p.answer) for p in back] == [
        (p.question, p.answer) for p in site_result.pairs
    ]
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {
        "question",
        "answer",
        "file",
        "title",
        "heading",
        "start_line",
        "end_line",
        "chunk",
    }
    qa = site_result.qa_pairs()[0]
    assert qa.source is not None and qa.source.file == first["file"]
    assert qa.source.line == first["start_line"]


def test_a_model_fine_tuned_offline_answers_its_generated_questions(
    site_result: object, tmp_path: Path
) -> None:
    from finetune_qa.generation import GenerationResult

    assert isinstance(site_result, GenerationResult)
    qa = site_result.write_csv(tmp_path / "qa.csv")
    system = "You are a factual chatbot that answers questions about Fernhill Tasks."
    report = DatasetBuilder(system_prompt=system).add_source(qa).build(tmp_path / "train.jsonl")
    assert report.kept == report.read == site_result.report.pairs_kept
    backend = OfflineBackend()
    job = FineTuneJob.create(
        tmp_path / "train.jsonl",
        model="gpt-4o-mini",
        backend=backend,
        journal=tmp_path / "journal.jsonl",
    )
    job.wait()
    bot = job.chat_model()
    sample = site_result.pairs[::7]
    items = bot.ask_many([p.question for p in sample])
    assert [i.answer.text if i.answer else i.error for i in items] == [p.answer for p in sample]


# -------------------------------------------------------------------------- bad inputs


def huge_line(tmp_path: Path) -> Path:
    path = tmp_path / "huge.md"
    path.write_bytes(b"# Huge\n\n" + b"x" * (1024 * 1024 + 10) + b"\n")
    return path


BAD_CASES = [
    ("invalid_utf8.md", InputFileError, 4, "not valid UTF-8"),
    ("nul_bytes.md", InputFileError, 4, "NUL byte"),
    ("empty.md", InputFileError, 1, "is empty"),
    ("only_front_matter.md", InputFileError, 1, "front matter and no text"),
    ("binary.md", InputFileError, 1, "PNG image"),
    ("unclosed_front_matter.md", RecordError, 1, "never closed"),
    ("huge", InputFileError, 3, "MiB long"),
]


def bad_path(name: str, tmp_path: Path) -> Path:
    return huge_line(tmp_path) if name == "huge" else BAD / name


@pytest.mark.parametrize(("name", "error", "line", "words"), BAD_CASES)
def test_bad_markdown_raises_naming_file_and_line(
    name: str, error: type[Exception], line: int, words: str, tmp_path: Path
) -> None:
    path = bad_path(name, tmp_path)
    with pytest.raises(error) as info:
        load_markdown(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message and "(" in message  # what is wrong, then what to do
    assert getattr(info.value, "line", None) == line
    with pytest.raises(error):  # the same when the generator is given the file
        QAGenerator(ChatModel.offline("gpt-4o-mini")).generate([path])


def test_a_folder_without_markdown_is_an_error() -> None:
    with pytest.raises(InputFileError, match=r"no_markdown: is a folder with no Markdown files"):
        list(iter_pages(BAD / "no_markdown"))


def test_missing_and_directory_paths_are_errors(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        load_markdown(tmp_path / "missing.md")
    with pytest.raises(InputFileError, match="is a directory"):
        load_markdown(tmp_path)
    with pytest.raises(UsageError):
        list(iter_pages([]))


def test_a_pipe_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    # read through _fs.open_regular, as every other input is: a FIFO with no writer
    # used to block the read forever
    fifo = tmp_path / "page.md"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match=r"page\.md: is not a regular file \(a pipe"):
        load_markdown(fifo)
    with pytest.raises(InputFileError, match="save the page to a file"):
        list(iter_pages([fifo]))


def test_a_bad_file_in_a_folder_stops_the_run_before_any_request(tmp_path: Path) -> None:
    (tmp_path / "good.md").write_text("# Good\n\nThe Pro plan costs €6.\n", encoding="utf-8")
    (tmp_path / "zbad.md").write_bytes(b"caf\xe9\n")
    backend = Replies({})
    with pytest.raises(InputFileError, match=r"zbad\.md:1: is not valid UTF-8"):
        QAGenerator(ChatModel("m", backend=backend)).generate(tmp_path)
    assert backend.requests == []


# ------------------------------------------------------------------- review fixes


def test_the_page_counts_reconcile_and_the_text_says_so(site_result: object) -> None:
    from finetune_qa.generation import GenerationResult

    assert isinstance(site_result, GenerationResult)
    report = site_result.report
    assert report.pages_found == report.pages_read + sum(report.pages_skipped.values())
    assert "  pages: 12 found, 11 read, 1 skipped (draft 1); " in report.to_text()
    described = GenerationReport.model_fields["pages_read"].description or ""
    assert "pages_found minus pages_skipped" in described


def test_agenerate_is_the_async_twin_and_generate_points_to_it() -> None:
    generator = QAGenerator(ChatModel.offline("gpt-4o-mini"), concurrency=3)
    pages = [SITE / "pricing.md", SITE / "faq.md"]
    sync = generator.generate(pages)

    async def in_a_notebook() -> tuple[object, str]:
        with pytest.raises(UsageError) as info:
            generator.generate(pages)  # blocks: refused inside a running loop
        return await generator.agenerate(pages), str(info.value)

    result, message = asyncio.run(in_a_notebook())
    assert "await generator.agenerate(paths)" in message
    assert result == sync and sync.pairs  # the same pairs, chunks and report
    with pytest.raises(InputFileError, match="no such file"):
        asyncio.run(generator.agenerate([SITE / "missing.md"]))


def test_writing_creates_missing_folders_with_a_normal_file_mode(
    site_result: object, tmp_path: Path
) -> None:
    from finetune_qa.generation import GenerationResult

    assert isinstance(site_result, GenerationResult)
    path = site_result.write_csv(tmp_path / "new" / "deeper" / "qa.csv")
    assert [(p.question, p.answer) for p in QASource(path).pairs()] == [
        (p.question, p.answer) for p in site_result.pairs
    ]
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600
    jsonl = site_result.write_jsonl(tmp_path / "other" / "qa.jsonl")
    assert len(jsonl.read_text(encoding="utf-8").splitlines()) == len(site_result.pairs)
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(InputFileError, match=r"file/qa\.csv: cannot be written"):
        site_result.write_csv(tmp_path / "file" / "qa.csv")
    with pytest.raises(InputFileError, match="cannot be written"):
        site_result.write_csv(tmp_path / "new")  # a folder
    assert not list(tmp_path.rglob(".*tmp"))


def test_threads_writing_the_same_file_do_not_collide(site_result: object, tmp_path: Path) -> None:
    from finetune_qa.generation import GenerationResult

    assert isinstance(site_result, GenerationResult)
    target = tmp_path / "qa.csv"
    errors: list[BaseException] = []

    def write() -> None:
        for _ in range(15):
            try:
                site_result.write_csv(target)
            except BaseException as exc:  # collected, asserted below
                errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(list(QASource(target).pairs())) == len(site_result.pairs)
    assert [p.name for p in tmp_path.iterdir()] == ["qa.csv"]


def test_the_library_and_the_offline_backend_share_their_text_helpers() -> None:
    from finetune_qa import _text
    from finetune_qa.backends._fake import _answers
    from finetune_qa.generation import _chunks

    assert _chunks.SENTENCE_BREAK is _text.SENTENCE_BREAK
    assert _fake_generate.SENTENCE_BREAK is _text.SENTENCE_BREAK
    assert _answers.last_user_text is _text.last_user_text
    assert not hasattr(_fake_generate, "_last_user_text")
    assert not hasattr(_chunks, "_SENTENCE_BREAK")
    # the offline generator now reads prompts sent as content parts, as the API allows
    chunk = QAGenerator(ChatModel.offline("gpt-4o-mini")).chunks(SITE / "pricing.md")[0]
    prompt = build_prompt(chunk, 3)
    as_text = _fake_generate.answer([{"role": "user", "content": prompt}])
    as_parts = _fake_generate.answer(
        [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
    )
    assert as_text is not None and as_text.startswith("Questions:\n1. ")
    assert as_parts == as_text
