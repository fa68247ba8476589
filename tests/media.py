"""Real encoded test media, written with :func:`looklisten.media.video.write_video`.

Every clip is self-describing, robust to lossy coding:

* Video: frame ``i`` shows its index as a 16-bit code, 2 rows x 8 columns of
  black/white cells (bit ``k`` = row ``k // 8``, column ``k % 8``), so
  :func:`decode_index` reads the index back from any (rescaled) frame.
* Audio: every second ``k`` holds a 440 Hz tone of amplitude ``TONE_AMP`` on
  ``[k + TONE_ON, k + TONE_OFF)`` and a single-sample click of amplitude
  ``CLICK_AMP`` at ``k + CLICK_AT`` in silence, on every channel. The click gives
  sample-accurate placement, the tone the amplitude and frequency.
"""

from __future__ import annotations

import os
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from looklisten.media.video import write_video

TONE_HZ = 440.0
TONE_AMP = 0.3
TONE_ON, TONE_OFF = 0.05, 0.45
CLICK_AT = 0.75
CLICK_AMP = 0.8
CODE_BITS = 16

# name -> (extension, video encoder, audio encoder, pixel format, encoder options)
FORMATS: dict[str, tuple[str, str | None, str | None, str, dict[str, str]]] = {
    "h264-aac": (".mp4", "libx264", "aac", "yuv420p", {"preset": "ultrafast", "crf": "18"}),
    "vp9-opus": (
        ".webm",
        "libvpx-vp9",
        "libopus",
        "yuv420p",
        {"deadline": "realtime", "cpu-used": "8", "crf": "20", "b": "0"},
    ),
    "mjpeg-pcm": (".avi", "mjpeg", "pcm_s16le", "yuvj420p", {}),
    # An old digital camera's AVI: MJPEG with mono 8-bit PCM (e.g. at 11,024 Hz).
    "mjpeg-pcm8": (".avi", "mjpeg", "pcm_u8", "yuvj420p", {}),
    "mpeg4-mp3": (".mp4", "mpeg4", "libmp3lame", "yuv420p", {}),
    "h264-aac-mov": (".mov", "libx264", "aac", "yuv420p", {"preset": "ultrafast", "crf": "18"}),
    # Ogg video: PyAV's FFmpeg has no Theora encoder; VP8 + Vorbis is the Ogg it can write.
    "vp8-vorbis-ogv": (".ogv", "libvpx", "vorbis", "yuv420p", {"deadline": "realtime"}),
    "aac-m4a": (".m4a", None, "aac", "", {}),
    "opus-ogg": (".ogg", None, "libopus", "", {}),
    "vorbis-ogg": (".ogg", None, "vorbis", "", {}),
}


@dataclass
class Clip:
    """A written clip and what it contains.

    Attributes
    ----------
    path : Path
    fmt : str
        Key of :data:`FORMATS`.
    frame_times : np.ndarray, shape (T,)
        Presentation time (s) of frame ``i`` (empty without video).
    fps : float
    size : tuple (width, height)
    duration : float
        Seconds of audio written (and of video, nominally).
    sample_rate, channels : int
        Audio as written (0 without audio).
    """

    path: Path
    fmt: str
    frame_times: np.ndarray
    fps: float
    size: tuple[int, int]
    duration: float
    sample_rate: int
    channels: int
    options: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.frame_times)

    def frame_at(self, t: float) -> int:
        """Index of the frame displayed at ``t`` (clamped to the first/last)."""
        i = int(np.searchsorted(self.frame_times, t + 1e-9, side="right")) - 1
        return min(max(i, 0), self.num_frames - 1)

    def click_times(self) -> np.ndarray:
        """Times (s) of the clicks."""
        return np.arange(int(np.ceil(self.duration))) + CLICK_AT


def code_frame(index: int, width: int = 64, height: int = 48) -> np.ndarray:
    """An RGB frame showing ``index`` as 2 x 8 black/white cells: (H, W, 3) uint8."""
    img = np.zeros((height, width, 3), np.uint8)
    for bit in range(CODE_BITS):
        if (index >> bit) & 1:
            r, c = divmod(bit, 8)
            img[r * height // 2 : (r + 1) * height // 2, c * width // 8 : (c + 1) * width // 8] = (
                255
            )
    return img


def decode_index(img: np.ndarray) -> int:
    """Read back the index of :func:`code_frame`, from a frame of any size."""
    gray = np.asarray(img, np.float32).mean(axis=-1)
    h, w = gray.shape
    index = 0
    for bit in range(CODE_BITS):
        r, c = divmod(bit, 8)
        y0, y1 = r * h / 2, (r + 1) * h / 2
        x0, x1 = c * w / 8, (c + 1) * w / 8
        # the central half of the cell, away from blurred edges
        cy0, cy1 = int(y0 + (y1 - y0) / 4), int(np.ceil(y1 - (y1 - y0) / 4))
        cx0, cx1 = int(x0 + (x1 - x0) / 4), int(np.ceil(x1 - (x1 - x0) / 4))
        if gray[cy0:cy1, cx0:cx1].mean() > 128:
            index |= 1 << bit
    return index


def signal_pattern(sample_rate: int, duration: float, channels: int = 1) -> np.ndarray:
    """The tone + click pattern of the module docstring: (C, N) float32."""
    n = int(round(duration * sample_rate))
    t = np.arange(n) / sample_rate
    frac = t % 1.0
    on = (frac >= TONE_ON) & (frac < TONE_OFF)
    x = np.where(on, TONE_AMP * np.sin(2 * np.pi * TONE_HZ * t), 0.0)
    for k in range(int(np.ceil(duration))):
        i = int(round((k + CLICK_AT) * sample_rate))
        if i < n:
            x[i] = CLICK_AMP
    return np.repeat(x[None].astype(np.float32), channels, axis=0)


def make_clip(
    path: str | os.PathLike,
    fmt: str,
    duration: float = 2.0,
    fps: float = 25.0,
    sample_rate: int = 48000,
    channels: int = 2,
    size: tuple[int, int] = (64, 48),
    *,
    video: bool = True,
    audio: bool = True,
    silent: bool = False,
    times: np.ndarray | None = None,
    gop: int | None = None,
) -> Clip:
    """Write a test clip.

    Parameters
    ----------
    path : path-like
        Output file (the extension should match ``FORMATS[fmt]``).
    fmt : str
        Key of :data:`FORMATS`.
    duration : float
        Seconds of video (``duration * fps`` frames) and audio.
    fps : float
    sample_rate, channels : int
        Audio written (channels 1, 2 or 6).
    size : (width, height)
    video, audio : bool
        Leave out a stream.
    silent : bool
        Write digital silence instead of the test signal.
    times : np.ndarray, optional
        Per-frame times (variable frame rate); overrides ``duration * fps``.
    gop : int, optional
        Keyframe interval in frames.

    Returns
    -------
    Clip
    """
    ext, vcodec, acodec, pix_fmt, options = FORMATS[fmt]
    path = Path(path)
    options = dict(options)
    if gop is not None:
        options["g"] = str(gop)
    frames = frame_times = None
    if video and vcodec is not None:
        if times is not None:
            frame_times = np.asarray(times, np.float64)
        else:
            frame_times = np.arange(int(round(duration * fps))) / fps
        w, h = size
        frames = np.stack([code_frame(i, w, h) for i in range(len(frame_times))])
    samples = None
    if audio and acodec is not None:
        samples = signal_pattern(sample_rate, duration, channels)
        if silent:
            samples[:] = 0.0
    write_video(
        path,
        frames,
        fps,
        samples,
        sample_rate,
        vcodec=vcodec or "libx264",
        acodec=acodec or "aac",
        pix_fmt=pix_fmt or "yuv420p",
        options=options,
        audio_options={"strict": "experimental"} if acodec == "vorbis" else None,
        times=times,
    )
    return Clip(
        path=path,
        fmt=fmt,
        frame_times=frame_times if frame_times is not None else np.zeros(0),
        fps=fps if frames is not None else 0.0,
        size=size if frames is not None else (0, 0),
        duration=duration,
        sample_rate=sample_rate if samples is not None else 0,
        channels=channels if samples is not None else 0,
        options=options,
    )


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int) -> Path:
    """Write mono float samples in [-1, 1] as a 16-bit PCM WAV file; return its path."""
    pcm = np.round(np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return Path(path)


def truncate(src: str | os.PathLike, dst: str | os.PathLike, fraction: float = 0.5) -> Path:
    """Copy the first ``fraction`` of the bytes of ``src`` to ``dst``."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


def refuse_audio_seeks(path: str | os.PathLike) -> int:
    """Patch an AVI in place so that FFmpeg refuses every seek by its audio stream.

    Clears the keyframe flag of the audio chunks in the ``idx1`` index, as some
    cameras write it: FFmpeg's AVI demuxer then finds no entry to seek the
    audio stream to and ``seek(..., stream=audio)`` fails with EPERM, while
    seeking by the video stream, or decoding from the start, still works
    (FFmpeg plays the file). Returns the number of index entries patched.
    """
    data = bytearray(Path(path).read_bytes())
    at = data.rfind(b"idx1")
    if at < 0:
        raise ValueError(f"{path}: no idx1 index")
    size = int.from_bytes(data[at + 4 : at + 8], "little")
    patched = 0
    for e in range(at + 8, at + 8 + size, 16):
        if data[e + 2 : e + 4] == b"wb":  # an audio chunk: clear AVIIF_KEYFRAME
            data[e + 4 : e + 8] = bytes(4)
            patched += 1
    Path(path).write_bytes(bytes(data))
    return patched
