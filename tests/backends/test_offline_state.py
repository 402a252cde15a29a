"""The offline API's state per project, and ids that never repeat across offline APIs (issue #13, item 6)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from openai.types.fine_tuning import FineTuningJob

from finetune_qa.backends import OfflineBackend
from finetune_qa.backends.offline import STATE_DIR, load_state, save_state, state_path
from finetune_qa.exceptions import InputFileError
from finetune_qa.testing import FakeOpenAI, openai_client

SYSTEM = "You answer questions about Lumen."
TRAIN = "".join(
    json.dumps(
        {
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"What is fact number {i} about Lumen?"},
                {"role": "assistant", "content": f"Fact {i}: Lumen has {i} features."},
            ]
        }
    )
    + "\n"
    for i in range(12)
).encode()


def train(fake: FakeOpenAI) -> tuple[str, str, str]:
    """Upload, fine-tune and finish one job: its file id, job id and model name."""
    client = openai_client(fake, max_retries=0)
    file_id = client.files.create(file=("train.jsonl", io.BytesIO(TRAIN)), purpose="fine-tune").id
    job_id = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id).id
    assert fake.run_job(job_id) == "succeeded"
    model = client.fine_tuning.jobs.retrieve(job_id).fine_tuned_model
    assert model is not None
    return file_id, job_id, model


def jobs(fake: FakeOpenAI) -> list[FineTuningJob]:
    return list(openai_client(fake, max_retries=0).fine_tuning.jobs.list())


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINETUNE_QA_OFFLINE_STATE", raising=False)


def test_two_fresh_offline_backends_give_different_job_ids_and_model_names() -> None:
    a, b = OfflineBackend(), OfflineBackend()
    assert a.fake.seed != b.fake.seed
    ids_a, ids_b = train(a.fake), train(b.fake)
    for x, y in zip(ids_a, ids_b, strict=True):
        assert x != y
    assert ids_a[2].rsplit(":", 1)[1] != ids_b[2].rsplit(":", 1)[1]  # the model hash


def test_an_explicit_seed_gives_the_same_ids_every_time() -> None:
    assert train(OfflineBackend(seed=7).fake) == train(OfflineBackend(seed=7).fake)
    assert train(FakeOpenAI(seed=7)) != train(FakeOpenAI(seed=8))


def test_state_lives_under_the_project_folder(
    no_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "bot"
    assert state_path(project) == project / ".finetune-qa" / "offline-api.json"
    monkeypatch.chdir(project.parent)
    assert state_path() == Path.cwd() / ".finetune-qa" / "offline-api.json"
    # two projects, two states: a job of one is not seen from the other
    fake = load_state(state_path(project))
    _, job_id, _ = train(fake)
    save_state(fake, state_path(project))
    assert (project / STATE_DIR / "offline-api.json").is_file()
    assert [j.id for j in jobs(load_state(state_path(project)))] == [job_id]
    assert jobs(load_state(state_path(tmp_path / "other"))) == []


def test_the_environment_variable_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINETUNE_QA_OFFLINE_STATE", str(tmp_path / "mine.json"))
    assert state_path(tmp_path / "bot") == tmp_path / "mine.json"
    assert state_path() == tmp_path / "mine.json"


def test_the_state_folder_is_kept_out_of_version_control(no_env: None, tmp_path: Path) -> None:
    path = state_path(tmp_path)
    save_state(FakeOpenAI(), path)
    ignore = (tmp_path / STATE_DIR / ".gitignore").read_text(encoding="utf-8")
    assert "*" in ignore.splitlines()
    assert os.stat(path).st_mode & 0o077 == 0  # owner-only: it holds the training data


def test_a_saved_state_keeps_handing_out_unique_ids_across_reloads(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    fake = load_state(path)  # none yet: a new one, with a seed of its own
    seen = set(train(fake))
    save_state(fake, path)
    for _ in range(2):
        again = load_state(path)
        assert again.seed == fake.seed
        ids = set(train(again))
        assert not ids & seen
        seen |= ids
        save_state(again, path)


def test_a_state_saved_by_another_version_names_the_file_to_delete(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_state(FakeOpenAI(), path)
    data = path.read_bytes()
    version = json.loads(data)["state"]["s"]["_saved_by"]
    path.write_bytes(data.replace(f'"_saved_by":"{version}"'.encode(), b'"_saved_by":"0.0.1"'))
    with pytest.raises(InputFileError) as info:
        load_state(path)
    assert "saved by finetune_qa 0.0.1" in str(info.value)
    assert f"delete {path}" in (info.value.hint or "")
