"""Synthetic demo data: files decode, annotations are consistent and match the content."""

from __future__ import annotations

import json
from importlib import resources

import av
import numpy as np
import pytest

from looklisten.data import demo_data
from looklisten.data.demo_data import (
    DEFAULT_CLASSES,
    SIZE_RANGE,
    TWO_OBJECT_FRACTION,
    box_at,
    clip_background,
    label_at,
    load_annotations,
    make_demo_data,
    sounding_object,
    stamp_index,
    stamp_sound,
)

SEED = 3
N_CLIPS = 6


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    make_demo_data(out, videos=N_CLIPS, seed=SEED, workers=2, progress=False)
    return out


@pytest.fixture(scope="module")
def anns(demo):
    return load_annotations(demo)


def _decode(path):
    """(frames (T, H, W, 3) uint8, mono audio float32, audio rate, container info)."""
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        info = {
            "rate": float(v.average_rate),
            "width": v.codec_context.width,
            "height": v.codec_context.height,
            "channels": a.codec_context.channels,
            "sample_rate": a.codec_context.sample_rate,
            "duration": c.duration / 1e6,
        }
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(v)])
    with av.open(str(path)) as c:
        chunks = [
            f.to_ndarray().reshape(f.layout.nb_channels, -1).mean(0) for f in c.decode(audio=0)
        ]
    return frames, np.concatenate(chunks).astype(np.float32), info


def _ncc(window: np.ndarray, rec: np.ndarray) -> float:
    """Peak normalised cross-correlation of ``window`` with the stretches of ``rec`` it overlaps."""
    n, m = len(window), len(rec)
    nfft = 1 << (n + m - 1).bit_length()
    # c[k] = sum_i window[i] * rec[i - k + m - 1]: rec shifted to start at k - m + 1.
    c = np.fft.irfft(np.fft.rfft(window, nfft) * np.fft.rfft(rec[::-1], nfft), nfft)[: n + m - 1]
    # Energy of the part of rec that lies under the window, per shift.
    e2 = np.concatenate([[0.0], np.cumsum(rec.astype(np.float64) ** 2)])
    k = np.arange(n + m - 1)
    lo, hi = np.clip(m - 1 - k, 0, m), np.clip(m - 1 - k + n, 0, m)
    energy = e2[hi] - e2[lo]
    ok = energy > 0.1 * energy.max()
    return float(np.max(np.abs(c[ok]) / (np.sqrt(energy[ok]) * np.linalg.norm(window) + 1e-12)))


def test_assets_present_and_small():
    root = resources.files("looklisten").joinpath("assets").joinpath("stamps")
    index = stamp_index()
    assert len(index) >= 40
    assert set(DEFAULT_CLASSES) <= set(index)
    total = 0
    for entry in index.values():
        for key in ("image", "sound"):
            f = root.joinpath(entry[key])
            assert f.is_file(), entry[key]
            total += len(f.read_bytes())
        assert 0.3 <= entry["sound_duration"] <= 6.5
    lic = root.joinpath("LICENSE.md").read_text(encoding="utf-8")
    assert "tuxpaint-stamps-default" in lic and "GPL" in lic
    assert total < 8e6


def test_files_decode(demo, anns):
    assert sorted(anns) == [f"clip_{k:05d}.mp4" for k in range(N_CLIPS)]
    for name, ann in anns.items():
        frames, audio, info = _decode(demo / name)
        assert frames.shape == (90, 224, 224, 3)
        assert info["rate"] == pytest.approx(15.0)
        assert (info["width"], info["height"]) == (224, 224)
        assert info["channels"] == 1 and info["sample_rate"] == ann["sample_rate"] == 48000
        assert info["duration"] == pytest.approx(6.0, abs=0.1)
        assert len(audio) == pytest.approx(6.0 * 48000, abs=0.05 * 48000)
        assert np.abs(audio).max() > 0.3


def test_annotations_consistent(anns):
    n_two = 0
    for ann in anns.values():
        assert ann["duration"] == 6.0 and ann["fps"] == 15.0
        assert (ann["width"], ann["height"]) == (224, 224)
        assert ann["split_hint"] is None
        objs = ann["objects"]
        assert ann["labels"] == [o["label"] for o in objs]
        assert len(set(ann["labels"])) == len(objs) in (1, 2)
        n_two += len(objs) == 2
        for o in objs:
            assert o["label"] in DEFAULT_CLASSES
            assert o["category"] == stamp_index()[o["label"]]["category"]
            assert len(o["boxes"]) == 90
            for x0, y0, x1, y1 in o["boxes"]:
                assert 0 <= x0 < x1 <= 224 and 0 <= y0 < y1 <= 224
                assert 0.2 * 224 <= ((x1 - x0) * (y1 - y0)) ** 0.5 <= SIZE_RANGE[1] * 224 + 1
            if not ann["moving"]:
                assert all(b == o["boxes"][0] for b in o["boxes"])
        if len(objs) == 2:  # side by side, no overlap
            for a, b in zip(objs[0]["boxes"], objs[1]["boxes"]):
                assert a[2] <= b[0] or b[2] <= a[0]
        segs = ann["sounding"]
        assert segs[0]["start"] == 0.0 and segs[-1]["end"] == ann["duration"]
        for s, nxt in zip(segs, segs[1:]):
            assert s["end"] == nxt["start"] and s["object"] != nxt["object"]
        assert all(0 <= s["object"] < len(objs) and s["end"] > s["start"] for s in segs)
        if len(objs) == 1:
            assert len(segs) == 1
        else:
            assert 2 <= len(segs) <= 3
    assert n_two == round(TWO_OBJECT_FRACTION * N_CLIPS)
    assert any(a["moving"] for a in anns.values()) and not all(a["moving"] for a in anns.values())


def test_helpers(anns):
    ann = next(a for a in anns.values() if len(a["sounding"]) > 1)
    for i in range(90):
        t = i / 15.0
        assert box_at(ann, 0, t) == tuple(ann["objects"][0]["boxes"][i])
        assert box_at(ann, 0, t + 0.5 / 15) == tuple(ann["objects"][0]["boxes"][i])
    assert box_at(ann, 0, 100.0) == tuple(ann["objects"][0]["boxes"][-1])
    s0, s1 = ann["sounding"][0], ann["sounding"][1]
    assert sounding_object(ann, 0.0) == s0["object"]
    assert sounding_object(ann, s0["end"] - 1e-3) == s0["object"]
    assert sounding_object(ann, s1["start"]) == s1["object"]
    assert sounding_object(ann, ann["duration"]) == ann["sounding"][-1]["object"]
    assert label_at(ann, s1["start"] + 0.01) == ann["objects"][s1["object"]]["label"]


def test_deterministic(demo, tmp_path):
    make_demo_data(tmp_path, videos=N_CLIPS, seed=SEED, workers=1, progress=False)
    a = (demo / "annotations.jsonl").read_text()
    b = (tmp_path / "annotations.jsonl").read_text()
    assert a == b
    make_demo_data(tmp_path / "other", videos=N_CLIPS, seed=SEED + 1, workers=1, progress=False)
    assert (tmp_path / "other" / "annotations.jsonl").read_text() != a


def test_pixels_match_boxes(demo, anns):
    for name, ann in anns.items():
        frames, _, _ = _decode(demo / name)
        bg = clip_background(SEED, int(name[5:10]), (224, 224)).astype(np.float32)
        for i in (0, 44, 89):
            frame = frames[i].astype(np.float32)
            diff = np.abs(frame - bg).mean(axis=2)
            outside = np.ones((224, 224), bool)
            for o in range(len(ann["objects"])):
                x0, y0, x1, y1 = box_at(ann, o, i / 15.0)
                outside[max(y0 - 2, 0) : y1 + 2, max(x0 - 2, 0) : x1 + 2] = False
                inside = diff[y0:y1, x0:x1]
                # The object covers a good part of its box ...
                assert (inside > 20).mean() > 0.2, (name, i, o)
                # ... and reaches each side of it (the box is tight).
                for band in (inside[:3], inside[-3:], inside[:, :3], inside[:, -3:]):
                    assert band.max() > 20, (name, i, o)
            # Outside the boxes the frame is the background (up to compression).
            assert diff[outside].mean() < 4.0, (name, i)
            assert np.percentile(diff[outside], 99) < 20.0, (name, i)


def test_audio_matches_sounding_object(demo, anns):
    """Every 1 s window holds sound; it is the sounding object's recording, not another's."""
    sr = 48000
    for name, ann in anns.items():
        _, audio, _ = _decode(demo / name)
        labels = ann["labels"]
        others = [c for c in DEFAULT_CLASSES if c not in labels][:1]
        for seg in ann["sounding"]:
            heard = labels[seg["object"]]
            starts = np.arange(seg["start"], seg["end"] - 1.0 + 1e-9, 0.25)
            scores = {c: [] for c in [*labels, *others]}
            for t0 in starts:
                w = audio[int(t0 * sr) : int((t0 + 1.0) * sr)]
                assert np.sqrt(np.mean(w**2)) > 0.02, (name, t0)
                assert label_at(ann, t0 + 0.5) == heard
                for c in scores:
                    scores[c].append(_ncc(w, stamp_sound(c, sr)))
            best = {c: max(v) for c, v in scores.items()}
            assert best[heard] > 0.5, (name, seg, best)
            for c in scores:
                if c != heard:
                    assert best[heard] > 2 * best[c], (name, seg, best)
                    wins = np.mean(np.array(scores[heard]) > np.array(scores[c]))
                    assert wins >= 0.75, (name, seg, c, wins)


def test_package_reader_agrees_with_annotations(demo, anns):
    """looklisten.media.video's reader sees the frame / audio the annotations describe."""
    from looklisten.media.video import read_audio, read_frame

    name, ann = next((n, a) for n, a in anns.items() if a["moving"])
    frames, audio, _ = _decode(demo / name)
    for t in (0.0, 1.0, 2.02, 3.5, 5.99):
        i = demo_data.frame_index(ann, t)
        assert i == min(int(t * 15 + 1e-6), 89)
        assert np.array_equal(read_frame(demo / name, t), frames[i]), t
    w = read_audio(demo / name, 2.0, 3.0, 48000)
    ref = audio[2 * 48000 : 3 * 48000]
    assert len(w) == len(ref)
    assert np.corrcoef(w, ref)[0, 1] > 0.99


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        make_demo_data(tmp_path, videos=2, classes=["no_such_stamp"], progress=False)
    with pytest.raises(ValueError):
        make_demo_data(tmp_path, videos=2, size=(255, 192), progress=False)


def test_class_override(tmp_path):
    make_demo_data(
        tmp_path,
        videos=3,
        seed=1,
        classes=["dog", "violin"],
        duration=2.0,
        workers=1,
        progress=False,
    )
    anns = load_annotations(tmp_path)
    assert len(anns) == 3
    for ann in anns.values():
        assert set(ann["labels"]) <= {"dog", "violin"}
        assert len(ann["objects"][0]["boxes"]) == 30
        assert ann["sounding"][-1]["end"] == 2.0
    assert json.loads((tmp_path / "annotations.jsonl").read_text().splitlines()[0])["file"] == (
        "clip_00000.mp4"
    )


def test_module_exports():
    assert callable(demo_data.available_classes)
    assert set(DEFAULT_CLASSES) <= set(demo_data.available_classes())


# --------------------------------------------------------------------------- digits

DIGIT_SEED = 7


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """Digits clips of both exemplar splits: {split: (folder, annotations)}."""
    out = {}
    for split, n in (("train", 5), ("test", 4)):
        d = tmp_path_factory.mktemp(f"digits-{split}")
        # the shipped exemplars as they are, 6 s (vary: test_vary_* below)
        make_demo_data(
            d,
            videos=n,
            seed=DIGIT_SEED,
            kind="digits",
            split=split,
            duration=6.0,
            vary=False,
            progress=False,
        )
        out[split] = (d, load_annotations(d))
    return out


def test_digit_assets_small_licensed_and_split():
    root = resources.files("looklisten").joinpath("assets").joinpath("digits")
    size = sum(f.stat().st_size for f in root_path(root).rglob("*") if f.is_file())
    assert size < 3_000_000, size
    lic = root.joinpath("LICENSE.md").read_text(encoding="utf-8")
    assert "CC BY-SA 3.0" in lic and "GPL" in lic and "espeak-ng" in lic
    index = demo_data.digit_index()
    train, test = demo_data.digit_voices("train"), demo_data.digit_voices("test")
    assert len(train) >= 20 and len(test) >= 10 and not set(train) & set(test)
    # No espeak-ng accent or variant of the test voices is used for training.
    settings = {v["name"]: v["settings"].get("voice", "") for v in index["voices"]}
    train_parts = set().union(*(set(settings[n].split("+")) for n in train)) - {""}
    test_parts = set().union(*(set(settings[n].split("+")) for n in test)) - {""}
    assert not train_parts & test_parts, train_parts & test_parts
    assert {"tuxpaint-en", "tuxpaint-en-gb"} <= set(test)  # the human speakers: test only
    for split, per in (("train", 250), ("test", 100)):
        images, labels, source = demo_data._digit_images(split)
        assert images.shape == (10 * per, 28, 28) and images.dtype == np.uint8
        assert np.array_equal(np.bincount(labels, minlength=10), [per] * 10)
        assert len(np.unique(source)) == len(source)


def root_path(traversable):
    from pathlib import Path

    return Path(str(traversable))


def test_digit_clips_draw_from_their_split(digits):
    voices = {s: set(demo_data.digit_voices(s)) for s in ("train", "test")}
    for split, (folder, anns) in digits.items():
        for name, ann in anns.items():
            assert (folder / name).is_file()
            assert ann["kind"] == "digits" and ann["split"] == split
            assert ann["voice"] in voices[split]
            assert 1 <= len(ann["objects"]) <= 2
            for obj in ann["objects"]:
                assert obj["label"] in demo_data.DIGIT_CLASSES
                assert obj["category"] == "digits"
                assert obj["exemplar"].startswith(f"mnist-{split}-")


def test_digit_pixels_match_boxes(digits):
    for split, (folder, anns) in digits.items():
        for name, ann in anns.items():
            frames, _, _ = _decode(folder / name)
            bg = clip_background(DIGIT_SEED, int(name[5:10]), (224, 224)).astype(np.float32)
            frame = frames[30].astype(np.float32)
            diff = np.abs(frame - bg).mean(axis=2)
            outside = np.ones((224, 224), bool)
            for o in range(len(ann["objects"])):
                x0, y0, x1, y1 = box_at(ann, o, 30 / 15.0)
                outside[max(y0 - 2, 0) : y1 + 2, max(x0 - 2, 0) : x1 + 2] = False
                inside = diff[y0:y1, x0:x1]
                assert (inside > 40).mean() > 0.1, (split, name, o)  # strokes in the box
                for band in (inside[:3], inside[-3:], inside[:, :3], inside[:, -3:]):
                    assert band.max() > 10, (split, name, o)  # ... reaching each side
            assert diff[outside].mean() < 4.0, (split, name)


def test_digit_audio_is_the_voice_saying_the_sounding_digit(digits):
    sr = 48000
    for split, (folder, anns) in digits.items():
        for name, ann in anns.items():
            _, audio, _ = _decode(folder / name)
            seg = max(ann["sounding"], key=lambda s: s["end"] - s["start"])
            heard = ann["labels"][seg["object"]]
            starts = np.arange(seg["start"], min(seg["end"] - 0.7, seg["start"] + 1.5), 0.1)
            windows = [audio[int(t * sr) : int((t + 0.7) * sr)] for t in starts]
            scores = {
                d: max(_ncc(w, demo_data.digit_sound(ann["voice"], int(d), sr)) for w in windows)
                for d in demo_data.DIGIT_CLASSES
            }
            assert scores[heard] > 0.5, (split, name, scores)
            assert scores[heard] == max(scores.values()), (split, name, scores)


def test_digit_arguments(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        make_demo_data(tmp_path, videos=1, kind="letters", progress=False)
    with pytest.raises(ValueError, match="split"):
        make_demo_data(tmp_path, videos=1, split="test", progress=False)  # stamps: one exemplar
    with pytest.raises(ValueError, match="split"):
        make_demo_data(tmp_path, videos=1, kind="digits", split="val", progress=False)
    with pytest.raises(ValueError, match="unknown classes"):
        make_demo_data(tmp_path, videos=1, kind="digits", classes=["dog"], progress=False)
    assert not list(tmp_path.iterdir())


def test_make_demo_data_cli_digits(tmp_path, capsys):
    from looklisten.cli.main import main

    out = tmp_path / "d"
    args = ["make-demo-data", str(out), "--videos", "2", "--kind", "digits", "--split", "test"]
    assert main([*args, "--workers", "1"]) == 0
    assert "digits (test exemplars)" in capsys.readouterr().out
    anns = load_annotations(out)
    assert len(anns) == 2 and all(a["split"] == "test" for a in anns.values())


def test_digits_training_sets_vary_every_exemplar_by_default(tmp_path):
    from looklisten.data.augment import VOICE_RANGES

    train = make_demo_data(
        tmp_path / "train", videos=4, seed=3, kind="digits", workers=1, progress=False
    )
    anns = load_annotations(train)
    assert len(anns) == 4
    for ann in anns.values():
        assert ann["duration"] == demo_data.DIGITS_TRAIN_DURATION
        assert len(ann["voice_variants"]) == len(ann["labels"]) + sum(
            s.get("source") == "offscreen" for s in ann["sounding"]
        )
        for v in ann["voice_variants"]:
            assert VOICE_RANGES["speed"][0] <= v["speed"] <= VOICE_RANGES["speed"][1]
        assert all("strokes" in o for o in ann["objects"])
    # the same clips without variation: same labels and voices, other pixels and sound
    plain = make_demo_data(
        tmp_path / "plain", videos=4, seed=3, kind="digits", vary=False, workers=1, progress=False
    )
    for name, ann in load_annotations(plain).items():
        assert "voice_variants" not in ann and "strokes" not in ann["objects"][0]
        assert ann["labels"] == anns[name]["labels"] and ann["voice"] == anns[name]["voice"]
        f0, a0, _ = _decode(plain / name)
        f1, a1, _ = _decode(train / name)
        assert np.abs(f0.astype(float) - f1).mean() > 0.5 and np.abs(a0 - a1).mean() > 1e-3
    # test sets keep the held-out writers and voices as they are
    test = make_demo_data(
        tmp_path / "test", videos=2, kind="digits", split="test", workers=1, progress=False
    )
    for ann in load_annotations(test).values():
        assert "voice_variants" not in ann and ann["duration"] == demo_data.DEFAULT_DURATION
    with pytest.raises(ValueError, match="vary"):
        make_demo_data(tmp_path / "s", videos=1, vary=True, progress=False)


def test_vary_voice_and_strokes():
    from looklisten.data.augment import vary_strokes, vary_voice

    sr = 16000
    t = np.arange(sr // 2) / sr
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    outs = [vary_voice(x, sr, np.random.default_rng(k)) for k in range(12)]
    assert any("reverb" in p for _, p in outs) and any("reverb" not in p for _, p in outs)
    for y, p in outs:
        assert y.dtype == np.float32 and np.isfinite(y).all()
        assert abs(np.abs(y).max() - 0.5) < 1e-4  # the input's peak
        n = len(x) / p["speed"]  # the speed is annotated to 3 decimals
        if "reverb" not in p:
            assert abs(len(y) - n) < 1 + 1e-3 * n
            # the tone moves with the speed: its strongest frequency is 440 * speed
            f = np.fft.rfftfreq(len(y), 1 / sr)[np.argmax(np.abs(np.fft.rfft(y)))]
            assert abs(f - 440 * p["speed"]) < 6, (f, p)
        else:
            assert abs(len(y) - (n + p["reverb"]["rt60"] * sr)) < 20  # rt60: 3 decimals too
    y0, p0 = vary_voice(x, sr, np.random.default_rng(5))
    y1, p1 = vary_voice(x, sr, np.random.default_rng(5))
    assert p0 == p1 and np.array_equal(y0, y1)

    img = np.zeros((28, 28), np.uint8)
    img[6:22, 12:16] = 255  # a "1"
    a, p = vary_strokes(img, np.random.default_rng(0))
    assert a.shape == (56, 56) and a.dtype == np.uint8
    assert set(p) == {"rotate_deg", "shear", "scale", "stroke"}
    ink = (a > 128).sum() / 4  # at 28 px
    assert 0.4 * 64 < ink < 2.5 * 64  # still a stroke of about its area
    b, q = vary_strokes(img, np.random.default_rng(0))
    assert np.array_equal(a, b) and p == q


def test_digit_voices_subset(tmp_path):
    human = [v for v in demo_data.digit_voices("test") if v.startswith("tuxpaint-")]
    out = make_demo_data(
        tmp_path / "h", videos=3, kind="digits", split="test", voices=human, progress=False
    )
    assert {a["voice"] for a in load_annotations(out).values()} <= set(human)
    with pytest.raises(ValueError, match="unknown voices"):
        make_demo_data(tmp_path / "x", videos=1, kind="digits", voices=human, progress=False)


# --------------------------------------------------------------------------- layouts

ANY_SEED = 11
ANY_SIZE = (96, 64)  # small and not square: fast, and both axes are checked
ANY_CLIPS = 40


def _small(out, **kw):
    kw = {"videos": 4, "seed": 5, "size": (64, 48), "fps": 4.0, "duration": 1.0, **kw}
    return make_demo_data(out, workers=1, progress=False, **kw)


@pytest.fixture(scope="module")
def anywhere(tmp_path_factory):
    out = tmp_path_factory.mktemp("anywhere")
    W, H = ANY_SIZE
    make_demo_data(
        out,
        videos=ANY_CLIPS,
        seed=ANY_SEED,
        size=ANY_SIZE,
        fps=4.0,
        duration=1.0,
        layout="anywhere",
        workers=2,
        progress=False,
    )
    return out, load_annotations(out)


def test_train_layout_is_the_default_and_unchanged(tmp_path):
    """layout="train" is what every existing caller gets: the same clips as before."""
    default = (_small(tmp_path / "a") / "annotations.jsonl").read_text()
    train = (_small(tmp_path / "b", layout="train") / "annotations.jsonl").read_text()
    assert default == train
    anns = [json.loads(line) for line in default.splitlines()]
    assert all("layout" not in a for a in anns)
    # Pinned: labels, sizes and placement of seed 5 (the annotations of before layouts).
    assert [a["labels"] for a in anns] == [["frog"], ["firetruck"], ["elephant"], ["duck", "cow"]]
    assert [[o["boxes"][0] for o in a["objects"]] for a in anns] == [
        [[11, 15, 48, 40]],
        [[8, 4, 58, 25]],
        [[16, 5, 50, 34]],
        [[2, 13, 29, 36], [35, 7, 62, 26]],
    ]
    for a in anns:  # large, and two objects in the left and right halves
        for o in a["objects"]:
            x0, y0, x1, y1 = o["boxes"][0]
            assert ((x1 - x0) * (y1 - y0)) ** 0.5 >= 0.3 * 48
        if len(a["objects"]) == 2:
            left, right = sorted(a["objects"], key=lambda o: o["boxes"][0][0])
            assert left["boxes"][0][2] <= 32 <= right["boxes"][0][0]


def test_anywhere_layout_spreads_sizes_and_positions(anywhere):
    _, anns = anywhere
    W, H = ANY_SIZE
    assert len(anns) == ANY_CLIPS
    sizes, centres, splits = [], [], set()
    for ann in anns.values():
        assert ann["layout"] == "anywhere"
        assert (ann["width"], ann["height"]) == (W, H)
        objs = ann["objects"]
        for o in objs:
            assert len(o["boxes"]) == 4
            for x0, y0, x1, y1 in o["boxes"]:
                assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
            if not ann["moving"]:
                assert all(b == o["boxes"][0] for b in o["boxes"])
            x0, y0, x1, y1 = o["boxes"][0]
            sizes.append(((x1 - x0) * (y1 - y0)) ** 0.5 / H)
            centres.append(((x0 + x1) / 2 / W, (y0 + y1) / 2 / H))
        if len(objs) == 2:  # never overlap, in any frame
            for a, b in zip(objs[0]["boxes"], objs[1]["boxes"]):
                apart_x, apart_y = a[2] <= b[0] or b[2] <= a[0], a[3] <= b[1] or b[3] <= a[1]
                assert apart_x or apart_y, (ann["file"], a, b)
            a, b = objs[0]["boxes"][0], objs[1]["boxes"][0]
            splits.add("x" if a[2] <= b[0] or b[2] <= a[0] else "y")
    sizes, centres = np.array(sizes), np.array(centres)
    assert sizes.max() <= demo_data.ANYWHERE_SIZE_RANGE[1] + 0.02
    assert (sizes < 0.25).sum() >= 5 and (sizes > 0.5).sum() >= 2, np.sort(sizes)
    near_edge = np.minimum(centres, 1 - centres).min(axis=1) < 0.15
    assert near_edge.sum() >= 3, centres
    # Not clustered at the centre: centres reach every quarter of the frame's width and height.
    for axis in (0, 1):
        assert centres[:, axis].min() < 0.25 and centres[:, axis].max() > 0.75
    assert splits == {"x", "y"}  # the line between two objects is vertical or horizontal
    assert sum(len(a["objects"]) == 2 for a in anns.values()) == round(
        TWO_OBJECT_FRACTION * ANY_CLIPS
    )


def test_anywhere_pixels_match_boxes(anywhere):
    folder, anns = anywhere
    W, H = ANY_SIZE
    smallest = min(
        anns.values(),
        key=lambda a: min((b[2] - b[0]) * (b[3] - b[1]) for o in a["objects"] for b in o["boxes"]),
    )
    two = next(a for a in anns.values() if len(a["objects"]) == 2 and a["moving"])
    for ann in (smallest, two):
        name = ann["file"]
        frames, _, _ = _decode(folder / name)
        bg = clip_background(ANY_SEED, int(name[5:10]), ANY_SIZE).astype(np.float32)
        for i in (0, 3):
            diff = np.abs(frames[i].astype(np.float32) - bg).mean(axis=2)
            outside = np.ones((H, W), bool)
            for o in range(len(ann["objects"])):
                x0, y0, x1, y1 = box_at(ann, o, i / ann["fps"])
                outside[max(y0 - 2, 0) : y1 + 2, max(x0 - 2, 0) : x1 + 2] = False
                inside = diff[y0:y1, x0:x1]
                assert (inside > 20).mean() > 0.2, (name, i, o)
                # Tight: the object reaches each side (faintly: a thin part of a tiny
                # sprite, e.g. a violin's bow 8 px high, is blurred by the encoder).
                for band in (inside[:2], inside[-2:], inside[:, :2], inside[:, -2:]):
                    assert band.max() > 12, (name, i, o)
            assert diff[outside].mean() < 4.0, (name, i)


def test_anywhere_layout_digits(tmp_path):
    out = _small(tmp_path, videos=6, kind="digits", split="test", layout="anywhere")
    for ann in load_annotations(out).values():
        assert ann["layout"] == "anywhere" and ann["kind"] == "digits"
        for o in ann["objects"]:
            assert o["exemplar"].startswith("mnist-test-")
            for x0, y0, x1, y1 in o["boxes"]:
                assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 48


def test_bad_layout(tmp_path):
    with pytest.raises(ValueError, match="layout.*'train', 'anywhere'"):
        make_demo_data(tmp_path, videos=1, layout="centre", progress=False)
    assert not list(tmp_path.iterdir())


def test_make_demo_data_cli_layout(tmp_path, capsys, monkeypatch):
    import functools

    from looklisten.cli.main import main

    # Small, short clips: the CLI has no options for size and duration.
    fast = functools.partial(make_demo_data, size=(64, 48), fps=4.0, duration=1.0)
    monkeypatch.setattr(demo_data, "make_demo_data", fast)
    out = tmp_path / "d"
    assert main(["make-demo-data", str(out), "--videos", "2", "--layout", "anywhere"]) == 0
    assert "anywhere" in capsys.readouterr().out
    anns = load_annotations(out)
    assert len(anns) == 2 and all(a["layout"] == "anywhere" for a in anns.values())
    assert all(a["width"] == 64 for a in anns.values())
    with pytest.raises(SystemExit):
        main(["make-demo-data", str(out), "--layout", "centre"])


def test_mixed_layout_is_clip_by_clip_the_train_or_the_anywhere_clip(tmp_path):
    """layout="mixed" (the demo's training sets): each clip is exactly the clip that
    "train" or "anywhere" makes at its place, about half of each."""
    kw = {"videos": 12, "size": (64, 48)}
    made = {
        layout: load_annotations(_small(tmp_path / layout, layout=layout, **kw))
        for layout in ("train", "anywhere", "mixed")
    }
    picked = []
    for name, ann in made["mixed"].items():
        layout = ann.get("layout", "train")
        assert ann == made[layout][name], name
        picked.append(layout)
    assert 3 <= picked.count("anywhere") <= 9, picked
