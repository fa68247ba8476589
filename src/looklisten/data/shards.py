"""Shards: a folder of videos decoded once into WebDataset tar files, and read back for training.

``looklisten shard DIR --preset P --out SHARDS`` scans DIR (as training does,
rejects in ``SHARDS/rejected.tsv``), decodes every usable video once, in
parallel worker processes, and writes ``SHARDS/shard-000000.tar``, ... in the
WebDataset layout (the members of one video share the key ``v0000042``)::

    v0000042.000000.jpg ...   every frame, scaled so the shorter side is
                              vision.resize (as the decoder gives training), JPEG
    v0000042.audio.npy        the whole audio track, mono, at audio.sample_rate,
                              float16 (sample i at time i / sample_rate)
    v0000042.000000.flow.png  with an optical-flow preset (AVE+OF: vision.flow_frames
    ...                       > 0) the clip's TV-L1 flow, computed once here: field j
                              (frame j -> j + 1) as a lossless 2-channel PNG of the
                              uint8 codes of looklisten.inputs.flow (dx, dy)
    v0000042.json             the VideoEntry fields ("entry"), and where each
                              frame and the audio lie in the tar ("frames", "audio")

``SHARDS/index.json`` lists the shards, their videos (with the full VideoEntry
of each, so the train/validation split is the raw folder's) and the settings.
Each shard is written to a temporary name and renamed when complete, and gets a
sidecar ``shard-000000.json``; a rerun after a kill skips the shards whose
sidecar matches what it would write.

Frame ``i`` of a video is the frame at ``video_start + i / fps`` (the rule of
:mod:`looklisten.inputs.prepare`, as :class:`looklisten.data.sampler.FileSource` reads it), so
:class:`ShardSource` serves the same pairs as the raw folder, frames up to JPEG
error and audio up to float16 rounding.

Reading: ``looklisten train SHARDS`` (a folder holding ``index.json``, or any
fsspec URL of one, e.g. ``s3://bucket/shards``, when fsspec and its backend
are installed). Local shards are memory-mapped: the page cache holds one copy
per machine, shared by all ranks and DataLoader workers. Remote shards are
first copied to ``$LOOKLISTEN_CACHE/shards/`` (default
``~/.cache/looklisten/shards/``), then memory-mapped.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tarfile
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from looklisten.core.config import DEFAULT_JPEG_QUALITY, DEFAULT_SHARD_SIZE, Config
from looklisten.core.fileio import (
    WriteError,
    atomic_write_json,
    atomic_write_text,
    check_writable,
    clean_leftovers,
    disk_error,
    file_sha256,
    fsync_dir,
    temp_prefix,
)
from looklisten.data.scan import Manifest, VideoEntry, scan_folder, video_folder

INDEX = "index.json"
SHARD_FORMAT = "looklisten-shards-1"


def _flow_settings(cfg: Config) -> dict[str, Any] | None:
    """The TV-L1 settings whose flow the shards hold (None: a preset without flow)."""
    v = cfg.vision
    if v.flow_frames <= 0:
        return None
    return {
        "bound": v.flow_bound,
        "scales": v.flow_scales,
        "warps": v.flow_warps,
        "outer_iterations": v.flow_outer_iterations,
        "inner_iterations": v.flow_inner_iterations,
    }


def _settings(cfg: Config, jpeg_quality: int) -> dict[str, Any]:
    """What decides the bytes of a shard (a shard written with other settings is redone)."""
    return {
        "format": SHARD_FORMAT,
        "resize": cfg.vision.resize,
        "sample_rate": cfg.audio.sample_rate,
        "min_seconds": cfg.audio.clip_seconds,
        "jpeg_quality": int(jpeg_quality),
        "audio_dtype": "float16",
        "flow": _flow_settings(cfg),
    }


def _shard_name(i: int) -> str:
    return f"shard-{i:06d}"


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _encode_video(job: tuple) -> tuple[list[bytes], bytes, list[bytes], str | None]:
    """Decode one video (in a worker process).

    Returns JPEG frames, the float16 .npy audio and, with a flow config, the
    PNG flow fields (computed here, once per clip, on the decoded frames), or
    ``([], b"", [], reason)`` for a video that fails.
    """
    path, entry, resize, sample_rate, quality, flow_cfg = job
    from PIL import Image

    from looklisten.inputs.prepare import frame_time, read_frame_at
    from looklisten.media.video import MediaError, MediaReader

    v = VideoEntry(**entry)
    try:
        with MediaReader(path) as reader:
            frames = [
                read_frame_at(reader, frame_time(v.video_start, v.fps, i), size=resize)
                for i in range(v.num_frames)
            ]
            track = reader.read_audio(0.0, None, sample_rate)
    except MediaError as e:
        return [], b"", [], e.reason
    jpgs = []
    for frame in frames:
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
        jpgs.append(buf.getvalue())
    flows: list[bytes] = []
    if flow_cfg is not None:
        from looklisten.inputs.flow import clip_flow

        flows = [_png(field) for field in clip_flow(np.stack(frames), flow_cfg, threads=1)]
    buf = io.BytesIO()
    np.save(buf, track.astype(np.float16), allow_pickle=False)
    return jpgs, buf.getvalue(), flows, None


class _TarWriter:
    """A tar written to a temporary sibling, fsynced and renamed on :meth:`close`."""

    def __init__(self, path: Path):
        self.path = path
        self.tmp = path.with_name(temp_prefix(path) + "tar")
        try:
            self.file = open(self.tmp, "wb")
        except OSError as e:
            raise WriteError.of(path, e) from None
        self.sha256 = hashlib.sha256()
        self.tar = tarfile.open(fileobj=self, mode="w", format=tarfile.USTAR_FORMAT)

    def write(self, data: bytes) -> int:  # tarfile writes through here: hash as we go
        self.sha256.update(data)
        return self.file.write(data)

    def tell(self) -> int:
        return self.file.tell()

    def add(self, name: str, data: bytes) -> tuple[int, int]:
        """Append a member; return (offset of its data in the tar, size)."""
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        self.tar.addfile(info, io.BytesIO(data))
        blocks = -(-len(data) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
        return self.tar.offset - blocks, len(data)

    def close(self) -> int:
        self.tar.close()
        self.file.flush()
        os.fsync(self.file.fileno())
        size = self.file.tell()
        self.file.close()
        os.replace(self.tmp, self.path)
        fsync_dir(self.path.parent)
        return size

    def abort(self) -> None:
        with contextlib.suppress(OSError):  # closing flushes: fails again on a full disk
            self.file.close()
        self.tmp.unlink(missing_ok=True)


def _imap_bounded(fn: Callable, jobs: list, workers: int, ahead: int):
    """``map(fn, jobs)`` in order over a process pool, at most ``ahead`` results in flight."""
    if workers <= 1:
        yield from map(fn, jobs)
        return
    from looklisten.core.pool import process_pool

    with process_pool(workers) as ex:  # spawned (see looklisten.core.pool)
        pending: deque = deque()
        it = iter(jobs)
        for job in it:
            pending.append(ex.submit(fn, job))
            if len(pending) >= ahead:
                break
        while pending:
            result = pending.popleft().result()
            for job in it:
                pending.append(ex.submit(fn, job))
                break
            yield result


def shard_folder(
    data: str | os.PathLike,
    out: str | os.PathLike,
    cfg: Config,
    *,
    workers: int | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
    progress: bool = True,
) -> dict[str, Any]:
    """Decode the usable videos of ``data`` once into WebDataset shards in ``out``.

    Parameters
    ----------
    data : folder of videos (scanned recursively, as for training)
    out : shard folder (created); rerunning on it resumes
    cfg : the preset whose vision.resize and audio.sample_rate the shards hold
    workers : decoding processes (default: CPU count)
    shard_size : videos per shard
    jpeg_quality : JPEG quality of the frames (1-95)

    Returns
    -------
    dict
        The contents of ``out/index.json``; ``written`` and ``skipped`` count
        the shards (re)written and those found complete.
    """
    from looklisten.core.progress import progress_bar

    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    video_folder(data)  # before anything is written
    out = Path(out)
    check_writable(out)  # a read-only or full disk is refused before decoding
    settings = _settings(cfg, jpeg_quality)
    manifest = scan_folder(data, min_seconds=cfg.audio.clip_seconds, progress=progress)
    videos = manifest.videos
    groups = [videos[i : i + shard_size] for i in range(0, len(videos), shard_size)]

    shards: list[dict] = [None] * len(groups)  # type: ignore[list-item]
    todo: list[int] = []
    for s, group in enumerate(groups):
        planned = [asdict(v) for v in group]
        side = out / f"{_shard_name(s)}.json"
        try:
            meta = json.loads(side.read_text())
            done = (
                meta["settings"] == settings
                and meta["planned"] == planned
                and (out / meta["name"]).stat().st_size == meta["bytes"]
            )
        except (OSError, ValueError, KeyError):
            done = False
        if done:
            shards[s] = meta
        else:
            todo.append(s)

    jobs = [
        (
            str(manifest.root / v.path),
            asdict(v),
            cfg.vision.resize,
            cfg.audio.sample_rate,
            jpeg_quality,
            cfg.vision if settings["flow"] is not None else None,
        )
        for s in todo
        for v in groups[s]
    ]
    workers = max(1, workers or os.cpu_count() or 1)
    bar = progress_bar(total=len(videos), desc="shard", unit="video", disable=not progress)
    bar.update(len(videos) - len(jobs))
    results = _imap_bounded(_encode_video, jobs, workers, ahead=4 * workers)
    for s in todo:
        name = f"{_shard_name(s)}.tar"
        writer = _TarWriter(out / name)
        try:
            kept, failed = [], []
            for j, v in enumerate(groups[s]):
                jpgs, audio, flows, reason = next(results)
                bar.update()
                if reason is not None:
                    failed.append([v.path, reason])
                    continue
                key = f"v{s * shard_size + j:07d}"
                frames = [writer.add(f"{key}.{i:06d}.jpg", b) for i, b in enumerate(jpgs)]
                audio_at = writer.add(f"{key}.audio.npy", audio)
                meta = {"entry": asdict(v), "frames": frames, "audio": list(audio_at)}
                if flows:
                    meta["flows"] = [
                        writer.add(f"{key}.{i:06d}.flow.png", b) for i, b in enumerate(flows)
                    ]
                meta_at = writer.add(f"{key}.json", json.dumps(meta).encode())
                kept.append({"key": key, "entry": asdict(v), "meta": list(meta_at)})
            size = writer.close()
        except BaseException as e:
            writer.abort()
            err = disk_error(e) if isinstance(e, Exception) else None
            if err is None:
                raise
            done = sum(sh is not None for sh in shards)
            raise WriteError(
                out / name,
                f"{WriteError.of(out / name, err).reason}; {done} of {len(groups)} shards are "
                "complete: run the same command again to continue",
            ) from None
        shards[s] = {
            "name": name,
            "bytes": size,
            "sha256": writer.sha256.hexdigest(),
            "settings": settings,
            "planned": [asdict(v) for v in groups[s]],
            "videos": kept,
            "failed": failed,
        }
        atomic_write_json(out / f"{_shard_name(s)}.json", shards[s])
    bar.close()

    # Shards left over from an earlier run on a larger folder.
    for p in out.glob("shard-*.*"):
        stem = p.name.split(".")[0]
        if stem.startswith("shard-") and stem[6:].isdigit() and int(stem[6:]) >= len(groups):
            p.unlink()

    failed = [tuple(f) for sh in shards for f in sh["failed"]]
    rejected = sorted(manifest.rejected + failed)
    rej = ["path\treason"] + [f"{p}\t{r}" for p, r in rejected]
    atomic_write_text(out / "rejected.tsv", "\n".join(rej) + "\n")
    index = {
        "format": SHARD_FORMAT,
        "settings": settings,
        "preset": cfg.preset,
        "config": cfg.to_dict(),
        "source": str(manifest.root),
        "shards": [
            {
                "name": sh["name"],
                "bytes": sh["bytes"],
                **({"sha256": sh["sha256"]} if "sha256" in sh else {}),
                "videos": [{"key": v["key"], "path": v["entry"]["path"]} for v in sh["videos"]],
            }
            for sh in shards
        ],
        "videos": [
            {**v["entry"], "shard": i, "key": v["key"], "meta": v["meta"]}
            for i, sh in enumerate(shards)
            for v in sh["videos"]
        ],
        "rejected": [list(r) for r in rejected],
    }
    atomic_write_json(out / INDEX, index)
    return {**index, "written": len(todo), "skipped": len(groups) - len(todo)}


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def is_url(location: str | os.PathLike) -> bool:
    return "://" in str(location)


def is_shard_location(location: str | os.PathLike) -> bool:
    """True for a folder holding ``index.json`` and for any URL (raw video folders are local)."""
    return is_url(location) or (Path(location) / INDEX).is_file()


def _fsspec(url: str):
    try:
        import fsspec
    except ImportError:
        raise ValueError(
            f"{url}: reading shards from a URL needs fsspec (pip install fsspec) "
            "and the package of its backend (s3fs, gcsfs, ...)"
        ) from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:
        raise ValueError(f"{url}: no usable fsspec backend for this URL ({e})") from None


def _shard_cache(url: str) -> Path:
    from looklisten.data.scan import cache_dir

    return cache_dir().parent / "shards" / hashlib.sha1(url.rstrip("/").encode()).hexdigest()[:16]


def _npy_view(buf: np.ndarray, offset: int, size: int) -> np.ndarray:
    """The array of a .npy member, as a view on the memory-mapped tar (no copy)."""
    head = io.BytesIO(bytes(buf[offset : offset + min(size, 4096)]))
    version = np.lib.format.read_magic(head)
    fmt = np.lib.format
    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, fortran, dtype = read(head)
    if fortran or len(shape) != 1 or dtype.hasobject or dtype.kind not in "fiu":
        raise ValueError("unexpected audio array layout in shard")
    start = offset + head.tell()
    return np.ndarray(shape, dtype=dtype, buffer=buf, offset=start)


_SHARD_FILE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*\.tar$")


def _check_index(where: str, index: Any) -> None:
    """Reject an ``index.json`` that could make the reader touch other files.

    Shard names must be plain file names (``shard-000001.tar``: no folder, no
    ``..``, no absolute path), sizes and hashes well-formed, and every video's
    shard number and byte range must lie inside its shard.
    """

    def bad(key: str, reason: str) -> ValueError:
        return ValueError(f"{where}: {key}: {reason}")

    if not isinstance(index, dict) or index.get("format") != SHARD_FORMAT:
        raise ValueError(f"{where}: not a looklisten shard index (format {SHARD_FORMAT})")
    for key in ("settings", "shards", "videos", "rejected"):
        if key not in index:
            raise bad(key, "missing")
    shards = index["shards"]
    if not isinstance(shards, list):
        raise bad("shards", "not a list")
    sizes = []
    for i, sh in enumerate(shards):
        key = f"shards[{i}]"
        if not isinstance(sh, dict):
            raise bad(key, "not an object")
        name = sh.get("name")
        if not isinstance(name, str) or not _SHARD_FILE.match(name):
            raise bad(f"{key}.name", f"{name!r} is not a plain shard file name (NAME.tar)")
        size = sh.get("bytes")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise bad(f"{key}.bytes", f"{size!r} is not a size in bytes")
        digest = sh.get("sha256")
        if digest is not None and not (
            isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)
        ):
            raise bad(f"{key}.sha256", f"{digest!r} is not a SHA-256 hex digest")
        sizes.append(size)
    settings = index["settings"]
    if not isinstance(settings, dict) or not all(
        isinstance(settings.get(k), int) for k in ("resize", "sample_rate")
    ):
        raise bad("settings", "needs integer 'resize' and 'sample_rate'")
    if not isinstance(index["rejected"], list) or not all(
        isinstance(r, list) and len(r) == 2 for r in index["rejected"]
    ):
        raise bad("rejected", "not a list of [path, reason] pairs")
    if not isinstance(index["videos"], list):
        raise bad("videos", "not a list")
    entry_fields = VideoEntry.__dataclass_fields__
    for i, v in enumerate(index["videos"]):
        key = f"videos[{i}]"
        if not isinstance(v, dict):
            raise bad(key, "not an object")
        missing = [k for k in entry_fields if k not in v]
        if missing:
            raise bad(key, f"missing {', '.join(missing)}")
        if not isinstance(v["path"], str):
            raise bad(f"{key}.path", f"{v['path']!r} is not a path")
        s, meta = v.get("shard"), v.get("meta")
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < len(sizes):
            raise bad(f"{key}.shard", f"{s!r} is not a shard number (0-{len(sizes) - 1})")
        ok = (
            isinstance(meta, list)
            and len(meta) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in meta)
            and meta[0] + meta[1] <= sizes[s]
        )
        if not ok:
            raise bad(f"{key}.meta", f"{meta!r} is not a byte range inside its shard")


class ShardSet:
    """An opened shard folder: its index, and the local folder that holds (or will hold) the tars.

    Use :meth:`open`; :meth:`fetch` copies remote shards to the local cache;
    :meth:`source` builds a :class:`ShardSource` for some of the videos.
    """

    def __init__(self, location: str, local_dir: Path, index: dict[str, Any]):
        _check_index(f"{location.rstrip('/')}/{INDEX}", index)
        self.location = location
        self.local_dir = local_dir
        self.index = index
        self.settings = index["settings"]
        fields = VideoEntry.__dataclass_fields__
        self.videos = [VideoEntry(**{k: v[k] for k in fields}) for v in index["videos"]]
        self._records = {v["path"]: v for v in index["videos"]}

    @classmethod
    def open(cls, location: str | os.PathLike) -> ShardSet:
        loc = str(location)
        if is_url(loc):
            fs, path = _fsspec(loc)
            with fs.open(f"{path.rstrip('/')}/{INDEX}", "rb") as f:
                index = json.loads(f.read())
            return cls(loc, _shard_cache(loc), index)
        p = Path(loc)
        if not (p / INDEX).is_file():
            raise FileNotFoundError(f"{p}: no {INDEX} here (make shards with 'looklisten shard')")
        return cls(loc, p, json.loads((p / INDEX).read_text()))

    @property
    def remote(self) -> bool:
        return is_url(self.location)

    def manifest(self) -> Manifest:
        """The videos and rejected files, as a folder scan would give them."""
        rejected = [tuple(r) for r in self.index["rejected"]]
        return Manifest(root=self.local_dir, videos=list(self.videos), rejected=rejected)

    def check(self, cfg: Config) -> None:
        """Raise if ``cfg`` needs frames, audio or optical flow other than the shards hold."""
        s = self.settings
        if s["resize"] != cfg.vision.resize or s["sample_rate"] != cfg.audio.sample_rate:
            raise ValueError(
                f"{self.location}: shards hold {s['resize']} px frames and {s['sample_rate']} Hz "
                f"audio, the config needs {cfg.vision.resize} px and {cfg.audio.sample_rate} Hz: "
                f"train with --preset {self.index.get('preset')} or reshard"
            )
        want = _flow_settings(cfg)
        if want is not None and s.get("flow") != want:
            held = "no optical flow" if not s.get("flow") else f"flow with {s['flow']}"
            raise ValueError(
                f"{self.location}: the config needs TV-L1 flow with {want}, the shards hold "
                f"{held}: reshard with 'looklisten shard ... --preset {cfg.preset}'"
            )

    def shard_of(self) -> dict[str, int]:
        """Video path -> the number of the shard that holds it."""
        return {path: r["shard"] for path, r in self._records.items()}

    def shards_of(self, videos: list[VideoEntry]) -> list[int]:
        return sorted({self._records[v.path]["shard"] for v in videos})

    def fetch(self, shards: list[int] | None = None, progress: bool = True) -> None:
        """Copy remote shards (default: all) into the local cache; no-op for local folders."""
        if not self.remote:
            return
        from looklisten.core.progress import progress_bar

        fs, path = _fsspec(self.location)
        self.local_dir.mkdir(parents=True, exist_ok=True)
        wanted = range(len(self.index["shards"])) if shards is None else shards
        todo = []
        for i in wanted:
            sh = self.index["shards"][i]
            local = self.local_dir / sh["name"]
            if not (local.is_file() and local.stat().st_size == sh["bytes"]):
                todo.append(sh)
        clean_leftovers(self.local_dir)
        for sh in progress_bar(todo, desc="fetch", unit="shard", disable=not progress):
            local = self.local_dir / sh["name"]
            tmp = local.with_name(temp_prefix(local) + "fetch")
            fs.get(f"{path.rstrip('/')}/{sh['name']}", str(tmp))
            reason = None
            if tmp.stat().st_size != sh["bytes"]:
                reason = f"{tmp.stat().st_size} bytes, {INDEX} says {sh['bytes']}"
            elif sh.get("sha256") and file_sha256(tmp) != sh["sha256"]:
                reason = f"its SHA-256 differs from {INDEX}'s"
            if reason is not None:
                tmp.unlink()
                raise ValueError(f"{self.location}/{sh['name']}: {reason}")
            os.replace(tmp, local)

    def source(self, videos: list[VideoEntry], cfg: Config) -> ShardSource:
        self.check(cfg)
        records = [self._records[v.path] for v in videos]
        names = [self.index["shards"][r["shard"]]["name"] for r in records]
        for i in sorted({r["shard"] for r in records}):
            sh = self.index["shards"][i]
            path = self.local_dir / sh["name"]
            if path.is_file() and path.stat().st_size != sh["bytes"]:
                raise ValueError(
                    f"{path}: {path.stat().st_size} bytes, {INDEX} says {sh['bytes']}: "
                    "a damaged or different shard"
                )
        return ShardSource(self.local_dir, videos, cfg, names, [r["meta"] for r in records])


class ShardSource:
    """Pairs' frames and audio from memory-mapped shards (the interface of sampler.MemorySource).

    Holds, per video, the offsets of its JPEG frames and of its audio in the
    tar; a frame is decoded when a pair asks for it. The tars are mapped into
    memory (lazily, once per process), so DataLoader workers and the ranks on
    one machine share the page cache instead of holding copies.
    """

    def __init__(
        self,
        local_dir: str | os.PathLike,
        videos: list[VideoEntry],
        cfg: Config,
        shard_names: list[str],
        metas: list[tuple[int, int]],
    ):
        self.local_dir = Path(local_dir)
        self.videos = videos
        self.audio_cfg = cfg.audio
        self.vision_cfg = cfg.vision
        self.shard_names = shard_names
        self._maps: dict[str, np.ndarray] = {}
        self.frames: list[np.ndarray] = []  # (num_frames, 2) offset, size
        self.flows: list[np.ndarray | None] = []  # (num_fields, 2) offset, size (AVE+OF)
        self.tracks: list[tuple[int, int]] = []  # offset, size of the .npy member
        for name, (off, size) in zip(shard_names, metas):
            meta = json.loads(bytes(self._map(name)[off : off + size]))
            self.frames.append(np.asarray(meta["frames"], dtype=np.int64).reshape(-1, 2))
            flows = meta.get("flows")
            self.flows.append(None if flows is None else np.asarray(flows, np.int64).reshape(-1, 2))
            self.tracks.append(tuple(meta["audio"]))

    def _map(self, name: str) -> np.ndarray:
        m = self._maps.get(name)
        if m is None:
            path = self.local_dir / name
            if not path.is_file():
                raise FileNotFoundError(f"{path}: shard missing (fetch it first)")
            m = self._maps[name] = np.memmap(path, dtype=np.uint8, mode="r")
        return m

    def _member(self, table: np.ndarray, vid: int, index: int) -> np.ndarray:
        from PIL import Image

        off, size = table[min(max(index, 0), len(table) - 1)]
        data = self._map(self.shard_names[vid])[off : off + size]
        with Image.open(io.BytesIO(data)) as im:
            return np.array(im)

    def decode(self, vid: int, index: int) -> np.ndarray:
        """Frame ``index`` (clamped) of video ``vid``: (H, W, 3) uint8 RGB."""
        return self._member(self.frames[vid], vid, index)

    def decode_flow(self, vid: int, index: int) -> np.ndarray:
        """Flow field ``index`` (clamped) of video ``vid``: (H, W, 2) uint8 codes."""
        flows = self.flows[vid]
        if flows is None:
            raise ValueError(f"{self.videos[vid].path}: these shards hold no optical flow")
        return self._member(flows, vid, index)

    def frame(self, vid: int, index: int, t: float) -> np.ndarray:
        """The pair's vision item: (H, W, 3), or with motion (K, H, W, 3) / (H, W, 3 + 2L).

        Optical flow (AVE+OF) is read from the shard (computed once per clip by
        :func:`shard_folder`), not recomputed.
        """
        from looklisten.inputs.prepare import flow_item, window

        v = self.vision_cfg
        n = len(self.frames[vid])
        if v.flow_frames > 0:
            flows = self.flows[vid]
            if flows is None:
                raise ValueError(f"{self.videos[vid].path}: these shards hold no optical flow")
            get_frame = lambda i: self.decode(vid, i)  # noqa: E731
            get_field = lambda j: self.decode_flow(vid, j)  # noqa: E731
            return flow_item(get_frame, get_field, n, len(flows), index, v)
        idx = window(index, n, v)
        if len(idx) == 1:
            return self.decode(vid, int(idx[0]))
        return np.stack([self.decode(vid, int(i)) for i in idx])

    def track(self, vid: int) -> np.ndarray:
        """The whole audio track (float16, a view on the mapped shard)."""
        off, size = self.tracks[vid]
        return _npy_view(self._map(self.shard_names[vid]), off, size)

    def audio(self, vid: int, center: float) -> np.ndarray:
        from looklisten.inputs.prepare import audio_window

        return audio_window(self.track(vid), center, self.audio_cfg)

    def __getstate__(self):  # maps do not cross process boundaries (np.memmap pickles a copy)
        d = dict(self.__dict__)
        d["_maps"] = {}
        return d
