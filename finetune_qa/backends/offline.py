"""OfflineBackend: the whole lifecycle with no key and no network.

It is :class:`~finetune_qa.backends.openai.OpenAIBackend` itself, over a real ``openai``
client whose transport is a stateful, deterministic fake of the OpenAI API
(:class:`~finetune_qa.testing.FakeOpenAI`): files and uploads, fine-tuning
jobs that validate their files and move through the real statuses on a virtual clock,
events, metrics, results files, checkpoints, models and chat completions. Code that
works here takes the same path through the openai SDK as it does against OpenAI.

Each new offline API draws its own seed, so two of them never hand out the same ids;
``OfflineBackend(seed=...)`` gives the same ids, losses and answers on every run.

The offline API's state (files, jobs, models, clock) can be kept between processes, per
project: :func:`state_path` names the file (``.finetune-qa/offline-api.json`` in the
project folder, or ``$FINETUNE_QA_OFFLINE_STATE``), :func:`load_state` reads it and
:func:`save_state` writes it.

Example:
    >>> from finetune_qa.backends import OfflineBackend
    >>> backend = OfflineBackend()
    >>> backend.list_jobs()
    []
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from finetune_qa.backends._fake import FakeOpenAI
from finetune_qa.backends._fake._wordvectors import ENVIRONMENT_VARIABLE as WORDS_ENV
from finetune_qa.backends._fake._wordvectors import words_from_environment
from finetune_qa.backends._wire import openai_client
from finetune_qa.backends.openai import OpenAIBackend
from finetune_qa.exceptions import InputFileError, UsageError

if TYPE_CHECKING:
    import openai

__all__ = [
    "STATE_DIR",
    "STATE_ENV",
    "STATE_FILE",
    "WORDS_ENV",
    "OfflineBackend",
    "load_state",
    "save_state",
    "state_path",
    "words_from_environment",
]

STATE_DIR = ".finetune-qa"
"""The folder, in a project, where the offline API keeps its state."""

STATE_FILE = "offline-api.json"
"""The offline API's state file in :data:`STATE_DIR`."""

STATE_ENV = "FINETUNE_QA_OFFLINE_STATE"
"""The environment variable naming a state file to use instead."""

_GITIGNORE = "# the offline API's state, written by finetune-qa: not for version control\n*\n"


class OfflineBackend(OpenAIBackend):
    """An :class:`OpenAIBackend` wired to an in-process fake of the OpenAI API.

    Args:
        fake: the fake to serve (to share state, inject faults or move its clock);
            a new one when omitted.
        seed: seed of a new fake (ids, losses, answer phrasing); without one each new
            fake draws its own, so two backends never hand out the same ids.
        max_retries: retries of the openai clients (the SDK's own backoff, as online) for
            requests that create nothing; uploads and job creation are sent once and
            retried by :class:`~finetune_qa.jobs.FineTuneJob`, as with any ``OpenAIBackend``.
        word_knowledge: models fine-tuned from now on know what words mean, as a
            fine-tuned pretrained model does ("guarantee" finds the fact about the warranty);
            needs ``pip install 'finetune-qa[offline-words]'``. ``None`` keeps the given
            fake's setting, or for a new fake reads ``$FINETUNE_QA_OFFLINE_WORDS``.

    Attributes:
        fake: the fake API; ``fake.inject(...)`` injects faults, ``fake.clock`` is the
            virtual clock that :meth:`sleep` advances.
    """

    name = "offline"

    def __init__(
        self,
        fake: FakeOpenAI | None = None,
        *,
        seed: int | None = None,
        max_retries: int = 2,
        word_knowledge: bool | None = None,
    ) -> None:
        self.fake = fake or FakeOpenAI(seed=seed, word_knowledge=word_knowledge)
        if fake is not None and word_knowledge is not None:
            fake.word_knowledge = word_knowledge
        super().__init__(openai_client(self.fake, max_retries=max_retries))

        def make_async() -> openai.AsyncOpenAI:
            return openai_client(self.fake, async_=True, max_retries=max_retries)

        self._async_factory = make_async

    @property
    def endpoint(self) -> str:
        """The fake API this backend serves (its instance id): journals keep fakes apart."""
        return f"offline:{getattr(self.fake, 'instance_id', f'{id(self.fake):x}')}"

    def monotonic(self) -> float:
        """The virtual clock's time, for timeouts measured in the same time as :meth:`sleep`."""
        return self.fake.clock.now()

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of virtual time: jobs progress, nothing actually sleeps."""
        self.fake.clock.sleep(seconds)

    def __repr__(self) -> str:
        return (
            f"OfflineBackend(seed={self.fake.seed!r})"
            if hasattr(self.fake, "seed")
            else "OfflineBackend()"
        )


def state_path(project: str | os.PathLike[str] | None = None) -> Path:
    """Where the offline API's state of ``project`` is kept between processes.

    ``$FINETUNE_QA_OFFLINE_STATE`` wins when it is set; otherwise the state lives in the
    project, in ``.finetune-qa/offline-api.json``, so jobs of different projects never mix.

    Args:
        project: the project's folder (default: the current working directory).
    """
    explicit = os.environ.get("FINETUNE_QA_OFFLINE_STATE")
    if explicit:
        return Path(explicit)
    root = Path.cwd() if project is None else Path(project)
    return root / STATE_DIR / STATE_FILE


def load_state(path: str | os.PathLike[str]) -> FakeOpenAI:
    """The offline API saved at ``path``, or a new one (with its own seed) if there is none.

    Raises:
        InputFileError: the file cannot be read as a saved offline API: not a regular
            file, another user's, a pickle, damaged, or saved by another version of
            finetune_qa. The hint names the file to delete to start again.
    """
    where = Path(path)
    if not where.exists() and not where.is_symlink():
        return FakeOpenAI()
    hint = (
        f"delete {where} to start again with an empty offline API (its files and jobs are "
        f"lost), or point {STATE_ENV} at another file"
    )
    try:
        return FakeOpenAI.load(where)
    except InputFileError:
        raise
    except UsageError as exc:  # saved by another version
        raise InputFileError(str(exc), path=where, hint=hint) from exc


def save_state(fake: FakeOpenAI, path: str | os.PathLike[str]) -> None:
    """Write ``fake`` to ``path`` (owner-only, atomically), creating its folder.

    A :data:`STATE_DIR` folder gets a ``.gitignore`` that ignores everything in it, so the
    state (which holds the uploaded training data) is not committed with the project.

    Raises:
        InputFileError: the file or its folder cannot be written.
    """
    where = Path(path)
    if where.parent.name == STATE_DIR:
        ignore = where.parent / ".gitignore"
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
            if not ignore.exists():
                ignore.write_text(_GITIGNORE, encoding="utf-8")
        except OSError as exc:
            raise InputFileError(
                f"cannot create the offline API's folder ({exc.strerror or exc})",
                path=where.parent,
                hint=f"point {STATE_ENV} at a writable file",
            ) from exc
    fake.save(where)
