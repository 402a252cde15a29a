"""Every error finetune_qa raises, in one tree.

```
FineTuneQAError
├── UsageError (ValueError)            a mistake in how the library is called: fix the call
│   ├── UnknownModelError (KeyError)   a model name the catalogue does not know
│   └── UnknownEncodingError           an encoding tiktoken / the offline data does not have
├── ConfigError                        settings that cannot be resolved (missing key, bad env var)
├── InputError                         bad input data; carries ``path``, ``line`` and a ``hint``
│   ├── InputFileError                 cannot open or decode the file (missing, directory, encoding)
│   ├── CSVFormatError                 broken quoting, missing or duplicate columns
│   │   └── UnbalancedListsError       a seed-layout row whose lists differ in length (strict mode)
│   ├── JSONLFormatError               a line that is not a JSON object
│   └── RecordError                    a JSON object of the wrong shape for the reader
├── DatasetError                       the dataset as a whole cannot be built (nothing to write)
├── TokenizerError                     an encoding cannot be loaded, offline or online
├── ValidationFailed                   a training file has format errors (carries the report)
├── BackendError                       a call to a provider failed (status_code, request_id)
│   ├── APIConnectionError             no answer: network down, connection dropped
│   │   └── APITimeoutError            no answer in time
│   └── APIStatusError                 the provider answered with an error status
│       ├── BadRequestError            400 (``param`` names the field)
│       ├── AuthenticationError        401
│       ├── PermissionDeniedError      403
│       ├── NotFoundError              404
│       ├── ConflictError              409
│       ├── UnprocessableEntityError   422
│       ├── RateLimitError             429 (``retry_after`` when the provider said)
│       └── InternalServerError        5xx
└── JobError                           a fine-tuning job did not end as hoped (``job_id``)
    ├── JobFailed                      the provider failed the job (``code``, ``param``)
    ├── JobCancelled                   the job was cancelled
    └── JobTimeout                     waiting for the job took longer than allowed
```

``UnknownBackendError`` (a ``UsageError`` and ``KeyError``) is raised for a backend name
that is not registered. Exception text never contains an API key: provider messages are
passed through :func:`redact` first.

Programmer mistakes (``UsageError``) are kept apart from problems with data or the
environment, so a script can catch ``InputError`` to skip a bad file without hiding bugs.
Every message says what went wrong *and* what to do about it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BackendError",
    "BadRequestError",
    "CSVFormatError",
    "ConfigError",
    "ConflictError",
    "DatasetError",
    "FineTuneQAError",
    "InputError",
    "InputFileError",
    "InternalServerError",
    "JSONLFormatError",
    "JobCancelled",
    "JobError",
    "JobFailed",
    "JobTimeout",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RecordError",
    "TokenizerError",
    "UnbalancedListsError",
    "UnknownBackendError",
    "UnknownEncodingError",
    "UnknownModelError",
    "UnprocessableEntityError",
    "UsageError",
    "ValidationFailed",
    "redact",
]

_SECRET = re.compile(
    r"(?:sk|rk|pk)-[A-Za-z0-9_\-*]{8,}|(?i:bearer)\s+[A-Za-z0-9._\-]{8,}|(?i:api[_-]?key)[\"']?\s*[:=]\s*[\"']?[^\s\"',}]{8,}"
)


def redact(text: str) -> str:
    """``text`` with anything that looks like an API key replaced by ``[REDACTED]``."""
    return _SECRET.sub("[REDACTED]", text)


class FineTuneQAError(Exception):
    """Base class of every error raised by finetune_qa."""


class UsageError(FineTuneQAError, ValueError):
    """The library was called with arguments that cannot work; the message says which."""


class UnknownModelError(UsageError, KeyError):
    """A model name that the catalogue does not know.

    Attributes:
        model: the name that was asked for.
        suggestions: close matches from the catalogue.
    """

    def __init__(self, model: str, suggestions: list[str] | None = None) -> None:
        self.model = model
        self.suggestions = list(suggestions or [])
        hint = (
            f" Did you mean {', '.join(repr(s) for s in self.suggestions)}?" if suggestions else ""
        )
        super().__init__(
            f"unknown model {model!r}.{hint} Pass a model from `finetune-qa models`, or "
            "describe it with a ModelInfo(...) override (encoding, token limit, price)."
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class UnknownBackendError(UsageError, KeyError):
    """A backend name that is not registered.

    Attributes:
        name: the name asked for.
        available: the registered names.
    """

    def __init__(self, name: str, available: list[str]) -> None:
        self.name = name
        self.available = list(available)
        super().__init__(
            f"unknown backend {name!r}; registered: {', '.join(sorted(available))}. "
            "Use 'offline' to run without a key, or register yours with register_backend()."
        )

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownEncodingError(UsageError):
    """An encoding name that neither tiktoken nor the offline rank files provide."""


class ConfigError(FineTuneQAError):
    """A setting could not be resolved (argument, then environment variable, then default)."""


class InputError(FineTuneQAError):
    """Bad input data. Names the file and line, says what is wrong and what to do.

    Attributes:
        path: the file, when the data came from one.
        line: 1-based physical line number in that file, when known.
        problem: what is wrong, in a few words.
        hint: what to do about it.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.problem = problem
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path + (f":{self.line}" if self.line is not None else "") + ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        text = where + self.problem
        if self.hint:
            text += f" ({self.hint})"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_input_error, (type(self), self.problem, self.path, self.line, self.hint))


def _rebuild_input_error(
    cls: type[InputError], problem: str, path: str | None, line: int | None, hint: str | None
) -> InputError:
    return cls(problem, path=path, line=line, hint=hint)


class InputFileError(InputError):
    """The file cannot be opened or decoded: missing, a directory, unreadable, not UTF-8."""


class CSVFormatError(InputError):
    """The CSV cannot be parsed: broken quoting, missing or duplicate columns, a NUL byte."""


class UnbalancedListsError(CSVFormatError):
    """A seed-layout row whose question and answer lists have different lengths.

    Raised only when the reader is told to be strict; by default such rows are read
    item by item and the unmatched items are counted in the build report.
    """


class JSONLFormatError(InputError):
    """A JSONL line that is not valid JSON, or not a JSON object."""


class RecordError(InputError):
    """A JSON object that does not have the shape the reader expects (keys, types)."""


class DatasetError(FineTuneQAError):
    """The dataset as a whole cannot be built, e.g. every pair was filtered out.

    Attributes:
        report: the build report so far (a ``BuildReport``), when there is one.
    """

    def __init__(self, message: str, *, report: Any = None) -> None:
        self.report = report
        super().__init__(message)


class TokenizerError(FineTuneQAError):
    """An encoding could not be loaded (no network and no verified offline rank file)."""


class _Issue(Protocol):
    def render(self) -> str: ...


class _FormatReport(Protocol):
    """What :class:`ValidationFailed` reads of a report (a ``ValidationReport``).

    A protocol, so that this module imports nothing from the package.
    """

    @property
    def path(self) -> str | None: ...

    @property
    def error_count(self) -> int: ...

    @property
    def errors(self) -> Sequence[_Issue]: ...


class ValidationFailed(FineTuneQAError):
    """A training file has format errors; ``report`` holds every one with its line.

    Attributes:
        report: the full validation report (a :class:`~finetune_qa.ValidationReport`).
    """

    def __init__(self, report: _FormatReport) -> None:
        self.report = report
        n = report.error_count
        first = report.errors[0] if report.errors else None
        where = f" First: {first.render()}" if first is not None else ""
        super().__init__(
            f"{report.path or 'dataset'}: {n} format error{'s' if n != 1 else ''}.{where}. "
            "Fix the listed lines, or rebuild the file with `finetune-qa build`."
        )


class BackendError(FineTuneQAError):
    """A call to a provider failed. The message is redacted of anything key-like.

    Attributes:
        status_code: the HTTP status, when the provider answered.
        request_id: the provider's request id, when it sent one (quote it to support).
        code: the provider's error code, e.g. ``model_not_found``.
        param: the request field the provider objected to.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.request_id = request_id
        self.code = code
        self.param = param
        super().__init__(redact(message))


class APIConnectionError(BackendError):
    """No answer from the provider: the network is down or the connection dropped.

    The request may or may not have been carried out; finetune_qa's jobs reconcile with
    the provider before retrying anything that creates something.
    """


class APITimeoutError(APIConnectionError):
    """The provider did not answer in time."""


class APIStatusError(BackendError):
    """The provider answered with an error status."""


class BadRequestError(APIStatusError):
    """400: the request is invalid; ``param`` names the field."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing or wrong."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not do this (or the model is not yours)."""


class NotFoundError(APIStatusError):
    """404: no such file, job or model (yet: a new fine-tune can take minutes to appear)."""


class ConflictError(APIStatusError):
    """409: the resource is in a state that does not allow this."""


class UnprocessableEntityError(APIStatusError):
    """422: the request is well-formed but cannot be processed."""


class RateLimitError(APIStatusError):
    """429: too many requests, or quota exhausted.

    Attributes:
        retry_after: seconds the provider asked to wait, when it said.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class InternalServerError(APIStatusError):
    """5xx: the provider failed; retrying later usually works."""


class JobError(FineTuneQAError):
    """A fine-tuning job did not end as hoped.

    Attributes:
        job_id: the job.
    """

    def __init__(self, message: str, *, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(redact(message))


class JobFailed(JobError):
    """The provider failed the job.

    Attributes:
        code: the provider's error code, e.g. ``invalid_training_file``.
        param: the request field at fault, e.g. ``training_file``.
    """

    def __init__(
        self, message: str, *, job_id: str, code: str | None = None, param: str | None = None
    ) -> None:
        self.code = code
        self.param = param
        super().__init__(message, job_id=job_id)


class JobCancelled(JobError):
    """The job was cancelled before it finished."""


class JobTimeout(JobError):
    """Waiting for the job took longer than allowed; the job itself goes on.

    Attributes:
        waited: seconds waited.
        status: the job's last known status.
    """

    def __init__(self, message: str, *, job_id: str, waited: float, status: str) -> None:
        self.waited = waited
        self.status = status
        super().__init__(message, job_id=job_id)
