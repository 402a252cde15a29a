"""Bad configuration: environment variables, saved state, catalogue and journal files.

Each case names the setting or the file in its message; on the command line it ends with
exit 2 and one line on stderr, without a traceback.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from finetune_qa import DatasetBuilder, FineTuneJob, QAPair
from finetune_qa import exceptions as exc
from finetune_qa.backends import OfflineBackend
from finetune_qa.catalog import ModelCatalog
from finetune_qa.cli import main
from finetune_qa.jobs import Journal
from finetune_qa.testing import FakeOpenAI


class EnvCase(NamedTuple):
    env: dict[str, str]
    argv: list[str]
    expect: str


def _state(kind: str) -> Callable[[Path], str]:
    def make(tmp: Path) -> str:
        path = tmp / f"state-{kind}.pickle"
        if kind == "garbage":
            path.write_bytes(b"this is not a pickle\n")
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "other-object":
            path.write_bytes(pickle.dumps({"files": []}))
        elif kind == "truncated":
            FakeOpenAI().save(path)
            path.write_bytes(path.read_bytes()[:300])
        else:  # a directory where the state file should be
            path.mkdir()
        return str(path)

    return make


STATE_KINDS = ("garbage", "empty", "other-object", "truncated", "directory")

ENV_CASES: dict[str, EnvCase] = {
    "backend-unknown-jobs": EnvCase({"FINETUNE_QA_BACKEND": "nope"}, ["jobs"], "'nope'"),
    "backend-unknown-status": EnvCase(
        {"FINETUNE_QA_BACKEND": "nope"}, ["status", "ftjob-x"], "unknown backend"
    ),
    "today-malformed": EnvCase(
        {"FINETUNE_QA_TODAY": "2026-13-45"},
        ["validate", "{train}"],
        "FINETUNE_QA_TODAY='2026-13-45'",
    ),
    "today-words": EnvCase(
        {"FINETUNE_QA_TODAY": "soon"}, ["validate", "{train}"], "FINETUNE_QA_TODAY"
    ),
    "cache-dir-is-a-file": EnvCase(
        {"FINETUNE_QA_CACHE_DIR": "{file}", "FINETUNE_QA_OFFLINE_STATE": ""},
        ["metrics", "ftjob-abc123", "--backend", "offline"],
        "FINETUNE_QA_CACHE_DIR=",
    ),
    "no-api-key": EnvCase(
        {"OPENAI_API_KEY": ""},
        ["status", "ftjob-x", "--backend", "openai"],
        "no OpenAI API key",
    ),
    **{
        f"offline-state-{kind}": EnvCase(
            {"FINETUNE_QA_OFFLINE_STATE": f"{{state-{kind}}}"},
            ["jobs", "--backend", "offline"],
            f"state-{kind}.pickle: ",
        )
        for kind in STATE_KINDS
    },
}


@pytest.fixture
def train(tmp_path: Path) -> Path:
    out = tmp_path / "train.jsonl"
    pairs = [
        QAPair(question=f"What is plan {i} about?", answer=f"Plan {i} is about {i}.")
        for i in range(12)
    ]
    DatasetBuilder().add_pairs(pairs).build(out)
    return out


@pytest.mark.parametrize(
    "name",
    list(ENV_CASES),
)
def test_bad_setting_on_the_command_line(
    name: str,
    train: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    case = ENV_CASES[name]
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    values = {"{train}": str(train), "{file}": str(a_file)}
    for kind in STATE_KINDS:
        values[f"{{state-{kind}}}"] = _state(kind)(tmp_path) if kind in name else ""

    def fill(text: str) -> str:
        for k, v in values.items():
            text = text.replace(k, v)
        return text

    for key, value in case.env.items():
        if value:
            monkeypatch.setenv(key, fill(value))
        else:
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)  # the offline state lives in the working project
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main([fill(a) for a in case.argv])
    _out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert case.expect in err, err
    # nothing new but the offline API's own state (the backend's, not an output)
    after = sorted(p.name for p in tmp_path.iterdir() if p.name != ".finetune-qa")
    assert after == before, "nothing new was written"
    assert code == 2, err


def test_a_damaged_offline_state_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The error must not overwrite the damaged file with an empty API: the user decides."""
    path = Path(_state("truncated")(tmp_path))
    damaged = path.read_bytes()
    monkeypatch.setenv("FINETUNE_QA_OFFLINE_STATE", str(path))
    assert main(["jobs", "--backend", "offline"]) == 2
    assert f"delete {path}" in capsys.readouterr().err
    assert path.read_bytes() == damaged


CATALOG_CASES: dict[str, tuple[str | None, int | None]] = {
    # name: (file content, or None for no file; the line the error names)
    "not-json": ('{"as_of": "2026-01-01",\n "models": [,]}\n', 2),
    "top-level-list": ("[]\n", None),
    "models-not-a-list": ('{"models": 3}\n', None),
    "model-wrong-types": ('{"models": [{"name": 3}]}\n', None),
    "missing-file": (None, None),
}


@pytest.mark.parametrize("name", sorted(CATALOG_CASES))
def test_a_bad_catalogue_file(name: str, tmp_path: Path) -> None:
    content, line = CATALOG_CASES[name]
    path = tmp_path / "catalog.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(exc.InputError) as info:
        ModelCatalog.from_json(path)
    assert info.value.path == str(path) and info.value.line == line
    assert "catalog.json" in str(info.value) and info.value.hint


def _torn(journal: Path) -> None:
    with journal.open("ab") as f:
        f.write(b'{"at": "2026-11-25T00:00:00+00:00", "op": "job", "state": "cre')  # killed here


def test_a_torn_journal_line_is_skipped_and_the_job_resumes(train: Path, tmp_path: Path) -> None:
    backend = OfflineBackend(max_retries=0)
    journal = tmp_path / "journal.jsonl"
    job = FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=journal)
    records = Journal(journal).records()
    _torn(journal)
    assert Journal(journal).records() == records
    again = FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=journal)
    assert again.id == job.id and [j.id for j in backend.list_jobs()] == [job.id]


def test_a_record_after_a_torn_line_is_kept(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append({"op": "upload", "state": "done", "file_id": "file-1"})
    _torn(journal.path)
    journal.append({"op": "job", "state": "created", "job_id": "ftjob-1"})
    assert [r.get("job_id") for r in journal.records()] == [None, "ftjob-1"]


def test_a_journal_path_that_is_a_directory(train: Path, tmp_path: Path) -> None:
    with pytest.raises(exc.InputFileError) as info:
        FineTuneJob.create(train, model="gpt-4o-mini", backend=OfflineBackend(), journal=tmp_path)
    assert info.value.path == str(tmp_path)


def test_cache_dir_setting_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from finetune_qa.config import cache_dir

    monkeypatch.setenv("FINETUNE_QA_CACHE_DIR", str(tmp_path / "new"))
    assert cache_dir() == tmp_path / "new"  # missing is fine: created on first use
    (tmp_path / "f").write_text("x")
    monkeypatch.setenv("FINETUNE_QA_CACHE_DIR", str(tmp_path / "f"))
    with pytest.raises(exc.ConfigError, match=r"FINETUNE_QA_CACHE_DIR=.* is not a directory"):
        cache_dir()


def test_case_counts() -> None:
    total: Any = len(ENV_CASES) + len(CATALOG_CASES) + 4
    assert total >= 20


def test_a_state_saved_by_another_version_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An old state would load, then fail halfway through a request with an AttributeError."""
    from finetune_qa.backends._fake import _router as _fakeapi

    path = tmp_path / "state.pickle"
    monkeypatch.setattr(_fakeapi, "__version__", "0.0.1")
    FakeOpenAI().save(path)
    monkeypatch.undo()
    monkeypatch.setenv("FINETUNE_QA_OFFLINE_STATE", str(path))
    assert main(["jobs", "--backend", "offline"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "saved by finetune_qa 0.0.1" in err and f"delete {path}" in err
