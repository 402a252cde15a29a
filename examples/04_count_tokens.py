"""Count tokens exactly, for catalogue models, fine-tuned (ft:) names and your own models.

Shows: ``TokenCounter`` picking each model's own encoding (o200k_base for the gpt-4o and
gpt-4.1 families, cl100k_base for gpt-3.5-turbo), resolving an ``ft:`` name to its base
model (where tiktoken alone picks the wrong encoding for ft:gpt-4.1), the chat-format
count of a whole training example with ``count_messages``, and a ``ModelInfo`` for a
model the catalogue does not know.

Counting works offline: the rank files are verified by SHA-256 and need no network.
Nothing is written except tiktoken's cache. Run it from the repository root:

    python examples/04_count_tokens.py
"""

from __future__ import annotations

import tiktoken

from finetune_qa import ModelInfo, TokenCounter, base_model_name
from finetune_qa.tokens import TOKENS_PER_EXAMPLE, TOKENS_PER_MESSAGE

# French text: the two encodings split it differently (English text often counts the same).
TEXT = "Lumen Pro coûte 5 € par mois, ou 48 € par an en facturation annuelle."
EXAMPLE = [
    {"role": "system", "content": "Tu réponds aux questions sur Lumen Notes."},
    {"role": "user", "content": "Combien coûte Lumen Pro ?"},
    {"role": "assistant", "content": f"{TEXT} **STOP**"},
]
FINE_TUNED = "ft:gpt-4.1-2025-04-14:lumen-labs:support:abc123"


def main() -> int:
    print(f"Text: {TEXT!r}")
    print()
    print(f"{'model':<50} {'encoding':<12} {'text':>4} {'example':>7}")
    for model in ("gpt-4o-mini", "gpt-4.1", "gpt-3.5-turbo", FINE_TUNED):
        counter = TokenCounter(model)
        print(
            f"{model:<50} {counter.encoding_name:<12} {counter.count(TEXT):>4} "
            f"{counter.count_messages(EXAMPLE):>7}"
        )

    print()
    print(f"{FINE_TUNED} is a fine-tune of {base_model_name(FINE_TUNED)}.")
    print(f"  finetune_qa counts it with {TokenCounter(FINE_TUNED).encoding_name}")
    print(f"  tiktoken alone would pick {tiktoken.encoding_name_for_model(FINE_TUNED)}")

    print()
    counter = TokenCounter("gpt-4o-mini")
    print("The example's count, message by message (OpenAI's chat formula):")
    total = TOKENS_PER_EXAMPLE
    print(f"  reply priming: {TOKENS_PER_EXAMPLE}")
    for message in EXAMPLE:
        n = counter.count_message(message)
        total += n
        print(
            f"  {message['role']:<9} {TOKENS_PER_MESSAGE} + role {counter.count(message['role'])} "
            f"+ content {counter.count(message['content'])} = {n}"
        )
    print(f"  total: {total} (count_messages says {counter.count_messages(EXAMPLE)})")
    print(f"  of which the assistant writes {counter.count_assistant(EXAMPLE)} tokens")

    print()
    # A model the catalogue does not know: describe it and pass it wherever a name goes.
    mine = ModelInfo(name="my-local-model", encoding="cl100k_base", max_tokens_per_example=8192)
    print(f"{mine.name} (described with ModelInfo): {TokenCounter(mine).count(TEXT)} tokens")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
