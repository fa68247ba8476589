"""The cost of reading audio windows from a file whose audio stream refuses seeks.

Some camera AVIs (MJPEG + 8-bit PCM, an ``idx1`` index that marks no audio
chunk as a keyframe) refuse every seek by the audio stream; FFmpeg plays them
from the start. :class:`looklisten.media.video.MediaReader` then seeks by the
video stream instead ("other"), and decodes from the start only if that fails
too ("start"). This script writes one long such file (``--minutes``, MJPEG
160x120 at 11 fps, mono u8 PCM at 11,024 Hz, as the camera's), and times
``--windows`` random 1 s windows (48 kHz output, the paper's rate) read
through each mode, in the same run, as ratios against the normal audio-stream
seek on the unpatched copy of the same file:

* ``stream``: the unpatched file, seek by the audio stream (the baseline);
* ``other``: the patched file (what the reader does by itself);
* ``start``: the patched file, forced to decode from the start for every window
  (the last resort; its cost grows with the window's position in the file).

Every mode's windows are checked against the baseline's, sample for sample.

Usage::

    python benchmarks/bench_audio_seek.py [--minutes 10] [--windows 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from media import make_clip, refuse_audio_seeks  # noqa: E402

from looklisten.media.video import MediaReader  # noqa: E402


def read_all(path: Path, times: np.ndarray, mode: str | None) -> tuple[float, list[np.ndarray]]:
    r = MediaReader(path)
    if mode is not None:
        r.audio_seek = mode
    t = time.perf_counter()
    out = [r.read_audio(t0, t0 + 1.0, 48000) for t0 in times]
    dt = time.perf_counter() - t
    assert mode is None or r.audio_seek == mode, (mode, r.audio_seek)
    r.close()
    return dt, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--windows", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory() as tmp:
        plain = make_clip(
            Path(tmp) / "plain.avi", "mjpeg-pcm8", seconds, 11.0, 11024, 1, size=(160, 120)
        ).path
        patched = Path(tmp) / "patched.avi"
        patched.write_bytes(plain.read_bytes())
        refuse_audio_seeks(patched)
        rng = np.random.default_rng(0)
        times = rng.uniform(0, seconds - 1.0, args.windows)
        runs = {"stream": (plain, None), "other": (patched, "other"), "start": (patched, "start")}
        best = {k: np.inf for k in runs}
        ref = None
        for _ in range(args.repeats):  # interleaved, so that machine load hits all alike
            for name, (path, mode) in runs.items():
                dt, wins = read_all(path, times, mode)
                best[name] = min(best[name], dt)
                if ref is None:
                    ref = wins
                diff = max(float(np.abs(a - b).max()) for a, b in zip(wins, ref))
                assert diff == 0.0, f"{name}: windows differ from the baseline by {diff}"
    base = best["stream"]
    print(
        json.dumps(
            {
                "file_minutes": args.minutes,
                "windows": args.windows,
                "ms_per_window": {k: round(1000 * v / args.windows, 2) for k, v in best.items()},
                "ratio_vs_stream_seek": {k: round(v / base, 2) for k, v in best.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
