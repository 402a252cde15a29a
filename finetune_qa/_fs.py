"""File plumbing shared by the modules that read inputs and write outputs.

* :func:`open_regular` opens an input for reading and refuses anything that is not a
  regular file: a FIFO or ``<(process substitution)`` could be read only once (a
  two-pass reader would see it empty the second time) and opening a FIFO with no
  writer blocks forever, so the open is non-blocking and the type is checked on the
  open descriptor (no race between a check and the open).
* :class:`AtomicFile` and :func:`atomic_write` write an output through a temporary file
  beside it (:func:`tempfile.mkstemp`), flushed to disk, given its mode, then moved into
  place with :func:`os.replace`: readers see the old file or the whole new one, and on
  any error the temporary file is removed and the old file is untouched.
* :func:`file_lock` holds an exclusive advisory lock (``flock``) on a file, for
  read-modify-write updates that other processes make too (the journal itself; the
  folder of the CLI's offline state, a file that is replaced, not appended to).
* :func:`same_file` tells whether two paths name one file (same path after resolving
  symlinks and ``..``, or a hard link).
* :func:`check_outputs` is the one output rule every command applies before it writes
  anything: an output is a regular file or a new path (never a device, FIFO, socket or
  directory, links followed), never one of the command's inputs, never another of its
  outputs, and its folder (or the nearest existing one above it) can be written.
  :class:`AtomicFile` enforces the type part again itself, writes through a symlink to
  its target, keeps an existing file's permissions from widening, and removes the
  folders it created when the write fails.

OS errors become :class:`~finetune_qa.exceptions.InputFileError` naming the path and
what to do.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, TextIO, cast, overload

from finetune_qa.exceptions import InputFileError, UsageError

__all__ = [
    "MAX_LINE_BYTES",
    "AtomicFile",
    "atomic_write",
    "capped_line",
    "capped_lines",
    "check_outputs",
    "file_lock",
    "long_line",
    "numbered_lines",
    "open_regular",
    "plan_line_ranges",
    "read_range",
    "same_file",
    "shrunk",
    "umask",
]

StrPath = str | os.PathLike[str]


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# read once, at import: os.umask() can only be read by setting it, and setting it is
# process-wide and not thread-safe (another thread creating a file in between would get
# mode 0o777 & ~0)
_UMASK = _read_umask()


def umask() -> int:
    """The process umask, as read when finetune_qa was imported.

    Example:
        >>> umask() & ~0o777
        0
    """
    return _UMASK


def _nonblocking(path: str, flags: int) -> int:
    """``open()`` opener that does not wait for a FIFO's writer."""
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def open_regular(
    path: StrPath,
    *,
    kind: str = "file",
    directory_hint: str = "pass the file itself",
    pipe_hint: str = "save the data to a file and pass that",
    missing_hint: str = "check the path",
) -> IO[bytes]:
    """Open ``path`` for reading in binary mode; refuse what is not a regular file.

    Args:
        path: the file to open.
        kind: what the file should be, for the message about a directory
            (``"is a directory, not a <kind>"``).
        directory_hint: what to do when ``path`` is a directory.
        pipe_hint: what to do when ``path`` is a pipe, socket or device.
        missing_hint: what to do when ``path`` does not exist.

    Returns:
        The open file (blocking reads, like a plain ``open(path, "rb")``).

    Raises:
        InputFileError: missing, a directory, not a regular file, or unreadable.

    Example:
        >>> import os, tempfile
        >>> d = tempfile.mkdtemp()
        >>> os.mkfifo(os.path.join(d, "pipe"))
        >>> try:
        ...     open_regular(os.path.join(d, "pipe"))  # returns at once: no writer awaited
        ... except InputFileError as exc:
        ...     print(exc.problem)
        is not a regular file (a pipe, socket or device)
    """
    where = os.fspath(path)
    try:
        f = open(path, "rb", opener=_nonblocking)  # noqa: SIM115 - returned, or closed
    except IsADirectoryError as exc:
        raise InputFileError(
            f"is a directory, not a {kind}", path=where, hint=directory_hint
        ) from exc
    except FileNotFoundError as exc:
        raise InputFileError("no such file", path=where, hint=missing_hint) from exc
    except PermissionError as exc:
        raise InputFileError(
            "cannot be read: permission denied", path=where, hint="check the file's permissions"
        ) from exc
    except OSError as exc:
        raise InputFileError(
            f"cannot be opened: {exc.strerror or exc}", path=where, hint="check the path"
        ) from exc
    try:
        mode = os.fstat(f.fileno()).st_mode
        if stat.S_ISDIR(mode):  # where the platform lets a directory be opened
            raise InputFileError(f"is a directory, not a {kind}", path=where, hint=directory_hint)
        if not stat.S_ISREG(mode):
            raise InputFileError(
                "is not a regular file (a pipe, socket or device)", path=where, hint=pipe_hint
            )
        os.set_blocking(f.fileno(), True)
    except BaseException:
        f.close()
        raise
    return f


MAX_LINE_BYTES = 16 * 1024 * 1024
"""Longest line a reader takes in (a JSONL example; a CSV physical line may be 4 times
that, so that a cell over the CSV field limit gets the field-limit error): 16 MiB.

Checked before a line is parsed, so a file with no line breaks (a sparse file, a one-line
JSON array) fails at once in constant memory instead of being read whole first."""


def long_line(path: object, line: int, limit: int, head: bytes = b"") -> InputFileError:
    """The error for a line longer than ``limit`` bytes (``head``: its first bytes)."""
    hint = "each line must hold one record; a file with no line breaks is not one of these"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
        hint = (
            "the file looks like one JSON array; convert it to JSON Lines with "
            "`jq -c '.[]' in.json > out.jsonl`"
        )
    return InputFileError(
        f"the line is longer than {limit // (1024 * 1024)} MiB",
        path=str(path) if path is not None else None,
        line=line,
        hint=hint,
    )


def capped_line(f: IO[bytes], path: object, line: int, limit: int = MAX_LINE_BYTES) -> bytes:
    """The next line of ``f`` (``b""`` at the end); a longer one raises :func:`long_line`."""
    raw = f.readline(limit + 1)
    if len(raw) > limit:
        raise long_line(path, line, limit, raw[:64])
    return raw


def capped_lines(
    f: IO[bytes], path: object, *, first_line: int = 1, limit: int = MAX_LINE_BYTES
) -> Iterator[bytes]:
    """The lines of ``f`` from its position, each checked against ``limit`` before use."""
    readline = f.readline
    n = first_line
    while True:
        raw = readline(limit + 1)
        if not raw:
            return
        if len(raw) > limit:
            raise long_line(path, n, limit, raw[:64])
        yield raw
        n += 1


def numbered_lines(
    path: StrPath,
    *,
    kind: str = "file",
    directory_hint: str = "pass the file itself",
    pipe_hint: str = "save the data to a file and pass that",
    skip_blank: bool = False,
    limit: int | None = MAX_LINE_BYTES,
) -> Iterator[tuple[int, bytes]]:
    r"""The lines of an input file with their 1-based numbers, opened by :func:`open_regular`.

    Args:
        path: the file to read.
        kind: what the file should be (for the message about a directory).
        directory_hint: what to do when ``path`` is a directory.
        pipe_hint: what to do when ``path`` is a pipe, socket or device.
        skip_blank: leave out lines that hold only white space (their numbers are skipped).
        limit: the longest line taken in (:func:`long_line` beyond it); None for no limit.

    Raises:
        InputFileError: as :func:`open_regular`, or a line over ``limit``.

    Example:
        >>> import pathlib, tempfile
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.jsonl"
        >>> _ = p.write_bytes(b"{}\n\n{}\n")
        >>> list(numbered_lines(p, skip_blank=True))
        [(1, b'{}\n'), (3, b'{}\n')]
    """
    with open_regular(path, kind=kind, directory_hint=directory_hint, pipe_hint=pipe_hint) as f:
        lines: Iterable[bytes] = f if limit is None else capped_lines(f, path, limit=limit)
        for n, raw in enumerate(lines, 1):
            if not skip_blank or raw.strip():
                yield n, raw


def plan_line_ranges(
    f: IO[bytes],
    path: object,
    target: int,
    *,
    start: int = 0,
    first_line: int = 1,
    quoted: bool = False,
    limit: int = MAX_LINE_BYTES,
) -> Iterator[tuple[int, int, int]]:
    """``(start, end, first_line)`` byte ranges of ``f`` of about ``target`` bytes each.

    For workers that read one range each. Ranges start at ``start`` (line ``first_line``)
    and each ends on a line break; with ``quoted`` only on one outside double quotes (an
    even number of quote characters since ``start``: a CSV record boundary for any file the
    strict CSV parser accepts). Yielded lazily, so work on the first ranges can begin while
    the rest of the file is scanned. A file that gets shorter meanwhile raises
    :func:`shrunk`; a line over ``limit`` raises :func:`long_line`.
    """
    size = os.fstat(f.fileno()).st_size
    pos, line = start, first_line
    f.seek(pos)
    while pos < size:
        block = f.read(target)
        if not block:  # truncated since it was opened: end, do not plan empty ranges
            raise shrunk(path)
        end = pos + len(block)
        lines = block.count(b"\n")
        odd = block.count(b'"') & 1 if quoted else 0
        if end < size and (odd or not block.endswith(b"\n")):
            for rest in capped_lines(f, path, first_line=line + lines, limit=limit):
                end += len(rest)
                lines += 1
                if quoted:
                    odd ^= rest.count(b'"') & 1
                if not odd:
                    break
        yield pos, end, line
        line += lines
        pos = end
        f.seek(pos)


def read_range(f: IO[bytes], start: int, end: int, path: object) -> Iterator[bytes]:
    """The lines of ``f`` from byte ``start`` to byte ``end`` (a range of :func:`plan_line_ranges`).

    A range is a few MiB: reading it at once and splitting in C is faster than a generator
    over the file's lines. A range that reads short raises :func:`shrunk`.
    """
    f.seek(start)
    data = f.read(end - start)
    if len(data) != end - start:
        raise shrunk(path)
    # BytesIO splits on b"\n" only, as iterating the file does (splitlines would also split
    # on a lone b"\r" and shift line numbers)
    return iter(io.BytesIO(data))


@contextlib.contextmanager
def file_lock(
    path: StrPath, *, on_wait: Callable[[], None] | None = None, directory: bool = False
) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created owner-only) while the block runs.

    The lock is advisory (``fcntl.flock``): it orders the processes that take it, and it
    is released when the holder ends, even if it is killed. Where ``fcntl`` does not
    exist (Windows) nothing is locked.

    Args:
        path: the file to lock (its folder is created), or with ``directory`` a folder
            (created): a folder stays while files in it are replaced, and locking it
            leaves nothing behind.
        on_wait: called once when another process holds the lock (to tell the user).
        directory: ``path`` is a folder.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    lock = Path(path)
    try:
        if directory:
            lock.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        else:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        raise InputFileError(
            f"cannot be locked ({exc.strerror or exc})",
            path=lock,
            hint="check the folder's permissions, or remove what is in the way",
        ) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def shrunk(path: object) -> InputFileError:
    """The error for an input that got shorter while it was read (it was truncated).

    Readers that plan byte ranges from the size at open re-check it: a range that reads
    short means the file changed under them, and the result would be silently partial.
    """
    return InputFileError(
        "changed while it was read: it is shorter now",
        path=str(path) if path is not None else None,
        hint="run again once the file is complete; do not truncate or rewrite it meanwhile",
    )


def same_file(a: StrPath, b: StrPath) -> bool:
    """True when ``a`` and ``b`` are one file: the same path resolved, or a hard link.

    Paths that cannot be checked (a missing parent, no permission) count as different:
    the error that matters is reported when the file is opened.

    Example:
        >>> import os, tempfile
        >>> d = tempfile.mkdtemp()
        >>> a = os.path.join(d, "a.txt")
        >>> open(a, "w").close()
        >>> os.link(a, os.path.join(d, "b.txt"))
        >>> same_file(a, os.path.join(d, "b.txt")), same_file(a, os.path.join(d, "c.txt"))
        (True, False)
    """
    try:
        pa, pb = Path(a), Path(b)
        if pa.resolve() == pb.resolve():
            return True
        return pa.exists() and pb.exists() and os.path.samefile(pa, pb)
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop on older Pythons
        return False


_NOT_REGULAR = "is not a regular file (a device, pipe or socket): writing would replace it"
_NOT_REGULAR_HINT = "write to a regular file or a new path"


def _existing_target(
    path: Path, directory_hint: str = "pass a file path to write"
) -> os.stat_result | None:
    """``path``'s status (links followed) when it exists; refuse what is not a regular file."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None  # a missing folder on the way is reported by whoever creates it
    except OSError as exc:
        raise InputFileError(
            f"cannot be checked ({exc.strerror or exc})", path=path, hint="check the path"
        ) from exc
    if stat.S_ISDIR(st.st_mode):
        raise InputFileError("is a directory", path=path, hint=directory_hint)
    if not stat.S_ISREG(st.st_mode):
        raise InputFileError(_NOT_REGULAR, path=path, hint=_NOT_REGULAR_HINT)
    return st


def _probe_folder(path: Path, label: str) -> None:
    """Refuse when the folder ``path`` would be written in (or created under) is not writable."""
    folder = Path(os.path.realpath(path)).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputFileError(
            f"cannot write here: {folder} is not a folder",
            path=path,
            hint=f"pick another path for {label}",
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".finetune-qa-probe.", dir=folder)
    except OSError as exc:
        raise InputFileError(
            f"cannot write here ({exc.strerror or exc})",
            path=path,
            hint=f"choose a writable folder for {label}",
        ) from exc
    os.close(fd)
    with contextlib.suppress(OSError):
        os.remove(probe)


def check_outputs(
    outputs: Mapping[str, StrPath | None], inputs: Iterable[StrPath | None] = ()
) -> None:
    """The one output rule: check every output of a command before any is written.

    Each output must be a regular file or a new path (links are followed: a link to a
    device or a FIFO is refused), must not be one of ``inputs`` (same path, link or hard
    link), must not be another output, and must be writable (a temporary file is made
    and removed in its folder, or in the nearest existing folder above it).

    Args:
        outputs: the option or argument that names each output (``"--html"``) -> path;
            ``None`` paths are skipped.
        inputs: the files the command reads.

    Raises:
        InputFileError: an output is a directory, a device, FIFO or socket, or cannot be
            written.
        UsageError: an output is an input, or two outputs are one file.

    Example:
        >>> import os, tempfile
        >>> d = tempfile.mkdtemp()
        >>> src = os.path.join(d, "in.csv")
        >>> open(src, "w").close()
        >>> try:
        ...     check_outputs({"--html": src}, [src])
        ... except UsageError as exc:
        ...     print(str(exc).split(";")[0].replace(d, "D"))
        --html D/in.csv is also an input of this command
    """
    named = [(label, Path(p)) for label, p in outputs.items() if p is not None]
    sources = [Path(p) for p in inputs if p is not None]
    for i, (label, path) in enumerate(named):
        _existing_target(path)
        for src in sources:
            if same_file(path, src):
                raise UsageError(
                    f"{label} {path} is also an input of this command; writing there would "
                    "destroy it: choose another path"
                )
        for other_label, other in named[:i]:
            if same_file(path, other):
                raise UsageError(
                    f"{other_label} and {label} name one file ({path}); the second would "
                    "replace the first: choose two paths"
                )
        _probe_folder(path, label)


class AtomicFile:
    """A file written in place of ``path`` only when the ``with`` block ends without error.

    The data goes to a temporary file beside ``path`` (so the final rename stays on one
    file system); on success it is flushed to disk, given ``mode`` (less the umask) and
    renamed over ``path``. On an error the temporary file is removed, so are the folders
    it created, and ``path`` is left as it was. :meth:`write` errors and the final steps
    raise :class:`~finetune_qa.exceptions.InputFileError`.

    Only a regular file or a new path is replaced: a device, FIFO, socket or directory at
    ``path`` (links followed) is refused, before and again just before the rename. A
    symlink is written through (its target is replaced, the link stays). An existing
    file's permissions never widen: the result gets ``mode`` narrowed by the old mode.

    Args:
        path: the file to write.
        mode: permission bits of the result, narrowed by the umask (``0o600``: owner only).
        problem: the message's first words when writing fails.
        hint: what to do when writing fails.
        directory_hint: what to do when ``path`` is a directory.
        buffering: the temporary file's buffer size.

    Example:
        >>> import pathlib, tempfile
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "out" / "a.txt"
        >>> with AtomicFile(p) as f:
        ...     f.write(b"hello")
        >>> p.read_text(), [q.name for q in p.parent.iterdir()]
        ('hello', ['a.txt'])
    """

    def __init__(
        self,
        path: StrPath,
        *,
        mode: int = 0o644,
        problem: str = "cannot write here",
        hint: str = "choose a writable directory",
        directory_hint: str = "pass a file path to write",
        buffering: int = 1 << 20,
    ) -> None:
        self.path = Path(path)
        self.mode = mode
        self.problem = problem
        self.hint = hint
        self.directory_hint = directory_hint
        self._buffering = buffering
        self._file: IO[bytes] | None = None
        self._tmp: str | None = None
        self._target = self.path
        self._made: list[Path] = []
        self._final_mode = mode & ~_UMASK

    @property
    def file(self) -> IO[bytes]:
        """The open temporary file (for writers that need a file object, e.g. pyarrow)."""
        if self._file is None:
            raise RuntimeError("AtomicFile.file is only open inside the with block")
        return self._file

    def error(self, exc: OSError) -> InputFileError:
        """The error to raise for ``exc``: the path, what failed, and what to do."""
        return InputFileError(
            f"{self.problem} ({exc.strerror or exc})", path=self.path, hint=self.hint
        )

    def __enter__(self) -> AtomicFile:
        self._target = Path(os.path.realpath(self.path))
        old = _existing_target(self.path, self.directory_hint)
        self._final_mode = self.mode & ~_UMASK
        if old is not None:
            self._final_mode &= stat.S_IMODE(old.st_mode)
        try:
            self._make_parents(self._target.parent)
            fd, self._tmp = tempfile.mkstemp(
                prefix=f".{self._target.name}.", suffix=".tmp", dir=self._target.parent
            )
        except OSError as exc:
            self._remove_made()
            raise self.error(exc) from exc
        self._file = os.fdopen(fd, "wb", buffering=self._buffering)
        return self

    def _make_parents(self, folder: Path) -> None:
        missing: list[Path] = []
        while not folder.exists() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        for d in reversed(missing):
            d.mkdir(exist_ok=True)
            self._made.append(d)

    def _remove_made(self) -> None:
        made, self._made = self._made, []
        for d in reversed(made):
            with contextlib.suppress(OSError):
                d.rmdir()  # only when empty: another writer may have used it meanwhile

    def write(self, data: bytes) -> None:
        """Write ``data`` to the temporary file."""
        try:
            self.file.write(data)
        except OSError as exc:
            raise self.error(exc) from exc

    def discard(self) -> None:
        """Give up the write: remove what was written; ``path`` is left as it was.

        The ``with`` block then ends without replacing anything.
        """
        self.__exit__(UsageError, None, None)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        f, tmp = self._file, self._tmp
        self._file = self._tmp = None
        if f is None or tmp is None:
            return
        done = False
        try:
            if exc_type is None:
                try:
                    f.flush()
                    os.fsync(f.fileno())
                    f.close()
                    os.chmod(tmp, self._final_mode)
                    _existing_target(self._target)  # the place may have changed meanwhile
                    os.replace(tmp, self._target)
                    done = True
                    return
                except OSError as err:
                    raise self.error(err) from err
        finally:
            if not f.closed:
                with contextlib.suppress(OSError):
                    f.close()
            if not done:
                with contextlib.suppress(OSError):
                    os.remove(tmp)
                self._remove_made()
            self._made = []


@overload
def atomic_write(
    path: StrPath,
    data: bytes | str | Callable[[IO[bytes]], None],
    *,
    text: Literal[False] = False,
    mode: int = 0o644,
    problem: str = "cannot write here",
    hint: str = "choose a writable directory",
    directory_hint: str = "pass a file path to write",
) -> Path: ...


@overload
def atomic_write(
    path: StrPath,
    data: Callable[[TextIO], None],
    *,
    text: Literal[True],
    mode: int = 0o644,
    problem: str = "cannot write here",
    hint: str = "choose a writable directory",
    directory_hint: str = "pass a file path to write",
) -> Path: ...


def atomic_write(
    path: StrPath,
    data: bytes | str | Callable[[IO[bytes]], None] | Callable[[TextIO], None],
    *,
    text: bool = False,
    mode: int = 0o644,
    problem: str = "cannot write here",
    hint: str = "choose a writable directory",
    directory_hint: str = "pass a file path to write",
) -> Path:
    r"""Write ``data`` to ``path`` atomically (see :class:`AtomicFile`); parents are created.

    The one writer of whole output files: every module writes through it (or through
    :class:`AtomicFile` when it streams to several files at once).

    Args:
        path: the file to write.
        data: bytes, text (written as UTF-8), or a callback that writes to the open
            binary file it is given (for streaming or for writers such as pyarrow's).
        text: the callback is given a UTF-8 text file instead (no newline translation,
            as ``csv.writer`` wants).
        mode: permission bits of the result, narrowed by the umask (``0o600``: owner only).
        problem: the message's first words when writing fails.
        hint: what to do when writing fails.
        directory_hint: what to do when ``path`` is a directory.

    Returns:
        ``path``, as a :class:`~pathlib.Path`.

    Raises:
        InputFileError: the file cannot be written; an ``OSError`` from the callback is
            mapped too. Nothing is left behind and an earlier file is untouched.

    Example:
        >>> import pathlib, tempfile
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "report.json"
        >>> atomic_write(p, "{}", mode=0o600) == p
        True
        >>> p.read_text(), oct(p.stat().st_mode & 0o777)
        ('{}', '0o600')
        >>> _ = atomic_write(p, lambda f: f.write("é,\n"), text=True)
        >>> p.read_bytes()
        b'\xc3\xa9,\n'
    """
    with AtomicFile(
        path, mode=mode, problem=problem, hint=hint, directory_hint=directory_hint
    ) as out:
        if isinstance(data, str):
            out.write(data.encode("utf-8"))
        elif isinstance(data, bytes):
            out.write(data)
        else:
            try:
                if text:
                    _write_text(out.file, cast("Callable[[TextIO], None]", data))
                else:
                    cast("Callable[[IO[bytes]], None]", data)(out.file)
            except OSError as exc:
                raise out.error(exc) from exc
    return Path(path)


def _write_text(raw: IO[bytes], write: Callable[[TextIO], None]) -> None:
    wrapper = io.TextIOWrapper(raw, encoding="utf-8", newline="")
    try:
        write(wrapper)
        wrapper.flush()
    finally:
        wrapper.detach()  # the binary file is closed by AtomicFile, not by the wrapper
