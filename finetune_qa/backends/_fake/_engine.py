"""The job state machine: moves jobs through their statuses as the virtual clock passes.

It writes each job's events, metrics, checkpoints and results file, and builds the
fine-tuned model's answerer when the job succeeds.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import math
from collections.abc import Iterator
from typing import Any, Literal

from finetune_qa._limits import MAX_BATCH_SIZE
from finetune_qa.backends._fake._answers import Answerer, detect_stop_marker
from finetune_qa.backends._fake._clock import JobDurations
from finetune_qa.backends._fake._filecheck import _check_chat_files, _check_preference_files
from finetune_qa.backends._fake._records import (
    _Checkpoint,
    _Event,
    _File,
    _Ids,
    _Invalid,
    _Job,
    _Model,
    _Plan,
    _State,
    _unit,
)
from finetune_qa.validation import default_epochs

KEPT_CHECKPOINTS = 3
AUTO_LR_MULTIPLIER = 1.8
AUTO_BETA = 0.1


def _epoch_date(t: float) -> dt.date:
    return dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).date()


class _JobEngine:
    """Moves jobs through their statuses as the virtual clock passes; writes their events."""

    word_knowledge = False  # the models it trains compare sentence vectors too (_wordvectors)

    def __init__(
        self,
        state: _State,
        ids: _Ids,
        durations: JobDurations,
        organization: str,
    ) -> None:
        self.state = state
        self.ids = ids
        self.d = durations
        self.org = organization

    # -- events
    def event(
        self,
        job: _Job,
        t: float,
        message: str,
        *,
        level: Literal["info", "warn", "error"] = "info",
        kind: Literal["message", "metrics"] = "message",
        data: dict[str, Any] | None = None,
    ) -> None:
        ev = _Event(self.ids.new("ftevent-"), int(t), level, message, kind, data)
        self.state.remember(ev.id)
        job.events.append(ev)

    # -- lifecycle
    def start(self, job: _Job) -> None:
        job.phase_started = job.created_at
        self.event(job, job.created_at, f"Created fine-tuning job: {job.id}")
        files = f"Validating training file: {job.training_file}"
        if job.validation_file:
            files += f" and validation file: {job.validation_file}"
        self.event(job, job.created_at, files)

    def next_change(self, job: _Job) -> float | None:
        """Virtual time of the job's next status change by itself, or None."""
        if job.status == "validating_files":
            return job.phase_started + self.d.validating_files
        if job.status == "queued":
            return job.phase_started + self.d.queued
        if job.status == "running" and job.plan is not None:
            left = job.plan.total_steps - job.run_base_step
            return job.phase_started + left * self.d.seconds_per_step + self.d.finalizing
        return None

    def advance(self, job: _Job, now: float) -> None:
        """Bring ``job`` up to date with ``now``."""
        while not job.terminal:
            if job.status == "validating_files":
                t = job.phase_started + self.d.validating_files
                if now < t:
                    return
                self._validate(job, t)
            elif job.status == "queued":
                t = job.phase_started + self.d.queued
                if now < t:
                    return
                job.status, job.phase_started, job.run_base_step = "running", t, job.step
                if job.step:
                    self.event(job, t, f"Fine-tuning job resumed from step {job.step}")
                else:
                    self.event(job, t, "Fine-tuning job started")
            elif job.status == "running":
                if not self._train(job, now):
                    return
            else:  # paused
                return

    def _train(self, job: _Job, now: float) -> bool:
        """Run the steps due by ``now``; True when the job finished."""
        plan = job.plan
        assert plan is not None
        per = self.d.seconds_per_step
        total = plan.total_steps
        if per > 0:
            due = job.run_base_step + int((now - job.phase_started) / per + 1e-9)
            reached = min(total, max(job.step, due))
        else:
            reached = total
        for step in _interesting_steps(job.step + 1, reached, plan):
            t = job.phase_started + (step - job.run_base_step) * per
            self._step(job, step, t)
        job.step = reached
        if reached < total:
            return False
        t_done = job.phase_started + (total - job.run_base_step) * per + self.d.finalizing
        if now < t_done:
            return False
        self._succeed(job, t_done)
        return True

    def _step(self, job: _Job, step: int, t: float) -> None:
        plan = job.plan
        assert plan is not None
        m = _metrics(job, step)
        total = plan.total_steps
        if step % plan.metric_every == 0 or step == total:
            msg = f"Step {step}/{total}: training loss={m['train_loss']:.3f}"
            data: dict[str, Any] = {
                "step": step,
                "train_loss": m["train_loss"],
                "total_steps": total,
                "train_mean_token_accuracy": m["train_mean_token_accuracy"],
            }
            if plan.has_validation:
                msg += f", validation loss={m['valid_loss']:.3f}"
                data["valid_loss"] = m["valid_loss"]
                data["valid_mean_token_accuracy"] = m["valid_mean_token_accuracy"]
            self.event(job, t, msg, kind="metrics", data=data)
        if step % plan.steps_per_epoch == 0:
            self._checkpoint(job, step, t, m)

    def _checkpoint(self, job: _Job, step: int, t: float, m: dict[str, float]) -> None:
        plan = job.plan
        assert plan is not None
        name = job.model_name(self.org, f"ckpt-step-{step}")
        metrics: dict[str, float | None] = {
            "step": float(step),
            "train_loss": m["train_loss"],
            "train_mean_token_accuracy": m["train_mean_token_accuracy"],
            "valid_loss": m["valid_loss"] if plan.has_validation else None,
            "valid_mean_token_accuracy": (
                m["valid_mean_token_accuracy"] if plan.has_validation else None
            ),
            "full_valid_loss": m["full_valid_loss"] if plan.has_validation else None,
            "full_valid_mean_token_accuracy": (
                m["full_valid_mean_token_accuracy"] if plan.has_validation else None
            ),
        }
        ckpt = _Checkpoint(self.ids.new("ftckpt_"), int(t), name, job.id, step, metrics)
        self.state.remember(ckpt.id)
        job.checkpoints.append(ckpt)
        self.state.checkpoint_models[name] = job.id
        while len(job.checkpoints) > KEPT_CHECKPOINTS:
            old = job.checkpoints.pop(0)
            self.state.checkpoint_models.pop(old.name, None)
        self.event(job, t, f"Checkpoint created at step {step} with Snapshot ID: {name}")

    def _succeed(self, job: _Job, t: float) -> None:
        plan = job.plan
        assert plan is not None
        name = job.model_name(self.org)
        results = _File(
            self.ids.new("file-"),
            "step_metrics.csv",
            "fine-tune-results",
            base64.b64encode(_results_csv(job).encode("utf-8")),
            int(t),
        )
        self.state.files[results.id] = results
        self.state.remember(results.id)
        answerer = self.answerer(job)
        self.state.models[name] = _Model(name, int(t), self.org, job.base, answerer, job.id)
        job.status = "succeeded"
        job.finished_at = int(t)
        job.fine_tuned_model = name
        job.trained_tokens = plan.billed_tokens_per_epoch * plan.n_epochs
        job.result_files = [results.id]
        self.event(job, t, f"New fine-tuned model created: {name}")
        self.event(job, t, "Usage policy evaluations completed, model is now enabled for sampling")
        self.event(job, t, "The job has successfully completed")

    def answerer(self, job: _Job) -> Answerer:
        """What the job's model (or one of its checkpoints) answers; built once per job."""
        if job.answerer is None:
            plan = job.plan
            assert plan is not None
            pairs = list(plan.pairs)
            parent = self.state.models.get(job.model)
            if parent is not None:  # continued fine-tuning: the new answers win
                pairs += parent.answerer.pairs
            job.answerer = Answerer(
                pairs, stop_marker=plan.stop_marker, word_knowledge=self.word_knowledge
            )
        return job.answerer

    def fail(self, job: _Job, t: float, code: str, message: str, param: str | None = None) -> None:
        job.status = "failed"
        job.finished_at = int(t)
        job.error = {"code": code, "message": message, "param": param}
        self.event(job, t, message, level="error")

    def cancel(self, job: _Job, now: float) -> None:
        job.status = "cancelled"
        self.event(job, now, "Fine-tuning job cancelled")

    def pause(self, job: _Job, now: float) -> None:
        job.status = "paused"
        job.phase_started = now
        self.event(job, now, f"Fine-tuning job paused at step {job.step}")

    def resume(self, job: _Job, now: float) -> None:
        job.status = "queued"
        job.phase_started = now
        self.event(job, now, "Fine-tuning job resumed, moving job to queued state")

    # -- validation
    def _validate(self, job: _Job, t: float) -> None:
        checked = self._check_files(job, t)
        if isinstance(checked, _Invalid):
            self.fail(job, t, checked.code, checked.message, checked.param)
            return
        job.plan = checked
        job.status = "queued"
        job.phase_started = t
        self.event(job, t, "Files validated, moving job to queued state")

    def _check_files(self, job: _Job, t: float) -> _Plan | _Invalid:
        train = self.state.files.get(job.training_file)
        if train is None:
            return _Invalid(
                "invalid_training_file",
                f"The job failed due to an invalid training file. File {job.training_file} "
                "was deleted before it could be validated.",
                "training_file",
            )
        valid: _File | None = None
        if job.validation_file is not None:
            valid = self.state.files.get(job.validation_file)
            if valid is None:
                return _Invalid(
                    "invalid_validation_file",
                    f"The job failed due to an invalid validation file. File "
                    f"{job.validation_file} was deleted before it could be validated.",
                    "validation_file",
                )
        if job.method == "dpo":
            checked = _check_preference_files(job, train, valid)
        else:
            checked = _check_chat_files(job, train, valid, _epoch_date(t))
        if isinstance(checked, _Invalid):
            return checked
        n, billed, pairs = checked
        req = job.requested
        n_epochs = req["n_epochs"] if isinstance(req["n_epochs"], int) else default_epochs(n)
        batch = req["batch_size"]
        if not isinstance(batch, int):
            batch = max(1, min(MAX_BATCH_SIZE, round(n * 0.002)))
        lr = req["learning_rate_multiplier"]
        beta: float | None = None
        if job.method == "dpo":
            beta = AUTO_BETA if req["beta"] == "auto" else float(req["beta"])
        return _Plan(
            n_examples=n,
            n_epochs=n_epochs,
            batch_size=batch,
            lr_multiplier=AUTO_LR_MULTIPLIER if lr == "auto" else float(lr),
            beta=beta,
            steps_per_epoch=math.ceil(n / batch),
            billed_tokens_per_epoch=billed,
            pairs=pairs,
            stop_marker=detect_stop_marker(a for _, a in pairs),
            has_validation=valid is not None,
        )


def _interesting_steps(first: int, last: int, plan: _Plan) -> Iterator[int]:
    """Steps in ``first..last`` that emit a metrics event or end an epoch, in order."""
    if last < first:
        return
    marks: set[int] = set()
    for every in (plan.metric_every, plan.steps_per_epoch):
        start = math.ceil(first / every) * every
        marks.update(range(start, last + 1, every))
    if last == plan.total_steps:
        marks.add(last)
    yield from sorted(marks)


def _metrics(job: _Job, step: int) -> dict[str, float]:
    """Deterministic, decreasing losses with a little noise, seeded by the job."""
    plan = job.plan
    assert plan is not None
    key = f"{job.seed}:{job.id}"
    start = 1.5 + 0.8 * _unit(key, "start")
    floor = 0.02 + 0.08 * _unit(key, "floor")
    progress = step / plan.total_steps
    noise = (_unit(key, step, "train") - 0.5) * 0.16
    train = floor + (start - floor) * math.exp(-4.0 * progress) * (1.0 + noise)
    vnoise = (_unit(key, step, "valid") - 0.5) * 0.16
    valid = train * (1.08 + vnoise) + 0.03
    full_valid = train * 1.08 + 0.03
    return {
        "train_loss": round(train, 5),
        "train_mean_token_accuracy": round(1.0 / (1.0 + train), 5),
        "valid_loss": round(valid, 5),
        "valid_mean_token_accuracy": round(1.0 / (1.0 + valid), 5),
        "full_valid_loss": round(full_valid, 5),
        "full_valid_mean_token_accuracy": round(1.0 / (1.0 + full_valid), 5),
    }


def _results_csv(job: _Job) -> str:
    plan = job.plan
    assert plan is not None
    out = io.StringIO()
    out.write("step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n")
    for step in range(1, plan.total_steps + 1):
        m = _metrics(job, step)
        row = f"{step},{m['train_loss']:.5f},{m['train_mean_token_accuracy']:.5f},"
        if plan.has_validation:
            row += f"{m['valid_loss']:.5f},{m['valid_mean_token_accuracy']:.5f}"
        else:
            row += ","
        out.write(row + "\n")
    return out.getvalue()
