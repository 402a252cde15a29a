"""Issue #13, finding 2: a fine-tune knows how it was trained (its model card)."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import pytest

from finetune_qa import (
    ChatModel,
    DatasetBuilder,
    FineTuneJob,
    ModelCard,
    OfflineBackend,
    model_card,
)
from finetune_qa.cli import main
from finetune_qa.samples import sample_csv

LUMEN = "You are a factual chatbot that answers questions about Lumen Notes."


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINETUNE_QA_OFFLINE_STATE", str(tmp_path / "offline-api.pickle"))
    monkeypatch.setenv("FINETUNE_QA_CACHE_DIR", str(tmp_path))  # this test's own index of models
    monkeypatch.setenv("FINETUNE_QA_BACKEND", "offline")
    monkeypatch.chdir(tmp_path)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def trained(tmp_path: Path, *, stop: str = "###") -> tuple[FineTuneJob, Path]:
    train = tmp_path / "train.jsonl"
    DatasetBuilder(system_prompt=LUMEN, stop=stop).add_source(sample_csv()).build(train)
    job = FineTuneJob.create(
        train,
        model="gpt-4o-mini",
        backend=OfflineBackend(),
        journal=tmp_path / "j.jsonl",
        n_epochs=3,
    )
    job.wait()
    return job, train


def test_finding2_the_card_records_how_the_model_was_trained(tmp_path: Path) -> None:
    job, train = trained(tmp_path)
    card = job.card()
    assert isinstance(card, ModelCard) and card.model == job.fine_tuned_model
    assert (card.system_prompt, card.stop) == (LUMEN, "###")
    assert (card.base_model, card.backend, card.job_id) == ("gpt-4o-mini", "offline", job.id)
    assert card.training_file is not None
    assert card.training_file.sha256 == hashlib.sha256(train.read_bytes()).hexdigest()
    assert card.settings["n_epochs"] == 3 and card.validation_file is None
    # found again by model name: in the job's journal, and in this machine's index of models
    assert model_card(card.model, journal=tmp_path / "j.jsonl") == card
    assert model_card(card.model) == card
    assert model_card(card.model, backend=job.backend) == card
    assert model_card(card.model, backend=OfflineBackend()) is None  # another offline API
    assert model_card("ft:gpt-4o-mini-2024-07-18:someone::else") is None
    # attach (another process) finds the same card; the journal holds it once
    again = FineTuneJob.attach(job.id, backend=job.backend, journal=tmp_path / "j.jsonl")
    assert again.card() == card
    records = [json.loads(x) for x in (tmp_path / "j.jsonl").read_text().splitlines()]
    assert sum(r["op"] == "model" for r in records) == 1


def test_finding2_chat_model_asks_as_trained_and_warns_on_overrides(tmp_path: Path) -> None:
    job, _ = trained(tmp_path)
    name = job.fine_tuned_model
    assert name is not None
    bot = ChatModel(name, backend=job.backend)
    assert (bot.system_prompt, bot.stop, bot.notes) == (LUMEN, ("###",), [])
    answer = bot.ask("How do I reset my password?")
    assert answer.stopped_at_marker and "###" not in answer.text
    with pytest.warns(
        UserWarning, match="trained with the stop marker '###'; asking with '\\*\\*STOP\\*\\*'"
    ):
        other = ChatModel(name, backend=job.backend, stop="**STOP**")
    assert len(other.notes) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ChatModel(name, backend=job.backend, card=False)  # no card: today's defaults, no warning
        ChatModel("gpt-4o-mini", backend=job.backend)  # a model without a card


def test_finding2_ask_and_eval_use_the_card(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, model, err = run(capsys, "train", str(sample_csv()), "--stop", "###", "-q")
    assert code == 0, err
    model = model.strip()
    code, out, err = run(capsys, "ask", model, "How do I reset my password?", "--json")
    answer = json.loads(out)
    assert code == 0 and answer["stopped_at_marker"] and "###" not in answer["text"], out
    assert err == ""
    code, out, err = run(capsys, "ask", model, "How do I reset my password?", "--stop", "**STOP**")
    assert "note: " in err and "trained with the stop marker '###'" in err
    # eval: the training system prompt and marker, said so; the data's '###' read off
    code, out, err = run(
        capsys, "eval", "finetune-qa-train/train.jsonl", "--model", model, "--limit", "5"
    )
    assert code == 0, err
    assert f"{model}: asked as trained (model card): system prompt " in out
    assert "stop ###" in out
    code, out, err = run(
        capsys,
        "eval",
        "finetune-qa-train/train.jsonl",
        "--model",
        model,
        "--limit",
        "5",
        "--system-prompt",
        "Other.",
    )
    assert "note: " in err and "asking with 'Other.' instead" in err


def test_finding2_the_card_travels_in_the_providers_job_metadata(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, model, err = run(capsys, "train", str(sample_csv()), "--stop", "###", "-q")
    assert code == 0, err
    model = model.strip()
    # another machine: the same provider (offline state), no journal and no index of models
    monkeypatch.setenv("FINETUNE_QA_CACHE_DIR", str(tmp_path / "elsewhere"))
    (tmp_path / "elsewhere").mkdir()
    assert model_card(model) is None
    code, out, err = run(capsys, "ask", model, "How do I reset my password?", "--json")
    answer = json.loads(out)
    assert code == 0 and answer["stopped_at_marker"] and "###" not in answer["text"], out
    code, out, err = run(capsys, "ask", model, "How do I reset my password?", "--stop", "**STOP**")
    assert "trained with the stop marker '###'" in err


def test_finding2_the_card_is_backend_neutral(tmp_path: Path) -> None:
    """A backend whose jobs carry no metadata (Together) gets its card through the journal."""
    from together_fake import LLAMA, fake_together, make_backend

    train = tmp_path / "train.jsonl"
    DatasetBuilder(system_prompt=LUMEN, stop="###").add_source(sample_csv()).build(train)
    with fake_together() as api:
        backend = make_backend()
        job = FineTuneJob.create(train, model=LLAMA, backend=backend, journal=tmp_path / "j.jsonl")
        job.wait(poll_interval=0)
        card = job.card()
        assert card is not None and (card.backend, card.stop, card.system_prompt) == (
            "together",
            "###",
            LUMEN,
        )
        assert "metadata" not in api.create_bodies[0]
        name = job.fine_tuned_model
        assert name is not None and model_card(name, backend=make_backend()) == card
        ChatModel(name, backend=make_backend()).ask("How do I reset my password?")
        sent = api.chat_bodies[-1]
        assert sent["stop"] == ["###"] and sent["messages"][0] == {
            "role": "system",
            "content": LUMEN,
        }
