"""The local backend: fine-tune and serve open models on your own CPU or GPUs.

``backend="local"`` (or ``--backend local``) runs the same :class:`~finetune_qa.FineTuneJob`
/ :class:`~finetune_qa.ChatModel` / evaluation / guardrail code against a Hugging Face model
trained on this machine with the field's engines: TRL's ``SFTTrainer``, PEFT LoRA and
``accelerate`` (which drives DDP, FSDP and DeepSpeed across GPUs and machines). Install
with ``pip install 'finetune-qa[local]'``.

Modules (private): ``_settings`` (options and the automatic choice per device), ``_store``
(the run directory), ``_data`` (chat examples to ids and loss masks), ``_train`` (the
training process), ``_infer`` (answering in process), ``_tiny`` (a tiny real model for
tests and demos), ``_deps`` (the extra and its install hint).
"""

from finetune_qa.backends.local._backend import MAX_EPOCHS, LocalBackend, default_root
from finetune_qa.backends.local._deps import INSTALL_HINT
from finetune_qa.backends.local._settings import PROVIDER_OPTION_NAMES, LocalSettings
from finetune_qa.backends.local._tiny import CHATML_TEMPLATE, build_tiny_model

__all__ = [
    "CHATML_TEMPLATE",
    "INSTALL_HINT",
    "MAX_EPOCHS",
    "PROVIDER_OPTION_NAMES",
    "LocalBackend",
    "LocalSettings",
    "build_tiny_model",
    "default_root",
]
