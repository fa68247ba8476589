"""Crash-safe file writes: write to a temporary sibling, fsync, rename.

A kill at any moment leaves either the previous file or the new one, never a
torn one. Directories are replaced the same way (build a temporary sibling,
fsync its files, then swap it in with renames).

Temporary siblings are named ``.<name>.<pid>-<host>-<random>`` (:func:`temp_prefix`):
the process and the machine that wrote them. A kill -9 leaves them behind;
:func:`clean_leftovers` (called by every :func:`atomic_dir` save, and when a
training run starts) removes those whose process is gone.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: A leftover from another machine (shared storage) is removed after this long untouched.
FOREIGN_LEFTOVER_SECONDS = 24 * 3600
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-")


class WriteError(OSError):
    """A file or folder could not be written: a full disk, a read-only one, no permission.

    One line: the path and the reason (``cannot write RUN/checkpoint: No space left
    on device [ENOSPC]``). The writers of this module raise it after removing their
    temporary files, so the previous version (if any) is untouched and nothing
    partial is left. ``errno`` is the underlying error's, when there is one.
    """

    def __init__(self, path: str | os.PathLike, reason: str | BaseException) -> None:
        self.path = str(path)
        code = getattr(reason, "errno", None)
        if isinstance(reason, BaseException):
            text = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
        else:
            text = reason
        if code is not None and code in errno.errorcode:
            text = f"{text} [{errno.errorcode[code]}]"
        super().__init__(code, text)
        self.reason = text

    def __str__(self) -> str:
        return f"cannot write {self.path}: {self.reason}"

    @classmethod
    def of(cls, path: str | os.PathLike, e: BaseException) -> WriteError:
        """``e`` as a :class:`WriteError` about ``path`` (itself if it already is one)."""
        return e if isinstance(e, WriteError) else cls(path, e)


#: Errors of a disk that takes no more writes, recognised in other libraries' messages.
_DISK_ERRNOS = (
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EFBIG,
    errno.EIO,
)


def disk_error(e: BaseException) -> OSError | None:
    """``e`` as an OSError when it is one, or when a library reports one in its message.

    safetensors (``... (os error 28)``) and FAISS (``... (No space left on
    device)``) raise their own exception types for a failed write; this finds
    the operating system's error in their text. None: not a disk error.
    """
    if isinstance(e, OSError):
        return e
    text = str(e)
    m = re.search(r"os error (\d+)", text)
    codes = [int(m[1])] if m else [c for c in _DISK_ERRNOS if os.strerror(c) in text]
    if not codes:
        return None
    return OSError(codes[0], os.strerror(codes[0]))


def check_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and write (then remove) a small file in it.

    For long jobs that write at the end (an index) or per item (embeddings): a
    read-only, full or forbidden folder is refused before the work starts.
    Raises :class:`WriteError` naming the folder.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(folder / "probe"), dir=folder)
        try:
            os.write(fd, b"looklisten" * 410)  # 4 KiB: one block
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(tmp)
    except OSError as e:
        raise WriteError.of(folder, e) from None
    return folder


class DamagedFileError(ValueError):
    """A file the project wrote (a checkpoint, an index, a shard) cannot be read back.

    The message is one line: the file, what it is and why it cannot be used.
    """

    def __init__(self, path: str | os.PathLike, what: str, reason: str) -> None:
        self.path = str(path)
        super().__init__(f"{path}: damaged {what} ({reason})")


def read_json(path: str | os.PathLike, what: str) -> Any:
    """Parse a JSON file the project wrote; a damaged one raises :class:`DamagedFileError`."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DamagedFileError(path, what, f"not valid JSON: {e}") from None


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _host() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def temp_prefix(path: str | os.PathLike) -> str:
    """Name prefix of this process's temporary siblings of ``path``: ``.<name>.<pid>-<host>-``."""
    return f".{Path(path).name}.{os.getpid()}-{_host()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def clean_leftovers(directory: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove temporary siblings (of ``name``, or of any file) left by dead writers.

    An old version an :func:`atomic_dir` moved aside (``-old``) before it was
    killed is put back when nothing replaced it.

    A temporary file or folder (see :func:`temp_prefix`) is removed when the
    process that made it is no longer running on this machine, or, when it
    comes from another machine, after :data:`FOREIGN_LEFTOVER_SECONDS`
    untouched. The target of a link (the live version of an :func:`atomic_dir`)
    is never removed. Returns what was removed.
    """
    directory = Path(directory)
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    live = set()
    for e in entries:
        if e.is_symlink() and not _TEMP.match(e.name):
            with contextlib.suppress(OSError):
                live.add(os.path.basename(os.readlink(e.path)))
    host, removed = _host(), []
    for e in entries:
        m = _TEMP.match(e.name)
        if m is None or e.name in live or (name is not None and m["name"] != name):
            continue
        if m["host"] == host:
            if _alive(int(m["pid"])):
                continue
        else:
            with contextlib.suppress(OSError):
                if time.time() - e.stat(follow_symlinks=False).st_mtime < FOREIGN_LEFTOVER_SECONDS:
                    continue
        p = Path(e.path)
        target = directory / m["name"]
        if e.name.endswith("-old") and not os.path.lexists(target):
            # killed between moving the old version aside and renaming the new one in
            with contextlib.suppress(OSError):
                os.replace(p, target)
                log.info("restored %s, left aside by a write that was killed", target)
                continue
        if e.is_dir(follow_symlinks=False):
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        if not os.path.lexists(p):
            removed.append(p)
            log.info("removed %s, left by a write that was killed", p)
    return removed


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """0o666 less the umask: what a plain open() would give (mkstemp gives 0o600)."""
    return 0o666 & ~_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename).

    Raises :class:`WriteError` (the path and the reason) when the disk is full,
    read-only or forbidden; ``path`` then holds what it held before.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
        f = os.fdopen(fd, "wb")
        try:
            os.fchmod(fd, default_file_mode())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        finally:
            with contextlib.suppress(OSError):  # a failed flush on close: reported above
                f.close()
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(e, OSError):
            raise WriteError.of(path, e) from None
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _exchange(a: Path, b: Path) -> bool:
    """Swap the entries ``a`` and ``b`` in one atomic step (Linux ``renameat2`` with
    ``RENAME_EXCHANGE``); False where the system or the file system cannot."""
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not Linux, or a C library without it
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def remove_version(p: Path) -> None:
    """Remove a file, a directory, or a link to a hidden sibling (an older looklisten's
    :func:`atomic_dir`) with its target."""
    if p.is_symlink():
        target = p.parent / os.readlink(p)
        p.unlink()
        shutil.rmtree(target, ignore_errors=True)
    elif p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a directory in a temporary sibling and swap it in on success.

    Usage::

        with atomic_dir("index") as tmp:
            (tmp / "a.bin").write_bytes(...)
        # now "index" holds exactly what was written; the old one is gone.

    ``path`` is a plain directory, so it can be copied, moved or archived on its
    own. The new version is built in a sibling (``.index.<pid>-<host>-<random>``),
    every file fsynced, then swapped in: a first version by one ``rename``, a
    new one by one atomic exchange of the two directories (Linux ``renameat2``),
    so a reader (or a kill) at any moment sees either the complete old
    directory or the complete new one. Where the exchange is not available the
    old version is first renamed aside (``.index.<pid>-<host>-old``); a kill in
    that instant leaves no ``path`` until :func:`clean_leftovers` puts the old
    version back. An older looklisten's link to a hidden sibling is replaced
    the same way. On an exception the temporary directory is removed and
    ``path`` is untouched; an ``OSError`` (a full, read-only or forbidden disk,
    in the body or in the swap) is raised as :class:`WriteError` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_leftovers(path.parent, path.name)
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(path), dir=path.parent))
    except OSError as e:
        raise WriteError.of(path, e) from None
    aside, swapped = None, False
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        for p in tmp.rglob("*"):
            if p.is_file():
                os.chmod(p, default_file_mode())  # writers using temp files make 0600
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        fsync_dir(tmp)
        if not os.path.lexists(path):
            os.rename(tmp, path)
            old = None
        elif _exchange(tmp, path):
            old = tmp  # now holds the previous version
        else:
            aside = path.with_name(temp_prefix(path) + "old")
            os.replace(path, aside)
            os.rename(tmp, path)
            old = aside
        aside, swapped = None, True  # the old version may go
        fsync_dir(path.parent)
        if old is not None:
            remove_version(old)
    except BaseException as e:
        if not swapped:
            shutil.rmtree(tmp, ignore_errors=True)
        if aside is not None and not os.path.lexists(path):
            with contextlib.suppress(OSError):
                os.replace(aside, path)  # put the old version back
        err = disk_error(e) if isinstance(e, Exception) else None
        if err is not None:
            raise WriteError.of(path, err) from None
        raise
