"""Every step of the lifecycle x every fault, on the offline backend.

Each case runs the whole lifecycle (upload, create, wait, events, metrics, checkpoints,
chat) with one fault injected at one step, and compares the end state with a fault-free
run: the same single job (its id in the journal), a single training file, the same
training metrics, events and checkpoints, and the same answers from the fine-tuned model.

* transient: the fault fires once; the library's retries must absorb it.
* persistent: the fault fires on every attempt; the error must surface with a clear
  message, and a re-run (a new ``FineTuneJob.create`` with the same journal, as a user
  re-running the script would) must pick up where the first run stopped.
* killed: the process dies at the step (before the request, or after the server did
  the work); a new process resumes with the same journal and the same API state.

The openai clients run with ``max_retries=0`` so that finetune_qa's own retries (on the
backend's virtual clock) are what is tested; the after-effect faults run once more with the
client's default ``max_retries=2``, to show that the SDK never resends a request that
creates something. ``pytest -v`` prints the counts at the end.

``GET /fine_tuning/jobs`` is not a step: a job is looked for only when it may exist (an
intent resumed, or a create that got no answer), so a fault-free run never lists jobs; the
look-up's faults are covered in ``tests/test_jobs.py``.
"""

from __future__ import annotations

import fnmatch
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from finetune_qa import DatasetBuilder, FineTuneJob, QAPair
from finetune_qa import exceptions as exc
from finetune_qa.backends import FileInfo, OfflineBackend
from finetune_qa.backends._fake import FakeOpenAI, FakeResponse
from finetune_qa.jobs import Journal

MODEL = "gpt-4o-mini"
SYS = "You are a factual chatbot that answers questions about Acme."
QUESTIONS = ["What does plan number 3 include?", "What does plan 5 include?", "What is Star Wars?"]
TALLY: Counter[str] = Counter()


@dataclass(frozen=True)
class Step:
    """One request of the lifecycle: ``skip`` matching requests pass before it."""

    route: str
    skip: int = 0
    multipart: bool = False
    effect: bool = False  # the request changes server state (after-effect faults apply)


STEPS: dict[str, Step] = {
    "files.create": Step("POST /files", effect=True),
    "files.list": Step("GET /files"),
    "uploads.create": Step("POST /uploads", multipart=True, effect=True),
    "uploads.part1": Step("POST /uploads/*/parts", 0, multipart=True, effect=True),
    "uploads.part2": Step("POST /uploads/*/parts", 1, multipart=True, effect=True),
    "uploads.part3": Step("POST /uploads/*/parts", 2, multipart=True, effect=True),
    "uploads.complete": Step("POST /uploads/*/complete", multipart=True, effect=True),
    "jobs.create": Step("POST /fine_tuning/jobs", effect=True),
    "jobs.retrieve": Step("GET /fine_tuning/jobs/ftjob-*", 2),  # the second poll
    "jobs.events": Step("GET /fine_tuning/jobs/*/events", 1),
    "results.content": Step("GET /files/*/content"),
    "jobs.checkpoints": Step("GET /fine_tuning/jobs/*/checkpoints"),
    "chat": Step("POST /chat/completions", 1),  # the second question
}

FAULTS: dict[str, dict[str, Any]] = {
    "429-retry-after": {"status": 429, "retry_after": 7},
    "429": {"status": 429},
    "500": {"status": 500},
    "502": {"status": 502},
    "503": {"status": 503},
    "timeout": {"timeout": True},
    "drop": {"drop": True},
}
AFTER_EFFECT: dict[str, dict[str, Any]] = {
    "drop-after-effect": {"drop": True, "after_effect": True},
    "timeout-after-effect": {"timeout": True, "after_effect": True},
    "502-after-effect": {"status": 502, "after_effect": True},
}
PERSISTENT = ("429", "503", "timeout", "drop")
EXPECTED_ERROR: dict[str, tuple[type[exc.BackendError], str]] = {
    "429": (exc.RateLimitError, "429 from the provider"),
    "503": (exc.InternalServerError, "503 from the provider"),
    "timeout": (exc.APITimeoutError, "did not answer in time"),
    "drop": (exc.APIConnectionError, "could not reach the provider"),
}


class Killed(BaseException):
    """The process dies here (not an Exception: nothing may catch it)."""


class KillableFake(FakeOpenAI):
    """A fake that can kill its client at one request, before or after doing the work."""

    kill: tuple[Step, bool] | None = None
    _seen = 0

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> FakeResponse:
        hit = False
        if self.kill is not None:
            step, _ = self.kill
            want_method, _, pattern = step.route.partition(" ")
            bare = "/" + path.lstrip("/").removeprefix("v1/")
            if method.upper() == want_method and fnmatch.fnmatchcase(bare, pattern):
                self._seen += 1
                hit = self._seen == step.skip + 1
        if hit and self.kill is not None and not self.kill[1]:
            self.kill = None
            raise Killed
        response = super().handle(method, path, query, headers, body)
        if hit:
            self.kill = None
            raise Killed
        return response


class SmallParts(OfflineBackend):
    """Sends multi-part uploads in three parts, one at a time, so each part is one step."""

    def upload_path(
        self,
        path: str | os.PathLike[str],
        *,
        filename: str,
        purpose: str = "fine-tune",
        part_size: int = 0,
        parallel: int = 4,
    ) -> FileInfo:
        size = os.path.getsize(path)
        return super().upload_path(
            path, filename=filename, purpose=purpose, part_size=size // 3 + 1, parallel=1
        )


@dataclass(frozen=True)
class Outcome:
    """What a lifecycle run leaves behind, in the terms a user would check."""

    job_id: str
    status: str
    answers: tuple[str, ...]
    losses: tuple[float | None, ...]
    n_events: int
    n_checkpoints: int


def comparable(o: Outcome) -> tuple[Any, ...]:
    """An outcome without its ids and id-seeded losses (a retried upload draws new ids)."""
    return (o.status, o.answers, len(o.losses), o.n_events, o.n_checkpoints)


@pytest.fixture(scope="module")
def train(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("matrix") / "train.jsonl"
    pairs = [
        QAPair(
            question=f"What does plan number {i} include?", answer=f"Plan {i} includes {i} anvils."
        )
        for i in range(12)
    ]
    DatasetBuilder(system_prompt=SYS).add_pairs(pairs).build(out)
    return out


def lifecycle(
    fake: FakeOpenAI, journal: Path, train: Path, *, multipart: bool, max_retries: int = 0
) -> Outcome:
    """One run of a user's script, as a new process would run it."""
    backend = SmallParts(fake, max_retries=max_retries)
    job = FineTuneJob.create(
        train,
        model=MODEL,
        backend=backend,
        journal=journal,
        suffix="matrix",
        seed=7,
        upload_threshold=1 if multipart else 1 << 30,
        upload_parallel=1,
    )
    # polls a minute apart (virtual time): a few polls, many events each, every step still hit
    job.wait(poll_interval=60)
    losses = tuple(m.train_loss for m in job.metrics())
    checkpoints = job.checkpoints()
    events = job.events()
    bot = job.chat_model(sleep=backend.sleep)
    answers = tuple(bot.ask(q).text for q in QUESTIONS)
    return Outcome(job.id, job.status, answers, losses, len(events), len(checkpoints))


@pytest.fixture(scope="module")
def clean(train: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Outcome]:
    tmp = tmp_path_factory.mktemp("clean")
    return {
        mp: lifecycle(KillableFake(), tmp / f"journal-{mp}.jsonl", train, multipart=mp)
        for mp in (False, True)
    }


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if request.config.get_verbosity() > 0 and capture is not None:
        with capture.global_and_fixture_disabled():
            print("\nfault matrix: " + ", ".join(f"{k} {v}" for k, v in sorted(TALLY.items())))


def check_end_state(fake: FakeOpenAI, journal: Path, got: Outcome, want: Outcome) -> None:
    """One job, known to the journal; one training file; the same model behaviour."""
    backend = OfflineBackend(fake)
    jobs = backend.list_jobs()
    assert [j.id for j in jobs] == [got.job_id], "exactly one job, and it is the one we follow"
    created = Journal(journal).find(op="job", state="created")
    assert {r["job_id"] for r in created} == {got.job_id}, "the journal holds the job id"
    files = backend.list_files(purpose="fine-tune")
    assert len(files) == 1, f"one training file, got {[f.filename for f in files]}"
    assert comparable(got) == comparable(want)
    assert got.status == "succeeded"
    if got.job_id == want.job_id:  # same ids drawn: the very same simulated training
        assert got.losses == want.losses
    TALLY["same ids as the fault-free run" if got.job_id == want.job_id else "ids moved"] += 1


def inject_at(fake: FakeOpenAI, step: Step, **fault: Any) -> None:
    for _ in range(step.skip):  # pass-through faults: let the first requests go by
        fake.inject(step.route)
    fake.inject(step.route, **fault)


def _cases(faults: Mapping[str, Mapping[str, Any]], effect_only: bool) -> list[Any]:
    return [
        pytest.param(step, fault, id=f"{step}-{fault}")
        for step, s in STEPS.items()
        for fault in faults
        if s.effect or not effect_only
    ]


@pytest.mark.parametrize(("step", "fault"), _cases(FAULTS, False) + _cases(AFTER_EFFECT, True))
def test_a_fault_once_changes_nothing(
    step: str, fault: str, train: Path, tmp_path: Path, clean: dict[bool, Outcome]
) -> None:
    s = STEPS[step]
    fake = KillableFake()
    inject_at(fake, s, **{**FAULTS, **AFTER_EFFECT}[fault])
    journal = tmp_path / "journal.jsonl"
    got = lifecycle(fake, journal, train, multipart=s.multipart)
    assert fake.pending_faults() == 0, "the fault fired"
    check_end_state(fake, journal, got, clean[s.multipart])
    TALLY["faults injected"] += 1
    TALLY["absorbed by retries"] += 1


@pytest.mark.parametrize(("step", "fault"), _cases({key: {} for key in PERSISTENT}, False))
def test_a_lasting_fault_raises_clearly_and_a_rerun_resumes(
    step: str, fault: str, train: Path, tmp_path: Path, clean: dict[bool, Outcome]
) -> None:
    s = STEPS[step]
    fake = KillableFake()
    inject_at(fake, s, **FAULTS[fault], times=None)
    journal = tmp_path / "journal.jsonl"
    cls, text = EXPECTED_ERROR[fault]
    TALLY["faults injected"] += 1
    try:
        lifecycle(fake, journal, train, multipart=s.multipart)
    except exc.BackendError as err:
        assert isinstance(err, cls), repr(err)
        assert text in str(err)
        TALLY["raised clearly"] += 1
    else:
        # only lookups whose failure is harmless may be skipped: the run went on without them
        assert step == "files.list", f"a lasting {fault} at {step} went unnoticed"
        TALLY["harmless, run completed"] += 1
    before = {r["job_id"] for r in Journal(journal).find(op="job", state="created")}
    fake.reset_faults()
    got = lifecycle(fake, journal, train, multipart=s.multipart)
    check_end_state(fake, journal, got, clean[s.multipart])
    assert before <= {got.job_id}, "the re-run attached to the job the first run made"
    TALLY["resumed after re-run"] += 1


@pytest.mark.parametrize(
    ("step", "after"),
    [
        pytest.param(step, after, id=f"{step}-{'after' if after else 'before'}")
        for step, s in STEPS.items()
        for after in ((False, True) if s.effect else (False,))
    ],
)
def test_killed_at_a_step_then_restarted(
    step: str, after: bool, train: Path, tmp_path: Path, clean: dict[bool, Outcome]
) -> None:
    s = STEPS[step]
    fake = KillableFake()
    fake.kill = (s, after)
    journal = tmp_path / "journal.jsonl"
    with pytest.raises(Killed):
        lifecycle(fake, journal, train, multipart=s.multipart)
    assert fake.kill is None, "the kill happened"
    TALLY["faults injected"] += 1
    before = {r["job_id"] for r in Journal(journal).find(op="job", state="created")}
    existed = [j.id for j in OfflineBackend(fake).list_jobs()]
    got = lifecycle(fake, journal, train, multipart=s.multipart)  # the restarted process
    check_end_state(fake, journal, got, clean[s.multipart])
    assert before <= {got.job_id}
    assert existed in ([], [got.job_id]), "a job made before the kill is the one resumed"
    TALLY["resumed after kill"] += 1


@pytest.mark.parametrize(("step", "fault"), _cases(AFTER_EFFECT, True))
def test_the_sdks_own_retries_never_resend_a_creating_request(
    step: str, fault: str, train: Path, tmp_path: Path, clean: dict[bool, Outcome]
) -> None:
    """With the openai client's default max_retries=2: still one job and one file."""
    s = STEPS[step]
    fake = KillableFake()
    inject_at(fake, s, **AFTER_EFFECT[fault])
    journal = tmp_path / "journal.jsonl"
    got = lifecycle(fake, journal, train, multipart=s.multipart, max_retries=2)
    assert fake.pending_faults() == 0, "the fault fired"
    check_end_state(fake, journal, got, clean[s.multipart])
    sent = Counter(
        (r.method, "/" + r.path.strip("/").removeprefix("v1/"))
        for r in fake.requests
        if r.method == "POST" and not r.path.endswith("/chat/completions")
    )
    assert sent[("POST", "/fine_tuning/jobs")] == 1, "one job creation was sent"
    TALLY["faults injected"] += 1
    TALLY["absorbed with SDK retries on"] += 1


def test_the_matrix_is_complete() -> None:
    transient = len(_cases(FAULTS, False)) + len(_cases(AFTER_EFFECT, True))
    assert len(STEPS) == 13 and transient == 13 * 7 + 7 * 3
    assert len(_cases(AFTER_EFFECT, True)) == 7 * 3
