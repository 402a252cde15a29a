"""TogetherBackend: the lifecycle on Together AI, over a client of the official ``together`` SDK.

The same dataset, validation, job code and :class:`~finetune_qa.chat.ChatModel` work on
Together AI by changing one argument (``backend="together"``). This package maps the
provider-neutral types of :mod:`finetune_qa.backends.base` onto Together's API:

* files go up through the SDK's own flow (a signed upload URL, a ``PUT`` of the bytes,
  then ``/files/{id}/preprocess``);
* ``JobRequest`` fields map onto ``/fine-tunes``: ``n_epochs`` (``"auto"``: Together's
  default of 1 epoch), ``batch_size`` (``"auto"``: ``"max"``), ``suffix``, ``seed``
  (``random_seed``), ``method="dpo"`` (``training_method`` dpo, ``beta`` as ``dpo_beta``),
  a wandb integration (the W&B key comes only from ``wandb_api_key=`` or ``WANDB_API_KEY``,
  never from the request, so it is never journalled); everything else Together offers
  (LoRA, learning rate, checkpoints, warm-up, ...) goes in ``provider_options``;
* ``learning_rate_multiplier`` is refused: Together takes an absolute learning rate, and a
  multiplier of an unknown base rate cannot be translated honestly. Pass
  ``provider_options={"learning_rate": 1e-5}`` instead (Together's default is 1e-5);
* statuses map onto OpenAI's names (``pending``/``queued`` -> queued; ``running``,
  ``compressing``, ``uploading`` -> running; ``completed`` -> succeeded; ``error`` and
  ``user_error`` -> failed; ``cancelled`` -> cancelled), the original kept in
  ``JobInfo.provider_status``. ``cancel_requested`` stays ``running`` (the job may still
  train, and bill) until Together reports ``cancelled``;
* Together's exceptions become :mod:`finetune_qa.exceptions` classes, with the status,
  request id, message and ``retry-after`` kept and anything key-like redacted.

Together jobs carry no metadata (``supports_metadata = False``), so
:class:`~finetune_qa.jobs.FineTuneJob` finds a job after a dropped connection by its
model, files, suffix and the hyperparameters Together echoes back
(:meth:`TogetherBackend.matches_request`) instead of by a token.

Requests that create something (file uploads, jobs) go through the client with the SDK's
own retries off: a resent ``POST /fine-tunes`` after a dropped connection would start a
second, billed job. :class:`~finetune_qa.jobs.FineTuneJob` retries them itself, after
looking for what the lost request may have created.

Modules (private): ``_backend`` (:class:`TogetherBackend`), ``_options`` (option names,
the values any model allows, the checks every request passes), ``_limits`` (model limits,
example lengths, price estimates), ``_convert`` (SDK objects as finetune_qa's types),
``_errors`` (Together's exceptions as finetune_qa's), ``_deps`` (the SDK and its install
hint).
"""

from finetune_qa.backends.together._backend import TogetherBackend
from finetune_qa.backends.together._deps import INSTALL_HINT
from finetune_qa.backends.together._errors import map_together_errors
from finetune_qa.backends.together._limits import ModelLimits, PriceEstimate
from finetune_qa.backends.together._options import (
    DEFAULT_VALIDATION_EVALS,
    MAX_SUFFIX,
    PROVIDER_OPTION_NAMES,
)

__all__ = [
    "DEFAULT_VALIDATION_EVALS",
    "INSTALL_HINT",
    "MAX_SUFFIX",
    "PROVIDER_OPTION_NAMES",
    "ModelLimits",
    "PriceEstimate",
    "TogetherBackend",
    "map_together_errors",
]
