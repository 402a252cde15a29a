"""A real, tiny Hugging Face chat model built from text, for tests, demos and benchmarks.

No model hub is needed: a byte-level BPE tokenizer is trained on the given text with the
``tokenizers`` library, a ChatML chat template with ``{% generation %}`` markers is set,
and a two-layer Llama of random weights is saved with ``save_pretrained``. The directory
then loads through exactly the code that loads a hub model (``AutoTokenizer``,
``AutoModelForCausalLM``), so the local backend's real path runs on it in seconds on a CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["CHATML_TEMPLATE", "build_tiny_model"]

CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{%- else -%}"
    "{{ message['content'] + '<|im_end|>' + '\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)
"""A ChatML chat template whose assistant turns (end-of-turn token included) are marked."""

_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def build_tiny_model(
    path: str | os.PathLike[str],
    texts: Iterable[str],
    *,
    vocab_size: int = 1024,
    hidden_size: int = 128,
    layers: int = 2,
    heads: int = 4,
    max_positions: int = 1024,
    seed: int = 0,
) -> Path:
    """Write a tiny causal-LM chat model directory trained on nothing but ``texts``' vocabulary.

    Args:
        path: the directory to write (created; existing files of the same names replaced).
        texts: text the tokenizer learns its merges from (questions, answers, prompts).
        vocab_size: tokenizer vocabulary size (at most; small texts give fewer merges).
        hidden_size: model width.
        layers: transformer layers.
        heads: attention heads.
        max_positions: longest sequence the model accepts.
        seed: seed of the random weights.

    Returns:
        The directory, ready for ``base model = str(path)``.

    Raises:
        ConfigError: transformers or tokenizers is not installed (``pip install
            'finetune-qa[local]'``).
    """
    from finetune_qa.backends.local._deps import require

    require()
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML_TEMPLATE,
    )
    fast.save_pretrained(out)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        bos_token_id=None,
        eos_token_id=fast.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=fast.convert_tokens_to_ids("<|endoftext|>"),
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out)
    return out
