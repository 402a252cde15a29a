"""Plant an API key, run the lifecycle with every log level on, and scan everything produced."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from finetune_qa import DatasetBuilder, FineTuneJob, OpenAIBackend, QAPair, validate_file
from finetune_qa import exceptions as exc
from finetune_qa.testing import FakeOpenAI, openai_client

KEY = "sk-proj-PLANTED0123456789abcdefSECRET"


def test_a_planted_key_appears_nowhere(tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)  # openai, httpx2 and everything else, at their chattiest
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    fake = FakeOpenAI(advance_per_request=30)  # a plain client has no virtual sleep: time moves per request
    backend = OpenAIBackend(openai_client(fake, max_retries=1, api_key=KEY))
    train = tmp_path / "train.jsonl"
    build = DatasetBuilder().add_pairs(
        [QAPair(question=f"What is plan {i} about?", answer=f"Plan {i} is about {i} things.") for i in range(12)]
    ).build(train, model="gpt-4o-mini")
    report = validate_file(train)
    journal = tmp_path / "journal.jsonl"
    fake.inject("POST /fine_tuning/jobs", drop=True, after_effect=True)
    fake.inject("GET /fine_tuning/jobs/*", status=429, retry_after=0.01)
    job = FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=journal)
    job.wait(poll_interval=0.01)
    bot = job.chat_model()
    fake.inject("POST /chat/completions", status=401, times=2)
    items = bot.ask_many(["What is plan 3 about?", "What is plan 4 about?", "Hello?"], concurrency=1)
    errors: list[str] = []
    fake.inject("GET /fine_tuning/jobs/*", status=401)
    with pytest.raises(exc.AuthenticationError) as info:
        job.refresh()
    errors.append(str(info.value))
    errors.append(repr(info.value))
    produced = {
        "logs": caplog.text,
        "journal": journal.read_text(),
        "build report": build.to_json() + build.to_text(),
        "validation report": report.to_json() + report.to_text() + report.to_markdown(),
        "batch errors": " ".join(str(i.error) for i in items),
        "exceptions": " ".join(errors),
        "job events": " ".join(e.message for e in job.events()),
    }
    assert any(not i.ok for i in items) and caplog.text  # the paths that could leak were taken
    for where, text in produced.items():
        assert KEY not in text, f"the key leaked into {where}"
        assert KEY[8:24] not in text, f"part of the key leaked into {where}"
