"""A training set from a folder of videos: scan, cache, reject, split.

``scan_folder(DIR)`` walks DIR recursively, probes every media file (video,
audio and image extensions, in parallel processes), keeps the videos with
sound and records why each other one was rejected: an audio-only ``.m4a`` is
listed ("no video stream"), not skipped in silence, and a video in an audio
container (``.ogg``, ``.m4a``) trains, since the probe decides by content. A
bad file never stops a run. The result is cached in
``~/.cache/looklisten/scans`` (``LOOKLISTEN_CACHE`` overrides) keyed by the
folder's absolute path, and each file's size and modification time: a rescan
of an unchanged folder probes nothing; a changed folder reprobes only the
files that changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from looklisten.core.fileio import atomic_write_json, atomic_write_text
from looklisten.inputs.prepare import MEDIA_EXTENSIONS, find_media, searched_for

SCAN_VERSION = 1


@dataclass(frozen=True)
class VideoEntry:
    """One usable video of a training folder."""

    path: str  # relative to the folder
    duration: float
    fps: float
    video_start: float
    width: int
    height: int
    sample_rate: int
    channels: int
    size: int
    mtime_ns: int

    @property
    def num_frames(self) -> int:
        return max(1, int(self.duration * self.fps))


@dataclass
class Manifest:
    root: Path
    videos: list[VideoEntry]
    rejected: list[tuple[str, str]]  # (relative path, reason)
    probed: int = 0  # how many files this scan actually probed (0: all from cache)

    def write(self, out_dir: str | os.PathLike) -> None:
        """Write ``manifest.jsonl`` and ``rejected.tsv`` into out_dir (atomically)."""
        out = Path(out_dir)
        lines = [json.dumps({"root": str(self.root)})]
        lines += [json.dumps(asdict(v)) for v in self.videos]
        atomic_write_text(out / "manifest.jsonl", "\n".join(lines) + "\n")
        rej = ["path\treason"] + [f"{p}\t{r}" for p, r in self.rejected]
        atomic_write_text(out / "rejected.tsv", "\n".join(rej) + "\n")

    def split(self, val_fraction: float, seed: int) -> tuple[list[VideoEntry], list[VideoEntry]]:
        return split_videos(self.videos, val_fraction, seed)


def video_folder(path: str | os.PathLike) -> Path:
    """``path`` if it is a folder; else an error saying whether it is missing or a file."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such folder")
    if not p.is_dir():
        raise NotADirectoryError(
            f"{path}: a file, not a folder (give the folder that holds the videos)"
        )
    return p


def too_few_videos(data: str | os.PathLike, manifest: Manifest, what: str) -> str:
    """Why ``manifest`` cannot give ``what``: no media files at all, or why each was rejected."""
    if not manifest.videos and not manifest.rejected:
        return f"{data}: holds no media files ({searched_for()})"
    total = len(manifest.videos) + len(manifest.rejected)
    reasons = Counter(r for _, r in manifest.rejected).most_common(3)
    why = "; ".join(f"{n} {'file' if n == 1 else 'files'}: {r}" for r, n in reasons)
    return f"{data}: {what}, but {len(manifest.videos)} of its {total} media files are usable" + (
        f" (rejected: {why})" if why else ""
    )


def cache_dir() -> Path:
    base = os.environ.get("LOOKLISTEN_CACHE") or Path.home() / ".cache" / "looklisten"
    return Path(base) / "scans"


def _candidates(root: Path) -> Iterable[Path]:
    # every media extension: the probe, not the name, decides what is a video
    for path, _ in find_media([root], MEDIA_EXTENSIONS):
        yield path


def _probe_one(args: tuple[str, str, float]) -> tuple[str, dict | None, str | None]:
    root, rel, min_seconds = args
    from looklisten.media.video import MediaError, check_usable

    path = Path(root) / rel
    try:
        info = check_usable(path, min_seconds=min_seconds)
    except MediaError as e:
        return rel, None, e.reason
    except Exception as e:  # a reader bug must not stop a scan either
        return rel, None, f"unreadable: {type(e).__name__}: {e}"
    st = path.stat()
    entry = VideoEntry(
        path=rel,
        duration=float(info.duration),
        fps=float(info.fps),
        video_start=float(info.video_start),
        width=int(info.width),
        height=int(info.height),
        sample_rate=int(info.sample_rate),
        channels=int(info.channels),
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
    )
    return rel, asdict(entry), None


def scan_folder(
    root: str | os.PathLike,
    min_seconds: float = 1.0,
    workers: int | None = None,
    progress: bool = True,
    use_cache: bool = True,
) -> Manifest:
    """Find the usable videos under ``root``.

    Parameters
    ----------
    root : folder to scan recursively (hidden entries are skipped)
    min_seconds : shorter videos are rejected ("too short")
    workers : probing processes (default: CPU count, at most 8)

    Returns
    -------
    Manifest
        ``videos`` sorted by path; ``rejected`` as (path, reason) pairs.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a directory")
    key = hashlib.sha1(f"{root}|{min_seconds}|{SCAN_VERSION}".encode()).hexdigest()[:16]
    cache_file = cache_dir() / f"{key}.json"
    cached: dict[str, dict] = {}
    if use_cache and cache_file.is_file():
        try:
            cached = json.loads(cache_file.read_text())["files"]
        except (ValueError, KeyError):
            cached = {}

    results: dict[str, dict] = {}
    todo: list[str] = []
    for path in _candidates(root):
        rel = path.relative_to(root).as_posix()
        try:
            st = path.stat()
        except OSError as e:
            results[rel] = {"reason": f"unreadable: {e.strerror}", "size": -1, "mtime_ns": -1}
            continue
        c = cached.get(rel)
        if c and c.get("size") == st.st_size and c.get("mtime_ns") == st.st_mtime_ns:
            results[rel] = c
        else:
            todo.append(rel)

    if todo:
        from looklisten.core.progress import progress_bar

        workers = workers or min(8, os.cpu_count() or 1)
        jobs = [(str(root), rel, min_seconds) for rel in todo]
        bar = progress_bar(total=len(jobs), desc="scan", unit="file", disable=not progress)
        if workers > 1 and len(jobs) > 4:
            from looklisten.core.pool import process_pool

            # spawned, not forked: a fork copies the locks that the parent's threads
            # (FFmpeg decoders of open readers, torch) hold at that moment, and a
            # forked prober then waited on one for ever (seen in the test suite)
            with process_pool(workers) as ex:
                outs = ex.map(_probe_one, jobs, chunksize=4)
                for rel, entry, reason in outs:
                    results[rel] = _record(root, rel, entry, reason)
                    bar.update()
        else:
            for job in jobs:
                rel, entry, reason = _probe_one(job)
                results[rel] = _record(root, rel, entry, reason)
                bar.update()
        bar.close()
        if use_cache:
            try:
                atomic_write_json(cache_file, {"root": str(root), "files": results})
            except OSError:
                pass  # a read-only home must not stop training

    videos, rejected = [], []
    for rel in sorted(results):
        r = results[rel]
        if "entry" in r:
            videos.append(VideoEntry(**r["entry"]))
        else:
            rejected.append((rel, r["reason"]))
    return Manifest(root=root, videos=videos, rejected=rejected, probed=len(todo))


def _record(root: Path, rel: str, entry: dict | None, reason: str | None) -> dict:
    if entry is not None:
        return {"entry": entry, "size": entry["size"], "mtime_ns": entry["mtime_ns"]}
    try:
        st = (root / rel).stat()
        size, mtime = st.st_size, st.st_mtime_ns
    except OSError:
        size, mtime = -1, -1
    return {"reason": reason, "size": size, "mtime_ns": mtime}


def split_videos(
    videos: list[VideoEntry], val_fraction: float, seed: int
) -> tuple[list[VideoEntry], list[VideoEntry]]:
    """Split by video, reproducibly: a video is held out when a hash of (seed, path) says so.

    Hash-based, so adding files to a folder does not move the others between
    train and validation. At least one video goes to each side when there are two.
    """

    def h(v: VideoEntry) -> float:
        d = hashlib.sha1(f"{seed}:{v.path}".encode()).digest()
        return int.from_bytes(d[:8], "big") / 2**64

    scored = sorted(videos, key=h)
    n_val = sum(1 for v in scored if h(v) < val_fraction)
    if len(videos) >= 2 and val_fraction > 0:
        n_val = min(max(n_val, 1), len(videos) - 1)
    val = sorted(scored[:n_val], key=lambda v: v.path)
    train = sorted(scored[n_val:], key=lambda v: v.path)
    return train, val
