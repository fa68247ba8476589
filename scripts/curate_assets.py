#!/usr/bin/env python
"""Curate the Tux Paint stamps that ship with looklisten (for the demo data set).

Source: the Debian package ``tuxpaint-stamps-default`` (GPL-2), unpacked, e.g.::

    apt-get download tuxpaint-stamps-default
    dpkg-deb -x tuxpaint-stamps-default_*.deb /tmp/tux
    python scripts/curate_assets.py /tmp/tux

A stamp is kept when it has a photo cut-out ``NAME.png`` *and* a recorded sound
``NAME.ogg`` of the thing itself (``NAME_desc*.ogg`` / ``NAME_<lang>.ogg`` are
spoken descriptions and never used), and when:

* the picture is big enough (visible extent >= 96 px on its longest side) and
  mostly opaque (not a faint glow);
* the sound is not mostly silence and lasts >= 0.3 s after trimming its quiet
  ends (25 dB below its loudest 20 ms);
* the sound is not a copy of an earlier stamp's sound (the first, in path
  order, is kept);
* the category is not one whose sounds are speech rather than the object
  (``symbols/``: spoken letters and digits, cartoon faces;
  ``seasonal/hanukkah/``: spoken dreidel letters on near-identical pictures).

Each kept stamp becomes ``<out>/NAME.png`` (RGBA, cropped to its visible extent,
downscaled to at most 160 px on its longest side) and ``<out>/NAME.opus``
(mono Ogg Opus at 24 kHz, quiet ends trimmed, at most 6 s, peak -1 dBFS), plus
``index.json`` and ``LICENSE.md``. Sounds are decoded with
:func:`looklisten.media.video.read_audio`. Re-running replaces the previous output.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from looklisten.media.video import read_audio  # noqa: E402

PACKAGE = "tuxpaint-stamps-default"
STAMPS_REL = Path("usr/share/tuxpaint/stamps")
DOC_REL = Path("usr/share/doc") / PACKAGE

# Categories whose "sound" is speech, not the object (see module docstring).
EXCLUDED_PREFIXES = ("symbols/", "seasonal/hanukkah/")

MIN_IMAGE_SIDE = 96  # px, visible extent of the original picture
MIN_MEAN_ALPHA = 0.5  # mean opacity of the visible pixels
ALPHA_FLOOR = 8  # alpha below this counts as transparent
MIN_SECONDS = 0.3
MIN_ACTIVE = 0.3  # fraction of 20 ms frames that are not silence
SILENCE_DB = -40.0  # relative to the loudest 20 ms frame
SILENCE_ABS_DB = -55.0  # dBFS: anything below is silence regardless
TRIM_DB = -25.0  # quiet ends (relative to the loudest 20 ms frame) are trimmed
PEAK = 10 ** (-1 / 20)  # -1 dBFS


def _log(msg: str) -> None:
    print(msg, flush=True)


def _mono(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=0)
    return np.ascontiguousarray(x.reshape(-1))


def _frame_db(x: np.ndarray, sr: int, frame_s: float = 0.02) -> np.ndarray:
    n = max(1, int(round(sr * frame_s)))
    m = len(x) // n
    if m == 0:
        return np.array([20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-9)])
    f = x[: m * n].reshape(m, n)
    return 20 * np.log10(np.sqrt(np.mean(f**2, axis=1)) + 1e-9)


def _active(db: np.ndarray) -> np.ndarray:
    return (db > db.max() + SILENCE_DB) & (db > SILENCE_ABS_DB)


def process_sound(x: np.ndarray, sr: int, max_seconds: float) -> tuple[np.ndarray | None, str]:
    """Check, trim, cap and normalise one sound; returns (audio or None, reason)."""
    if len(x) < MIN_SECONDS * sr:
        return None, f"sound too short ({len(x) / sr:.2f} s)"
    peak = float(np.max(np.abs(x)))
    if peak < 1e-3:
        return None, f"silent (peak {peak:.1e})"
    db = _frame_db(x, sr)
    active = _active(db)
    if active.mean() < MIN_ACTIVE:
        return None, f"mostly silence ({active.mean():.0%} active)"
    # Trim the silent ends (keep 20 ms of margin), then cap the length.
    hop = int(round(sr * 0.02))
    idx = np.flatnonzero(active & (db > db.max() + TRIM_DB))
    start = max(0, (idx[0] - 1) * hop)
    end = min(len(x), (idx[-1] + 2) * hop)
    x = x[start:end].copy()
    cut = len(x) > max_seconds * sr
    if cut:
        x = x[: int(max_seconds * sr)]
    fade_in = int(0.005 * sr)
    fade_out = int((0.05 if cut else 0.005) * sr)
    x[:fade_in] *= np.linspace(0.0, 1.0, fade_in, dtype=np.float32)
    x[-fade_out:] *= np.linspace(1.0, 0.0, fade_out, dtype=np.float32)
    if len(x) < MIN_SECONDS * sr:
        return None, f"sound too short after trimming ({len(x) / sr:.2f} s)"
    x *= PEAK / max(float(np.max(np.abs(x))), 1e-9)
    return x.astype(np.float32), ""


def process_image(path: Path, max_side: int) -> tuple[Image.Image | None, str]:
    """Crop to the visible extent and downscale (premultiplied alpha)."""
    im = Image.open(path)
    im.load()
    im = im.convert("RGBA")
    a = np.asarray(im)
    rgba = a.copy()
    rgba[rgba[..., 3] < ALPHA_FLOOR] = 0
    ys, xs = np.nonzero(rgba[..., 3])
    if len(xs) == 0:
        return None, "image fully transparent"
    rgba = rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = rgba.shape[:2]
    if max(h, w) < MIN_IMAGE_SIDE:
        return None, f"image too small ({w}x{h})"
    alpha = rgba[..., 3]
    mean_alpha = float(alpha[alpha > 0].mean()) / 255
    if mean_alpha < MIN_MEAN_ALPHA:
        return None, f"image mostly translucent (mean alpha {mean_alpha:.2f})"
    out = Image.fromarray(rgba, "RGBA")
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        out = out.convert("RGBa").resize(size, Image.Resampling.LANCZOS).convert("RGBA")
        b = np.asarray(out).copy()
        b[b[..., 3] < ALPHA_FLOOR] = 0
        ys, xs = np.nonzero(b[..., 3])
        b = b[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        out = Image.fromarray(b, "RGBA")
    return out, ""


def encode_opus(path: Path, x: np.ndarray, sr: int, bit_rate: int) -> None:
    """Mono Ogg Opus (PyAV's libopus encoder)."""
    # bitexact: fixed Ogg serial numbers, so re-runs give identical files.
    with av.open(str(path), mode="w", format="ogg", options={"fflags": "+bitexact"}) as c:
        st = c.add_stream("libopus", rate=sr, layout="mono")
        st.bit_rate = bit_rate
        cc = st.codec_context
        rs = av.AudioResampler(
            format=cc.format, layout=cc.layout, rate=sr, frame_size=cc.frame_size
        )
        for start in range(0, len(x), 4096):
            block = np.ascontiguousarray(x[None, start : start + 4096])
            fr = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
            fr.sample_rate = sr
            fr.pts = start
            fr.time_base = Fraction(1, sr)
            for r in rs.resample(fr):
                c.mux(st.encode(r))
        for r in rs.resample(None):
            c.mux(st.encode(r))
        c.mux(st.encode(None))


def package_version(root: Path) -> str:
    for name in ("changelog.Debian.gz", "changelog.gz"):
        p = root / DOC_REL / name
        if p.exists():
            first = gzip.open(p, "rt", encoding="utf-8").readline()
            m = re.match(r"\S+ \(([^)]+)\)", first)
            if m:
                return m.group(1)
    return "unknown"


def find_root(arg: Path) -> Path:
    """Accept the unpacked package root or any folder above the stamps."""
    for cand in (arg, *arg.parents):
        if (cand / STAMPS_REL).is_dir():
            return cand
    raise SystemExit(f"no {STAMPS_REL} under {arg}")


def candidates(stamps: Path) -> list[Path]:
    """``NAME.png`` files with a ``NAME.ogg`` beside them, in path order."""
    out = []
    for png in sorted(stamps.rglob("*.png")):
        if png.with_suffix(".ogg").is_file():
            out.append(png)
    return out


def _sound_key(x: np.ndarray, sr: int) -> np.ndarray:
    """Coarse envelope for duplicate detection (100 Hz, unit norm)."""
    hop = sr // 100
    m = len(x) // hop
    env = np.sqrt(np.mean(x[: m * hop].reshape(m, hop) ** 2, axis=1))
    return env / (np.linalg.norm(env) + 1e-9)


def _is_duplicate(a: np.ndarray, b: np.ndarray) -> bool:
    if abs(len(a) - len(b)) > 2:
        return False
    n = min(len(a), len(b))
    return float(np.dot(a[:n], b[:n])) > 0.98


LICENSE_TEMPLATE = """\
# Stamp pictures and sounds

The files in this folder (`*.png`, `*.opus`) are derived from the Debian package
**{package} {version}**, the default stamp collection of **Tux Paint**
(<https://tuxpaint.org/>, upstream name `tuxpaint-stamps`,
source <http://sourceforge.net/projects/tuxpaint>).

They are licensed under the **GNU General Public License, version 2 or (at your
option) any later version** (GPL-2), like the package they come from; {gpl_where}. The
corresponding source (the original, unmodified pictures and sounds) is that
package (`apt-get source tuxpaint-stamps` / `apt-get download {package}`),
and `scripts/curate_assets.py` in this repository reproduces this folder from it.

## Changes

Made by `scripts/curate_assets.py`:

* Selected {count} stamps that have a photo cut-out (`NAME.png`) and a recorded sound of
  the object (`NAME.ogg`); spoken descriptions, speech-only categories, small or
  translucent pictures, too-short or mostly silent sounds and duplicated sounds were left out.
* Pictures: converted to RGBA, cropped to the visible (non-transparent) extent and
  downscaled to at most {size} px on the longest side (Lanczos, premultiplied alpha);
  saved as PNG.
* Sounds: decoded, mixed down to mono, resampled to {rate} Hz, quiet ends
  (25 dB below the loudest 20 ms) trimmed,
  cut to at most {max_seconds:g} s (with a short fade), peak-normalised to -1 dBFS and
  re-encoded as Ogg Opus at {kbps} kbit/s.
* `index.json` lists the stamps (name, category path in the original package, files,
  sound duration).

## Copyright (from `/usr/share/doc/{package}/copyright`)

```
{copyright}
```
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path, help="unpacked tuxpaint-stamps-default package")
    ap.add_argument(
        "--out", type=Path, default=REPO / "src/looklisten/assets/stamps", help="output folder"
    )
    ap.add_argument("--size", type=int, default=160, help="longest side of the pictures, px")
    ap.add_argument("--sample-rate", type=int, default=24000, help="sound sample rate, Hz")
    ap.add_argument("--bit-rate", type=int, default=40000, help="Opus bit rate, bit/s")
    ap.add_argument("--max-seconds", type=float, default=6.0, help="longest sound kept, s")
    ap.add_argument(
        "--gpl-text",
        type=Path,
        default=Path("/usr/share/common-licenses/GPL-2"),
        help="text of the GPL-2, copied to <out>/GPL-2.txt (skipped if missing)",
    )
    args = ap.parse_args(argv)

    root = find_root(args.source.resolve())
    stamps = root / STAMPS_REL
    version = package_version(root)
    copyright_path = root / DOC_REL / "copyright"
    copyright_text = copyright_path.read_text(encoding="utf-8").rstrip()
    sr = args.sample_rate

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("*.png"), *out.glob("*.opus"), *out.glob("*.ogg")]:
        old.unlink()

    if args.gpl_text.is_file():
        (out / "GPL-2.txt").write_text(args.gpl_text.read_text(encoding="utf-8"), encoding="utf-8")
    gpl_where = (
        "its text is in `GPL-2.txt`"
        if (out / "GPL-2.txt").is_file()
        else "see <https://www.gnu.org/licenses/old-licenses/gpl-2.0.html>"
    )

    kept: list[dict] = []
    keys: dict[str, np.ndarray] = {}
    names: set[str] = set()
    for png in candidates(stamps):
        rel = png.relative_to(stamps)
        name = png.stem
        category = rel.parent.as_posix()
        tag = f"{category}/{name}"
        if (category + "/").startswith(EXCLUDED_PREFIXES):
            _log(f"skip {tag}: speech-only category")
            continue
        if name in names:
            _log(f"skip {tag}: name already used")
            continue
        image, why = process_image(png, args.size)
        if image is None:
            _log(f"skip {tag}: {why}")
            continue
        raw = _mono(read_audio(png.with_suffix(".ogg"), 0.0, None, sr))
        sound, why = process_sound(raw, sr, args.max_seconds)
        if sound is None:
            _log(f"skip {tag}: {why}")
            continue
        key = _sound_key(sound, sr)
        dup = next((n for n, k in keys.items() if _is_duplicate(k, key)), None)
        if dup is not None:
            _log(f"skip {tag}: same sound as {dup}")
            continue
        keys[name] = key
        names.add(name)

        image.save(out / f"{name}.png", optimize=True)
        encode_opus(out / f"{name}.opus", sound, sr, args.bit_rate)
        back = _mono(read_audio(out / f"{name}.opus", 0.0, None, sr))
        kept.append(
            {
                "name": name,
                "category": category,
                "image": f"{name}.png",
                "sound": f"{name}.opus",
                "sound_duration": round(len(back) / sr, 3),
                "image_size": list(image.size),
                "source": {
                    "image": rel.as_posix(),
                    "sound": rel.with_suffix(".ogg").as_posix(),
                    "sha256": hashlib.sha256(png.with_suffix(".ogg").read_bytes()).hexdigest(),
                },
            }
        )
        _log(f"keep {tag}: {image.size[0]}x{image.size[1]}, {len(back) / sr:.2f} s")

    index = {
        "source": {"package": PACKAGE, "version": version, "license": "GPL-2+"},
        "sample_rate": sr,
        "stamps": kept,
    }
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    (out / "LICENSE.md").write_text(
        LICENSE_TEMPLATE.format(
            package=PACKAGE,
            version=version,
            gpl_where=gpl_where,
            count=len(kept),
            size=args.size,
            rate=sr,
            max_seconds=args.max_seconds,
            kbps=args.bit_rate // 1000,
            copyright=textwrap.dedent(copyright_text),
        ),
        encoding="utf-8",
    )
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    _log(f"{len(kept)} stamps, {total / 1e6:.2f} MB in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
