"""AVE+MF and AVE+OF: inflated trunks, TV-L1 flow, multi-frame / flow items, end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from media import decode_index, make_clip

from looklisten.core.config import get_config
from looklisten.data.demo_data import make_demo_data
from looklisten.data.sampler import square_crop
from looklisten.inputs.flow import FLOW_ZERO, clip_flow, dequantize, quantize, stack_fields
from looklisten.inputs.prepare import (
    VisionTransform,
    frame_time,
    item_from_clip,
    item_from_reader,
    still_item,
)
from looklisten.media.video import MediaReader, read_frames
from looklisten.models.motion import TimeConv3d, TwoStreamTrunk, inflate
from looklisten.models.network import create_model
from looklisten.models.trunks import VGGTrunk

pytest.importorskip("cv2")

TINY_RUN = {
    "sampler.val_fraction": 0.34,  # 6 clips: 4 to train on, 2 held out
    "train.batch_size": 8,
    "train.epoch_pairs": 16,
    "train.val_pairs": 8,
    "train.epochs": 1,
}


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random grey texture (TV-L1 needs gradients everywhere), uint8 (h, w)."""
    import cv2

    rng = np.random.default_rng(seed)
    x = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2.0)
    x = (x - x.min()) / (x.max() - x.min())
    return (x * 255).astype(np.uint8)


# -- presets -------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "small-", "tiny-"])
def test_motion_presets_at_every_size(prefix):
    base = {"": "ots", "small-": "small", "tiny-": "tiny"}[prefix]
    b = get_config(base)
    mf, of = get_config(f"{prefix}ave-mf"), get_config(f"{prefix}ave-of")
    for c in (mf, of):
        assert c.model.arch == "ave"
        assert c.model.widths == b.model.widths and c.vision.image_size == b.vision.image_size
    assert mf.vision.num_frames > 1 and mf.vision.flow_frames == 0
    assert of.vision.flow_frames == 10 and of.vision.num_frames == 1


# -- trunks ------------------------------------------------------------------------


def test_inflated_conv_of_a_static_clip_is_the_2d_conv():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=True)
    t = 3
    c3 = TimeConv3d(3, 8, (t, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
    with torch.no_grad():
        c3.weight.copy_(conv.weight.unsqueeze(2).repeat(1, 1, t, 1, 1) / t)
        c3.bias.copy_(conv.bias)
    frame = torch.randn(2, 3, 20, 20)
    clip = frame.unsqueeze(2).repeat(1, 1, 5, 1, 1)  # static: 5 copies
    out3, out2 = c3(clip), conv(frame)
    assert out3.shape == (2, 8, 5, 10, 10)
    for k in range(5):  # every time step, the edges included (replicate padding in time)
        torch.testing.assert_close(out3[:, :, k], out2, rtol=1e-5, atol=1e-5)
    # a moving clip does not give the per-frame 2D convolution: time is really seen
    moving = torch.randn(2, 3, 5, 20, 20)
    assert not torch.allclose(c3(moving)[:, :, 2], conv(moving[:, :, 2]), atol=1e-3)


@pytest.mark.parametrize("train_mode", [False, True])
def test_inflated_trunk_of_a_static_clip_is_the_2d_trunk(train_mode):
    torch.manual_seed(0)
    trunk = VGGTrunk(3, (8, 8, 16, 16), conv1_stride=2)
    with torch.no_grad():  # non-trivial BatchNorm statistics and affine parameters
        for m in trunk.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    trunk3 = inflate(trunk, 3)
    trunk.train(train_mode)
    trunk3.train(train_mode)
    frame = torch.randn(3, 3, 48, 48)
    clip = frame.unsqueeze(2).repeat(1, 1, 4, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(trunk3(clip), trunk(frame), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(trunk3(frame), trunk(frame), rtol=1e-4, atol=1e-4)


def test_two_stream_trunk_fuses_at_the_14x14_stage():
    # ave-of's layout (224 px, conv1 stride 2), narrow widths to stay cheap
    cfg = get_config("ave-of", **{"model.widths": (8, 8, 16, 24)})
    trunk = create_model(cfg).vision
    assert isinstance(trunk, TwoStreamTrunk)
    x = torch.randn(1, 3 + 20, 224, 224)
    with torch.no_grad():
        rgb, flow = trunk.rgb(x[:, :3]), trunk.flow(x[:, 3:])
        assert rgb.shape == flow.shape == (1, 16, 14, 14)  # conv3 + pool: the 14x14 stage
        assert trunk(x).shape == (1, 24, 14, 14)
        # the flow really enters: changing it changes the output
        y = x.clone()
        y[:, 3:] = torch.randn_like(y[:, 3:])
        assert not torch.allclose(trunk(x), trunk(y))


# -- optical flow --------------------------------------------------------------------


def test_flow_of_a_known_translation_has_the_right_sign_and_magnitude():
    cfg = get_config("tiny-ave-of").vision
    big = _texture(120, 120)
    # content moves right by 3 px and up by 2 px per frame
    frames = np.stack([big[20 + 2 * k : 92 + 2 * k, 20 - 3 * k : 92 - 3 * k] for k in range(3)])
    frames = np.repeat(frames[..., None], 3, axis=-1)  # RGB
    q = clip_flow(frames, cfg)
    assert q.shape == (2, 72, 72, 2) and q.dtype == np.uint8
    f = dequantize(q, cfg.flow_bound)[:, 12:-12, 12:-12]  # away from the borders
    assert np.median(f[..., 0]) == pytest.approx(3.0, abs=0.25)
    assert np.median(f[..., 1]) == pytest.approx(-2.0, abs=0.25)
    # a static pair has (almost) no flow
    still = clip_flow(np.stack([frames[0], frames[0]]), cfg)
    assert np.abs(dequantize(still, cfg.flow_bound)).max() < 0.1


def test_flow_quantisation():
    bound = 6.0
    f = np.array([-100.0, -6.0, -3.0, 0.0, 0.02, 3.0, 6.0, 100.0], np.float32)
    q = quantize(f, bound)
    assert q.dtype == np.uint8
    assert q[3] == FLOW_ZERO and q.min() == 1 and q.max() == 255  # zero exact, clipped
    back = dequantize(q, bound)
    np.testing.assert_allclose(back[1:-1], f[1:-1], atol=bound / 127 / 2 + 1e-6)
    fields = np.arange(2 * 3 * 4 * 2, dtype=np.uint8).reshape(2, 3, 4, 2)
    stacked = stack_fields(fields)
    assert stacked.shape == (3, 4, 4)
    np.testing.assert_array_equal(stacked[..., 2:4], fields[1])


# -- transforms ----------------------------------------------------------------------


def test_flip_negates_flow_x_and_mirrors_it():
    v = get_config("tiny-ave-of").vision
    S = v.image_size
    v = type(v)(**{**v.__dict__, "resize": S, "brightness": 0.0, "saturation": 0.0})
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (S, S, 3), dtype=np.uint8)
    flow = np.zeros((S, S, 2 * v.flow_frames), np.float32)
    flow[..., 0::2] = np.linspace(0.5, 4.0, S)[None, :, None]  # dx > 0, varying along x
    flow[..., 1::2] = -1.5
    item = np.concatenate([rgb, quantize(flow, v.flow_bound)], axis=-1)
    batch = np.repeat(item[None], 16, axis=0)
    tf = VisionTransform(v)
    plain = tf(batch[:1], train=False)[0]
    out = tf(batch, train=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == (16, 3 + 2 * v.flow_frames, S, S)
    flipped = 0
    for x in out:
        if torch.allclose(x, plain):
            continue
        flipped += 1
        torch.testing.assert_close(x[:3], plain[:3].flip(-1))  # mirrored RGB
        torch.testing.assert_close(x[3::2], -plain[3::2].flip(-1))  # dx negated, mirrored
        torch.testing.assert_close(x[4::2], plain[4::2].flip(-1))  # dy kept
    assert 0 < flipped < 16
    # the network sees flow / bound
    dx = plain[3, S // 2, S // 2].item() * v.flow_bound
    assert dx == pytest.approx(flow[S // 2, S // 2, 0], abs=v.flow_bound / 127)


def test_multi_frame_crop_and_jitter_are_the_same_for_all_frames():
    v = get_config("tiny-ave-mf").vision
    K, R = v.num_frames, v.resize
    rng = np.random.default_rng(1)
    base = rng.integers(40, 200, (R + 8, R + 4, 3)).astype(np.uint8)
    # frame k = base + 5k: any crop offset or jitter that differs between frames shows
    clip = np.stack([base + 5 * k for k in range(K)]).astype(np.uint8)
    item = square_crop(clip, R, rng)  # the dataset's crop: one position for all frames
    assert item.shape == (K, R, R, 3)
    for k in range(K):
        np.testing.assert_array_equal(item[k].astype(int) - item[0], 5 * k)
    tf = VisionTransform(type(v)(**{**v.__dict__, "brightness": 0.0, "saturation": 0.0}))
    out = tf(np.stack([item] * 8), train=True, generator=torch.Generator().manual_seed(3))
    assert out.shape == (8, 3, K, v.image_size, v.image_size)
    std = torch.tensor(v.std).view(1, 3, 1, 1)
    for k in range(K):  # the same crop and flip: differences are the constant 5k
        d = (out[:, :, k] - out[:, :, 0]) * std * 255
        torch.testing.assert_close(d, torch.full_like(d, 5.0 * k), atol=1e-3, rtol=0)
    # with jitter: a static clip stays static (one brightness / saturation per example)
    static = np.repeat(item[:1], K, axis=0)
    out = VisionTransform(v)(
        np.stack([static] * 8), train=True, generator=torch.Generator().manual_seed(4)
    )
    for k in range(1, K):
        torch.testing.assert_close(out[:, :, k], out[:, :, 0])


def test_still_items_are_static_clips():
    img = np.random.default_rng(0).integers(0, 256, (9, 9, 3), dtype=np.uint8)
    mf, of = get_config("tiny-ave-mf").vision, get_config("tiny-ave-of").vision
    a = still_item(img, mf)
    assert a.shape == (mf.num_frames, 9, 9, 3) and (a == img).all()
    b = still_item(img, of)
    assert b.shape == (9, 9, 23) and (b[..., :3] == img).all() and (b[..., 3:] == FLOW_ZERO).all()


# -- reading K frames with one seek ------------------------------------------------------


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    return make_clip(path, "h264-aac", duration=12.0, fps=25, sample_rate=16000, channels=1, gop=10)


def test_reader_decodes_k_consecutive_frames_with_one_seek(long_clip):
    i = 200
    with MediaReader(long_clip.path) as reader:
        frames = reader.read_frames(long_clip.frame_times[i] + 0.001, 5)
        assert [decode_index(f) for f in frames] == list(range(i, i + 5))
        assert reader.stats["video_seeks"] == 1
        # from the keyframe at or before frame 200, plus the decoder's look-ahead
        assert reader.stats["video_frames"] <= 5 + 10 + 16 < long_clip.num_frames


def test_items_from_the_reader_take_the_window_around_the_frame(long_clip):
    mf = get_config("tiny-ave-mf").vision
    mf = type(mf)(**{**mf.__dict__, "resize": 48})
    i = 100
    with MediaReader(long_clip.path) as reader:
        item = item_from_reader(reader, long_clip.frame_times[i] + 0.01, mf)
        assert [decode_index(f) for f in item] == [98, 99, 100, 101, 102]
        assert reader.stats["video_seeks"] == 1
        first = item_from_reader(reader, long_clip.frame_times[1] + 0.01, mf)
        assert [decode_index(f) for f in first] == [0, 0, 1, 2, 3]  # clamped at the start
        last = item_from_reader(reader, long_clip.frame_times[-1] + 0.01, mf)
        n = long_clip.num_frames
        assert [decode_index(f) for f in last] == [n - 3, n - 2, n - 1, n - 1, n - 1]
    # the in-memory cache picks the same frames
    all_frames = read_frames(long_clip.path, 0.0, 8, size=48)
    clip_item = item_from_clip(all_frames, None, 1, mf)
    assert [decode_index(f) for f in clip_item] == [0, 0, 1, 2, 3]


# -- end to end ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    make_demo_data(root, videos=6, seed=0, workers=2, progress=False, duration=3.0)
    return root


def _moving_clip(root):
    """A demo clip whose objects move."""
    for line in (root / "annotations.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["moving"]:
            return root / rec["file"]
    raise AssertionError("no moving clip in the demo data")


def test_flow_from_the_cache_equals_flow_from_the_file(clips):
    """MemorySource (flow once per clip) and FileSource / embedding (flow of the window) agree."""
    v = get_config("tiny-ave-of").vision
    path = _moving_clip(clips)
    with MediaReader(path) as reader:
        info = reader.info
        n = info.num_frames
        frames = reader.read_frames(info.video_start, n, size=v.resize)
        i = 20
        from_file = item_from_reader(reader, frame_time(info.video_start, info.fps, i), v)
    flows = clip_flow(frames[: i + 8], v)  # enough of the clip for frame 20's window
    from_cache = item_from_clip(frames[: i + 8], flows, i, v)
    assert from_cache.shape == from_file.shape == (v.resize, v.resize, 3 + 2 * v.flow_frames)
    np.testing.assert_array_equal(from_cache, from_file)
    assert np.abs(dequantize(from_cache[..., 3:], v.flow_bound)).max() > 0.5  # the clip moves


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["tiny-ave-mf", "tiny-ave-of"])
def test_motion_variants_train_end_to_end_and_embed(clips, tmp_path, monkeypatch, preset):
    from looklisten.tasks.embed import embed_image, embed_video
    from looklisten.training.trainer import train

    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    cfg = get_config(preset, **TINY_RUN)
    run = tmp_path / "run"
    summary = train(clips, run, cfg, progress=False, cache="memory")
    assert summary["steps"] == 2 and 0.0 <= summary["val_avc_accuracy"] <= 1.0
    clip = _moving_clip(clips)
    out = embed_video(run, clip, hop=1.0)
    d = cfg.model.embed_dim
    assert out["image_embedding"].shape == out["audio_embedding"].shape == (4, d)
    np.testing.assert_allclose(np.linalg.norm(out["image_embedding"], axis=1), 1.0, atol=1e-5)
    # frames at different times (different motion) embed differently
    assert not np.allclose(out["image_embedding"][1], out["image_embedding"][2])
    still = embed_image(run, np.full((50, 70, 3), 128, np.uint8))
    assert still.shape == (1, d)
    # a search query from a video moment embeds the same frame window / flow as the index
    from looklisten.models.checkpoint import load_model
    from looklisten.tasks.search import embed_query

    model = load_model(run)
    for k in (1, 2):
        t = float(out["timestamps"][k])
        q = embed_query(model, video=clip, at=t, modality="image")
        np.testing.assert_allclose(q["vector"], out["image_embedding"][k], atol=1e-5)
        assert not np.allclose(q["vector"], still[0], atol=1e-3)
