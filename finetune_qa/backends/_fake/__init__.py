"""A stateful, deterministic fake of the OpenAI REST API: the offline backend's server side.

:class:`FakeOpenAI` answers the endpoints a fine-tuned QA chatbot's life touches (files,
uploads, fine-tuning jobs with events and checkpoints, models, chat completions) with
objects shaped exactly like OpenAI's, so a *real* ``openai`` client, pointed at it
through :mod:`finetune_qa.backends._wire`, runs its production code path: multipart
encoding, cursor pagination, error mapping and retries.

It is framework-free: :meth:`FakeOpenAI.handle` takes a method, path, query, headers
and body, and returns a :class:`FakeResponse`. Nothing here imports an HTTP library.

Time is virtual. A :class:`VirtualClock` drives every status change and timestamp, and
nothing ever sleeps: a poller under test injects ``sleep=fake.clock.sleep``. On every
request the fake first brings every job up to date with the clock:

```
validating_files --(JobDurations.validating_files)--> queued --(queued)--> running
running --(seconds_per_step x steps, then finalizing)--> succeeded
validating_files --(bad training data)--> failed        any non-terminal --cancel--> cancelled
running --pause--> paused --resume--> queued --> running (from the paused step)
```

When a job leaves ``validating_files`` its files are checked with finetune_qa's own
:class:`~finetune_qa.validation.Validator`, as OpenAI checks them: a format error or
fewer than 10 examples fails the job with ``invalid_training_file`` (or
``invalid_validation_file``) and a message naming the line. Otherwise training is
planned with these choices (documented because OpenAI does not publish its own):

* ``n_epochs`` "auto": :func:`finetune_qa.validation.default_epochs` (OpenAI's heuristic);
* ``batch_size`` "auto": about 0.2% of the examples, ``max(1, min(256, round(n * 0.002)))``;
* ``learning_rate_multiplier`` "auto": 1.8; DPO ``beta`` "auto": 0.1;
* steps = ``ceil(n / batch_size) * n_epochs``; one metrics event every
  ``ceil(steps / 100)`` steps (and at the last step); one checkpoint per epoch, the last
  three kept; losses fall exponentially with deterministic noise seeded by the job;
* ``trained_tokens`` = the validator's billed tokens per epoch x epochs.

The fine-tuned model then answers like a fine-tune would (see
:mod:`._answers`): trained questions verbatim, rephrasings with the
nearest trained answer, anything else with a fluent off-domain answer.

Not simulated: ``n > 1``, tools/function calling in chat,
reinforcement fine-tuning, checkpoint permissions, batches, embeddings, and the
Responses API. Unknown routes answer 404 in OpenAI's error shape.

The package, along a request's way (each module imports only those above it):

| Module | What it does |
|---|---|
| `_clock.py` | `VirtualClock`, `JobDurations`: the fake's time |
| `_http.py` | `FakeResponse`, requests, multipart bodies, cursor pages, errors, injected faults |
| `_answers.py` | what a fine-tune answers: lookup over its training pairs |
| `_fake_eval.py`, `_fake_generate.py`, `_tasks.py` | base models doing the library's task prompts |
| `_records.py` | files, uploads, events, checkpoints, jobs, models: what the saved state holds |
| `_filecheck.py` | a job's files checked as OpenAI checks them |
| `_engine.py` | the job state machine: statuses, events, metrics, checkpoints |
| `_params.py` | a job request's method, hyperparameters, metadata and integrations |
| `_chat.py` | chat completions: options, stop strings, log probabilities, streaming |
| `_statefile.py` | the saved state as tagged JSON that cannot run code when read |
| `_router.py` | `FakeOpenAI`: the route table and the handlers of each resource |

:mod:`finetune_qa.backends._wire` (shared with the local backend's server) wires a fake
to real clients and to an HTTP server; :mod:`finetune_qa.testing` is the public face.
"""

from finetune_qa.backends._fake._clock import EPOCH_START, JobDurations, VirtualClock
from finetune_qa.backends._fake._http import FakeResponse, RecordedRequest
from finetune_qa.backends._fake._router import FakeOpenAI

__all__ = [
    "EPOCH_START",
    "FakeOpenAI",
    "FakeResponse",
    "JobDurations",
    "RecordedRequest",
    "VirtualClock",
]
