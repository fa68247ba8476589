"""Crash-safe file writes: write to a temporary sibling, fsync, rename.

A kill at any moment leaves either the previous file or the new one, never a
torn one. Directories are replaced the same way (build a temporary sibling,
fsync its files, then swap it in with renames).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


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


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """0o666 less the umask: what a plain open() would give (mkstemp gives 0o600)."""
    return 0o666 & ~_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, default_file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a directory in a temporary sibling and swap it in on success.

    Usage::

        with atomic_dir("index") as tmp:
            (tmp / "a.bin").write_bytes(...)
        # now "index" holds exactly what was written; the old one is gone.

    ``path`` becomes a symbolic link to a versioned sibling directory
    (``.index.<random>``); the swap is one atomic ``rename`` of a new link over
    the old one, so a reader (or a kill) at any moment sees either the complete
    old directory or the complete new one. Every file is fsynced before the
    swap. On an exception the temporary directory is removed and ``path`` is
    untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        for p in tmp.rglob("*"):
            if p.is_file():
                os.chmod(p, default_file_mode())  # writers using temp files make 0600
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        fsync_dir(tmp)
        old_target = path.parent / os.readlink(path) if path.is_symlink() else None
        if path.exists() and not path.is_symlink():
            # A plain directory from elsewhere: move it aside first (not atomic).
            aside = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, aside)
            old_target = aside
        link = path.with_name(f".{path.name}.link-{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
        os.symlink(tmp.name, link)
        os.replace(link, path)
        fsync_dir(path.parent)
        if old_target is not None and old_target.exists():
            shutil.rmtree(old_target, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
