"""Validate any chat fine-tuning JSONL, count its tokens exactly and estimate what training costs.

:func:`validate_file` streams a file once and returns a :class:`ValidationReport` with

* every format error, each with its line: the checks of OpenAI's cookbook data-prep
  notebook (``data_type``, ``missing_messages_list``, ``message_missing_key``,
  ``message_unrecognized_key``, ``unrecognized_role``, ``missing_content``,
  ``example_missing_assistant_message``) and more (invalid JSON, unknown top-level keys,
  bad ``weight``, tool-call and tool shapes, fewer than 10 examples, ...);
* warnings: examples over the model's token limit, duplicate examples and questions,
  train/validation overlap, answers missing the stop marker the others carry, the
  model's fine-tuning or serving ending soon;
* exact distributions (min, max, mean, median, p10, p90) of messages, total tokens and
  assistant tokens per example;
* OpenAI's default-epoch heuristic, the billed tokens (each example capped at the
  model's limit, the limit named) and a dollar estimate;
* for a Together AI model (``provider="together"``, or a model whose catalogue provider
  is together), what Together would reject before upload: ``together_roles_not_alternating``,
  ``together_invalid_weight``, ``together_unsupported_key``, ``together_unsupported_role``,
  ``together_preference_input`` and ``together_preference_output`` (Together's preference
  format: ``input.messages``, ``preferred_output``, ``non_preferred_output``). Token counts
  for such models are tiktoken estimates (``tokens_exact`` is False): they use their own
  tokenizers.

Example:
    >>> from finetune_qa import validate_examples
    >>> ex = {"messages": [{"role": "user", "content": "Hi?"},
    ...                    {"role": "assistant", "content": "Hello. **STOP**"}]}
    >>> report = validate_examples([ex] * 12, model="gpt-4o-mini")
    >>> report.ok, report.examples, report.error_counts
    (True, 12, {})
"""

from finetune_qa.validation._parallel import validate_file
from finetune_qa.validation._providers import (
    ProviderRules,
    provider_rules,
    register_provider_rules,
)
from finetune_qa.validation._report import (
    CostEstimate,
    Distribution,
    Severity,
    ValidationIssue,
    ValidationReport,
)
from finetune_qa.validation._rules import (
    MAX_DEFAULT_EPOCHS,
    MAX_TARGET_EXAMPLES,
    MESSAGE_KEYS,
    MIN_DEFAULT_EPOCHS,
    MIN_TARGET_EXAMPLES,
    ROLES,
    TARGET_EPOCHS,
    TOP_LEVEL_KEYS,
    CheckedExample,
    check_example,
    check_tool_calls,
    default_epochs,
)
from finetune_qa.validation._validator import Validator, validate_examples

__all__ = [
    "MAX_DEFAULT_EPOCHS",
    "MAX_TARGET_EXAMPLES",
    "MESSAGE_KEYS",
    "MIN_DEFAULT_EPOCHS",
    "MIN_TARGET_EXAMPLES",
    "ROLES",
    "TARGET_EPOCHS",
    "TOP_LEVEL_KEYS",
    "CheckedExample",
    "CostEstimate",
    "Distribution",
    "ProviderRules",
    "Severity",
    "ValidationIssue",
    "ValidationReport",
    "Validator",
    "check_example",
    "check_tool_calls",
    "default_epochs",
    "provider_rules",
    "register_provider_rules",
    "validate_examples",
    "validate_file",
]
