"""Which videos a run trained on and held out (``RUN/split.json``), and a folder's videos."""

from __future__ import annotations

import json
from pathlib import Path

from looklisten.inputs.prepare import VIDEO_EXTENSIONS, find_media

__all__ = ["run_split", "same_dir", "list_videos"]


def run_split(checkpoint) -> tuple[Path | None, dict | None]:
    """(training data root, split.json) of the run behind a checkpoint, if known."""
    from looklisten.models.checkpoint import run_dir

    run = run_dir(checkpoint)
    split_path, manifest = run / "split.json", run / "manifest.jsonl"
    if not split_path.is_file():
        return None, None
    split = json.loads(split_path.read_text())
    root = None
    if manifest.is_file():
        with open(manifest, encoding="utf-8") as f:
            first = json.loads(f.readline() or "{}")
        root = Path(first["root"]) if "root" in first else None
    return root, split


def same_dir(a: Path | None, b: Path) -> bool:
    """Whether two paths name the same folder (False when ``a`` is None)."""
    if a is None:
        return False
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def list_videos(data: Path) -> list[str]:
    """Video files under ``data`` (recursive, sorted), relative POSIX paths."""
    return [rel.as_posix() for _, rel in find_media([data], VIDEO_EXTENSIONS)]
