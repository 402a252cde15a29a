from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from together_fake import KEY, LLAMA, fake_together, make_backend

from finetune_qa import ChatModel, DatasetBuilder, FineTuneJob, sample_csv
from finetune_qa.backends import OfflineBackend
from finetune_qa.catalog import default_catalog
from finetune_qa.cli import main
from finetune_qa.exceptions import NotFoundError, UsageError, ValidationFailed
from finetune_qa.migration import (
    MODEL_MAP,
    MigrationPlan,
    migrate,
    plan_migration,
    suggest_model,
)


@pytest.fixture
def source(tmp_path: Path) -> tuple[OfflineBackend, str, Path]:
    """An offline backend with a finished job (validation file, suffix, explicit settings)."""
    d = tmp_path / "src"
    DatasetBuilder().add_source(sample_csv()).split(0.2).build(
        d / "train.jsonl", validation_output=d / "validation.jsonl"
    )
    be = OfflineBackend()
    job = FineTuneJob.create(
        d / "train.jsonl",
        validation_file=d / "validation.jsonl",
        model="gpt-4o-mini",
        backend=be,
        journal=d / "journal.jsonl",
        suffix="lumen",
        n_epochs=3,
        learning_rate_multiplier=1.5,
    )
    assert job.wait().status == "succeeded"
    return be, job.id, d


def only_limits_read(api: Any) -> bool:
    """True when every request to the Together fake read the model limits (nothing sent)."""
    return all(
        c.request.method == "GET" and c.request.url.path.endswith("/fine-tunes/models/limits")
        for c in api.router.calls
    )


def hp(plan: MigrationPlan) -> dict[str, tuple[object, object]]:
    return {h.name: (h.source, h.target) for h in plan.hyperparameters}


def test_migrated_job_runs_and_succeeds_on_another_backend(
    source: tuple[OfflineBackend, str, Path], tmp_path: Path
) -> None:
    old, job_id, d = source
    new = OfflineBackend(seed=7)
    result = migrate(job_id, source=old, target=new, workdir=tmp_path / "move", wait=True)
    assert not result.dry_run and result.job is not None
    job = new.retrieve_job(result.job.id)
    assert job.status == "succeeded" and result.job.status == "succeeded"
    assert job.model == "gpt-4o-mini-2024-07-18" and ":lumen:" in (job.fine_tuned_model or "")
    assert job.metadata["migrated_from"] == job_id
    # the same bytes were uploaded, both files
    src_job = old.retrieve_job(job_id)
    assert new.file_content(job.training_file) == old.file_content(src_job.training_file)
    assert job.validation_file is not None and src_job.validation_file is not None
    assert new.file_content(job.validation_file) == (d / "validation.jsonl").read_bytes()
    # settings of the source job carried over between OpenAI-compatible backends
    sent = job.raw["method"]["supervised"]["hyperparameters"]
    source_hp = src_job.raw["method"]["supervised"]["hyperparameters"]
    assert sent == source_hp and sent["n_epochs"] == 3 and sent["learning_rate_multiplier"] == 1.5
    assert result.plan.model_choice == "same" and result.plan.ok
    assert "Started " + job.id in result.to_text()
    # the source still has its one job; running again attaches instead of paying twice
    assert len(old.list_jobs()) == 1
    again = migrate(job_id, source=old, target=new, workdir=tmp_path / "move")
    assert again.job is not None and again.job.id == job.id and len(new.list_jobs()) == 1
    attached = FineTuneJob.attach(job.id, backend=new, journal=result.journal)
    assert attached.stop == "**STOP**"


def test_dry_run_sends_nothing_to_the_target(
    source: tuple[OfflineBackend, str, Path], tmp_path: Path
) -> None:
    old, job_id, _ = source
    new = OfflineBackend()
    result = migrate(job_id, source=old, target=new, dry_run=True, workdir=tmp_path / "m")
    assert result.dry_run and result.job is None and result.journal is None
    assert new.list_files() == [] and new.list_jobs() == []
    assert len(new.fake.requests) == 2  # only the two listings just made
    assert "Dry run: nothing was sent" in result.to_text()
    plan = result.plan
    assert Path(plan.training_file.path).read_bytes() == old.file_content(
        plan.training_file.source_id
    )
    assert (
        plan.validation_file is not None
        and plan.validation_file.examples == plan.validation.validation_examples
    )


def test_plan_for_together_maps_model_and_hyperparameters(
    source: tuple[OfflineBackend, str, Path], tmp_path: Path
) -> None:
    old, job_id, _ = source
    plan = plan_migration(job_id, source=old, target="together", workdir=tmp_path / "t")
    assert plan.target_backend == "together" and plan.model_choice == "suggested"
    assert plan.target_model == MODEL_MAP["together"]["gpt-4o-mini-2024-07-18"]
    assert plan.suffix == "lumen" and plan.method == "supervised" and plan.ok
    src_hp = old.retrieve_job(job_id).raw["method"]["supervised"]["hyperparameters"]
    mapped = hp(plan)
    assert mapped["n_epochs"] == (src_hp["n_epochs"], src_hp["n_epochs"])
    assert mapped["learning_rate_multiplier"] == (1.5, "auto")
    assert mapped["batch_size"] == (src_hp["batch_size"], "auto")
    lr_note = next(h.note for h in plan.hyperparameters if h.name == "learning_rate_multiplier")
    assert "not transferable" in lr_note and "absolute learning rate" in lr_note
    # validated and priced for the target model (unpriced when the catalogue has no price)
    assert plan.validation.model == plan.target_model
    assert plan.estimated_cost_usd == plan.validation.cost.estimated_cost_usd
    assert plan.billed_tokens == plan.validation.cost.billed_tokens_total > 0
    if plan.target_model not in default_catalog():
        assert plan.estimated_cost_usd is None and "unknown" in plan.to_text()
    text = plan.to_text()
    for part in (job_id, plan.target_model, "train.jsonl", "validation.jsonl", "n_epochs: 3 -> 3"):
        assert part in text
    assert MigrationPlan.model_validate_json(plan.model_dump_json()) == plan
    assert json.loads(plan.to_json())["ok"] is True

    given = plan_migration(
        job_id,
        source=old,
        target="together",
        model="Qwen/Qwen2.5-7B-Instruct",
        workdir=tmp_path / "t2",
    )
    assert given.target_model == "Qwen/Qwen2.5-7B-Instruct" and given.model_choice == "given"


def test_suggestions_and_unmapped_targets(
    source: tuple[OfflineBackend, str, Path], tmp_path: Path
) -> None:
    assert suggest_model("gpt-4o", "together") == MODEL_MAP["together"]["gpt-4o-2024-08-06"]
    assert (
        suggest_model("ft:gpt-4.1-mini-2025-04-14:acme::x", "together")
        == MODEL_MAP["together"]["gpt-4.1-mini-2025-04-14"]
    )
    assert suggest_model("gpt-4o-mini", "offline") == "gpt-4o-mini-2024-07-18"
    assert suggest_model("gpt-4o-mini", "someone-else") is None
    old, job_id, _ = source
    with pytest.raises(UsageError, match="pass model="):
        plan_migration(job_id, source=old, target="someone-else", workdir=tmp_path / "x")
    plan = plan_migration(
        job_id, source=old, target="someone-else", model="their-model", workdir=tmp_path / "y"
    )
    assert plan.target_model == "their-model" and plan.ok


def test_auto_settings_stay_auto(tmp_path: Path) -> None:
    DatasetBuilder().add_source(sample_csv()).build(tmp_path / "train.jsonl")
    old = OfflineBackend()
    job = FineTuneJob.create(
        tmp_path / "train.jsonl", model="gpt-4o", backend=old, journal=tmp_path / "j.jsonl"
    )
    plan = plan_migration(
        job.id, source=old, target="together", workdir=tmp_path / "m"
    )  # not started yet
    assert hp(plan) == {
        "n_epochs": ("auto", "auto"),
        "batch_size": ("auto", "auto"),
        "learning_rate_multiplier": ("auto", "auto"),
    }
    assert plan.target_model == MODEL_MAP["together"]["gpt-4o-2024-08-06"] and plan.suffix is None
    assert any(job.status in note for note in plan.notes)


def test_invalid_source_data_is_refused_before_the_target_sees_anything(tmp_path: Path) -> None:
    old = OfflineBackend()
    bad = [{"messages": [{"role": "user", "content": f"Question {i}?"}]} for i in range(12)]
    f = old.upload_file(b"".join(orjson.dumps(r) + b"\n" for r in bad), filename="bad.jsonl")
    from finetune_qa.backends import JobRequest

    info = old.create_job(JobRequest(model="gpt-4o-mini", training_file=f.id))
    old.sleep(3600)
    assert old.retrieve_job(info.id).status == "failed"
    new = OfflineBackend()
    plan = plan_migration(info.id, source=old, target=new, workdir=tmp_path / "m")
    assert not plan.ok and "example_missing_assistant_message" in plan.validation.error_counts
    assert "FAILED" in plan.to_text() and any("failed" in n for n in plan.notes)
    with pytest.raises(ValidationFailed):
        migrate(info.id, source=old, target=new, workdir=tmp_path / "m")
    assert new.list_files() == [] and new.list_jobs() == []


def test_missing_source_file_says_what_to_do(
    source: tuple[OfflineBackend, str, Path], tmp_path: Path
) -> None:
    old, job_id, _ = source
    old.client.files.delete(old.retrieve_job(job_id).training_file)
    with pytest.raises(NotFoundError, match=r"no longer on offline.*finetune-qa build") as info:
        plan_migration(job_id, source=old, target="together", workdir=tmp_path / "m")
    assert info.value.status_code == 404
    with pytest.raises(NotFoundError):
        plan_migration("ftjob-nope", source=old, target="together", workdir=tmp_path / "m")


# ---------------------------------------------------------------------------- CLI


@pytest.fixture
def offline_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "offline-api.pickle"
    monkeypatch.setenv("FINETUNE_QA_OFFLINE_STATE", str(state))
    monkeypatch.chdir(tmp_path)
    return state


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_migrate_on_the_persisted_offline_state(
    offline_state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "train", str(sample_csv()), "--suffix", "lumen", "--backend", "offline", "--json"
    )
    assert code == 0, err
    job_id = json.loads(out)["job_id"]

    code, out, err = run(
        capsys, "migrate", job_id, "--from", "offline", "--to", "offline", "--dry-run", "--json"
    )
    assert code == 0, err
    dry = json.loads(out)
    assert (
        dry["dry_run"] is True
        and dry["plan"]["job_id"] == job_id
        and dry["plan"]["suffix"] == "lumen"
    )
    train_copy = Path(dry["plan"]["training_file"]["path"]).resolve()
    assert train_copy.parent == (tmp_path / "finetune-qa-migrate" / job_id).resolve()
    code, out, _ = run(capsys, "jobs", "--backend", "offline", "--json")
    # the dry run started nothing
    assert [json.loads(line)["id"] for line in out.splitlines()] == [job_id]

    code, out, err = run(
        capsys, "migrate", job_id, "--from", "offline", "--to", "offline", "--wait", "--json"
    )
    assert code == 0, err
    new_id = json.loads(out)["job"]["id"]
    assert new_id != job_id and json.loads(out)["job"]["status"] == "succeeded"
    code, out, _ = run(capsys, "status", new_id, "--backend", "offline", "--json")
    status = json.loads(out)
    assert status["status"] == "succeeded" and status["metadata"]["migrated_from"] == job_id
    code, out, _ = run(capsys, "jobs", "--backend", "offline", "--json")
    assert sorted(json.loads(line)["id"] for line in out.splitlines()) == sorted([job_id, new_id])

    # -q prints only the job id; running again attaches to the same job
    code, out, _ = run(capsys, "migrate", job_id, "--from", "offline", "--to", "offline", "-q")
    assert code == 0 and out.strip() == new_id

    # a plan for Together needs no Together key: nothing is sent there
    code, out, err = run(
        capsys, "migrate", job_id, "--from", "offline", "--to", "together", "--dry-run"
    )
    assert code == 0, err
    assert MODEL_MAP["together"]["gpt-4o-mini-2024-07-18"] in out and "not transferable" in out
    assert "Dry run: nothing was sent" in out


def test_cli_migrate_errors_are_one_line(
    offline_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys, "migrate", "ftjob-nope", "--from", "offline", "--to", "offline", "--dry-run"
    )
    assert code == 1 and err.startswith("error: 404") and err.count("\n") == 1
    code, out, err = run(capsys, "train", str(sample_csv()), "--backend", "offline", "--json")
    job_id = json.loads(out)["job_id"]
    code, _, err = run(
        capsys, "migrate", job_id, "--from", "offline", "--to", "elsewhere", "--dry-run"
    )
    assert code == 2 and "pass model=" in err and err.count("\n") == 1
    code, _, err = run(capsys, "migrate", job_id, "--from", "offline")
    assert code == 2 and "--to" in err


# ---------------------------------------------------------------------------- to Together, end to end


def examples(data: bytes) -> list[object]:
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


def test_migrated_job_runs_on_together(
    source: tuple[OfflineBackend, str, Path], tmp_path: Path
) -> None:
    old, job_id, d = source
    src_job = old.retrieve_job(job_id)
    with fake_together() as api:
        target = make_backend()
        result = migrate(job_id, source=old, target=target, workdir=tmp_path / "move", wait=True)
        assert result.job is not None and not result.dry_run
        new_id = result.job.id
        # both files went up through the three-step upload, with the same examples
        [body] = api.create_bodies
        train_id, val_id = body["training_file"], body["validation_file"]
        assert set(api.files) == {train_id, val_id}
        assert examples(api.blobs[train_id]) == examples(old.file_content(src_job.training_file))
        assert src_job.validation_file is not None
        assert api.blobs[val_id] == (d / "validation.jsonl").read_bytes()
        assert examples(api.blobs[val_id]) == examples(old.file_content(src_job.validation_file))
        # the create request: the mapped model, the kept epochs and suffix, no multiplier
        assert body["model"] == LLAMA == MODEL_MAP["together"][src_job.model]
        assert body["n_epochs"] == 3 and body["suffix"] == "lumen"
        assert body["batch_size"] == "max"  # the source's batch size is left to Together
        assert "learning_rate_multiplier" not in json.dumps(body)
        assert body["learning_rate"] == 1e-5  # Together's default, not 1.5 x anything
        assert "metadata" not in body  # Together jobs carry none
        lr = next(h for h in result.plan.hyperparameters if h.name == "learning_rate_multiplier")
        assert (lr.source, lr.target) == (1.5, "auto") and "not transferable" in lr.note
        # the job ran to completed on the fake
        assert api.jobs[new_id]["status"] == "completed" and result.job.status == "succeeded"
        assert result.job.fine_tuned_model == api.jobs[new_id]["model_output_name"]
        assert f"Started {new_id} on together: succeeded" in result.to_text()
        # the new model answers a training question
        job = FineTuneJob.attach(new_id, backend=target, journal=result.journal)
        bot = job.chat_model()
        assert isinstance(bot, ChatModel) and bot.model == result.job.fine_tuned_model
        first = examples((d / "train.jsonl").read_bytes())[0]
        assert isinstance(first, dict)
        question, answer = first["messages"][1]["content"], first["messages"][2]["content"]
        reply = bot.ask(question)
        assert reply.text.strip() and answer.startswith(reply.text.strip())
        assert api.chat_bodies[-1]["model"] == result.job.fine_tuned_model
        # running again with the same workdir attaches: no second upload or create
        uploads = len(api.files)
        again = migrate(job_id, source=old, target=target, workdir=tmp_path / "move")
        assert again.job is not None and again.job.id == new_id
        assert api.create_route.call_count == 1 and len(api.jobs) == 1
        assert len(api.files) == uploads
    assert len(old.list_jobs()) == 1  # the source is only read


def test_dry_run_to_together_sends_nothing(
    source: tuple[OfflineBackend, str, Path], tmp_path: Path
) -> None:
    old, job_id, _ = source
    with fake_together() as api:
        result = migrate(
            job_id, source=old, target=make_backend(), dry_run=True, workdir=tmp_path / "m"
        )
        # the plan read the model's limits (to check the settings), and sent nothing
        assert api.router.calls.call_count == 1 and only_limits_read(api)
        assert api.files == {} and api.jobs == {}
    assert result.dry_run and result.job is None and result.plan.ok
    assert result.plan.target_model == LLAMA and result.plan.suffix == "lumen"
    assert "Dry run: nothing was sent" in result.to_text()


def test_a_long_suffix_is_cut_to_what_together_allows(tmp_path: Path) -> None:
    DatasetBuilder().add_source(sample_csv()).build(tmp_path / "train.jsonl")
    old = OfflineBackend()
    long = "support-bot-for-the-acme-anvils-website-v2-2026"  # fine on OpenAI (<= 64)
    job = FineTuneJob.create(
        tmp_path / "train.jsonl",
        model="gpt-4o-mini",
        backend=old,
        journal=tmp_path / "j.jsonl",
        suffix=long,
    )
    job.wait()
    with fake_together() as api:
        result = migrate(job.id, source=old, target=make_backend(), workdir=tmp_path / "m")
        sent = api.create_bodies[-1]["suffix"]
    assert result.plan.suffix == sent and len(sent) <= 40 and long.startswith(sent)
    assert not sent.endswith("-")
    assert any(f"{len(long)} characters" in n and "at most 40" in n for n in result.plan.notes)
    # an OpenAI-compatible target keeps it whole
    assert plan_migration(job.id, source=old, target="offline", workdir=tmp_path / "o").suffix == (
        long
    )


def not_alternating_source(d: Path, backend: OfflineBackend) -> tuple[str, int]:
    """A finished job whose training file has two user messages in a row (OpenAI takes it)."""
    DatasetBuilder().add_source(sample_csv()).build(d / "train.jsonl")
    rows = (d / "train.jsonl").read_text(encoding="utf-8").splitlines()
    bad_line = 3
    row = json.loads(rows[bad_line - 1])
    row["messages"].insert(2, {"role": "user", "content": "And one more thing?"})
    rows[bad_line - 1] = json.dumps(row)
    (d / "train.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    job = FineTuneJob.create(
        d / "train.jsonl", model="gpt-4o-mini", backend=backend, journal=d / "j.jsonl"
    )
    assert job.wait().status == "succeeded"  # valid for OpenAI
    return job.id, bad_line


def test_data_together_refuses_is_stopped_before_upload(tmp_path: Path) -> None:
    old = OfflineBackend()
    job_id, line = not_alternating_source(tmp_path, old)
    with fake_together() as api:
        with pytest.raises(ValidationFailed) as info:
            migrate(job_id, source=old, target=make_backend(), workdir=tmp_path / "m")
        assert only_limits_read(api) and api.files == {} and api.jobs == {}
    text = str(info.value)
    assert "together_roles_not_alternating" in text and f"train.jsonl:{line}:" in text
    [err] = info.value.report.errors
    assert (err.kind, err.line) == ("together_roles_not_alternating", line)
    assert "messages[2] is 'user' where 'assistant' should come" in err.message


# ---------------------------------------------------------------------------- CLI, to Together


@pytest.fixture
def together_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOGETHER_API_KEY", KEY)
    monkeypatch.delenv("TOGETHER_BASE_URL", raising=False)


def test_cli_migrate_to_together(
    offline_state: Path,
    together_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(
        capsys,
        "train",
        str(sample_csv()),
        "--suffix",
        "lumen",
        "--epochs",
        "2",
        "--backend",
        "offline",
        "--json",
    )
    assert code == 0, err
    job_id = json.loads(out)["job_id"]
    args = ("migrate", job_id, "--from", "offline", "--to", "together")
    with fake_together() as api:
        code, out, err = run(capsys, *args, "--dry-run")
        assert code == 0, err
        assert only_limits_read(api)  # the plan read the limits and sent nothing to Together
        assert f"target model: {LLAMA}" in out
        assert f"Validation for {LLAMA}: ok, 0 errors" in out
        assert "n_epochs: 2 -> 2" in out and "Dry run: nothing was sent" in out

        code, out, err = run(capsys, *args, "--json")
        assert code == 0, err
        started = json.loads(out)
        new_id = started["job"]["id"]
        assert new_id in api.jobs and started["job"]["status"] == "queued"
        assert started["journal"] and started["dry_run"] is False
        [body] = api.create_bodies
        assert (body["model"], body["n_epochs"], body["suffix"]) == (LLAMA, 2, "lumen")
        assert len(api.files) == 2  # training and validation

        # the text form names the job and how to follow it; running again attaches
        code, out, err = run(capsys, *args)
        assert code == 0, err
        assert f"Started {new_id} on together" in out
        assert f"finetune-qa events {new_id} --backend together --follow" in out
        code, out, _ = run(capsys, *args, "-q")
        assert code == 0 and out.strip() == new_id
        assert api.create_route.call_count == 1 and len(api.files) == 2
    assert KEY not in out


def test_cli_migrate_to_together_refuses_bad_data(
    offline_state: Path,
    together_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from finetune_qa.cli._common import open_backend

    d = tmp_path / "bad"
    d.mkdir()
    with open_backend("offline", None) as be:  # the CLI's persisted offline state
        assert isinstance(be, OfflineBackend)
        job_id, line = not_alternating_source(d, be)
    args = ("migrate", job_id, "--from", "offline", "--to", "together")
    with fake_together() as api:
        code, out, err = run(capsys, *args, "--dry-run")
        assert code == 1, err
        assert f"Validation for {LLAMA}: FAILED, 1 error," in out
        assert f"train.jsonl:{line}: together_roles_not_alternating" in out
        code, out, err = run(capsys, *args)
        assert code == 1 and out == ""
        assert err.startswith("error: ") and "together_roles_not_alternating" in err
        assert only_limits_read(api) and api.files == {} and api.jobs == {}


# ---------------------------------------------------------------------------- the target's limits


@pytest.fixture
def thirty_epochs(tmp_path: Path) -> tuple[OfflineBackend, str]:
    """A job with 30 epochs: fine on OpenAI (up to 50), over Together's 20 for Llama 8B."""
    DatasetBuilder().add_source(sample_csv()).build(tmp_path / "train.jsonl")
    old = OfflineBackend()
    job = FineTuneJob.create(
        tmp_path / "train.jsonl",
        model="gpt-4o-mini",
        backend=old,
        journal=tmp_path / "j.jsonl",
        n_epochs=30,
    )
    return old, job.id


def test_plan_reports_what_the_target_refuses(
    thirty_epochs: tuple[OfflineBackend, str], tmp_path: Path
) -> None:
    old, job_id = thirty_epochs
    with fake_together() as api:
        target = make_backend()
        plan = plan_migration(job_id, source=old, target=target, workdir=tmp_path / "m")
        # the files are fine; the settings are not, and the plan says so (it used to say ok)
        assert plan.validation.ok and not plan.ok
        [problem] = plan.problems
        assert "n_epochs 30 is over the maximum 20" in problem
        assert "n_epochs=20" in problem and "--epochs 20" in problem
        assert "Target limits: FAILED, 1 problem" in plan.to_text()
        assert json.loads(plan.to_json())["ok"] is False
        assert MigrationPlan.model_validate_json(plan.model_dump_json()) == plan
        # migrate refuses before anything is uploaded, with the same words
        with pytest.raises(UsageError, match=r"over the maximum 20.*--epochs 20"):
            migrate(job_id, source=old, target=target, workdir=tmp_path / "m")
        assert only_limits_read(api) and api.files == {} and api.jobs == {}
        # n_epochs= overrides the source's value
        result = migrate(job_id, source=old, target=target, n_epochs=20, workdir=tmp_path / "m")
        assert result.plan.ok and hp(result.plan)["n_epochs"] == (30, 20)
        assert next(h.note for h in result.plan.hyperparameters if h.name == "n_epochs") == "given"
        [body] = api.create_bodies
        assert body["n_epochs"] == 20
    # by name, the target is not contacted: its limits are left for the start, and said so
    by_name = plan_migration(job_id, source=old, target="together", workdir=tmp_path / "n")
    assert by_name.ok and by_name.problems == []
    assert any("limits" in n and "not checked" in n for n in by_name.notes)


def test_n_epochs_argument_is_checked(
    thirty_epochs: tuple[OfflineBackend, str], tmp_path: Path
) -> None:
    old, job_id = thirty_epochs
    for bad in (0, 51, 2.5, "three", True):
        with pytest.raises(UsageError, match="n_epochs must be 'auto' or a whole number"):
            plan_migration(
                job_id,
                source=old,
                target="together",
                n_epochs=bad,  # type: ignore[arg-type]
                workdir=tmp_path / "m",
            )
    assert not (tmp_path / "m").exists()  # refused before any download
    plan = plan_migration(
        job_id, source=old, target="together", n_epochs="auto", workdir=tmp_path / "m"
    )
    assert hp(plan)["n_epochs"] == (30, "auto")


def test_cli_migrate_checks_the_target_limits(
    offline_state: Path,
    together_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(
        capsys, "train", str(sample_csv()), "--epochs", "30", "--backend", "offline", "--json"
    )
    assert code == 0, err
    job_id = json.loads(out)["job_id"]
    args = ("migrate", job_id, "--from", "offline", "--to", "together")
    with fake_together() as api:
        code, out, err = run(capsys, *args, "--dry-run")
        assert code == 1, err
        assert "Target limits: FAILED" in out and "--epochs 20" in out
        code, out, err = run(capsys, *args)
        assert code == 2 and out == "" and err.count("\n") == 1
        assert err.startswith("error: Together AI would refuse") and "--epochs 20" in err
        assert only_limits_read(api) and api.files == {} and api.jobs == {}
        code, out, err = run(capsys, *args, "--epochs", "12", "--json")
        assert code == 0, err
        assert [b["n_epochs"] for b in api.create_bodies] == [12]
        code, _, err = run(capsys, *args, "--epochs", "0")
        assert code == 2 and "--epochs takes 1 to 50" in err
