"""Answering with a local model in process.

Greedy at temperature 0, stop strings honoured, token log-probabilities with alternatives
(so the discriminator's gates work on local models too).

A model directory is either a full model (``config.json``) or a PEFT LoRA adapter
(``adapter_config.json``, loaded over its base model). Loaded models are kept in a small
cache; generation runs one batch at a time per model, and :class:`Batcher` gathers
concurrent requests (``ask_many``, a server's clients) into batches.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Batcher", "Generation", "LoadedModel", "load_model"]

DEFAULT_MAX_TOKENS = 512
"""Tokens generated when the request sets no ``max_tokens``."""


@dataclass
class Generation:
    """What one request produced."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    logprobs: list[dict[str, Any]] | None = field(default=None)


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class LoadedModel:
    """A tokenizer and model ready to answer chat messages."""

    def __init__(self, tokenizer: Any, model: Any, name: str) -> None:
        self.tokenizer = tokenizer
        self.model = model
        self.name = name
        self.lock = threading.Lock()
        eos = tokenizer.eos_token_id
        gen_eos = getattr(model.generation_config, "eos_token_id", None)
        ids = {eos} if eos is not None else set()
        if isinstance(gen_eos, int):
            ids.add(gen_eos)
        elif isinstance(gen_eos, list):
            ids.update(gen_eos)
        self.eos_ids = sorted(ids)

    def _prompt(self, messages: Sequence[dict[str, Any]]) -> str:
        clean = [{k: v for k, v in m.items() if k != "weight"} for m in messages]
        return str(
            self.tokenizer.apply_chat_template(clean, tokenize=False, add_generation_prompt=True)
        )

    def generate(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        logprobs: bool = False,
        top_logprobs: int | None = None,
    ) -> Generation:
        """Answer one conversation (greedy unless ``temperature`` > 0)."""
        return self.generate_many(
            [messages],
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stop,
            seed=seed,
            logprobs=logprobs,
            top_logprobs=top_logprobs,
        )[0]

    def generate_many(
        self,
        conversations: Sequence[Sequence[dict[str, Any]]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        logprobs: bool = False,
        top_logprobs: int | None = None,
    ) -> list[Generation]:
        """Answer several conversations in one batch (left-padded), with the same settings."""
        import torch

        tok = self.tokenizer
        encoded = [
            list(tok(self._prompt(m), add_special_tokens=False)["input_ids"]) for m in conversations
        ]
        width = max(len(e) for e in encoded)
        pad = tok.pad_token_id if tok.pad_token_id is not None else self.eos_ids[0]
        input_ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded])
        mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded])
        limit = getattr(self.model.config, "max_position_embeddings", None) or 4096
        new = min(max_tokens or DEFAULT_MAX_TOKENS, max(1, limit - width))
        sample = temperature is not None and temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": new,
            "do_sample": sample,
            "eos_token_id": self.eos_ids or None,
            "pad_token_id": pad,
            "output_scores": logprobs,
            "return_dict_in_generate": True,
            # greedy is greedy: no sampling knobs from the model's generation config
            "temperature": temperature if sample else None,
            "top_p": 1.0 if sample else None,
            "top_k": 0 if sample else None,
        }
        if stop:
            kwargs["stop_strings"] = list(stop)
            kwargs["tokenizer"] = tok
        device = self.model.device
        with self.lock, torch.no_grad():
            if seed is not None:
                torch.manual_seed(seed)
            out = self.model.generate(
                input_ids=input_ids.to(device), attention_mask=mask.to(device), **kwargs
            )
        ends = {*self.eos_ids, pad}
        results = []
        for row, prompt in enumerate(encoded):
            ids = out.sequences[row, width:].tolist()
            end = next((n for n, t in enumerate(ids) if t in ends), None)
            ended_eos = end is not None and ids[end] in self.eos_ids
            body = ids[:end] if end is not None else ids
            used = body + ([ids[end]] if ended_eos and end is not None else [])
            text = tok.decode(body, skip_special_tokens=False)
            finish = "stop" if end is not None else "length"
            cut = len(body)
            hits = [text.find(s) for s in stop or () if s and text.find(s) >= 0]
            if hits:
                text = text[: min(hits)]
                finish = "stop"
                # log-probabilities of the tokens inside the returned text only
                cut = len(tok(text, add_special_tokens=False)["input_ids"]) if text else 0
            probs = None
            if logprobs:
                scores = [step[row] for step in out.scores]
                probs = self._logprobs(scores, used, cut, top_logprobs or 0)
            results.append(
                Generation(
                    text=text,
                    finish_reason=finish,
                    prompt_tokens=len(prompt),
                    completion_tokens=len(used),
                    logprobs=probs,
                )
            )
        return results

    def _logprobs(
        self, scores: Sequence[Any], ids: list[int], count: int, top: int
    ) -> list[dict[str, Any]]:
        import torch

        tok = self.tokenizer
        out: list[dict[str, Any]] = []
        for step, token_id in enumerate(ids[: max(count, 1) if ids else 0]):
            if step >= len(scores):
                break
            logp = torch.log_softmax(scores[step].float(), dim=-1)

            def entry(tid: int, lp: float) -> dict[str, Any]:
                text = tok.decode([tid], skip_special_tokens=False)
                value = lp if math.isfinite(lp) else -9999.0
                return {"token": text, "logprob": value, "bytes": list(text.encode("utf-8"))}

            item = entry(token_id, float(logp[token_id]))
            if top:
                values, indices = torch.topk(logp, k=min(top, logp.shape[-1]))
                item["top_logprobs"] = [
                    entry(int(i), float(v))
                    for v, i in zip(values.tolist(), indices.tolist(), strict=True)
                ]
            else:
                item["top_logprobs"] = []
            out.append(item)
        return out


def load_model(path: Path, *, name: str, chat_template: str | None = None) -> LoadedModel:
    """Load a full model or a LoRA adapter (over its base) from ``path``, or a hub id."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    device = _device()
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    source = str(path)
    if (path / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(source, dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    tok = AutoTokenizer.from_pretrained(source)
    if chat_template:
        tok.chat_template = chat_template
    model.to(device)
    model.eval()
    return LoadedModel(tok, model, name)


_Job = tuple[Sequence[dict[str, Any]], dict[str, Any], "Future[Generation]"]


class Batcher:
    """Gathers requests that arrive together into batches for one model.

    A daemon thread takes the first waiting request, then whatever else arrives within
    ``window`` seconds (up to ``max_batch``), and answers those with the same settings in
    one :meth:`LoadedModel.generate_many` call. One request alone is answered at once.
    """

    def __init__(self, model: LoadedModel, *, max_batch: int = 16, window: float = 0.005) -> None:
        self.model = model
        self.max_batch = max_batch
        self.window = window
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="finetune-qa-batcher", daemon=True)
        self._thread.start()

    def submit(self, messages: Sequence[dict[str, Any]], **settings: Any) -> Future[Generation]:
        """Queue one conversation; the future holds its :class:`Generation` (or the error)."""
        future: Future[Generation] = Future()
        self._queue.put((messages, settings, future))
        return future

    def close(self) -> None:
        """Stop the thread once the requests already queued are answered."""
        self._queue.put(None)

    def _run(self) -> None:
        closing = False
        while not closing:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            try:
                while len(batch) < self.max_batch:
                    item = self._queue.get(timeout=self.window)
                    if item is None:
                        closing = True
                        break
                    batch.append(item)
            except queue.Empty:
                pass
            groups: dict[str, list[_Job]] = {}
            for job in batch:
                key = repr(sorted(job[1].items()))
                groups.setdefault(key, []).append(job)
            for jobs in groups.values():
                try:
                    answers = self.model.generate_many([j[0] for j in jobs], **jobs[0][1])
                except Exception as exc:  # handed to every waiting caller
                    for job in jobs:
                        job[2].set_exception(exc)
                    continue
                for job, answer in zip(jobs, answers, strict=True):
                    job[2].set_result(answer)
