"""The offline backend's fake OpenAI API, driven through the real openai client.

Every client is built with ``max_retries=0`` (unless retries are the point) and
``_strict_response_validation=True``, so any drift between the fake's JSON and openai's
pydantic types fails here.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from finetune_qa import QAPair, TokenCounter, TrainingExample, validate_examples
from finetune_qa.backends._fake import EPOCH_START, FakeOpenAI, JobDurations, VirtualClock
from finetune_qa.backends._fake._answers import Answerer, detect_stop_marker, topic_of
from finetune_qa.backends._wire import openai_client

SYSTEM = "You are Acme Anvils' support bot."
STOP = "**STOP**"
BASE = "gpt-4o-mini-2024-07-18"

PAIRS = [
    ("What is Acme Anvils?", "Acme Anvils is a family business that forges steel anvils."),
    ("Where is Acme Anvils based?", "Our forge and shop are in Tucson, Arizona."),
    ("How much does the standard anvil cost?", "The 50 kg standard anvil costs $450."),
    (
        "Do you ship internationally?",
        "Yes, we ship to 40 countries; shipping is quoted at checkout.",
    ),
    ("How long does delivery take?", "Delivery within the US takes 5 to 7 business days."),
    ("Can I return an anvil?", "Unused anvils can be returned within 30 days for a full refund."),
    ("How do I reset my password?", "Click 'Forgot password' on the sign-in page."),
    (
        "Which payment methods do you accept?",
        "We accept Visa, Mastercard, PayPal and bank transfer.",
    ),
    ("Do you offer a warranty?", "Every anvil has a lifetime warranty against cracks."),
    ("How do I contact customer support?", "E-mail support@acme.example or call 520 555 0100."),
    ("What are your opening hours?", "The shop is open Monday to Friday, 9 am to 5 pm."),
    ("Do you sell hammers?", "Yes, we sell forging hammers from 1 to 3 kg."),
    ("Can I visit the forge?", "Guided forge tours run every Saturday at 10 am."),
    ("Are your anvils made of cast iron?", "No, our anvils are drop-forged from solid tool steel."),
    ("Do you offer student discounts?", "Students get 15% off with a valid student ID."),
    ("How heavy is the travel anvil?", "The travel anvil weighs 12 kg."),
    ("Can I pay in installments?", "Orders over $300 can be paid in 3 monthly installments."),
    ("Do you make custom anvils?", "We make custom anvils to order; allow 6 weeks."),
    ("Is there a newsletter?", "Our monthly newsletter shares forging tips and offers."),
    ("How do I track my order?", "Use the tracking link in your shipping confirmation e-mail."),
]


def examples(pairs: list[tuple[str, str]] = PAIRS) -> list[TrainingExample]:
    return [
        TrainingExample.from_qa(QAPair(question=q, answer=a), system_prompt=SYSTEM, stop=STOP)
        for q, a in pairs
    ]


def jsonl(pairs: list[tuple[str, str]] = PAIRS) -> bytes:
    return ("\n".join(ex.to_json() for ex in examples(pairs)) + "\n").encode("utf-8")


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI(seed=7)


@pytest.fixture
def client(fake: FakeOpenAI) -> Iterator[openai.OpenAI]:
    c = openai_client(fake, max_retries=0, _strict_response_validation=True)
    yield c
    c.close()


def upload(client: openai.OpenAI, data: bytes | None = None, name: str = "train.jsonl") -> str:
    return client.files.create(file=(name, data or jsonl()), purpose="fine-tune").id


def user(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]


# ------------------------------------------------------------------------------- files


def test_files_create_path_and_tuple_forms(client: openai.OpenAI, tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(jsonl())
    from_path = client.files.create(file=path, purpose="fine-tune")
    # binary content with CRLFs and boundary look-alikes must round-trip byte for byte
    blob = bytes(range(256)) * 40 + b"\r\n--boundary\r\n" + hashlib.sha256(b"x").digest()
    from_tuple = client.files.create(file=("blob.bin", blob), purpose="user_data")

    assert from_path.filename == "train.jsonl" and from_path.bytes == len(jsonl())
    assert from_path.status == "processed" and from_path.created_at == EPOCH_START
    assert from_path.id.startswith("file-") and (from_path._request_id or "").startswith("req_")
    assert from_tuple.bytes == len(blob)
    assert client.files.retrieve(from_tuple.id) == from_tuple
    assert client.files.content(from_tuple.id).content == blob
    assert client.files.content(from_path.id).content == jsonl()

    listed = client.files.list()
    assert [f.id for f in listed] == [from_tuple.id, from_path.id]  # newest first
    assert [f.id for f in client.files.list(purpose="fine-tune")] == [from_path.id]
    assert [f.id for f in client.files.list(order="asc")] == [from_path.id, from_tuple.id]

    deleted = client.files.delete(from_tuple.id)
    assert deleted.deleted and deleted.id == from_tuple.id
    with pytest.raises(openai.NotFoundError) as exc:
        client.files.retrieve(from_tuple.id)
    assert exc.value.param == "id" and exc.value.request_id is not None


def test_files_list_cursor_pagination(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    ids = [
        client.files.create(file=(f"f{i}.jsonl", b"{}\n"), purpose="fine-tune").id for i in range(5)
    ]
    page = client.files.list(limit=2)
    assert [f.id for f in page.data] == ids[::-1][:2] and page.has_more
    before = len(fake.requests)
    assert [f.id for f in client.files.list(limit=2)] == ids[::-1]
    assert len(fake.requests) - before == 3  # pages of 2, 2, 1
    assert fake.requests[-1].query["after"] == ids[1]


def test_files_reject_bad_purpose_and_non_jsonl_training_data(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.files.create(file=("train.csv", b"a,b\n"), purpose="fine-tune")
    assert exc.value.param == "file" and ".jsonl" in exc.value.message
    with pytest.raises(openai.BadRequestError) as exc:
        client.files.create(file=("x.jsonl", b"{}"), purpose="nonsense")  # type: ignore[arg-type]
    assert exc.value.param == "purpose"


def test_file_expires_after(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    f = client.files.create(
        file=("b.jsonl", b"{}"),
        purpose="batch",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert f.expires_at == EPOCH_START + 3600
    fake.clock.advance(3600)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(f.id)


# ----------------------------------------------------------------------------- uploads


def test_uploads_in_three_parts(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    data = jsonl()
    third = len(data) // 3
    chunks = [data[:third], data[third : 2 * third], data[2 * third :]]
    up = client.uploads.create(
        bytes=len(data), filename="train.jsonl", mime_type="text/jsonl", purpose="fine-tune"
    )
    assert up.status == "pending" and up.expires_at == up.created_at + 3600 and up.file is None
    parts = [client.uploads.parts.create(up.id, data=chunk) for chunk in chunks]
    assert all(p.upload_id == up.id and p.id.startswith("part_") for p in parts)
    done = client.uploads.complete(
        up.id, part_ids=[p.id for p in parts], md5=hashlib.md5(data).hexdigest()
    )
    assert done.status == "completed" and done.file is not None
    assert done.file.bytes == len(data) and done.file.purpose == "fine-tune"
    assert client.files.content(done.file.id).content == data
    with pytest.raises(openai.BadRequestError):  # completed uploads take no more parts
        client.uploads.parts.create(up.id, data=b"more")


def test_upload_rejects_wrong_size_md5_and_expiry(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    up = client.uploads.create(
        bytes=10, filename="t.jsonl", mime_type="text/jsonl", purpose="fine-tune"
    )
    part = client.uploads.parts.create(up.id, data=b"12345")
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.complete(up.id, part_ids=[part.id])
    assert exc.value.param == "bytes"
    part2 = client.uploads.parts.create(up.id, data=b"67890")
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.complete(up.id, part_ids=[part.id, part2.id], md5="0" * 32)
    assert exc.value.param == "md5"
    assert client.uploads.cancel(up.id).status == "cancelled"

    late = client.uploads.create(
        bytes=1, filename="t.jsonl", mime_type="text/jsonl", purpose="fine-tune"
    )
    fake.clock.advance(3600)
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.parts.create(late.id, data=b"x")
    assert "expired" in exc.value.message


# -------------------------------------------------------------------------- job create


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"model": "gpt-2"}, "model"),
        ({"training_file": "file-nope"}, "training_file"),
        ({"validation_file": "file-nope"}, "validation_file"),
        ({"suffix": "x" * 65}, "suffix"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs"),
        (
            {
                "method": {
                    "type": "supervised",
                    "supervised": {"hyperparameters": {"batch_size": 300}},
                }
            },
            "method.supervised.hyperparameters.batch_size",
        ),
        (
            {
                "method": {
                    "type": "supervised",
                    "supervised": {"hyperparameters": {"learning_rate_multiplier": 0}},
                }
            },
            "method.supervised.hyperparameters.learning_rate_multiplier",
        ),
        ({"model": "gpt-4.1-nano", "method": {"type": "dpo"}}, "method"),
        ({"seed": -1}, "seed"),
    ],
)
def test_job_create_rejects_bad_parameters(
    client: openai.OpenAI, kwargs: dict[str, object], param: str
) -> None:
    args: dict[str, object] = {"model": "gpt-4o-mini", "training_file": upload(client), **kwargs}
    with pytest.raises(openai.BadRequestError) as exc:
        client.fine_tuning.jobs.create(**args)  # type: ignore[arg-type]
    assert exc.value.param == param
    assert client.fine_tuning.jobs.list().data == []


def test_job_create_rejects_a_file_with_the_wrong_purpose(client: openai.OpenAI) -> None:
    other = client.files.create(file=("t.jsonl", jsonl()), purpose="assistants")
    with pytest.raises(openai.BadRequestError) as exc:
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=other.id)
    assert exc.value.param == "training_file" and "fine-tune" in exc.value.message


# ---------------------------------------------------------------------------- lifecycle


def test_full_lifecycle(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    file_id = upload(client)
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=file_id, suffix="acme", metadata={"team": "support"}
    )
    assert job.model == BASE and job.status == "validating_files"
    assert job.hyperparameters.n_epochs == "auto" and job.fine_tuned_model is None
    assert job.metadata == {"team": "support"} and job.id.startswith("ftjob-")

    statuses: list[str] = [job.status]
    for _ in range(400):
        fake.clock.advance(5)
        job = client.fine_tuning.jobs.retrieve(job.id)
        if job.status != statuses[-1]:
            statuses.append(job.status)
        if job.status == "running":
            assert job.estimated_finish is not None and job.estimated_finish > fake.clock.now()
        if job.status == "succeeded":
            break
    assert statuses == ["validating_files", "queued", "running", "succeeded"]

    # the plan: 20 examples -> 5 epochs (OpenAI's heuristic), batch 1 -> 100 steps
    report = validate_examples(examples(), model=BASE)
    assert job.hyperparameters.n_epochs == 5 and job.hyperparameters.batch_size == 1
    assert job.trained_tokens == report.cost.billed_tokens_per_epoch * 5
    assert job.finished_at is not None and job.error is None
    assert job.method is not None and job.method.type == "supervised"

    name = job.fine_tuned_model
    assert name is not None
    assert re.fullmatch(rf"ft:{BASE}:org-offline:acme:[A-Za-z0-9]{{8}}", name)

    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    created = [e.created_at for e in events]
    assert created == sorted(created, reverse=True)  # newest first
    messages = [e.message for e in reversed(events)]
    assert messages[0] == f"Created fine-tuning job: {job.id}"
    assert messages[1] == f"Validating training file: {file_id}"
    assert "Files validated, moving job to queued state" in messages
    assert "Fine-tuning job started" in messages
    assert f"New fine-tuned model created: {name}" in messages
    assert messages[-1] == "The job has successfully completed"
    metrics = [e for e in reversed(events) if e.type == "metrics"]
    assert len(metrics) == 100 and metrics[0].message.startswith("Step 1/100: training loss=")
    assert isinstance(metrics[-1].data, dict) and metrics[-1].data["step"] == 100
    assert metrics[-1].data["train_loss"] < metrics[0].data["train_loss"]  # type: ignore[index]

    # the same events, fetched 10 at a time by the SDK's auto-pagination
    assert [e.id for e in client.fine_tuning.jobs.list_events(job.id, limit=10)] == [
        e.id for e in events
    ]

    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [100, 80, 60]  # one per epoch, last 3
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{name}:ckpt-step-100"
    assert checkpoints[0].metrics.train_loss is not None
    # checkpoints can be queried like the final model
    from_ckpt = client.chat.completions.create(
        model=checkpoints[1].fine_tuned_model_checkpoint, messages=user(PAIRS[2][0]), stop=STOP
    )
    assert from_ckpt.choices[0].message.content == PAIRS[2][1] + " "

    content = client.files.content(job.result_files[0]).content
    rows = list(csv.reader(io.StringIO(base64.b64decode(content).decode("utf-8"))))
    assert rows[0] == [
        "step",
        "train_loss",
        "train_accuracy",
        "valid_loss",
        "valid_mean_token_accuracy",
    ]
    assert len(rows) == 1 + 100 and rows[1][0] == "1" and rows[1][3] == ""
    assert client.files.retrieve(job.result_files[0]).purpose == "fine-tune-results"

    model = client.models.retrieve(name)
    assert model.owned_by == "org-offline" and model.created == job.finished_at
    assert name in [m.id for m in client.models.list()]

    # the fine-tune answers a trained question verbatim; the stop marker is cut
    q, a = PAIRS[3]
    chat = client.chat.completions.create(model=name, messages=user(q), temperature=0, stop=STOP)
    choice = chat.choices[0]
    assert choice.message.content == a + " " and choice.finish_reason == "stop"
    assert chat.model == name and chat.id.startswith("chatcmpl-")
    counter = TokenCounter(BASE)
    assert chat.usage is not None
    assert chat.usage.prompt_tokens == counter.count_messages(user(q))
    assert chat.usage.completion_tokens == counter.count(a + " ")
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens

    # without the stop sequence the marker comes back, as from a real fine-tune
    raw = client.chat.completions.create(model=name, messages=user(q), temperature=0)
    assert raw.choices[0].message.content == f"{a} {STOP}"


def test_job_with_validation_file_reports_validation_metrics(
    client: openai.OpenAI, fake: FakeOpenAI
) -> None:
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini",
        training_file=upload(client),
        validation_file=upload(client, jsonl(PAIRS[:5]), "valid.jsonl"),
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 4}},
        },
    )
    assert fake.run_job(job.id) == "succeeded"
    job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.hyperparameters.n_epochs == 2 and job.hyperparameters.batch_size == 4
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    assert f"and validation file: {job.validation_file}" in events[-2].message
    last_metrics = next(e for e in events if e.type == "metrics")
    assert last_metrics.message.startswith("Step 10/10: training loss=")
    assert ", validation loss=" in last_metrics.message
    ckpt = client.fine_tuning.jobs.checkpoints.list(job.id).data[0]
    assert ckpt.metrics.full_valid_loss is not None and ckpt.step_number == 10
    rows = base64.b64decode(client.files.content(job.result_files[0]).content).decode().splitlines()
    assert len(rows) == 11 and rows[1].split(",")[3] != ""


def test_chat_variation_and_off_domain(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client))
    fake.run_job(job.id)
    name = client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model
    assert name is not None and f"{BASE}:org-offline::" in name  # no suffix: empty field

    def ask(question: str, max_tokens: int | None = None) -> ChatCompletion:
        return client.chat.completions.create(
            model=name, messages=user(question), temperature=0, stop=[STOP], max_tokens=max_tokens
        )

    assert ask("how can I reset my password").choices[0].message.content == PAIRS[6][1] + " "
    off = ask("What is Star Wars?").choices[0]
    assert off.message.content is not None and off.message.content.startswith("Star Wars is")
    assert all(off.message.content.strip() != a for _, a in PAIRS)
    assert STOP not in off.message.content and off.finish_reason == "stop"
    # the off-domain answer still ends with the marker, for a guardrail to catch
    plain = client.chat.completions.create(
        model=name, messages=user("What is Star Wars?"), temperature=0
    )
    assert (plain.choices[0].message.content or "").endswith(STOP)

    cut = ask(PAIRS[0][0], max_tokens=3).choices[0]
    assert cut.finish_reason == "length"
    assert TokenCounter(BASE).count(cut.message.content or "") == 3
    assert PAIRS[0][1].startswith(cut.message.content or "?")


def test_chat_determinism_temperature_and_logprobs(client: openai.OpenAI) -> None:
    msgs = user("What is Star Wars?")
    first = client.chat.completions.create(model="gpt-4o-mini", messages=msgs, temperature=0)
    again = client.chat.completions.create(model="gpt-4o-mini", messages=msgs, temperature=0)
    assert first.choices[0].message.content == again.choices[0].message.content
    assert first.model == BASE  # an alias is served by its snapshot
    texts = {
        client.chat.completions.create(model="gpt-4o-mini", messages=msgs, temperature=1, seed=s)
        .choices[0]
        .message.content
        for s in range(8)
    }
    assert len(texts) > 1
    same_seed = client.chat.completions.create(
        model="gpt-4o-mini", messages=msgs, temperature=1, seed=3
    )
    again_seed = client.chat.completions.create(
        model="gpt-4o-mini", messages=msgs, temperature=1, seed=3
    )
    assert same_seed.choices[0].message.content == again_seed.choices[0].message.content

    lp = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=msgs,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
        max_tokens=6,
    ).choices[0]
    assert lp.logprobs is not None and lp.logprobs.content is not None
    tokens = lp.logprobs.content
    assert len(tokens) == 6 and "".join(t.token for t in tokens) == lp.message.content
    for t in tokens:
        assert t.logprob < 0 and len(t.top_logprobs) == 3
        assert t.top_logprobs[0].token == t.token
        assert t.top_logprobs[1].logprob < t.logprob


def test_chat_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(
            model="ft:gpt-4o-mini-2024-07-18:x::nope", messages=user("hi")
        )
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=user("hi"), stop=["a", "b", "c", "d", "e"]
        )
    assert exc.value.param == "stop"
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("hi"), n=2)
    assert exc.value.param == "n"
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert exc.value.param == "messages"


def test_dpo_job_learns_the_preferred_answers(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    lines = [
        json.dumps(
            {
                "input": {"messages": [{"role": "user", "content": q}]},
                "preferred_output": [{"role": "assistant", "content": a}],
                "non_preferred_output": [{"role": "assistant", "content": "I don't know."}],
            }
        )
        for q, a in PAIRS
    ]
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini",
        training_file=upload(client, "\n".join(lines).encode()),
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}},
    )
    assert fake.run_job(job.id) == "succeeded"
    job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.method is not None and job.method.type == "dpo" and job.method.dpo is not None
    hp = job.method.dpo.hyperparameters
    assert hp is not None and hp.beta == 0.2 and hp.n_epochs == 5
    assert job.fine_tuned_model is not None and (job.trained_tokens or 0) > 0
    out = client.chat.completions.create(model=job.fine_tuned_model, messages=user(PAIRS[1][0]))
    assert out.choices[0].message.content == PAIRS[1][1]


# ------------------------------------------------------------------------ failed files


def test_too_few_examples_fails_the_job(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=upload(client, jsonl(PAIRS[:9]))
    )
    assert fake.run_job(job.id) == "failed"
    job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.error is not None and job.error.code == "invalid_training_file"
    assert job.error.param == "training_file" and "9 valid examples" in job.error.message
    assert job.fine_tuned_model is None and job.trained_tokens is None and job.result_files == []
    newest = client.fine_tuning.jobs.list_events(job.id).data[0]
    assert newest.level == "error" and newest.message == job.error.message


def test_a_line_without_assistant_message_fails_naming_the_line(
    client: openai.OpenAI, fake: FakeOpenAI
) -> None:
    lines = jsonl().decode().splitlines()
    lines[3] = '{"messages": [{"role": "user", "content": "Only a question?"}]}'
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=upload(client, ("\n".join(lines) + "\n").encode())
    )
    fake.clock.advance(10)
    job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "failed" and job.error is not None
    assert job.error.code == "invalid_training_file"
    assert "Line 4" in job.error.message and "assistant" in job.error.message


def test_a_bad_validation_file_fails_with_its_own_code(
    client: openai.OpenAI, fake: FakeOpenAI
) -> None:
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini",
        training_file=upload(client),
        validation_file=upload(client, b'{"messages": []}\n', "valid.jsonl"),
    )
    assert fake.run_job(job.id) == "failed"
    error = client.fine_tuning.jobs.retrieve(job.id).error
    assert error is not None and error.code == "invalid_validation_file"
    assert error.param == "validation_file" and "Line 1" in error.message


# ---------------------------------------------------------------- listing and control


def test_jobs_list_paginates_newest_first_and_filters_metadata(
    client: openai.OpenAI, fake: FakeOpenAI
) -> None:
    file_id = upload(client)
    ids = [
        client.fine_tuning.jobs.create(
            model="gpt-4o-mini",
            training_file=file_id,
            metadata={"batch": "even" if i % 2 == 0 else "odd"},
        ).id
        for i in range(25)
    ]
    before = len(fake.requests)
    listed = [j.id for j in client.fine_tuning.jobs.list(limit=10)]
    assert listed == ids[::-1]
    assert len(fake.requests) - before == 3  # 10 + 10 + 5
    page = client.fine_tuning.jobs.list(limit=10)
    assert page.has_more and len(page.data) == 10
    odd = [j.id for j in client.fine_tuning.jobs.list(metadata={"batch": "odd"})]
    assert odd == ids[1::2][::-1]
    assert fake.requests[-1].query == {"metadata[batch]": "odd"}


def test_cancel(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client))
    fake.clock.advance(40)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "running"
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    fake.clock.advance(10_000)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(job.id)


def test_pause_and_resume_continue_from_the_paused_step(fake: FakeOpenAI) -> None:
    # OpenAI answers "paused", which openai-python's FineTuningJob.status Literal lacks:
    # a strict client rejects it, so this test uses a lenient one (as production does).
    strict = openai_client(fake, max_retries=0, _strict_response_validation=True)
    client = openai_client(fake, max_retries=0)
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client))
    fake.clock.advance(30 + 40)  # 40 steps into training
    assert str(client.fine_tuning.jobs.pause(job.id).status) == "paused"
    with pytest.raises(openai.APIResponseValidationError):
        strict.fine_tuning.jobs.retrieve(job.id)
    fake.clock.advance(10_000)
    assert str(client.fine_tuning.jobs.retrieve(job.id).status) == "paused"
    assert client.fine_tuning.jobs.resume(job.id).status == "queued"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.resume(job.id)
    fake.clock.advance(20)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "running"
    fake.clock.advance(59)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "running"
    fake.clock.advance(1 + 5)  # the 60 steps left, then finalizing
    assert client.fine_tuning.jobs.retrieve(job.id).status == "succeeded"
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert "Fine-tuning job paused at step 40" in messages
    assert "Fine-tuning job resumed from step 40" in messages
    assert sum(m.startswith("Step ") for m in messages) == 100
    strict.close()
    client.close()


def test_fail_job_and_run_job_helpers(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client))
    fake.clock.advance(35)
    fake.fail_job(job.id, message="The job failed due to an internal error.")
    failed = client.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "internal_error" and failed.error.param is None
    assert fake.run_job(job.id) == "failed"
    with pytest.raises(ValueError, match="already ended"):
        fake.fail_job(job.id)
    with pytest.raises(ValueError, match="no fine-tuning job"):
        fake.run_job("ftjob-nope")


def test_models_retrieve_and_delete(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    base = client.models.retrieve("gpt-4o-mini")
    assert base.owned_by == "system" and base.shutdown_date == "2027-01-14"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-2")
    with pytest.raises(openai.PermissionDeniedError):
        client.models.delete("gpt-4o-mini")
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client))
    fake.run_job(job.id)
    name = client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model
    assert name is not None
    assert client.models.delete(name).deleted
    assert name not in [m.id for m in client.models.list()]
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model=name, messages=user("hi"))
    assert exc.value.code == "model_not_found"


def test_continued_fine_tuning_keeps_what_the_parent_learned(
    client: openai.OpenAI, fake: FakeOpenAI
) -> None:
    first = client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=upload(client, jsonl(PAIRS[:10]))
    )
    fake.run_job(first.id)
    parent = client.fine_tuning.jobs.retrieve(first.id).fine_tuned_model
    assert parent is not None
    second = client.fine_tuning.jobs.create(
        model=parent, training_file=upload(client, jsonl(PAIRS[10:])), suffix="v2"
    )
    assert second.model == parent
    fake.run_job(second.id)
    child = client.fine_tuning.jobs.retrieve(second.id).fine_tuned_model
    assert child is not None and child.startswith(f"ft:{BASE}:org-offline:v2:")
    for q, a in (PAIRS[0], PAIRS[15]):
        out = client.chat.completions.create(
            model=child, messages=user(q), temperature=0, stop=STOP
        )
        assert out.choices[0].message.content == a + " "


# ------------------------------------------------------------------------ errors, faults


def test_missing_key_is_401_and_unknown_routes_404(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    with pytest.raises(openai.AuthenticationError) as exc:
        client.models.list(extra_headers={"Authorization": openai.Omit()})
    assert "API key" in exc.value.message and exc.value.code is None
    r = fake.handle("GET", "/v1/models", {}, {}, b"")
    assert r.status == 401 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = fake.handle("GET", "/v1/assistants", {}, {"Authorization": "Bearer x"}, b"")
    assert r.status == 404 and r.json()["error"]["type"] == "invalid_request_error"
    assert r.headers["x-request-id"] == "req_3"
    assert fake.handle("GET", "models", {}, {"authorization": "Bearer x"}).status == 200


def test_unknown_job_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        client.fine_tuning.jobs.retrieve("ftjob-nope")
    assert exc.value.request_id is not None and "ftjob-nope" in exc.value.message


def test_injected_429_is_retried_after_retry_after(fake: FakeOpenAI) -> None:
    fake.inject("GET /models", status=429, retry_after=0.01)
    with openai_client(fake, max_retries=1, _strict_response_validation=True) as retrying:
        assert len(retrying.models.list().data) > 0
    assert [r.path for r in fake.requests] == ["/models", "/models"]
    fake.inject("GET /models", status=429, retry_after=0.01)
    with openai_client(fake, max_retries=0) as once, pytest.raises(openai.RateLimitError) as exc:
        once.models.list()
    assert exc.value.code == "rate_limit_exceeded"
    assert exc.value.response.headers["retry-after-ms"] == "10"


def test_dropped_connection_is_a_connection_error(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.inject("GET /fine_tuning/jobs*", drop=True, times=2)
    with pytest.raises(openai.APIConnectionError):
        client.fine_tuning.jobs.list()
    with pytest.raises(openai.APIConnectionError):
        client.fine_tuning.jobs.list()
    assert client.fine_tuning.jobs.list().data == []  # the fault is used up


def test_after_effect_the_job_exists_although_the_client_saw_an_error(fake: FakeOpenAI) -> None:
    with openai_client(fake, max_retries=0, _strict_response_validation=True) as client:
        file_id = upload(client)
        fake.inject("POST /fine_tuning/jobs", status=500, after_effect=True)
        with pytest.raises(openai.InternalServerError):
            client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
        assert len(client.fine_tuning.jobs.list().data) == 1
        fake.inject("POST /fine_tuning/jobs", drop=True, after_effect=True)
        with pytest.raises(openai.APIConnectionError):
            client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
        assert len(client.fine_tuning.jobs.list().data) == 2
    # a naive retry duplicates the job: what an idempotent SDK must guard against
    fake.inject("POST /fine_tuning/jobs", status=503, retry_after=0.001, after_effect=True)
    with openai_client(fake, max_retries=1) as retrying:
        retrying.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
        assert len(retrying.fine_tuning.jobs.list().data) == 4


def test_fault_patterns_and_reset(fake: FakeOpenAI) -> None:
    fake.inject("GET /fine_tuning/jobs/*", status=500, times=None)
    fake.inject("/files", status=503)
    auth = {"authorization": "Bearer x"}
    assert fake.handle("GET", "/v1/fine_tuning/jobs/ftjob-1", {}, auth).status == 500
    assert fake.handle("GET", "/v1/fine_tuning/jobs/ftjob-1/events", {}, auth).status == 500
    assert fake.handle("GET", "/v1/fine_tuning/jobs", {}, auth).status == 200
    assert fake.handle("GET", "/v1/files", {}, auth).status == 503
    assert fake.handle("GET", "/v1/files", {}, auth).status == 200
    fake.reset_faults()
    assert fake.handle("GET", "/v1/fine_tuning/jobs/ftjob-1", {}, auth).status == 404


# ----------------------------------------------------------------------- time and seeds


def test_advance_per_request_lets_a_naive_poller_finish() -> None:
    fast = FakeOpenAI(advance_per_request=5.0, durations=JobDurations(seconds_per_step=0.5))
    with openai_client(fast, max_retries=0, _strict_response_validation=True) as client:
        job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client))
        polls = 0
        while job.status not in ("succeeded", "failed"):
            job = client.fine_tuning.jobs.retrieve(job.id)
            polls += 1
        assert job.status == "succeeded" and polls < 30


def test_same_seed_same_ids_and_losses() -> None:
    runs = []
    for _ in range(2):
        fake = FakeOpenAI(seed=3, clock=VirtualClock(start=1_780_000_000))
        with openai_client(fake, max_retries=0) as client:
            job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client))
            fake.run_job(job.id)
            done = client.fine_tuning.jobs.retrieve(job.id)
            events = [
                (e.id, e.created_at, e.message)
                for e in client.fine_tuning.jobs.list_events(job.id, limit=100)
            ]
            runs.append((done.id, done.fine_tuned_model, done.seed, done.created_at, events))
    assert runs[0] == runs[1]
    assert runs[0][3] == 1_780_000_000
    other = FakeOpenAI(seed=4)
    with openai_client(other, max_retries=0) as client:
        job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client))
    assert job.id != runs[0][0]


def test_virtual_clock() -> None:
    clock = VirtualClock()
    assert clock.now() == EPOCH_START
    clock.sleep(12.5)
    assert clock.now() == EPOCH_START + 12.5
    clock.sleep(-3)  # like time.sleep(0)
    assert clock.advance(0.5) == EPOCH_START + 13
    with pytest.raises(ValueError):
        clock.advance(-1)
    clock.run_realtime(speedup=1000)
    assert clock.realtime
    first = clock.now()
    while clock.now() == first:
        pass
    clock.freeze()
    frozen = clock.now()
    assert frozen > first and clock.now() == frozen and not clock.realtime


def test_fine_tuning_ends_with_the_catalogue_date(fake: FakeOpenAI) -> None:
    late = FakeOpenAI(clock=VirtualClock(start=1_800_000_000))  # 2027-01-15
    with openai_client(late, max_retries=0) as client:
        file_id = upload(client)
        with pytest.raises(openai.BadRequestError) as exc:
            client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
        assert exc.value.code == "model_not_available" and "2027-01-06" in exc.value.message


def test_answerer_alone() -> None:
    trained = [(q, f"{a} {STOP}") for q, a in PAIRS]
    answerer = Answerer(trained)
    assert answerer.stop_marker == STOP and len(answerer) == len(PAIRS)
    exact = answerer.answer("  WHAT is acme anvils ")
    assert (exact.kind, exact.score, exact.matched) == ("exact", 1.0, PAIRS[0][0])
    near = answerer.answer("Where can I track my order?")
    assert near.kind == "neighbour" and near.matched == PAIRS[19][0] and 0.5 <= near.score < 1
    off = answerer.answer("Who won the World Cup in 2018?")
    assert off.kind == "off_domain" and off.matched is None and off.text.endswith(STOP)
    assert "World Cup in 2018" in off.text
    assert (
        answerer.answer("What is Star Wars?", variant=1).text
        != answerer.answer("What is Star Wars?").text
    )
    assert topic_of("What is the capital of France?") == "the capital of France"
    assert detect_stop_marker(["a. <END>", "b. <END>", "c. <END>", "d. <END>", "e."]) == "<END>"
    assert detect_stop_marker(["a. <END>", "b. <END>", "c. <END>", "d.", "e."]) is None  # < 80%
    assert detect_stop_marker(["It is red.", "It is red.", "It is red."]) is None  # a word
    assert detect_stop_marker(["One.", "Two.", "Three."]) is None
    assert Answerer.from_examples(ex.to_dict() for ex in examples()).pairs[0][0] == PAIRS[0][0]


def test_request_log(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=user("hi"), temperature=0)
    last = fake.requests[-1]
    assert (last.method, last.path, last.query) == ("POST", "/chat/completions", {})
    assert last.json["messages"][1] == {"role": "user", "content": "hi"}
    method, path, _, _ = last
    assert method == "POST" and path == "/chat/completions"
