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
└── ValidationFailed                   a training file has format errors (carries the report)
```

Programmer mistakes (``UsageError``) are kept apart from problems with data or the
environment, so a script can catch ``InputError`` to skip a bad file without hiding bugs.
Every message says what went wrong *and* what to do about it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from finetune_qa.validation import ValidationReport

__all__ = [
    "CSVFormatError",
    "ConfigError",
    "DatasetError",
    "FineTuneQAError",
    "InputError",
    "InputFileError",
    "JSONLFormatError",
    "RecordError",
    "TokenizerError",
    "UnbalancedListsError",
    "UnknownEncodingError",
    "UnknownModelError",
    "UsageError",
    "ValidationFailed",
]


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


class ValidationFailed(FineTuneQAError):
    """A training file has format errors; ``report`` holds every one with its line.

    Attributes:
        report: the full validation report.
    """

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        n = report.error_count
        first = report.errors[0] if report.errors else None
        where = f" First: {first.render()}" if first is not None else ""
        super().__init__(
            f"{report.path or 'dataset'}: {n} format error{'s' if n != 1 else ''}.{where} "
            "Fix the listed lines, or rebuild the file with `finetune-qa build`."
        )
