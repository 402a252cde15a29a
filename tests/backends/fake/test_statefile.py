"""Offline states saved before the fake API moved into ``backends/_fake/`` (issue #11).

``tests/data/offline_state/offline-api-0.1.0.json`` was saved by finetune_qa 0.1.0 with the
fake in ``finetune_qa/backends/_fakeapi.py`` (one finished job, its file and its model;
``expected.json`` lists their ids). It must load, or fail with the "saved by another
version, delete it" message; a pickle is refused, never unpickled.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest

from finetune_qa import __version__
from finetune_qa.backends.offline import load_state
from finetune_qa.exceptions import InputFileError
from finetune_qa.testing import openai_client

DATA = Path(__file__).resolve().parents[2] / "data" / "offline_state"
SAVED = DATA / "offline-api-0.1.0.json"
EXPECTED = json.loads((DATA / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture
def old_state(tmp_path: Path) -> Path:
    path = tmp_path / "offline-api.json"
    shutil.copyfile(SAVED, path)
    path.chmod(0o600)  # as it was saved: a state others can write is not read
    return path


def saved_by(path: Path) -> str:
    return str(json.loads(path.read_bytes())["state"]["s"]["_saved_by"])


def test_the_fixture_names_the_classes_of_the_old_module() -> None:
    text = SAVED.read_text(encoding="utf-8")
    for name in ("FakeOpenAI", "_Job", "_File", "_Model", "_JobEngine", "Answerer"):
        assert f'"$o":"{name}"' in text


def test_a_state_saved_before_the_move_loads_or_names_the_file_to_delete(
    old_state: Path,
) -> None:
    if saved_by(old_state) != __version__:  # a later version: refused, with the way out
        with pytest.raises(InputFileError, match="saved by finetune_qa") as info:
            load_state(old_state)
        assert f"delete {old_state}" in (info.value.hint or "")
        return
    fake = load_state(old_state)
    client = openai_client(fake, max_retries=0)
    job = client.fine_tuning.jobs.retrieve(EXPECTED["job_id"])
    assert (job.status, job.fine_tuned_model) == (EXPECTED["status"], EXPECTED["model"])
    assert client.files.retrieve(EXPECTED["file_id"]).filename == "train.jsonl"
    reply = client.chat.completions.create(
        model=EXPECTED["model"],
        messages=[
            {"role": "system", "content": "You answer questions about Lumen."},
            {"role": "user", "content": "What is fact number 3 about Lumen?"},
        ],
        temperature=0,
    )
    assert reply.choices[0].message.content == "Fact 3: Lumen has 3 features."
    # it goes on handing out ids it has not given before
    again = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=EXPECTED["file_id"])
    assert again.id != EXPECTED["job_id"]
    assert fake.run_job(again.id) == "succeeded"


def test_a_state_naming_a_class_this_version_lacks_says_saved_by_another_version(
    old_state: Path,
) -> None:
    old_state.write_bytes(old_state.read_bytes().replace(b'"$o":"_Job"', b'"$o":"_RetiredJob"'))
    with pytest.raises(InputFileError, match="saved by another version") as info:
        load_state(old_state)
    assert "_RetiredJob" in str(info.value)
    assert f"delete {old_state}" in (info.value.hint or "")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))  # would run on unpickling


def test_a_pickled_state_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "offline-api.json"
    path.write_bytes(pickle.dumps(_Payload(marker)))
    path.chmod(0o600)
    with pytest.raises(InputFileError, match="pickle") as info:
        load_state(path)
    assert f"delete {path}" in (info.value.hint or "")
    assert not marker.exists()


def test_the_fake_s_public_face_is_the_package() -> None:
    from finetune_qa import testing
    from finetune_qa.backends import _fake

    assert testing.FakeOpenAI is _fake.FakeOpenAI and testing.VirtualClock is _fake.VirtualClock
