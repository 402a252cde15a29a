"""The offline API's saved state as JSON: a format that cannot run code when it is read.

The CLI keeps the offline API (files, jobs, models, clock) in one file between commands.
It used to be a pickle, and reading a pickle runs whatever it names: a file planted
where the state lives (a shared cache, a world-writable folder) ran its payload on the
next ``finetune-qa jobs``. This codec writes the same object graph as tagged JSON and
reads it back building only the classes named in :data:`_CLASSES` (set attribute by
attribute, or through the class's own ``__setstate__``) and the two feature functions
of the answerer; anything else is refused. Shared objects and cycles are kept with
references, as pickle does.

Tags (a JSON object whose single key starts with ``$``): ``$b`` bytes (base64), ``$t``
tuple, ``$m`` dict whose keys are not all plain strings (a list of pairs), ``$f`` a float
JSON cannot hold (``nan``, ``inf``), ``$d`` a date, ``$p`` a pydantic model of the
catalogue, ``$o`` an object (with ``id`` and its state ``s``), ``$r`` a reference to an
object already read, ``$fn`` an answerer feature function.

Classes are written by their bare name, never by module: moving a class between modules
(as the fake's move from ``backends/_fakeapi.py`` into ``backends/_fake/`` did) keeps old
states loading, and a state that names a class this version does not have is refused as
saved by another version, never guessed at.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import os
import stat
from typing import Any, TypeVar

import orjson

from finetune_qa._fs import atomic_write, open_regular
from finetune_qa.backends._fake import _answers, _clock, _engine, _records
from finetune_qa.backends._fake import _features as _text_features
from finetune_qa.catalog import ModelCatalog, ModelInfo
from finetune_qa.exceptions import InputFileError, UsageError

__all__ = ["FORMAT", "decode", "encode", "is_pickle", "read_state", "save_state"]

T = TypeVar("T")

FORMAT = "finetune_qa offline API state"


def _classes(root: type) -> dict[str, Any]:
    """Every class a state may hold, by the name written for it; ``root`` is the fake's."""
    return {
        root.__name__: root,
        "VirtualClock": _clock.VirtualClock,
        "JobDurations": _clock.JobDurations,
        "_Ids": _records._Ids,
        "_State": _records._State,
        "_JobEngine": _engine._JobEngine,
        "_File": _records._File,
        "_Upload": _records._Upload,
        "_Event": _records._Event,
        "_Checkpoint": _records._Checkpoint,
        "_Invalid": _records._Invalid,
        "_Plan": _records._Plan,
        "_Job": _records._Job,
        "_Model": _records._Model,
        "Answerer": _answers.Answerer,
        "_TfIdf": _text_features._TfIdf,
        "ModelCatalog": ModelCatalog,
    }


def _functions() -> dict[str, Any]:
    return {
        "_features": _text_features._features,
        "_word_features": _text_features._word_features,
    }


def _models() -> dict[str, Any]:
    return {"ModelInfo": ModelInfo}


def is_pickle(data: bytes) -> bool:
    """True when ``data`` looks like a pickle (protocol 2 and up start with ``0x80``)."""
    return data[:1] == b"\x80"


def encode(obj: object) -> bytes:
    """``obj`` (a FakeOpenAI, the root) as JSON bytes; UsageError on a type it cannot write."""
    classes = {cls: name for name, cls in _classes(type(obj)).items()}
    functions = {id(f): name for name, f in _functions().items()}
    models = {cls: name for name, cls in _models().items()}
    seen: dict[int, int] = {}

    def enc(x: Any) -> Any:
        if x is None or isinstance(x, (bool, int, str)):
            return x
        if isinstance(x, float):
            return x if math.isfinite(x) else {"$f": repr(x)}
        if isinstance(x, list):
            return [enc(v) for v in x]
        if isinstance(x, tuple):
            return {"$t": [enc(v) for v in x]}
        if isinstance(x, dict):
            if all(type(k) is str and not k.startswith("$") for k in x):
                return {k: enc(v) for k, v in x.items()}
            return {"$m": [[enc(k), enc(v)] for k, v in x.items()]}
        if isinstance(x, bytes):
            return {"$b": base64.b64encode(x).decode("ascii")}
        if isinstance(x, dt.date) and not isinstance(x, dt.datetime):
            return {"$d": x.isoformat()}
        if type(x) in models:
            return {"$p": models[type(x)], "v": x.model_dump(mode="json")}
        if id(x) in functions:
            return {"$fn": functions[id(x)]}
        name = classes.get(type(x))
        if name is None:
            raise UsageError(f"the offline API's state holds a {type(x).__name__}, not saved")
        if id(x) in seen:
            return {"$r": seen[id(x)]}
        seen[id(x)] = n = len(seen)
        state = x.__getstate__()
        return {"$o": name, "id": n, "s": {k: enc(v) for k, v in state.items()}}

    return orjson.dumps(enc(obj))


def decode(data: bytes, root: type) -> Any:
    """The object graph written by :func:`encode`.

    Raises:
        ValueError: the data is not such a graph (bad JSON, an unknown tag or class).
        UsageError: the state was saved by another version: it names a class this version
            does not have, or ``root`` refuses its version.
    """
    classes = _classes(root)
    functions = _functions()
    models = _models()
    made: dict[int, Any] = {}

    def dec(x: Any) -> Any:
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        if isinstance(x, list):
            return [dec(v) for v in x]
        if not isinstance(x, dict):
            raise ValueError(f"unexpected {type(x).__name__}")
        tags = [k for k in x if k.startswith("$")]
        if not tags:
            return {k: dec(v) for k, v in x.items()}
        tag = tags[0]
        if tag == "$t":
            return tuple(dec(v) for v in x["$t"])
        if tag == "$m":
            return {dec(k): dec(v) for k, v in x["$m"]}
        if tag == "$b":
            return base64.b64decode(x["$b"], validate=True)
        if tag == "$f":
            value = float(x["$f"])
            if not math.isnan(value) and math.isfinite(value):
                raise ValueError("a tagged float must be nan or inf")
            return value
        if tag == "$d":
            return dt.date.fromisoformat(x["$d"])
        if tag == "$p":
            return models[x["$p"]].model_validate(x["v"])
        if tag == "$fn":
            return functions[x["$fn"]]
        if tag == "$r":
            return made[int(x["$r"])]
        if tag == "$o":
            cls = classes.get(x["$o"])
            if cls is None:
                raise UsageError(
                    f"the offline API's state holds a {x['$o']!r}, which this finetune_qa "
                    "does not have: it was saved by another version"
                )
            obj = cls.__new__(cls)
            made[int(x["id"])] = obj  # before its state: a cycle refers back to it
            state = {str(k): dec(v) for k, v in x["s"].items()}
            if "__setstate__" in vars(cls):
                obj.__setstate__(state)
            else:
                for k, v in state.items():
                    object.__setattr__(obj, k, v)
            return obj
        raise ValueError(f"unknown tag {tag}")

    try:
        return dec(orjson.loads(data))
    except (KeyError, TypeError, IndexError, orjson.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not an offline API state ({type(exc).__name__})") from exc


def save_state(fake: object, path: str | os.PathLike[str]) -> None:
    """Write ``fake`` (a FakeOpenAI) to ``path`` as JSON, owner-only, atomically."""
    data = b'{"format":"' + FORMAT.encode() + b'","state":' + encode(fake) + b"}\n"
    atomic_write(
        path,
        data,
        mode=0o600,
        problem="cannot save the offline API's state",
        hint="point FINETUNE_QA_OFFLINE_STATE at a writable file",
    )


def read_state(path: str | os.PathLike[str], cls: type[T]) -> T:
    """The ``cls`` saved at ``path`` by :func:`save_state`.

    Only a regular file owned by this user and writable by no one else is read; a pickle
    is refused, never unpickled.

    Raises:
        InputFileError: the file is not a regular file, is another user's or writable by
            others, is a pickle, or does not hold a saved ``cls``.
        UsageError: the state was saved by another version of finetune_qa.
    """
    where = os.fspath(path)
    delete = f"delete {where} to start again with an empty offline API"
    with open_regular(path, kind="state file") as f:
        st = os.fstat(f.fileno())
        if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            raise InputFileError(
                f"is owned by another user (uid {st.st_uid}); it is not read",
                path=where,
                hint=delete + " (it may have been planted)",
            )
        if st.st_mode & 0o022:
            raise InputFileError(
                f"is writable by other users (mode {stat.S_IMODE(st.st_mode):o}); it is not read",
                path=where,
                hint=delete + " (it may have been tampered with)",
            )
        data = f.read()
    if is_pickle(data):
        raise InputFileError(
            "was saved by an older finetune_qa as a pickle, which is not read (reading "
            "one can run code)",
            path=where,
            hint=delete,
        )
    head = b'{"format":"' + FORMAT.encode() + b'","state":'
    if not data.startswith(head) or not data.rstrip().endswith(b"}"):
        raise InputFileError("does not hold a saved offline API", path=where, hint=delete)
    try:
        obj = decode(data[len(head) : data.rstrip().rindex(b"}")], cls)
    except ValueError as exc:
        if isinstance(exc, UsageError):
            raise
        raise InputFileError(
            f"the offline API's state is damaged ({exc})", path=where, hint=delete
        ) from exc
    if not isinstance(obj, cls):
        raise InputFileError("does not hold a saved offline API", path=where, hint=delete)
    return obj
