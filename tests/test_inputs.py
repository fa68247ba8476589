"""One input path: every entry point feeds the network the same frame and audio for a time.

The reference is ``model.inputs.video(clip, t)`` (looklisten.inputs.prepare).
The inputs each entry point actually hands the network are captured with
forward pre-hooks on the vision trunk and the spectrogram, on real encoded
demo clips (H.264 + AAC at 48 kHz; the tiny preset resamples to 16 kHz).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from looklisten.core.config import get_config
from looklisten.data.demo_data import load_annotations, make_demo_data
from looklisten.data.sampler import FileSource, MemorySource, PairDataset, PairSpec
from looklisten.data.scan import scan_folder
from looklisten.data.shards import ShardSet, shard_folder
from looklisten.evaluation.localization import evaluate_localization, sample_times
from looklisten.inputs.prepare import (
    VisionTransform,
    frame_lookup_time,
    frame_time,
    to_mono_float,
)
from looklisten.media.video import MediaReader, write_video
from looklisten.models.checkpoint import get_model, save_checkpoint
from looklisten.models.network import create_model
from looklisten.tasks.embed import embed_audio, embed_image, embed_video
from looklisten.tasks.localize import localize, localize_video
from looklisten.tasks.search import embed_query


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    data = root / "data"
    make_demo_data(data, videos=2, seed=5, workers=1)
    cfg = get_config("tiny", arch="avol")
    torch.manual_seed(0)
    run = root / "run"
    save_checkpoint(run, create_model(cfg), cfg)
    model = get_model(run, "cpu")  # the cached model every path below loads from `run`
    captured = {"image": [], "wave": []}
    model.vision.register_forward_pre_hook(
        lambda m, a: captured["image"].append(a[0].detach().clone())
    )
    model.spectrogram.register_forward_pre_hook(
        lambda m, a: captured["wave"].append(a[0].detach().clone())
    )
    clip = sorted(data.glob("clip_*.mp4"))[0]
    return {"data": data, "run": run, "model": model, "cfg": cfg, "clip": clip, "cap": captured}


def take(setup):
    """The inputs captured since the last call: ((B, ...) images, (K, N) waves)."""
    cap = setup["cap"]
    img = torch.cat(cap["image"]) if cap["image"] else None
    wav = torch.cat(cap["wave"]) if cap["wave"] else None
    cap["image"].clear()
    cap["wave"].clear()
    return img, wav


def reference(setup, t):
    return setup["model"].inputs.video(setup["clip"], t)


def test_the_frame_at_t_is_the_nearest_frame():
    assert frame_time(0.0, 15.0, 30) == 2.0
    assert frame_lookup_time(2.0, 15.0) == pytest.approx(2.0 + 0.5 / 15)
    assert frame_lookup_time(2.0, 0.0) == 2.0  # unknown rate: as asked


def test_training_sources_and_shards_feed_the_reference(setup, tmp_path):
    """FileSource decodes windows from seek points; with AAC's noise substitution that is
    other noise (see looklisten.inputs.prepare), so the sources get the clip with its
    sound as PCM (the same H.264 frames)."""
    cfg, model = setup["cfg"], setup["model"]
    data = tmp_path / "pcm"
    data.mkdir()
    with MediaReader(setup["clip"]) as r:
        frames = r.read_frames(0.0, r.info.num_frames)
        track = r.read_audio(0.0, None, 48000)
    write_video(data / "clip.mov", frames, 15.0, track, 48000, acodec="pcm_s16le")
    write_video(
        data / "other.mov", frames[::-1].copy(), 15.0, track[::-1].copy(), 48000, acodec="pcm_s16le"
    )
    setup = {**setup, "clip": data / "clip.mov"}
    manifest = scan_folder(data, progress=False, use_cache=False)
    videos = manifest.videos
    vid = next(i for i, v in enumerate(videos) if v.path == "clip.mov")
    v = videos[vid]
    index = 30
    t = frame_time(v.video_start, v.fps, index)
    ref_img, ref_wav = reference(setup, t)

    class Fixed:  # the sampler's draw, fixed to this video and time
        def sample(self, rng):
            return PairSpec(vid, index, t, vid, t, 1)

    transform = VisionTransform(cfg.vision)
    shards = tmp_path / "shards"
    shard_folder(data, shards, cfg, workers=1, progress=False)
    sources = {
        "files": FileSource(data, videos, cfg),
        "memory": MemorySource(data, videos, cfg, workers=1, progress=False),
        "shards": ShardSet.open(shards).source(videos, cfg),
    }
    for name, source in sources.items():
        item = PairDataset(Fixed(), source, 1, seed=0, train=False)[0]
        image = transform(item["frame"][None], train=False)  # Trainer._inputs in eval mode
        wave = item["audio"][None]
        if name == "shards":  # JPEG frames and float16 audio: the same frame, not the bits
            assert (image - ref_img).abs().mean() < 0.05, name
            torch.testing.assert_close(wave, ref_wav, atol=1e-3, rtol=0)
        else:
            assert torch.equal(image, ref_img), name
            assert torch.equal(wave, ref_wav), name
        model(image, wave)  # the network takes them as they are
    take(setup)


@pytest.mark.parametrize("t", [2.0, 2.1, 0.2])  # on the frame grid, between frames, near the start
def test_embedding_search_and_localisation_feed_the_reference(setup, t):
    run, clip = setup["run"], setup["clip"]
    ref_img, ref_wav = reference(setup, t)

    take(setup)
    out = embed_video(run, clip, hop=0.1, device="cpu")
    img, wav = take(setup)
    i = int(np.argmin(np.abs(out["timestamps"] - t)))
    assert out["timestamps"][i] == pytest.approx(t)
    assert torch.equal(img[i : i + 1], ref_img)
    assert torch.equal(wav[i : i + 1], ref_wav)

    model = setup["model"]
    embed_query(model, video=clip, at=t, modality="image")
    img, _ = take(setup)
    assert torch.equal(img, ref_img)
    embed_query(model, video=clip, at=t, modality="audio")
    _, wav = take(setup)
    assert torch.equal(wav, ref_wav)

    heat, times = localize_video(run, clip, hop=t, mode="crop", device="cpu")
    img, wav = take(setup)
    assert times[1] == pytest.approx(t)
    assert torch.equal(img[1:2], ref_img)
    assert torch.equal(wav[1:2], ref_wav)


def test_localisation_evaluation_feeds_the_reference(setup):
    data, clip = setup["data"], setup["clip"]
    ann = load_annotations(data)[clip.name]
    times = sample_times(ann, 3, setup["cfg"].audio.clip_seconds)
    take(setup)
    evaluate_localization(
        data,
        setup["run"],
        mode="crop",
        times_per_clip=3,
        max_clips=1,
        split="all",
        device="cpu",
        negatives=False,  # the true samples only (the negatives re-use their frames)
    )
    img, wav = take(setup)
    assert len(img) == len(times)
    for k, t in enumerate(times):
        ref_img, ref_wav = reference(setup, t)
        assert torch.equal(img[k : k + 1], ref_img)
        assert torch.equal(wav[k : k + 1], ref_wav)


# ---------------------------------------------------------------------------
# Sample types and layouts
# ---------------------------------------------------------------------------

SR = 48000


def _signal_as(dtype_layout: str) -> np.ndarray:
    """One signal exactly representable in every type: k / 128, k in [-128, 127]."""
    k = np.random.default_rng(0).integers(-128, 128, SR).astype(np.int64)
    k[:200] = np.arange(-100, 100)
    dtype, _, layout = dtype_layout.partition("-")
    x = {
        "float32": (k / 128).astype(np.float32),
        "float64": k / 128,
        "int16": (k * 256).astype(np.int16),
        "int32": (k * 2**24).astype(np.int32),
        "uint8": (k + 128).astype(np.uint8),
    }[dtype]
    if layout == "CN":
        x = np.stack([x, x])
    elif layout == "NC":
        x = np.stack([x, x], axis=1)
    return x


KINDS = ["float32", "float64", "int16", "int32", "uint8", "int16-CN", "int16-NC", "float32-CN"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_sample_type_and_layout_is_the_same_sound(setup, kind):
    model = setup["model"]
    x = _signal_as(kind)
    want = _signal_as("float32")
    np.testing.assert_array_equal(to_mono_float(x), want)
    assert torch.equal(model.inputs.audio(x, sr=SR), model.inputs.audio(want, sr=SR))
    e1, _ = embed_audio(model, x, sr=SR, hop=0.5)
    e0, _ = embed_audio(model, want, sr=SR, hop=0.5)
    np.testing.assert_array_equal(e1, e0)
    with MediaReader(setup["clip"]) as r:
        frame = r.read_frame(1.0)
    np.testing.assert_array_equal(
        localize(model, frame, x, sr=SR, mode="crop"),
        localize(model, frame, want, sr=SR, mode="crop"),
    )


def test_float_and_uint8_pictures_are_the_same_picture(setup):
    model = setup["model"]
    with MediaReader(setup["clip"]) as r:
        frame = r.read_frame(1.0)
    as_float = frame.astype(np.float32) / 255
    np.testing.assert_array_equal(embed_image(model, frame), embed_image(model, as_float))
    assert torch.equal(model.inputs.image(frame), model.inputs.image(as_float))
    wave = _signal_as("float32")
    np.testing.assert_array_equal(
        localize(model, frame, wave, sr=SR), localize(model, as_float, wave, sr=SR)
    )
