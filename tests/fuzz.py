"""Mutated media files and a reader pass over them, for the fuzz test of tests/test_faults.py.

Run as a script in a child process (a crash or a hang then fails the test
instead of killing the test run)::

    python tests/fuzz.py FILE...

For each file it probes, reads the first, a middle and the last frame and the
audio windows around them through :class:`looklisten.media.video.MediaReader`
and the training check, and prints one JSON line: ``{"file", "ok": true}`` or
``{"file", "error": "<the MediaError's line>"}``, or ``{"file", "exception":
"<type>: <message>"}`` for anything else (a bug: the reader let an exception
through).
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

import numpy as np


def mutate(data: bytes, seed: int) -> bytes:
    """One of four damages, chosen and placed by ``seed``: flipped bytes, a cut,
    a zeroed block, a block copied over another place."""
    rng = np.random.default_rng(seed)
    b = bytearray(data)
    n = len(b)
    kind = seed % 4
    if kind == 0:  # a few random bytes anywhere
        for i in rng.integers(0, n, int(rng.integers(1, 16))):
            b[i] = int(rng.integers(0, 256))
    elif kind == 1:  # cut
        b = b[: int(rng.integers(n // 20, n))]
    elif kind == 2:  # zero a block
        at, size = int(rng.integers(0, n)), int(rng.integers(16, 2048))
        b[at : at + size] = bytes(len(b[at : at + size]))
    else:  # copy a block over another place
        src, dst, size = (
            int(rng.integers(0, n)),
            int(rng.integers(0, n)),
            int(rng.integers(16, 4096)),
        )
        chunk = b[src : src + size]
        b[dst : dst + len(chunk)] = chunk
    return bytes(b)


def read_everything(path: str) -> None:
    from looklisten.media.video import MediaReader

    with MediaReader(path) as r:
        info = r.info
        if info.has_video:
            for t in (info.video_start, info.start + info.duration / 2, info.end - 1e-3):
                img = r.read_frame(t, size=32)
                assert img.ndim == 3 and img.shape[-1] == 3, img.shape
        if info.has_audio:
            end = info.audio_start + info.audio_duration
            for t in (info.audio_start, (info.audio_start + end) / 2, max(end - 1.0, 0.0)):
                x = r.read_audio(t, t + 1.0, 16000)
                assert x.shape == (16000,) and np.isfinite(x).all(), x.shape
    with MediaReader(path) as r:
        r.check(min_seconds=0.5)


def main(paths: list[str]) -> None:
    from looklisten.media.video import MediaError

    for path in paths:
        row: dict = {"file": path}
        try:
            read_everything(path)
            row["ok"] = True
        except MediaError as e:
            row["error"] = str(e)
        except Exception as e:  # noqa: BLE001 - reported, and the test fails
            row["exception"] = f"{type(e).__name__}: {e}"
            row["traceback"] = traceback.format_exc(limit=4)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main(sys.argv[1:])
