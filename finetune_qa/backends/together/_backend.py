"""TogetherBackend: the Backend protocol on Together AI, over the ``together`` SDK's client."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from finetune_qa.backends._logscrub import protect_secrets
from finetune_qa.backends._loops import LoopClients
from finetune_qa.backends.base import (
    BackendDefaults,
    ChatRequest,
    ChatResponse,
    Checkpoint,
    FileInfo,
    JobEvent,
    JobInfo,
    JobRequest,
)
from finetune_qa.backends.together._convert import (
    chat_kwargs,
    chat_response,
    dump,
    file_info,
    job_event,
    job_info,
    limits_of,
    unix,
)
from finetune_qa.backends.together._deps import import_sdk
from finetune_qa.backends.together._errors import map_together_errors
from finetune_qa.backends.together._limits import (
    ModelLimits,
    PriceEstimate,
    catalogue_price,
    check_lengths,
)
from finetune_qa.backends.together._options import (
    PROVIDER_OPTION_NAMES,
    check_options,
    request_evals,
)
from finetune_qa.exceptions import UsageError

if TYPE_CHECKING:
    import together

__all__ = ["TogetherBackend"]


class TogetherBackend(BackendDefaults, LoopClients["together.AsyncTogether"]):
    """The lifecycle on Together AI, through a ``together.Together`` client.

    Args:
        client: a configured ``together.Together``; built from ``api_key`` or
            ``TOGETHER_API_KEY`` when omitted.
        async_client: the matching ``together.AsyncTogether`` for :meth:`achat`; when
            omitted, one is made per event loop for a client built here, else the sync
            client runs in a worker thread.
        api_key: key for a client built here (else ``TOGETHER_API_KEY``).
        base_url: base URL for a client built here.
        max_retries: retries of a client built here (the SDK's own backoff).
        wandb_api_key: Weights & Biases key for jobs with a wandb integration (else
            ``WANDB_API_KEY``); sent to Together with the job, never recorded.

    Raises:
        ConfigError: the ``together`` package is missing, or no client was given and no
            API key can be found.

    Example:
        ```python
        from finetune_qa import FineTuneJob
        from finetune_qa.backends import TogetherBackend

        job = FineTuneJob.create(
            "train.jsonl",
            model="meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
            backend=TogetherBackend(),  # TOGETHER_API_KEY from the environment
            provider_options={"lora": True, "learning_rate": 2e-5},
        )
        ```
    """

    name = "together"
    supports_metadata = False
    """Together jobs carry no metadata: jobs are found again by :meth:`matches_request`."""
    validation_provider = "together"
    """Training files are validated with Together's format rules (``validate_file(provider=)``)."""
    provider_option_names: frozenset[str] = PROVIDER_OPTION_NAMES
    """The keys ``JobRequest.provider_options`` may hold."""

    def __init__(
        self,
        client: together.Together | None = None,
        *,
        async_client: together.AsyncTogether | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        max_retries: int = 2,
        wandb_api_key: str | None = None,
    ) -> None:
        sdk = import_sdk()
        self.client = client = self._init_sdk_clients(
            client,
            async_client,
            key=api_key or os.environ.get("TOGETHER_API_KEY"),
            missing_key="no Together AI API key: pass api_key=, set TOGETHER_API_KEY, or pass a "
            "configured together.Together client; backend='offline' (CLI: --backend offline) "
            "runs the whole lifecycle without one",
            make_sync=lambda key: sdk.Together(
                api_key=key, base_url=base_url, max_retries=max_retries
            ),
            make_async=lambda key: cast(
                "together.AsyncTogether",
                sdk.AsyncTogether(api_key=key, base_url=base_url, max_retries=max_retries),
            ),
        )
        self._wandb_api_key = wandb_api_key
        # the SDK logs request options (the W&B key among them) at DEBUG
        protect_secrets(
            str(getattr(client, "api_key", "") or ""),
            wandb_api_key,
            loggers=("together",),
        )
        self._limits_cache: dict[str, tuple[ModelLimits, Any]] = {}

    def __repr__(self) -> str:
        return f"TogetherBackend(base_url={str(self.client.base_url)!r})"

    @property
    def endpoint(self) -> str:
        """Which server (and so account) this backend talks to: its name and base URL."""
        from finetune_qa._text import scrub_url

        return f"{self.name}:{scrub_url(str(self.client.base_url))}"

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        return map_together_errors(str(getattr(self.client, "api_key", "") or ""))

    def _writer(self) -> Any:
        """The client with the SDK's retries off, for requests finetune_qa retries itself.

        Those are the ones that create something, and chat (``ChatModel`` retries it by
        the one policy, :mod:`finetune_qa._retry`). The SDK resends a request after a
        dropped connection or a timeout with no idempotency Together honours, so a resent
        ``POST /fine-tunes`` could start a second (billed) job;
        :class:`~finetune_qa.jobs.FineTuneJob` retries instead, after looking for what the
        lost request may have created.
        """
        with_options = getattr(self.client, "with_options", None)
        return with_options(max_retries=0) if callable(with_options) else self.client

    # -- files
    def upload_file(self, data: bytes, *, filename: str, purpose: str = "fine-tune") -> FileInfo:
        """Upload ``data`` as ``filename`` through the SDK's signed-URL flow."""
        with tempfile.TemporaryDirectory(prefix="finetune-qa-") as tmp:
            path = Path(tmp) / _upload_name(filename)
            path.write_bytes(data)
            return self._upload(path, purpose)

    def upload_path(
        self,
        path: str | os.PathLike[str],
        *,
        filename: str,
        purpose: str = "fine-tune",
        parallel: int = 4,
    ) -> FileInfo:
        """Upload a file from disk without reading it into memory.

        The SDK streams the file and switches to multi-part uploads itself above 5 GB;
        ``parallel`` is accepted for the protocol's sake (the SDK sends 4 parts at once).
        """
        del parallel
        with tempfile.TemporaryDirectory(prefix="finetune-qa-") as tmp:
            link = Path(tmp) / _upload_name(filename)
            try:
                link.symlink_to(Path(path).resolve())
            except OSError:
                link.write_bytes(Path(path).read_bytes())
            return self._upload(link, purpose)

    def _upload(self, path: Path, purpose: str) -> FileInfo:
        # check=False: finetune_qa's validator (with Together's rules) ran before this
        with self._errors():
            return file_info(self._writer().files.upload(file=path, purpose=purpose, check=False))

    def list_files(self, *, purpose: str | None = None, limit: int = 100) -> list[FileInfo]:
        """Files, newest first (Together returns them all at once; ``limit`` cuts)."""
        with self._errors():
            files = [file_info(f) for f in self.client.files.list().data]
        if purpose is not None:
            files = [f for f in files if f.purpose == purpose]
        files.sort(key=lambda f: f.created_at, reverse=True)
        return files[:limit]

    def file_content(self, file_id: str) -> bytes:
        """The raw bytes of a file."""
        with self._errors():
            return self.client.files.content(file_id).read()

    # -- limits and prices
    def _sdk_limits(self, model: str) -> tuple[ModelLimits, Any]:
        cached = self._limits_cache.get(model)
        if cached is None:
            with self._errors():
                obj = self.client.fine_tuning.model_limits(model_name=model)
            cached = self._limits_cache[model] = (limits_of(obj), obj)
        return cached

    def model_limits(self, model: str) -> ModelLimits:
        """Together's fine-tuning limits for ``model`` (sequence length, batch, epochs, ...).

        Raises:
            NotFoundError: Together does not fine-tune that model.
        """
        return self._sdk_limits(model)[0]

    def check_request(
        self,
        request: JobRequest,
        *,
        training_path: str | os.PathLike[str] | None = None,
        validation_path: str | os.PathLike[str] | None = None,
    ) -> ModelLimits:
        """Check ``request`` (and the files, when given) against Together's limits, before upload.

        Fetches the model's limits once (cached), then checks the hyperparameters and
        that no example is longer than the model's maximum sequence length. Token counts
        are tiktoken ``o200k_base`` estimates: Together models use their own tokenizers.

        Raises:
            UsageError: something Together would refuse; nothing was uploaded.
        """
        check_options(request)
        limits = self.model_limits(request.model)
        opts = request.provider_options
        bad: list[str] = []
        if request.n_epochs != "auto" and request.n_epochs > limits.max_num_epochs:
            bad.append(f"n_epochs {request.n_epochs} is over the maximum {limits.max_num_epochs}")
        lr = opts.get("learning_rate")
        if lr is not None and not limits.min_learning_rate <= lr <= limits.max_learning_rate:
            bad.append(
                f"learning_rate {lr:g} is outside {limits.min_learning_rate:g}-"
                f"{limits.max_learning_rate:g}"
            )
        n_ckpt = opts.get("n_checkpoints")
        if n_ckpt is not None and n_ckpt > limits.max_num_checkpoints:
            bad.append(f"n_checkpoints {n_ckpt} is over the maximum {limits.max_num_checkpoints}")
        n_evals = opts.get("n_evals")
        if n_evals is not None and n_evals > limits.max_num_evals:
            bad.append(f"n_evals {n_evals} is over the maximum {limits.max_num_evals}")
        rank = opts.get("lora_r")
        if rank is not None and rank > limits.lora_max_rank:
            bad.append(f"lora_r {rank} is over the maximum rank {limits.lora_max_rank}")
        seq = opts.get("max_seq_length")
        top_seq = limits.max_seq_length(request.method)
        low_seq = limits.min_max_seq_length or 1
        if seq is not None and not low_seq <= seq <= top_seq:
            bad.append(f"max_seq_length {seq} is outside {low_seq}-{top_seq} for {request.method}")
        full = opts.get("lora") is False
        if full and not limits.supports_full_training:
            bad.append("full training (lora=False) is not offered for this model")
        elif request.batch_size != "auto":
            span = limits.batch_size_range(request.method, lora=not full)
            if span is not None and not span[0] <= request.batch_size <= span[1]:
                bad.append(
                    f"batch_size {request.batch_size} is outside {span[0]}-{span[1]} for "
                    f"{'full training' if full else 'LoRA'}"
                )
        if bad:
            raise UsageError(
                f"Together AI would refuse this job on {request.model}: {'; '.join(bad)}. "
                "Nothing was uploaded."
            )
        limit = int(seq or top_seq)
        for p in (training_path, validation_path):
            if p is not None:
                check_lengths(Path(p), limit, request.model, request.method)
        return limits

    def estimate_price(
        self,
        request: JobRequest,
        *,
        training_path: str | os.PathLike[str] | None = None,
    ) -> PriceEstimate:
        """Price a job with Together's ``/fine-tunes/estimate-price`` (files must be uploaded).

        When Together cannot estimate (e.g. the file is not validated yet) and
        ``training_path`` is given, the catalogue's price per 1M tokens is applied to a
        tiktoken ``o200k_base`` estimate of the tokens (not the model's own tokenizer).
        """
        kwargs: dict[str, Any] = {
            "training_file": request.training_file,
            "model": request.model,
            "n_epochs": request.n_epochs if request.n_epochs != "auto" else 1,
            "n_evals": request_evals(request),
        }
        if request.validation_file:
            kwargs["validation_file"] = request.validation_file
        if request.method == "dpo":
            method: dict[str, Any] = {"method": "dpo"}
            if isinstance(request.beta, float | int):
                method["dpo_beta"] = request.beta
        else:
            method = {
                "method": "sft",
                "train_on_inputs": request.provider_options.get("train_on_inputs", "auto"),
            }
        kwargs["training_method"] = method
        training_type = self._training_type(request)
        if training_type is not None:
            kwargs["training_type"] = training_type
        with self._errors():
            est = dump(self.client.fine_tuning.estimate_price(**kwargs))
        if est.get("estimation_available"):
            return PriceEstimate(
                model=request.model,
                source="together",
                available=True,
                estimated_total_usd=est.get("estimated_total_price"),
                train_tokens=est.get("estimated_train_token_count"),
                eval_tokens=est.get("estimated_eval_token_count"),
                allowed_to_proceed=est.get("allowed_to_proceed"),
                user_limit_usd=est.get("user_limit"),
            )
        reason = str(est.get("unavailable_reason") or "unavailable")
        if training_path is None:
            return PriceEstimate(
                model=request.model, source="together", available=False, reason=reason
            )
        return catalogue_price(request, Path(training_path), reason)

    def _training_type(self, request: JobRequest) -> dict[str, Any] | None:
        """LoRA or full training as ``create`` asks for it (None: Together's default, LoRA)."""
        opts = request.provider_options
        if "lora" not in opts:
            return None
        if opts["lora"] is False:
            return {"type": "Full"}
        rank = opts.get("lora_r")
        if rank is None:
            rank = self.model_limits(request.model).lora_default_rank
        alpha = opts.get("lora_alpha")
        return {
            "type": "Lora",
            "lora_r": int(rank),
            "lora_alpha": int(alpha if alpha is not None else rank * 2),
            "lora_dropout": float(opts.get("lora_dropout") or 0.0),
            "lora_trainable_modules": opts.get("lora_trainable_modules") or "all-linear",
        }

    # -- jobs
    def _request_kwargs(self, request: JobRequest) -> dict[str, Any]:
        """The SDK arguments for ``request``, without the W&B key and the model limits."""
        check_options(request)
        kwargs: dict[str, Any] = {
            "model": request.model,
            "training_file": request.training_file,
            "batch_size": request.batch_size if request.batch_size != "auto" else "max",
        }
        if request.validation_file:
            kwargs["validation_file"] = request.validation_file
            kwargs["n_evals"] = request_evals(request)
        if request.n_epochs != "auto":
            kwargs["n_epochs"] = request.n_epochs
        if request.suffix is not None:
            kwargs["suffix"] = request.suffix
        if request.seed is not None:
            kwargs["random_seed"] = request.seed
        opts = dict(request.provider_options)
        if request.method == "dpo":
            kwargs["training_method"] = "dpo"
            if isinstance(request.beta, float | int):
                kwargs["dpo_beta"] = float(request.beta)
        else:
            kwargs["training_method"] = "sft"
            kwargs["train_on_inputs"] = opts.pop("train_on_inputs", "auto")
        for integ in request.integrations:
            if integ.get("type") != "wandb":
                raise UsageError("Together AI takes only the wandb integration")
            wb = integ.get("wandb") or {}
            kwargs["wandb_project_name"] = wb.get("project")
            for src, dst in (("name", "wandb_name"), ("entity", "wandb_entity")):
                if wb.get(src):
                    kwargs[dst] = wb[src]
        kwargs.update(opts)
        return kwargs

    def create_job(self, request: JobRequest) -> JobInfo:
        """Create a fine-tuning job (``/fine-tunes``); see the module docs for the mapping.

        The request is sent once (the SDK's retries are off for it): after a dropped
        connection the job may exist, and only :class:`~finetune_qa.jobs.FineTuneJob`,
        which looks for it first, should try again.
        """
        kwargs = self._request_kwargs(request)
        if request.integrations:
            key = self._wandb_api_key or os.environ.get("WANDB_API_KEY")
            if not key:
                raise UsageError(
                    "a wandb integration needs a Weights & Biases key: pass "
                    "TogetherBackend(wandb_api_key=...) or set WANDB_API_KEY"
                )
            protect_secrets(key, loggers=("together",))
            kwargs["wandb_api_key"] = key
        kwargs["model_limits"] = self._sdk_limits(request.model)[1]
        with map_together_errors(
            str(getattr(self.client, "api_key", "") or ""), str(kwargs.get("wandb_api_key") or "")
        ):
            return job_info(self._writer().fine_tuning.create(**kwargs))

    def matches_request(self, job: JobInfo, request: JobRequest) -> bool:
        """Whether ``job`` could be the one ``request`` created, judged by what Together echoes.

        Together jobs carry no metadata, so after a lost answer the job is recognised by
        its settings: the epochs, evaluations, checkpoints, learning rate and schedule,
        seed, batch size (unless ``"max"``), training method (DPO beta, train_on_inputs
        unless ``"auto"``), LoRA or full training and its rank, alpha and dropout. A field
        Together did not echo is not compared, nor one it may resolve (``"max"``,
        ``"auto"``, the LoRA modules): a false mismatch would send the request again. The
        SDK's defaults count as sent. The model, files and
        suffix are compared by :class:`~finetune_qa.jobs.FineTuneJob` itself.
        """
        raw = job.raw
        sent = {
            "n_epochs": 1,
            "n_checkpoints": 1,
            "learning_rate": 1e-5,
            "warmup_ratio": 0.0,
            "max_grad_norm": 1.0,
            "weight_decay": 0.0,
            **self._request_kwargs(request),
            "n_evals": request_evals(request),
        }
        pairs: list[tuple[Any, Any]] = [
            (sent[k], raw[k])
            for k in _ECHOED
            if k in sent and raw.get(k) is not None and raw.get(k) != ""
        ]
        if sent["batch_size"] != "max" and raw.get("batch_size") is not None:
            pairs.append((sent["batch_size"], raw["batch_size"]))
        method = raw.get("training_method")
        if isinstance(method, dict):
            for ours, theirs in (
                ("training_method", "method"),
                ("dpo_beta", "dpo_beta"),
                ("train_on_inputs", "train_on_inputs"),
                ("rpo_alpha", "rpo_alpha"),
                ("simpo_gamma", "simpo_gamma"),
            ):
                # "auto" may come back resolved: compare only what was asked for exactly
                if ours in sent and sent[ours] != "auto" and method.get(theirs) is not None:
                    pairs.append((sent[ours], method[theirs]))
        ttype = raw.get("training_type")
        wanted = self._training_type(request)
        if isinstance(ttype, dict) and wanted is not None:
            for k, v in wanted.items():
                echoed = ttype.get(k)
                # the module list may come back expanded from "all-linear"
                if echoed is not None and k != "lora_trainable_modules":
                    # Together spells the type "Lora" or "LoRA"
                    pairs.append((v.lower(), str(echoed).lower()) if k == "type" else (v, echoed))
        sched = raw.get("lr_scheduler")
        if (
            isinstance(sched, dict)
            and "lr_scheduler_type" in sent
            and sched.get("lr_scheduler_type") is not None
        ):
            pairs.append((sent["lr_scheduler_type"], sched["lr_scheduler_type"]))
        return all(_same_value(a, b) for a, b in pairs)

    def retrieve_job(self, job_id: str) -> JobInfo:
        """The job's current state."""
        with self._errors():
            return job_info(self.client.fine_tuning.retrieve(job_id))

    def list_jobs(
        self, *, limit: int = 20, metadata: Mapping[str, str] | None = None
    ) -> list[JobInfo]:
        """Jobs, newest first.

        Raises:
            UsageError: ``metadata`` was given: Together jobs carry none, so they cannot be
                filtered by it.
        """
        if metadata:
            raise UsageError(
                "Together AI jobs carry no metadata, so list_jobs cannot filter by it; "
                "call list_jobs() without metadata= and filter the JobInfo list yourself"
            )
        with self._errors():
            jobs = [job_info(j) for j in self.client.fine_tuning.list().data]
        jobs.sort(key=lambda j: j.created_at, reverse=True)
        return jobs[:limit]

    def cancel_job(self, job_id: str) -> JobInfo:
        """Ask Together to cancel the job.

        The job shows ``cancel_requested`` at once, mapped to ``running`` (it may still
        train) until Together reports ``cancelled``.
        """
        with self._errors():
            return job_info(self.client.fine_tuning.cancel(job_id))

    def pause_job(self, job_id: str) -> JobInfo:
        """Together AI cannot pause jobs.

        Raises:
            UsageError: always.
        """
        raise UsageError(
            f"Together AI jobs cannot be paused ({job_id}); cancel it or let it finish"
        )

    def resume_job(self, job_id: str) -> JobInfo:
        """Together AI cannot pause, so nothing can be resumed.

        Raises:
            UsageError: always.
        """
        raise UsageError(
            f"Together AI jobs cannot be paused or resumed ({job_id}); cancel it or let it finish"
        )

    def list_events(
        self, job_id: str, *, after: str | None = None, limit: int = 100
    ) -> Sequence[JobEvent]:
        """One page of events, newest first; ``after`` is an event id (older than it).

        Together returns a job's events oldest first and without ids; an event's id is
        its position in that list (``<job id>:event:<n>``), stable as events are added.
        Its Together type, step and totals are in ``data``.
        """
        with self._errors():
            rows = list(self.client.fine_tuning.list_events(job_id).data)
        events = [job_event(job_id, i, e) for i, e in enumerate(rows)]
        end = len(events)
        if after is not None:
            try:
                end = int(after.rsplit(":", 1)[1])
            except (IndexError, ValueError):
                raise UsageError(f"{after!r} is not an event id of this backend") from None
        page = events[:end][::-1]
        return page[:limit]

    def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """Checkpoints, newest first; the final one included."""
        with self._errors():
            rows = [dump(c) for c in self.client.fine_tuning.list_checkpoints(job_id).data]
        out = [
            Checkpoint(
                id=f"{job_id}:{c['step']}:{c.get('checkpoint') or c.get('checkpoint_type')}",
                created_at=unix(c.get("created_at")) or 0,
                fine_tuned_model_checkpoint=c.get("object_name") or f"{job_id}:{c['step']}",
                step_number=int(c["step"]),
                metrics={"checkpoint_type": c.get("checkpoint_type"), "path": c.get("path")},
            )
            for c in rows
        ]
        out.sort(key=lambda c: (c.step_number, c.created_at), reverse=True)
        return out

    def training_metrics(self, job_id: str) -> list[dict[str, float | None]]:
        """Per-step metrics from ``/fine-tunes/{id}/metrics``, oldest first.

        Each row has ``step``, ``train_loss`` and ``valid_loss`` (None when that row does
        not hold it), read from Together's ``train/global_step``, ``train/loss``,
        ``eval/loss`` (and ``eval/global_step``).
        """
        with self._errors():
            rows = self.client.fine_tuning.list_metrics(job_id).metrics or []
        out: list[dict[str, float | None]] = []
        for r in rows:
            step = r.get("train/global_step", r.get("eval/global_step", r.get("global_step")))
            if step is None:
                continue
            out.append(
                {
                    "step": float(step),
                    "train_loss": r.get("train/loss"),
                    "valid_loss": r.get("eval/loss"),
                }
            )
        return out

    # -- chat
    def chat(self, request: ChatRequest) -> ChatResponse:
        """One chat completion (Together's chat API is OpenAI-compatible)."""
        with self._errors():  # ChatModel retries by its own policy: the SDK's are off
            raw = self._writer().chat.completions.with_raw_response.create(**chat_kwargs(request))
            completion = raw.parse()
        return chat_response(completion, raw.headers.get("x-request-id"))

    async def achat(self, request: ChatRequest) -> ChatResponse:
        """One chat completion on the async client (or the sync one in a thread)."""
        client = self._async_client()
        if client is None:
            return await asyncio.to_thread(self.chat, request)
        once = client.with_options(max_retries=0)  # ChatModel retries by its own policy
        with self._errors():
            raw = await once.chat.completions.with_raw_response.create(**chat_kwargs(request))
            completion = await raw.parse()
        return chat_response(completion, raw.headers.get("x-request-id"))


_ECHOED = (
    "n_epochs",
    "n_evals",
    "n_checkpoints",
    "random_seed",
    "learning_rate",
    "warmup_ratio",
    "max_grad_norm",
    "weight_decay",
    "max_seq_length",
    "gradient_accumulation_steps",
    "packing",
    "wandb_project_name",
)
"""Job fields Together echoes back as they were sent (compared by ``matches_request``)."""


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a == b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)
    return bool(a == b)


def _upload_name(filename: str) -> str:
    name = Path(filename).name or "data.jsonl"
    return name if name.endswith((".jsonl", ".parquet", ".csv")) else name + ".jsonl"
