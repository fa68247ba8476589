"""Reading and writing audio-visual media with PyAV (FFmpeg).

Reading
-------
Every reader works on the *presentation timeline* of the file: a time ``t`` in
seconds is compared with ``pts * time_base`` of the decoded frames, exactly as a
player would show them. For almost every file the video starts at 0.

:func:`probe`
    Stream parameters from the container headers (only FFmpeg's stream
    probing decodes anything).
:func:`read_frame`, :func:`read_frames`
    RGB frames displayed at a time: one seek to the preceding keyframe, then
    decoding forward to the wanted frame (never the whole video).
:func:`read_audio`
    Mono float32 audio of an exact length, sample-accurately placed,
    resampled with libswresample; seeks to the start of the window.
:func:`check_usable`
    A cheap validity check for dataset scans (streams, length, truncation,
    silence).
:class:`MediaReader`
    Keeps the file open for repeated reads (one per data-loader worker).

Every unusable input raises :class:`MediaError` (``str(e) == "<path>: <reason>"``),
never a raw PyAV/FFmpeg exception.

Notes
-----
* Cost of a frame read: decoding from the keyframe before ``t``. Videos with
  long GOPs (x264's default is 250 frames) are slow to sample at random;
  re-encode training data with a short GOP (e.g. ``-g`` = 1-2 s of frames).
* Audio codec delay is handled by FFmpeg where the container records it (AAC
  and MP3 in MP4 via the edit list, Opus pre-skip in WebM/Ogg): sample ``i``
  of :func:`read_audio` is at ``t0 + i / sample_rate``. WebM stores times in
  whole milliseconds, so placement there is good to +-0.5 ms. MP3 in AVI has
  no delay information: such audio plays 1105 samples late, in every player.
* Rotation metadata and non-square pixels are ignored (frames are returned
  as coded).

Writing
-------
:func:`write_video` encodes RGB frames and audio (used for tests and demos).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

log = logging.getLogger(__name__)

__all__ = [
    "MediaError",
    "MediaInfo",
    "MediaReader",
    "check_usable",
    "probe",
    "read_audio",
    "read_frame",
    "read_frames",
    "write_video",
]

# A frame whose pts is within this many seconds after ``t`` still counts as
# "at t" (absorbs float rounding in ``t = k / fps``).
_T_EPS = 1e-6
# Audio decoded before the window start after a seek: lossy decoders (AAC, MP3,
# Opus, Vorbis) need a few packets of history before their output is exact.
_AUDIO_PREROLL = 0.25
_AUDIO_PREROLL_FRAMES = 3
# Extra native audio decoded around the window so that the resampling filter
# sees real signal at the window edges.
_RESAMPLE_MARGIN = 0.02
# MediaReader continues decoding forward (instead of seeking) when the next
# requested frame is at most this far after the last decoded one.
_FORWARD_DECODE_LIMIT = 1.0
# check_usable: audio whose peak stays below this (about -80 dBFS) is silent.
_SILENCE_PEAK = 1e-4
# check_usable: a stream may end this much (+1 % of its length) before the
# end its header announces; more means the file was cut.
_END_TOLERANCE = 0.25
# Leading bytes of container formats we know; a file starting with one of them
# that FFmpeg cannot read is reported as truncated/corrupt, not "not media".
_MAGIC = {
    b"\x1a\x45\xdf\xa3": "Matroska/WebM",
    b"RIFF": "RIFF (AVI/WAV)",
    b"OggS": "Ogg",
    b"fLaC": "FLAC",
    b"ID3": "MP3",
    b"FLV": "FLV",
    b"\x00\x00\x01\xba": "MPEG-PS",
    b"FORM": "AIFF",
}
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")


class MediaError(Exception):
    """An input that cannot be used: not media, unreadable, missing a stream, ...

    Parameters
    ----------
    path : str or path-like
        The file.
    reason : str
        A short human reason, e.g. ``"no audio stream"``,
        ``"truncated or corrupt: ..."``, ``"shorter than 1.0 s (0.40 s)"``.

    Notes
    -----
    ``str(e) == f"{path}: {reason}"``. The error pickles (it crosses
    data-loader worker processes).
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = str(reason)
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` learns from the headers of a media file.

    Times are seconds on the file's presentation timeline. The usable part,
    where both streams exist, is ``[start, start + duration]``.

    Attributes
    ----------
    path : str
    duration : float
        Length of the usable part: the overlap of the video and audio streams
        where both exist, else the length of the one stream.
    has_video : bool
    fps : float
        Average frame rate (0.0 without video).
    width, height : int
        Coded frame size in pixels (0 without video).
    num_frames : int
        Number of video frames (from the header, or ``duration * fps``).
    has_audio : bool
    sample_rate : int
        Native (decoded) audio sample rate in Hz (0 without audio).
    channels : int
        Audio channels (0 without audio).
    video_start : float
        Time of the first video frame, usually 0.
    audio_start : float
        Time of the first audio sample, usually 0.
    video_duration, audio_duration : float
        Length of each stream (0.0 if absent).
    start : float
        Start of the usable part (``max(video_start, audio_start)``).
    video_codec, audio_codec : str
        FFmpeg decoder names ("" if absent).
    format_name : str
        FFmpeg demuxer name, e.g. ``"mov,mp4,m4a,3gp,3g2,mj2"``.
    """

    path: str
    duration: float
    has_video: bool
    fps: float
    width: int
    height: int
    num_frames: int
    has_audio: bool
    sample_rate: int
    channels: int
    video_start: float
    audio_start: float = 0.0
    video_duration: float = 0.0
    audio_duration: float = 0.0
    start: float = 0.0
    video_codec: str = ""
    audio_codec: str = ""
    format_name: str = ""

    @property
    def end(self) -> float:
        """End of the usable part, ``start + duration`` (seconds)."""
        return self.start + self.duration


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def _detail(exc: BaseException) -> str:
    """A one-line description of a PyAV/OS exception, without the path."""
    msg = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(msg).strip()


def _looks_like_media(path: str) -> str | None:
    """Name of a known container format whose signature starts ``path``."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    if len(head) >= 8 and head[4:8] in _MP4_BOXES:
        return "MP4/QuickTime"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        return "MPEG audio"
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def _open_error(path: str, exc: BaseException) -> MediaError:
    """Translate a failure of ``av.open`` into a :class:`MediaError`."""
    if isinstance(exc, FileNotFoundError) or not os.path.exists(path):
        return MediaError(path, "file not found")
    if os.path.isdir(path):
        return MediaError(path, "not a media file: is a directory")
    if isinstance(exc, PermissionError):
        return MediaError(path, "unreadable: permission denied")
    if os.path.getsize(path) == 0:
        return MediaError(path, "not a media file: empty file")
    fmt = _looks_like_media(path)
    if fmt is not None:
        return MediaError(
            path, f"truncated or corrupt: {fmt} file cannot be opened ({_detail(exc)})"
        )
    return MediaError(path, f"not a media file: {_detail(exc)}")


def _open_container(path: str):
    try:
        return av.open(path, mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise _open_error(path, exc) from None


# --------------------------------------------------------------------------
# Probing
# --------------------------------------------------------------------------


def _pick_stream(container, kind: str):
    """The first decodable stream of ``kind`` ("video"/"audio"), skipping cover art."""
    streams = container.streams.video if kind == "video" else container.streams.audio
    for st in streams:
        if kind == "video" and st.disposition & av.stream.Disposition.attached_pic:
            continue
        if st.codec_context is None:
            continue
        return st
    return None


def _seconds(value, time_base) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _info_from_container(path: str, container) -> MediaInfo:
    """Build a :class:`MediaInfo` from an open container (headers only)."""
    vs = _pick_stream(container, "video")
    au = _pick_stream(container, "audio")
    if vs is None and au is None:
        fmt = _looks_like_media(path)
        if fmt is not None:
            raise MediaError(
                path, f"truncated or corrupt: {fmt} file without video or audio stream"
            )
        raise MediaError(path, "not a media file: no video or audio stream")
    c_start = container.start_time / av.time_base if container.start_time is not None else 0.0
    c_end = None
    if container.duration is not None and container.duration > 0:
        c_end = c_start + container.duration / av.time_base

    def span(st) -> tuple[float, float]:
        start = _seconds(st.start_time, st.time_base)
        start = c_start if start is None else start
        dur = _seconds(st.duration, st.time_base)
        if dur is None or dur <= 0:
            dur = max(0.0, c_end - start) if c_end is not None else 0.0
        return start, dur

    fps, width, height, num_frames = 0.0, 0, 0, 0
    v_start = v_dur = 0.0
    if vs is not None:
        v_start, v_dur = span(vs)
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        fps = float(rate) if rate else 0.0
        if fps <= 0 and vs.frames and v_dur > 0:
            fps = vs.frames / v_dur
        width, height = vs.codec_context.width, vs.codec_context.height
        num_frames = int(vs.frames) if vs.frames else int(round(v_dur * fps))
    sample_rate = channels = 0
    a_start = a_dur = 0.0
    if au is not None:
        a_start, a_dur = span(au)
        sample_rate = int(au.codec_context.sample_rate or au.rate or 0)
        channels = int(au.codec_context.channels or 0)
    if vs is not None and au is not None:
        start = max(v_start, a_start)
        duration = max(0.0, min(v_start + v_dur, a_start + a_dur) - start)
    elif vs is not None:
        start, duration = v_start, v_dur
    else:
        start, duration = a_start, a_dur
    return MediaInfo(
        path=path,
        duration=duration,
        has_video=vs is not None,
        fps=fps,
        width=int(width),
        height=int(height),
        num_frames=int(num_frames),
        has_audio=au is not None,
        sample_rate=sample_rate,
        channels=channels,
        video_start=v_start,
        audio_start=a_start,
        video_duration=v_dur,
        audio_duration=a_dur,
        start=start,
        video_codec=vs.codec_context.name if vs is not None else "",
        audio_codec=au.codec_context.name if au is not None else "",
        format_name=container.format.name,
    )


def probe(path: str | os.PathLike) -> MediaInfo:
    """Read the stream parameters of a media file from its headers.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    MediaInfo

    Raises
    ------
    MediaError
        Not found, not a media file, truncated header, no audio/video stream.
    """
    path = os.fspath(path)
    container = _open_container(path)
    try:
        return _info_from_container(path, container)
    except MediaError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(path, f"not a media file: {_detail(exc)}") from None
    finally:
        container.close()


# --------------------------------------------------------------------------
# Audio helpers
# --------------------------------------------------------------------------


def int_to_float(x: np.ndarray) -> np.ndarray:
    """Samples of any numeric dtype -> float32 in [-1, 1): the one int-to-float rule.

    Signed integers of b bits are divided by 2^(b-1) (int16 / 32768, int32 /
    2^31, ...), uint8 is offset binary ((x - 128) / 128, as in WAV and
    FFmpeg's u8); floats are kept. Raises ValueError for other dtypes.
    """
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return (x.astype(np.float32) - 128.0) / np.float32(128.0)
    if np.issubdtype(x.dtype, np.signedinteger):
        return x.astype(np.float32) / np.float32(2.0 ** (8 * x.dtype.itemsize - 1))
    if np.issubdtype(x.dtype, np.floating):
        return x.astype(np.float32, copy=False)
    raise ValueError(f"unsupported sample type {x.dtype}")


def _frame_to_mono(frame) -> np.ndarray:
    """Decoded :class:`av.AudioFrame` -> float32 mono, shape (samples,).

    The downmix is the plain mean of all channels, so a tone of amplitude A on
    every channel stays at amplitude A.
    """
    x = frame.to_ndarray()
    fmt = frame.format
    nch = frame.layout.nb_channels
    if not fmt.is_planar:
        x = x.reshape(-1, nch).T
    x = int_to_float(x)  # FFmpeg's u8 / s16 / s32 / s64 / flt / dbl arrive as those dtypes
    if nch == 1:
        return np.ascontiguousarray(x[0])
    return x.mean(axis=0, dtype=np.float32)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample mono float32 audio with libswresample.

    Output sample ``j`` is at the time of input sample ``j * sr_in / sr_out``
    (libswresample compensates its filter delay); the output has
    ``round(len(x) * sr_out / sr_in)`` samples.
    """
    if sr_in == sr_out or len(x) == 0:
        return x
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sr_out)
    out = []
    step = 1 << 16
    for s in range(0, len(x), step):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(x[None, s : s + step], dtype=np.float32),
            format="flt",
            layout="mono",
        )
        frame.sample_rate = sr_in
        frame.pts = s
        frame.time_base = Fraction(1, sr_in)
        out.extend(f.to_ndarray()[0] for f in resampler.resample(frame))
    out.extend(f.to_ndarray()[0] for f in resampler.resample(None))
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def take(x: np.ndarray, offset: int, n: int) -> np.ndarray:
    """``x[offset:offset + n]`` with zeros where the range leaves ``x``."""
    out = np.zeros(n, np.float32)
    lo, hi = max(offset, 0), min(offset + n, len(x))
    if hi > lo:
        out[lo - offset : hi - offset] = x[lo:hi]
    return out


# --------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------


#: Audio codecs whose frames all hold the same number of samples (the last aside),
#: so that frame starts lie on a grid (see MediaReader._on_frame_grid); not Vorbis,
#: whose blocks vary.
_GRID_CODECS = frozenset({"opus", "libopus", "aac", "mp3", "mp3float", "mp2", "ac3", "eac3"})


class MediaReader:
    """An open media file for repeated reads (one per data-loader worker).

    Video and audio are read through separate demuxers, so interleaved frame
    and audio reads do not undo each other's position. Consecutive forward
    reads (``t`` increasing by less than a second) continue decoding instead
    of seeking again. Not thread-safe; create it inside the worker process.

    Parameters
    ----------
    path : path-like
    info : MediaInfo, optional
        Result of an earlier :func:`probe` of the same file (skips re-probing).
    threads : int
        Decoder threads for video: 0 lets FFmpeg choose (frame + slice
        threading), 1 decodes on the calling thread (best with many loader
        workers).

    Attributes
    ----------
    path : str
    info : MediaInfo
    stats : dict
        Debug counters: ``video_frames`` and ``audio_frames`` decoded,
        ``video_seeks`` and ``audio_seeks``, ``video_restarts`` and
        ``audio_restarts`` (decodes from the start of a file that refuses seeks).
    video_seek : {"stream", "start"}
        How frames are reached: seeks, or decoding from the start where the
        demuxer refuses seeks.
    audio_seek : {"stream", "other", "start"}
        How audio windows are reached (see :meth:`_seek_audio`).

    Examples
    --------
    >>> with MediaReader("clip.mp4") as r:          # doctest: +SKIP
    ...     img = r.read_frame(1.5, size=224)        # (224, 298, 3) uint8
    ...     wav = r.read_audio(1.0, 2.0, 48000)      # (48000,) float32
    """

    def __init__(
        self, path: str | os.PathLike, *, info: MediaInfo | None = None, threads: int = 1
    ) -> None:
        self.path = os.fspath(path)
        self.threads = int(threads)
        self.stats = {
            "video_frames": 0,
            "audio_frames": 0,
            "video_seeks": 0,
            "audio_seeks": 0,
            "video_restarts": 0,
            "audio_restarts": 0,
        }
        self.video_seek = "stream"
        self.audio_seek = "stream"
        self._closed = False
        self._spare = _open_container(self.path)
        self._vc = self._ac = None
        try:
            self.info = info if info is not None else _info_from_container(self.path, self._spare)
        except MediaError:
            self.close()
            raise
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self.close()
            raise MediaError(self.path, f"not a media file: {_detail(exc)}") from None
        # Video decoding state: a frame iterator, the last frame returned by
        # the locator (``_vcur``) and a decoded-but-unused frame (``_vnext``).
        self._vstream = None
        self._vit: Iterator | None = None
        self._vcur = None
        self._vnext = None
        self._vlast_ticks = None
        self._astream = None
        self._audio_grid = None  # see _on_frame_grid

    # -- lifetime ---------------------------------------------------------

    def close(self) -> None:
        """Close the underlying containers (idempotent)."""
        for name in ("_spare", "_vc", "_ac"):
            c = getattr(self, name, None)
            if c is not None:
                try:
                    c.close()
                except Exception:  # noqa: BLE001 - closing must never raise
                    pass
                setattr(self, name, None)
        self._vit = self._vcur = self._vnext = None
        self._closed = True

    def __enter__(self) -> MediaReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MediaReader({self.path!r})"

    def __getstate__(self) -> dict:
        # Open containers do not pickle: a pickled reader reopens the file.
        return {"path": self.path, "info": self.info, "threads": self.threads}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], info=state["info"], threads=state["threads"])

    def _container(self, kind: str):
        """The container used for ``kind`` reads, opened on first use."""
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        attr = "_vc" if kind == "video" else "_ac"
        c = getattr(self, attr)
        if c is None:
            if self._spare is not None:
                c, self._spare = self._spare, None
            else:
                c = _open_container(self.path)
            setattr(self, attr, c)
            st = _pick_stream(c, kind)
            for other in c.streams:
                if other is not st:
                    other.discard = av.stream.Discard.all
            if kind == "video":
                st.thread_type = "AUTO" if self.threads != 1 else "SLICE"
                st.codec_context.thread_count = max(self.threads, 0)
                self._vstream = st
            else:
                self._astream = st
        return c

    def _corrupt(self, exc: BaseException, where: str) -> MediaError:
        return MediaError(self.path, f"truncated or corrupt: {where} ({_detail(exc)})")

    # -- video ------------------------------------------------------------

    def _require_video(self):
        if not self.info.has_video:
            raise MediaError(self.path, "no video stream")
        return self._container("video")

    def _video_seek(self, ticks: int) -> None:
        """Seek the video demuxer to the keyframe at or before ``ticks``."""
        c = self._container("video")
        if self.video_seek == "stream":
            try:
                c.seek(int(ticks), stream=self._vstream, backward=True, any_frame=False)
                self.stats["video_seeks"] += 1
            except (av.error.FFmpegError, OSError) as exc:
                # Decode from the start instead (a fresh demuxer), as players do.
                log.debug("%s: video seek failed (%s); decoding from the start", self.path, exc)
                self.video_seek = "start"
        if self.video_seek == "start":
            c = self._reopen("video")
            self.stats["video_restarts"] += 1
        self._vit = self._decode_video_iter(c, self._vstream)
        self._vcur = self._vnext = None
        self._vlast_ticks = None

    def _decode_video_iter(self, container, stream):
        return self._decoded(container, stream, "video")

    def _decoded(self, container, stream, kind: str):
        """Decoded frames of a stream, counted; a decoding failure is a MediaError."""
        gen = container.decode(stream)
        while True:
            try:
                frame = next(gen)
            except StopIteration:
                return
            except (av.error.FFmpegError, OSError, ValueError) as exc:
                raise self._corrupt(exc, f"{kind} decoding failed") from None
            self.stats[f"{kind}_frames"] += 1
            yield frame

    def _pull_video(self):
        """Next decoded video frame as ``(frame, pts_ticks)``, or None at the end."""
        if self._vnext is not None:
            item, self._vnext = self._vnext, None
            return item
        if self._vit is None:
            return None
        frame = next(self._vit, None)
        if frame is None:
            self._vit = None  # end of stream: the next read seeks again
            return None
        ticks = frame.pts if frame.pts is not None else frame.dts
        if ticks is None:  # no timestamp at all: one nominal frame later
            step = max(1, round(1.0 / (self.info.fps or 25.0) / self._vstream.time_base))
            ticks = 0 if self._vlast_ticks is None else self._vlast_ticks + step
        self._vlast_ticks = ticks
        return frame, ticks

    def _locate_video(self, t: float):
        """Position the decoder on the frame displayed at ``t`` and return it.

        After the call, :meth:`_pull_video` yields the frames that follow.
        """
        self._require_video()
        st = self._vstream
        tb = st.time_base
        target = math.floor((t + _T_EPS) / tb)
        first = st.start_time if st.start_time is not None else 0
        prev = self._vcur
        backoff = None
        # Continue decoding (no seek) when t is a little after the current frame.
        if not (
            prev is not None
            and (self._vit is not None or self._vnext is not None)
            and prev[1] <= target
            and (target - prev[1]) * tb <= _FORWARD_DECODE_LIMIT
        ):
            prev = None
            backoff = 1.0  # seconds before t for a re-seek if the seek lands late
            self._video_seek(max(target, first))
        while True:
            item = self._pull_video()
            if item is None:
                break
            if item[1] > target:
                if prev is not None:
                    self._vnext = item  # keep it for the next read
                elif backoff is not None and target > first:
                    # The seek landed after t (coarse index): seek further back.
                    back = math.floor((t - backoff) / tb)
                    backoff = backoff * 4 if back > first else None
                    self._video_seek(max(back, first))
                    continue
                else:
                    prev = item  # t is before the first frame: clamp
                break
            prev = item
        if prev is None:
            raise MediaError(
                self.path, f"truncated or corrupt: no video frame decoded at {t:.3f} s"
            )
        self._vcur = prev
        return prev[0]

    def _to_rgb(self, frame, size: int | None) -> np.ndarray:
        if size is None:
            return frame.to_ndarray(format="rgb24")
        w, h = frame.width, frame.height
        if w <= h:
            nw, nh = size, max(1, int(round(h * size / w)))
        else:
            nw, nh = max(1, int(round(w * size / h))), size
        return frame.to_ndarray(format="rgb24", width=nw, height=nh, interpolation="BILINEAR")

    def read_frame(self, t: float, size: int | None = None) -> np.ndarray:
        """The video frame displayed at time ``t``.

        Parameters
        ----------
        t : float
            Seconds. The frame is the last one whose pts is <= t; times before
            the first / after the last frame give the first / last frame.
        size : int, optional
            Scale (in swscale, bilinear) so that the shorter side is ``size``
            pixels, keeping the aspect ratio.

        Returns
        -------
        np.ndarray, shape (H, W, 3), uint8
            RGB.
        """
        frame = self._locate_video(float(t))
        try:
            return self._to_rgb(frame, size)
        except (av.error.FFmpegError, ValueError) as exc:
            raise self._corrupt(exc, "cannot convert video frame") from None

    def read_frames(self, t: float, num: int, size: int | None = None) -> np.ndarray:
        """``num`` consecutive frames starting at the frame displayed at ``t``.

        Parameters
        ----------
        t : float
            Seconds (as in :meth:`read_frame`).
        num : int
            Number of frames; past the end of the video the last frame repeats.
        size : int, optional
            Shorter side in pixels (see :meth:`read_frame`).

        Returns
        -------
        np.ndarray, shape (num, H, W, 3), uint8
        """
        if num < 1:
            raise ValueError(f"num must be >= 1, got {num}")
        frames = [self._locate_video(float(t))]
        while len(frames) < num:
            item = self._pull_video()
            if item is None:  # past the end: repeat the last frame
                frames.extend([frames[-1]] * (num - len(frames)))
                break
            frames.append(item[0])
            self._vcur = item
        try:
            arrays = [self._to_rgb(f, size) for f in frames]
        except (av.error.FFmpegError, ValueError) as exc:
            raise self._corrupt(exc, "cannot convert video frame") from None
        return np.stack(arrays)

    # -- audio ------------------------------------------------------------

    def _seek_audio(self, t: float | None) -> bool:
        """Position the audio demuxer at or before ``t`` (None: the stream's start).

        Some files refuse seeks by their audio stream (an AVI whose index marks
        no audio chunk as a keyframe, as some cameras write it: FFmpeg answers
        EPERM for every timestamp) but play from the start. The reader then
        falls back, once per file, to seeking by the video stream (whose index
        the demuxer then uses to place every stream), and if that fails too,
        to decoding from the start (a fresh demuxer, no seek).
        ``self.audio_seek`` says which mode is in use ("stream", "other" or
        "start").

        Returns
        -------
        bool
            True if the demuxer was positioned near ``t``; False if decoding
            starts at the beginning of the stream.
        """
        c = self._container("audio")
        st = self._astream
        while True:
            mode = self.audio_seek
            try:
                if mode == "stream":
                    tb = st.time_base
                    target = math.floor(t / tb) if t is not None else (st.start_time or 0)
                    c.seek(int(target), stream=st, backward=True)
                elif mode == "other":
                    # By another stream (the video's index): FFmpeg's default
                    # stream would be the audio, the only one not discarded.
                    other = next(x for x in c.streams if x is not st and x.type == "video")
                    tb = other.time_base
                    first = other.start_time or 0
                    target = first if t is None else max(math.floor(t / tb), first)
                    c.seek(int(target), stream=other, backward=True)
                else:  # "start": a fresh demuxer reads from the beginning
                    self._reopen("audio")
                    self.stats["audio_restarts"] += 1
                    return False
            except (av.error.FFmpegError, OSError, StopIteration) as exc:
                self.audio_seek = "other" if mode == "stream" else "start"
                log.debug(
                    "%s: audio %s seek failed (%s); trying %s",
                    self.path,
                    mode,
                    _detail(exc),
                    self.audio_seek,
                )
                continue
            self.stats["audio_seeks"] += 1
            return t is not None

    def _reopen(self, kind: str):
        """A fresh demuxer for ``kind`` reads, positioned at the start of the file."""
        attr = "_vc" if kind == "video" else "_ac"
        old = getattr(self, attr)
        if old is not None:
            try:
                old.close()
            except Exception:  # noqa: BLE001 - closing must never raise
                pass
            setattr(self, attr, None)
        return self._container(kind)

    def _decode_audio(self, t0: float, t1: float | None) -> _AudioChunk:
        """Decode native-rate mono audio covering ``[t0, t1]`` (t1=None: to EOF).

        Seeks to ``t0`` minus a pre-roll (decoders need a few packets of
        history), then decodes forward. If the seek lands too late (a coarse
        index), it seeks further back and retries; if no seek reaches the
        window, it decodes from the start of the stream (see :meth:`_seek_audio`).
        """
        if not self.info.has_audio:
            raise MediaError(self.path, "no audio stream")
        self._container("audio")
        st = self._astream
        sr_hint = self.info.sample_rate or 48000
        frame_size = st.codec_context.frame_size or 1024
        preroll = max(_AUDIO_PREROLL, _AUDIO_PREROLL_FRAMES * max(frame_size, 1024) / sr_hint)
        keep_from = Fraction(t0) - Fraction(_RESAMPLE_MARGIN)
        seek_t = t0 - preroll
        for attempt in range(6):
            want = seek_t if seek_t > self.info.audio_start else None
            seeked = self._seek_audio(want)
            chunk = self._collect_audio(self._ac, self._astream, keep_from, t1, skip_first=seeked)
            late = chunk.decoded == 0 or (
                chunk.origin is not None and (chunk.origin > keep_from or chunk.warmup == 0)
            )
            if not seeked or not late:
                return chunk
            # The seek landed after the window: seek further back, and in the
            # end decode from the start rather than return a short window (only
            # for a window that starts inside the audio: past its end there is
            # nothing to find).
            if attempt >= 4 and t0 >= self.info.audio_start + self.info.audio_duration:
                return chunk
            seek_t = -math.inf if attempt >= 4 else t0 - preroll - 2.0 * 4**attempt
        return chunk

    def _collect_audio(
        self, c, st, keep_from: Fraction, t1: float | None, skip_first: bool
    ) -> _AudioChunk:
        """Decode from the current position; keep samples from ``keep_from`` on.

        With ``skip_first`` (after a seek into the stream) the first decoded
        frame is only decoder warm-up: its samples lack the history of the
        previous packet, and a fresh Opus decoder trims its codec delay from it
        (and shifts its pts) as if it were the start of the stream.
        """
        chunks: list[np.ndarray] = []
        origin = None  # Fraction: time of the first kept sample
        count = 0  # samples kept so far
        sr = None
        eof = True
        decoded = warmup = 0
        clock = None  # expected start time of the next frame
        tol = Fraction(3, 2000)
        stop_at = None if t1 is None else Fraction(t1) + Fraction(_RESAMPLE_MARGIN)
        for frame in self._decoded(c, st, "audio"):
            decoded += 1
            n = frame.samples
            if n == 0 or (skip_first and decoded == 1):
                warmup += 1
                continue
            fsr = frame.sample_rate
            if sr is None:
                sr = fsr
            elif fsr != sr:
                raise MediaError(
                    self.path, f"unsupported: audio sample rate changes ({sr} -> {fsr} Hz)"
                )
            # Frame start time: follow the stream contiguously, and trust the
            # pts only when it disagrees by more than the rounding of the
            # container's timestamps (WebM/Matroska: 1 ms).
            ft = None if frame.pts is None else Fraction(frame.pts) * frame.time_base
            if clock is not None and (ft is None or abs(ft - clock) <= tol):
                ft = clock
            if ft is None:
                warmup += 1
                continue
            if clock is None:  # the first frame: the others follow it contiguously
                ft = self._on_frame_grid(ft, n, sr)
            clock = ft + Fraction(n, sr)
            if origin is None:
                if ft + Fraction(n, sr) <= keep_from:
                    warmup += 1
                    continue  # pre-roll, entirely before the window
                mono = _frame_to_mono(frame)
                skip = min(max(0, math.floor((keep_from - ft) * sr)), n - 1)
                origin = ft + Fraction(skip, sr)
                mono = mono[skip:]
            else:
                mono = _frame_to_mono(frame)
                idx = round((ft - origin) * sr)
                if idx > count:  # a gap in the stream: zero-fill
                    chunks.append(np.zeros(idx - count, np.float32))
                    count = idx
                elif idx < count:  # overlap: keep what we already have
                    drop = count - idx
                    if drop >= n:
                        continue
                    mono = mono[drop:]
            chunks.append(mono)
            count += len(mono)
            if stop_at is not None and origin + Fraction(count, sr) >= stop_at:
                eof = False
                break
        x = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        return _AudioChunk(x, origin, sr or self.info.sample_rate, eof, decoded, warmup)

    def _on_frame_grid(self, ft: Fraction, n: int, sr: int) -> Fraction:
        """The exact start time of a frame whose pts was rounded by the container.

        Matroska / WebM store times in whole milliseconds, so the first frame a
        decode keeps (after a seek, or the second one of the stream when the
        decoder drops the first) can be off by up to half a millisecond (24
        samples at 48 kHz; an Opus stream's pre-skip of 6.5 ms makes it so for
        every packet), and a window would hold the whole-track decode's samples
        shifted by that much. Codecs with frames of a constant size (Opus, AAC,
        MP3, AC-3) start every frame on a grid set by the stream's start: the
        frame is moved to the nearest grid point when that is within the time
        base's rounding. Exact time bases, variable frame sizes (Vorbis) and
        grids that cannot be read are left as they are.
        """
        tb = self._astream.time_base
        if tb is None or Fraction(tb) <= Fraction(1, sr):
            return ft  # the pts counts samples (or finer): exact already
        if self._astream.codec_context.name not in _GRID_CODECS:
            return ft
        if self._audio_grid is None:
            self._audio_grid = self._read_frame_grid()
        grid = self._audio_grid
        if not grid or grid[1] != n or grid[2] != sr:
            return ft
        point, size, _ = grid
        k = round((ft - point) * sr / size)
        snapped = point + Fraction(k * size, sr)
        return snapped if abs(snapped - ft) <= Fraction(tb) else ft

    def _read_frame_grid(self) -> tuple[Fraction, int, int] | tuple[()]:
        """(start of the stream's second frame, frame size, rate) as a whole-track decode
        places them; ``()`` if the first frames do not tell (sizes differ, no pts)."""
        frames = []
        try:  # a demuxer of its own: the reader's position is not disturbed
            with av.open(self.path, mode="r", metadata_errors="ignore") as c:
                st = _pick_stream(c, "audio")
                for other in c.streams:
                    if other is not st:
                        other.discard = av.stream.Discard.all
                for frame in c.decode(st):
                    self.stats["audio_frames"] += 1
                    if frame.samples:
                        frames.append(
                            (frame.pts, frame.time_base, frame.samples, frame.sample_rate)
                        )
                    if len(frames) == 3:
                        break
        except (av.error.FFmpegError, OSError, ValueError):
            return ()  # reading the file itself reports what is wrong with it
        if len(frames) < 3 or frames[0][0] is None:
            return ()
        (pts, tb, n0, sr), (_, _, n1, sr1), (_, _, n2, _) = frames
        if n1 != n2 or sr1 != sr:
            return ()
        return Fraction(pts) * tb + Fraction(n0, sr), n1, sr

    def _declared_audio_end(self) -> float:
        """End of the audio stream according to its header (inf if unknown)."""
        st = self._astream
        if st is not None and st.duration:
            return self.info.audio_start + float(st.duration * st.time_base)
        return math.inf

    def read_audio(
        self, t0: float = 0.0, t1: float | None = None, sample_rate: int | None = None
    ) -> np.ndarray:
        """Mono audio of the window ``[t0, t1)``.

        Parameters
        ----------
        t0 : float
            Window start (seconds).
        t1 : float, optional
            Window end (seconds); None reads to the end of the audio stream.
        sample_rate : int, optional
            Output rate in Hz (None: the native rate), via libswresample.

        Returns
        -------
        np.ndarray, shape (N,), float32
            ``N == round((t1 - t0) * sample_rate)``; sample ``i`` is at time
            ``t0 + i / sample_rate``. Channels are averaged. Parts of the window
            outside the audio stream are zeros.

        Raises
        ------
        MediaError
            No audio stream; the window lies entirely outside the audio; no
            audio decodes where the header promises some; the audio stops
            inside the window well before the end its header declares (a cut
            file: zeros would pass it off as silence); or the audio cannot be
            decoded.
        """
        t0 = float(t0)
        if t1 is not None:
            t1 = float(t1)
            if t1 < t0:
                raise ValueError(f"t1 ({t1}) must be >= t0 ({t0})")
        if sample_rate is not None and int(sample_rate) <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if not self.info.has_audio:
            raise MediaError(self.path, "no audio stream")
        if t1 is not None and t1 == t0:
            return np.zeros(0, np.float32)
        a = self.info
        chunk = self._decode_audio(t0, t1)
        declared = (a.audio_start, a.audio_start + a.audio_duration)
        if chunk.origin is None or (t1 is not None and t1 <= chunk.origin):
            inside = t0 < declared[1] and (t1 is None or t1 > declared[0])
            if inside:  # the header promises audio here, but none decodes
                raise self._undecodable(t0, t1, *declared)
            raise self._outside(t0, t1, *declared)
        sr_in = int(chunk.sr)
        sr_out = int(sample_rate or sr_in)
        data_end = float(chunk.origin + Fraction(len(chunk.x), sr_in))
        if chunk.eof:  # codec padding past the declared end is not audio
            data_end = min(data_end, self._declared_audio_end())
        cut = chunk.eof and data_end < declared[1] - _END_TOLERANCE - 0.01 * a.audio_duration
        if cut and t1 is not None and t1 > data_end:
            # Zeros here would pass a cut file off as silence.
            raise MediaError(
                self.path,
                f"truncated or corrupt: the audio stops at {data_end:.3f} s, inside the window "
                f"{self._window(t0, t1)} (the header says it ends at {declared[1]:.3f} s)",
            )
        if t1 is None:
            t1 = data_end
        if t0 >= data_end:
            raise self._outside(t0, t1, a.audio_start, data_end)
        x, origin = chunk.x, chunk.origin
        if sr_out != sr_in:
            # Resample on one grid for the whole stream (output sample k at k / sr_out
            # from time 0), whatever sample decoding started at: a window then holds
            # the samples of the whole-track decode, not a copy shifted by a
            # fraction of a sample.
            period = sr_in // math.gcd(sr_in, sr_out)
            first = Fraction(origin) * sr_in
            if first.denominator == 1:
                skip = (-int(first)) % period
                x, origin = x[skip:], origin + Fraction(skip, sr_in)
        y = resample(x, sr_in, sr_out)
        if chunk.eof:
            y = y[: max(0, round((data_end - float(origin)) * sr_out))]
        offset = round((Fraction(t0) - origin) * sr_out)
        return take(y, offset, round((t1 - t0) * sr_out))

    def check(self, min_seconds: float = 1.0, probe_seconds: float = 1.0) -> MediaInfo:
        """Validate the file for training; see :func:`check_usable`."""
        info = self.info
        if not info.has_video:
            raise MediaError(self.path, "no video stream")
        if not info.has_audio:
            raise MediaError(self.path, "no audio stream")
        if info.duration < min_seconds:
            raise MediaError(
                self.path, f"shorter than {float(min_seconds)} s ({info.duration:.2f} s)"
            )
        # AVI: a header frame count above what the index holds means a cut file.
        indexed = info.video_duration * info.fps
        if info.format_name == "avi" and info.num_frames > 1.01 * indexed + 2:
            raise MediaError(
                self.path,
                f"truncated or corrupt: header says {info.num_frames} frames, the index "
                f"{indexed:.0f}",
            )
        # Video: the first frame, then the packets of the last second.
        self._locate_video(info.video_start)
        v_end = info.video_start + info.video_duration
        last_end = self._video_tail_end(max(info.video_start, v_end - probe_seconds))
        if last_end is None:
            raise MediaError(
                self.path, f"truncated or corrupt: no video frame in the last {probe_seconds} s"
            )
        tol = _END_TOLERANCE + 0.01 * info.video_duration + (1.0 / info.fps if info.fps else 0)
        if last_end < v_end - tol:
            raise MediaError(
                self.path,
                f"truncated or corrupt: video stops at {last_end:.2f} s, header says {v_end:.2f} s",
            )
        # Audio: the first and the last second (and the middle one if silent).
        a_end = info.audio_start + info.audio_duration
        head = self._decode_audio(info.audio_start, info.audio_start + probe_seconds)
        tail = self._decode_audio(max(info.audio_start, a_end - probe_seconds), None)
        for chunk, where in ((head, "start"), (tail, "end")):
            if chunk.origin is None or len(chunk.x) == 0:
                raise MediaError(
                    self.path, f"truncated or corrupt: no audio decoded at the {where}"
                )
        data_end = float(tail.origin + Fraction(len(tail.x), tail.sr))
        tol = _END_TOLERANCE + 0.01 * info.audio_duration
        if data_end < a_end - tol:
            raise MediaError(
                self.path,
                f"truncated or corrupt: audio stops at {data_end:.2f} s, header says {a_end:.2f} s",
            )
        peak = max(float(np.abs(head.x).max()), float(np.abs(tail.x).max()))
        if peak < _SILENCE_PEAK:
            mid = info.start + info.duration / 2
            middle = self._decode_audio(mid - probe_seconds / 2, mid + probe_seconds / 2)
            if len(middle.x):
                peak = max(peak, float(np.abs(middle.x).max()))
        if peak < _SILENCE_PEAK:
            raise MediaError(self.path, "silent audio")
        return info

    def _video_tail_end(self, t: float) -> float | None:
        """End time (s) of the video from ``t`` on, or None if nothing decodes.

        Demuxes every packet from the keyframe before ``t`` to the end, but
        decodes only the keyframes (enough to see that the codec data is
        sound, and much cheaper than decoding the whole last GOP).
        """
        self._container("video")
        self._video_seek(math.floor(t / self._vstream.time_base))
        c, st = self._vc, self._vstream  # the seek may have reopened the file
        tb = st.time_base
        self._vit = None  # the frame iterator is bypassed here
        cc = st.codec_context
        end = None
        decoded = 0
        cc.skip_frame = "NONKEY"
        try:
            for packet in c.demux(st):
                if packet.size and packet.pts is not None:
                    stop = (packet.pts + (packet.duration or 0)) * tb
                    end = stop if end is None else max(end, stop)
                frames = packet.decode()
                decoded += len(frames)
                self.stats["video_frames"] += len(frames)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise self._corrupt(exc, "video decoding failed near the end") from None
        finally:
            cc.skip_frame = "DEFAULT"
        return float(end) if decoded and end is not None else None

    @staticmethod
    def _window(t0: float, t1: float | None) -> str:
        return f"{t0:.3f}-{'end' if t1 is None else f'{t1:.3f}'} s"

    def _outside(self, t0: float, t1: float | None, start: float, end: float) -> MediaError:
        return MediaError(
            self.path,
            f"window {self._window(t0, t1)} is outside the audio stream ({start:.3f}-{end:.3f} s)",
        )

    def _undecodable(self, t0: float, t1: float | None, start: float, end: float) -> MediaError:
        return MediaError(
            self.path,
            f"truncated or corrupt: no audio decodes in {self._window(t0, t1)} "
            f"(the header says the audio spans {start:.3f}-{end:.3f} s)",
        )


@dataclass
class _AudioChunk:
    """Native-rate mono audio decoded by :meth:`MediaReader._decode_audio`.

    Attributes
    ----------
    x : np.ndarray, shape (n,), float32
        Samples; ``x[0]`` is at time ``origin``.
    origin : Fraction or None
        Time (seconds) of ``x[0]``; None if no sample reached the window.
    sr : int
        Native sample rate.
    eof : bool
        Decoding stopped at the end of the stream.
    decoded, warmup : int
        Frames decoded in all, and before the first kept one.
    """

    x: np.ndarray
    origin: Fraction | None
    sr: int
    eof: bool
    decoded: int
    warmup: int


# --------------------------------------------------------------------------
# Module-level conveniences
# --------------------------------------------------------------------------


def read_frame(
    path: str | os.PathLike, t: float, size: int | None = None, *, info: MediaInfo | None = None
) -> np.ndarray:
    """The frame displayed at ``t`` seconds: RGB uint8, shape (H, W, 3).

    See :meth:`MediaReader.read_frame`.
    """
    with MediaReader(path, info=info) as reader:
        return reader.read_frame(t, size)


def read_frames(
    path: str | os.PathLike,
    t: float,
    num: int,
    size: int | None = None,
    *,
    info: MediaInfo | None = None,
) -> np.ndarray:
    """:meth:`MediaReader.read_frames` of a file: ``num`` frames, (num, H, W, 3) uint8."""
    with MediaReader(path, info=info) as reader:
        return reader.read_frames(t, num, size)


def read_audio(
    path: str | os.PathLike,
    t0: float = 0.0,
    t1: float | None = None,
    sample_rate: int | None = None,
    *,
    info: MediaInfo | None = None,
) -> np.ndarray:
    """Mono float32 audio of ``[t0, t1)`` at ``sample_rate``: shape (N,).

    See :meth:`MediaReader.read_audio`.
    """
    with MediaReader(path, info=info) as reader:
        return reader.read_audio(t0, t1, sample_rate)


def check_usable(path: str | os.PathLike, min_seconds: float = 1.0) -> MediaInfo:
    """Check that a file can serve as a training video; return its info.

    Cheap: headers, then the first and the last second of each stream are
    decoded (not the whole file).

    Parameters
    ----------
    path : path-like
    min_seconds : float
        Minimum usable (audio and video overlap) duration.

    Returns
    -------
    MediaInfo
        As :func:`probe` reads it from the headers.

    Raises
    ------
    MediaError
        With reason "not a media file: ...", "no video stream", "no audio
        stream", "shorter than X s (Y s)", "truncated or corrupt: ..." or
        "silent audio".
    """
    with MediaReader(path) as reader:
        return reader.check(min_seconds)


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray | None,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 48000,
    *,
    vcodec: str = "libx264",
    acodec: str = "aac",
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    audio_bit_rate: int | None = None,
    audio_options: dict[str, str] | None = None,
    times: np.ndarray | None = None,
) -> Path:
    """Encode RGB frames and (optionally) audio into a media file.

    Audio and video packets are interleaved by time, as a real recording.

    Parameters
    ----------
    path : path-like
        Output file; the container follows the extension (.mp4, .webm, .avi,
        .m4a, .ogg, ...).
    frames : np.ndarray, shape (T, H, W, 3), uint8, or None
        RGB frames. H and W must be even for yuv420p. None writes an
        audio-only file.
    fps : float
        Nominal frame rate (the frame times are ``i / fps`` unless ``times``).
    audio : np.ndarray, shape (C, N) or (N,), float32 in [-1, 1], optional
        Audio samples, C channels (1, 2 or 6 = 5.1); sample ``j`` is at
        ``j / sample_rate`` seconds.
    sample_rate : int
        Audio sample rate in Hz.
    vcodec, acodec : str
        FFmpeg encoder names, e.g. ``libx264``/``aac`` (MP4), ``libvpx-vp9``/
        ``libopus`` (WebM), ``mjpeg``/``pcm_s16le`` (AVI; mjpeg wants
        ``pix_fmt="yuvj420p"``), ``mpeg4``/``libmp3lame`` (MP4).
    pix_fmt : str
        Encoder pixel format.
    options : dict, optional
        Video encoder options, e.g. ``{"crf": "23", "preset": "veryfast", "g": "12"}``.
    audio_bit_rate : int, optional
        Audio bit rate in bit/s.
    audio_options : dict, optional
        Audio encoder options, e.g. ``{"strict": "experimental"}`` for ``vorbis``.
    times : np.ndarray, shape (T,), optional
        Per-frame presentation times in seconds, strictly increasing (variable
        frame rate); they are stored with a 1 ms time base.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    if frames is None and audio is None:
        raise ValueError("nothing to write: frames and audio are both None")
    rate = Fraction(fps).limit_denominator(1001)
    vtb = 1 / rate
    pts = None
    if frames is not None:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}"
            )
        if times is None:
            pts = np.arange(len(frames))
        else:
            times = np.asarray(times, dtype=np.float64)
            vtb = Fraction(1, 1000)
            pts = np.round(times * 1000).astype(np.int64)
            if pts.shape != (len(frames),) or np.any(np.diff(pts) <= 0) or np.any(pts < 0):
                raise ValueError("times must be (T,), >= 0 and increasing by >= 1 ms")
    if audio is not None:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[None]
        if audio.ndim != 2 or audio.shape[0] not in _LAYOUTS:
            raise ValueError(f"audio must have 1, 2 or 6 channels, got shape {audio.shape}")
    with av.open(str(path), mode="w") as container:
        vs = None
        if frames is not None:
            vs = container.add_stream(vcodec, rate=rate, options=options or {})
            vs.width = frames.shape[2]
            vs.height = frames.shape[1]
            vs.pix_fmt = pix_fmt
            if times is not None:
                vs.codec_context.time_base = vtb
        encoder = None
        if audio is not None:
            encoder = _AudioEncoder(
                container, acodec, audio, sample_rate, audio_bit_rate, audio_options
            )
        if vs is not None:
            for arr, p in zip(frames, pts):
                if encoder is not None:  # audio up to this frame's time first
                    encoder.encode_until(float(p * vtb))
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
                vf.pts = int(p)
                vf.time_base = vtb
                container.mux(vs.encode(vf))
            container.mux(vs.encode(None))
        if encoder is not None:
            encoder.finish()
    return path


class _AudioEncoder:
    """Encode (C, N) float audio block by block, in the encoder's frame size."""

    def __init__(self, container, codec, audio, sample_rate, bit_rate, options) -> None:
        self.container = container
        self.audio = audio
        self.sample_rate = sample_rate
        layout = _LAYOUTS[audio.shape[0]]
        self.stream = container.add_stream(codec, rate=sample_rate, layout=layout)
        cc = self.stream.codec_context
        if bit_rate:
            cc.bit_rate = bit_rate
        if options:
            cc.options = dict(options)
        cc.open()  # now frame_size is known (AAC 1024, MP3 1152, Opus 960 at 48 kHz)
        self.resampler = av.AudioResampler(
            format=cc.format, layout=cc.layout, rate=sample_rate, frame_size=cc.frame_size or 1024
        )
        self.src_layout = layout
        self.pos = 0  # samples sent to the encoder

    def encode_until(self, t: float) -> None:
        """Encode the samples before time ``t`` (seconds) not encoded yet."""
        n = self.audio.shape[1]
        end = n if t >= n / self.sample_rate else int(math.ceil(t * self.sample_rate))
        block = 4096
        while self.pos < end:
            stop = min(self.pos + block, self.audio.shape[1])
            af = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(self.audio[:, self.pos : stop]),
                format="fltp",
                layout=self.src_layout,
            )
            af.sample_rate = self.sample_rate
            af.pts = self.pos
            af.time_base = Fraction(1, self.sample_rate)
            for rf in self.resampler.resample(af):
                self.container.mux(self.stream.encode(rf))
            self.pos = stop

    def finish(self) -> None:
        """Encode the rest of the audio and flush the encoder."""
        self.encode_until(math.inf)
        for rf in self.resampler.resample(None):
            self.container.mux(self.stream.encode(rf))
        self.container.mux(self.stream.encode(None))
