"""Answering with a local model in process.

Greedy at temperature 0, stop strings honoured, token log-probabilities with alternatives
(so the discriminator's gates work on local models too).

A model directory is either a full model (``config.json``) or a PEFT LoRA adapter
(``adapter_config.json``, loaded over its base model). Loaded models are kept in a small
cache; generation is serialized per model (one forward pass at a time) and batched for
:meth:`LoadedModel.generate_many`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Generation", "LoadedModel", "load_model"]

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
        import torch

        tok = self.tokenizer
        enc = tok(self._prompt(messages), add_special_tokens=False, return_tensors="pt")
        input_ids = enc["input_ids"].to(self.model.device)
        limit = getattr(self.model.config, "max_position_embeddings", None) or 4096
        room = max(1, limit - input_ids.shape[1])
        new = min(max_tokens or DEFAULT_MAX_TOKENS, room)
        sample = temperature is not None and temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": new,
            "do_sample": sample,
            "eos_token_id": self.eos_ids or None,
            "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            "output_scores": logprobs,
            "return_dict_in_generate": True,
        }
        if sample:
            kwargs["temperature"] = temperature
            kwargs["top_p"] = 1.0
            kwargs["top_k"] = 0
        else:
            kwargs["temperature"] = None
            kwargs["top_p"] = None
            kwargs["top_k"] = None
        if stop:
            kwargs["stop_strings"] = list(stop)
            kwargs["tokenizer"] = tok
        with self.lock, torch.no_grad():
            if seed is not None:
                torch.manual_seed(seed)
            out = self.model.generate(
                input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs
            )
        ids = out.sequences[0, input_ids.shape[1] :].tolist()
        ended_eos = bool(ids) and ids[-1] in self.eos_ids
        body = ids[:-1] if ended_eos else ids
        text = tok.decode(body, skip_special_tokens=False)
        finish = "stop" if ended_eos else "length"
        cut = len(body)
        if stop:
            hits = [text.find(s) for s in stop if s and text.find(s) >= 0]
            if hits:
                text = text[: min(hits)]
                finish = "stop"
                # keep the log-probabilities of the tokens inside the returned text only
                cut = len(tok(text, add_special_tokens=False)["input_ids"]) if text else 0
        probs = None
        if logprobs:
            probs = self._logprobs(out.scores, ids, cut, top_logprobs or 0)
        return Generation(
            text=text,
            finish_reason=finish,
            prompt_tokens=int(input_ids.shape[1]),
            completion_tokens=len(ids),
            logprobs=probs,
        )

    def _logprobs(
        self, scores: Sequence[Any], ids: list[int], count: int, top: int
    ) -> list[dict[str, Any]]:
        import torch

        tok = self.tokenizer
        out: list[dict[str, Any]] = []
        for step, token_id in enumerate(ids[: max(count, 1) if ids else 0]):
            if step >= len(scores):
                break
            logp = torch.log_softmax(scores[step][0].float(), dim=-1)

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
