"""Localisation metrics, baselines and overlays (pictures and videos)."""

from __future__ import annotations

import io
from pathlib import Path

import av
import matplotlib
import numpy as np
import pytest
from PIL import Image

from looklisten.evaluation.map_metrics import (
    AUC_THRESHOLDS,
    binarize,
    box_mask,
    centre_prior,
    ciou,
    ciou_summary,
    pointing_hit,
    random_map,
    two_object_choice,
    upsample_heatmap,
    whole_image,
)
from looklisten.media.overlay import overlay, write_overlay_png, write_overlay_video
from looklisten.media.video import MediaError, write_video

# A 4x4 ramp: value 4 * row + col.
RAMP = np.arange(16, dtype=np.float32).reshape(4, 4)


# ---------------------------------------------------------------------------
# upsample_heatmap / box_mask
# ---------------------------------------------------------------------------


def test_upsample_shapes_and_values():
    h = np.array([[0.0, 0.0], [1.0, 1.0]], dtype=np.float32)
    up = upsample_heatmap(h, (4, 4))
    assert up.shape == (4, 4) and up.dtype == np.float32
    # align_corners=False: output row centres map to input rows -0.25, 0.25, 0.75, 1.25
    # (clamped), so rows are 0, 0.25, 0.75, 1.
    np.testing.assert_allclose(up[:, 0], [0.0, 0.25, 0.75, 1.0])
    batch = upsample_heatmap(np.stack([h, 1 - h]), (6, 5))
    assert batch.shape == (2, 6, 5)
    np.testing.assert_allclose(upsample_heatmap(np.full((3, 3), 0.3), (7, 9)), 0.3)
    assert upsample_heatmap(h.astype(np.float64), (3, 3)).dtype == np.float64
    same = upsample_heatmap(h, (2, 2))
    assert same is not h and np.array_equal(same, h)


def test_box_mask_integer_box_is_the_slice():
    m = box_mask((1, 2, 4, 5), (6, 7))
    ref = np.zeros((6, 7), bool)
    ref[2:5, 1:4] = True
    np.testing.assert_array_equal(m, ref)


def test_box_mask_uses_pixel_centres():
    # x in [0.6, 2.5] holds the centres 1.5 and 2.5 (columns 1, 2); y in [0, 0.4] none.
    m = box_mask((0.6, 0.0, 2.5, 1.5), (3, 4))
    assert m.sum() == 4 and m[0:2, 1:3].all()
    assert not box_mask((0.0, 0.0, 4.0, 0.4), (3, 4)).any()
    # Parts outside the image select nothing.
    assert box_mask((-10, -10, 100, 100), (3, 4)).all()


# ---------------------------------------------------------------------------
# cIoU
# ---------------------------------------------------------------------------


def test_ciou_hand_computed_median():
    # Normalised ramp = RAMP / 15; median = 7.5 / 15, so pred = values 8..15 = rows 2-3
    # (8 pixels). gt box (0,1,2,3) = rows 1-2, cols 0-1 = {(1,0),(1,1),(2,0),(2,1)}.
    # pred & gt = {(2,0),(2,1)} = 2; pred \ gt = 8 - 2 = 6 -> cIoU = 2 / (4 + 6) = 0.2.
    gt = box_mask((0, 1, 2, 3), (4, 4))
    assert gt.sum() == 4
    assert ciou(RAMP, gt) == pytest.approx(0.2)
    assert ciou(RAMP, gt, threshold="median") == pytest.approx(0.2)


def test_ciou_hand_computed_other_thresholds():
    gt = box_mask((0, 1, 2, 3), (4, 4))
    # "lvs": thr = sorted[16 // 2] = 8 / 15, pred = values 9..15 (7 pixels);
    # pred & gt = {(2,1)} = 1, pred \ gt = 6 -> 1 / (4 + 6) = 0.1.
    assert ciou(RAMP, gt, threshold="lvs") == pytest.approx(0.1)
    # 0.25: pred = values > 3.75 = rows 1-3 (12 pixels) ⊇ gt; pred \ gt = 8 -> 4 / 12.
    assert ciou(RAMP, gt, threshold=0.25) == pytest.approx(1 / 3)
    # 0.7: pred = values > 10.5 = {11..15}, disjoint from gt -> 0.
    assert ciou(RAMP, gt, threshold=0.7) == 0.0
    with pytest.raises(ValueError):
        ciou(RAMP, gt, threshold="mean")
    with pytest.raises(ValueError):
        ciou(RAMP, gt, threshold=1.5)


def test_ciou_perfect_heatmap_half_image():
    gt = box_mask((0, 0, 4, 8), (8, 8))  # left half
    assert gt.sum() == 32
    assert ciou(gt.astype(np.float32), gt) == 1.0
    # The literal LVS threshold (sorted[N // 2] = 1) keeps nothing on this binary map.
    assert ciou(gt.astype(np.float32), gt, threshold="lvs") == 0.0
    # Inverted map predicts exactly the complement: cIoU 0.
    assert ciou(1.0 - gt, gt) == 0.0


def test_ciou_is_invariant_to_affine_rescaling():
    rng = np.random.default_rng(1)
    h = rng.random((16, 16))
    gt = box_mask((3, 2, 11, 9), (16, 16))
    assert ciou(h, gt) == pytest.approx(ciou(5.0 * h - 2.0, gt))


def test_ciou_upsamples_small_heatmaps():
    # 2x2 [[0,0],[1,1]] -> 4x4 rows 0, .25, .75, 1; median .5 -> bottom half.
    h = np.array([[0.0, 0.0], [1.0, 1.0]])
    gt = box_mask((0, 2, 4, 4), (4, 4))
    assert ciou(h, gt) == 1.0
    with pytest.raises(ValueError):
        ciou(np.zeros((8, 8)), gt)


def test_ciou_constant_map_predicts_everything():
    gt = box_mask((0, 1, 2, 3), (4, 4))  # 4 of 16 pixels
    assert binarize(np.full((4, 4), 0.7)).all()
    for thr in ("median", "lvs", 0.5):
        assert ciou(np.full((4, 4), 0.7), gt, threshold=thr) == pytest.approx(0.25)
    assert ciou(whole_image(4, 4), gt) == pytest.approx(0.25)


def test_ciou_rejects_bad_input():
    with pytest.raises(ValueError):
        ciou(RAMP, np.zeros((4, 4), bool))
    with pytest.raises(ValueError):
        ciou(np.full((4, 4), np.nan), box_mask((0, 0, 2, 2), (4, 4)))


def test_ciou_summary_hand_example():
    # success(t) = share with cIoU >= t: 1 at t=0, 2/3 for t in (0, .5], 1/3 for t in (.5, 1].
    # Grid of 21 points, step 0.05: f0 = 1, f1..f10 = 2/3, f11..f20 = 1/3.
    # Trapezoid: 0.05 * (1/2 + 10 * 2/3 + 9 * 1/3 + (1/3)/2) = 0.05 * 31/3 = 31/60.
    s = ciou_summary([0.0, 0.5, 1.0])
    assert s["ciou@0.5"] == pytest.approx(2 / 3)
    assert s["auc"] == pytest.approx(31 / 60)
    assert s["mean_ciou"] == pytest.approx(0.5)
    assert s["n"] == 3
    # All zeros: success is 1 only at t=0 -> one half-trapezoid: 0.05 / 2.
    assert ciou_summary(np.zeros(5))["auc"] == pytest.approx(0.025)
    assert ciou_summary(np.ones(5))["auc"] == pytest.approx(1.0)
    assert len(AUC_THRESHOLDS) == 21
    with pytest.raises(ValueError):
        ciou_summary([])


# ---------------------------------------------------------------------------
# Pointing, two-object choice, baselines
# ---------------------------------------------------------------------------


def test_pointing_hit():
    h = np.zeros((14, 14), np.float32)
    h[3, 10] = 1.0  # cell centre in a 224x224 image: x = 10.5*16 = 168, y = 3.5*16 = 56
    assert pointing_hit(h, (150, 40, 190, 70), size=(224, 224))
    assert not pointing_hit(h, (0, 0, 100, 100), size=(224, 224))
    # At the map's own resolution: argmax pixel (3, 10) has centre (10.5, 3.5).
    assert pointing_hit(h, (10, 3, 11, 4))
    assert not pointing_hit(h, (11, 3, 14, 4))


def test_two_object_choice():
    h = np.zeros((8, 8))
    h[:, 5:] = 1.0
    left, right = (0, 0, 3, 8), (5, 0, 8, 8)
    assert two_object_choice(h, left, right) == 1
    assert two_object_choice(h, right, left) == 0
    assert two_object_choice(np.ones((8, 8)), left, right) == 0  # ties -> first box
    # Boxes in image coordinates with a small map.
    assert two_object_choice(h, (0, 0, 30, 80), (50, 0, 80, 80), size=(80, 80)) == 1
    with pytest.raises(ValueError):
        two_object_choice(h, (0.1, 0.1, 0.2, 0.2), right)


def test_baselines():
    c = centre_prior(60, 80)
    assert c.shape == (60, 80) and c.dtype == np.float32
    assert np.unravel_index(np.argmax(c), c.shape) in {(29, 39), (29, 40), (30, 39), (30, 40)}
    assert 0 < c.min() < c.max() <= 1
    assert pointing_hit(c, (30, 20, 50, 40))
    w = whole_image(60, 80)
    assert w.shape == (60, 80) and np.all(w == 1)
    r = random_map(14, 14, np.random.default_rng(0))
    assert r.shape == (14, 14) and 0 <= r.min() and r.max() < 1
    up = random_map(14, 14, 0, size=(224, 224))
    assert up.shape == (224, 224)
    np.testing.assert_array_equal(up, random_map(14, 14, 0, size=(224, 224)))


# ---------------------------------------------------------------------------
# Overlays
# ---------------------------------------------------------------------------


def _frame(H=64, W=96, seed=0):
    return (np.random.default_rng(seed).random((H, W, 3)) * 255).astype(np.uint8)


def test_overlay_alpha_extremes_and_blend():
    frame = _frame()
    h = np.random.default_rng(1).random((7, 7)).astype(np.float32)
    np.testing.assert_array_equal(overlay(frame, h, alpha=0.0), frame)
    cm = matplotlib.colormaps["jet"](upsample_heatmap(h, (64, 96)), bytes=True)[..., :3]
    out1 = overlay(frame, h, alpha=1.0, fade=False)  # constant opacity (default: alpha * h)
    assert out1.shape == (64, 96, 3) and out1.dtype == np.uint8
    np.testing.assert_array_equal(out1, cm)
    half = overlay(frame, h, alpha=0.5, fade=False)
    expected = np.rint((frame.astype(float) + cm.astype(float)) / 2)
    assert np.abs(half.astype(float) - expected).max() <= 1


def test_overlay_box_outline():
    frame = np.zeros((20, 30, 3), np.uint8)
    out = overlay(
        frame, np.zeros((2, 2)), alpha=0.0, box=(5, 4, 15, 12), box_color=(255, 0, 0), box_width=1
    )
    red = np.all(out == (255, 0, 0), axis=-1)
    # Outline of the pixels [4:12, 5:15]: 2 * 10 + 2 * 8 - 4 corners = 32 pixels.
    assert red.sum() == 32
    assert red[4, 5] and red[11, 14] and not red[8, 10] and not red[3, 5]


def test_write_overlay_png(tmp_path):
    frame = _frame(50, 70)
    p = write_overlay_png(
        tmp_path / "sub" / "o.png", frame, np.eye(5), box=(10, 10, 40, 30), legend=False
    )
    img = Image.open(io.BytesIO(p.read_bytes()))
    assert img.format == "PNG" and img.size == (70, 50) and img.mode == "RGB"
    ref = overlay(frame, np.eye(5), box=(10, 10, 40, 30))
    np.testing.assert_array_equal(np.asarray(img), ref)
    assert [q.name for q in p.parent.iterdir()] == ["o.png"]


# ---------------------------------------------------------------------------
# Overlay video
# ---------------------------------------------------------------------------

FPS, SR, SECONDS = 10, 16000, 2


def _source(path: Path, vcodec="libx264", acodec="aac", pix_fmt="yuv420p") -> Path:
    n = FPS * SECONDS
    frames = np.full((n, 64, 96, 3), 128, np.uint8)
    frames[:, :, :, 1] = np.linspace(0, 255, n, dtype=np.uint8)[:, None, None]
    t = np.arange(SR * SECONDS) / SR
    # A tone whose pitch and loudness change, so that correlation means something.
    tone = np.where(t < 1, 0.5 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 660 * t))
    return write_video(
        path,
        frames,
        FPS,
        tone.astype(np.float32),
        SR,
        vcodec=vcodec,
        acodec=acodec,
        pix_fmt=pix_fmt,
    )


def _decode(path: Path):
    """(frames list, audio mono float array at SR, duration s, audio codec name)."""
    with av.open(str(path)) as c:
        duration = c.duration / 1e6
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        codec = a.codec_context.name
        rs = av.AudioResampler(format="fltp", layout="mono", rate=SR)
        chunks = [rf.to_ndarray()[0] for f in c.decode(a) for rf in rs.resample(f)]
        chunks += [rf.to_ndarray()[0] for rf in rs.resample(None)]
    return frames, np.concatenate(chunks), duration, codec


def _max_corr(x: np.ndarray, y: np.ndarray, max_lag: int = 2048) -> tuple[float, int]:
    """(correlation coefficient, lag) of x and y at the best lag within +-max_lag samples."""
    n = min(len(x), len(y))
    x, y = x[:n] - x[:n].mean(), y[:n] - y[:n].mean()
    xc = np.fft.irfft(np.fft.rfft(x, 2 * n) * np.conj(np.fft.rfft(y, 2 * n)), 2 * n)
    lags = np.r_[0 : max_lag + 1, -max_lag:0]  # xc[k] = sum_i x[i + k] y[i]
    lag = int(lags[np.argmax(xc[lags])])
    a, b = (x[lag:], y[: n - lag]) if lag >= 0 else (x[: n + lag], y[-lag:])
    return float(np.corrcoef(a, b)[0, 1]), lag


@pytest.mark.parametrize(
    "ext,vcodec,acodec,pix_fmt,out_codec",
    [
        ("mp4", "libx264", "aac", "yuv420p", "aac"),  # AAC: stream copy
        ("avi", "mjpeg", "pcm_s16le", "yuvj420p", "aac"),  # PCM: re-encoded to AAC
        ("webm", "libvpx-vp9", "libopus", "yuv420p", "aac"),  # Opus: re-encoded to AAC
    ],
)
def test_write_overlay_video(tmp_path, ext, vcodec, acodec, pix_fmt, out_codec):
    src = _source(tmp_path / f"src.{ext}", vcodec, acodec, pix_fmt)
    # Heatmap 0 (jet: dark blue) at t=0, heatmap 1 (dark red) at t=1.5; nearest switches
    # after t=0.75, i.e. from frame 8 (t=0.8) on.
    heatmaps = np.stack([np.zeros((7, 7)), np.ones((7, 7))]).astype(np.float32)
    out = write_overlay_video(
        src, tmp_path / "out" / "ov.mp4", heatmaps, np.array([0.0, 1.5]), alpha=1.0, fade=False
    )
    assert out == tmp_path / "out" / "ov.mp4"
    assert [p.name for p in out.parent.iterdir()] == ["ov.mp4"]  # no temp file left

    with av.open(str(out)) as c:
        assert c.format.name.startswith("mov")
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.video[0].average_rate == FPS
        assert len(c.streams.audio) == 1

    sf, sa, sdur, _ = _decode(src)
    of, oa, odur, ocodec = _decode(out)
    assert ocodec == out_codec
    assert len(of) == len(sf) == FPS * SECONDS
    assert abs(odur - sdur) <= 1 / FPS + 1e-6
    assert of[0].shape == (64, 96, 3)
    blue = matplotlib.colormaps["jet"](0.0, bytes=True)[:3]
    red = matplotlib.colormaps["jet"](1.0, bytes=True)[:3]
    for i, f in enumerate(of):
        want = blue if i < 8 else red
        assert np.abs(f.reshape(-1, 3).mean(0) - want).max() < 12, (i, f.reshape(-1, 3).mean(0))
    assert abs(len(oa) - len(sa)) <= 0.05 * SR
    corr, lag = _max_corr(sa, oa)
    assert corr > 0.95
    assert abs(lag) <= SR // 100  # in sync to 10 ms


def test_write_overlay_video_linear_interpolation_keeps_source_at_alpha_zero(tmp_path):
    src = _source(tmp_path / "src.mp4")
    hm = np.random.default_rng(0).random((5, 4, 4)).astype(np.float32)
    out = write_overlay_video(
        src, tmp_path / "ov.mp4", hm, np.linspace(0, 2, 5), alpha=0.0, interpolation="linear"
    )
    sf, _, _, _ = _decode(src)
    of, _, _, _ = _decode(out)
    assert len(of) == len(sf)
    for a, b in zip(sf, of):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 3


def test_write_overlay_video_failure_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(MediaError):
        write_overlay_video(bad, tmp_path / "o" / "ov.mp4", np.zeros((1, 2, 2)), np.zeros(1))
    assert not list(tmp_path.glob("o/*"))
    src = _source(tmp_path / "src.mp4")
    with pytest.raises(ValueError):
        write_overlay_video(src, tmp_path / "o" / "ov.mp4", np.zeros((2, 2, 2)), np.zeros(3))


def test_write_overlay_video_keeps_variable_frame_times(tmp_path):
    times = np.array([0.0, 0.1, 0.25, 0.3, 0.5, 0.55, 0.8, 1.0, 1.3, 1.4])
    frames = np.full((len(times), 64, 96, 3), 100, np.uint8)
    t = np.arange(int(1.5 * SR)) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    src = write_video(tmp_path / "vfr.mp4", frames, 10, tone, SR, times=times)
    # Nearest of heatmaps at 0 and 0.7 switches after t = 0.35 (frame times, not indices).
    hm = np.stack([np.zeros((3, 3)), np.ones((3, 3))])
    out = write_overlay_video(
        src, tmp_path / "ov.mp4", hm, np.array([0.0, 0.7]), alpha=1.0, fade=False
    )
    with av.open(str(out)) as c:
        got = [
            (f.time, f.to_ndarray(format="rgb24").reshape(-1, 3).mean(0)) for f in c.decode(video=0)
        ]
    np.testing.assert_allclose([g[0] for g in got], times, atol=1e-3)
    blue = matplotlib.colormaps["jet"](0.0, bytes=True)[:3]
    red = matplotlib.colormaps["jet"](1.0, bytes=True)[:3]
    for ft, mean in got:
        assert np.abs(mean - (blue if ft < 0.35 else red)).max() < 12, (ft, mean)


def test_write_overlay_video_failure_keeps_previous_output(tmp_path):
    src = _source(tmp_path / "src.avi", "mjpeg", "pcm_s16le", "yuvj420p")
    (tmp_path / "o").mkdir()
    old = tmp_path / "o" / "ov.mp4"
    old.write_bytes(b"previous")
    with pytest.raises(ValueError, match="stream-copy"):  # PCM cannot be copied into MP4
        write_overlay_video(src, old, np.zeros((1, 2, 2)), np.zeros(1), audio="copy")
    assert old.read_bytes() == b"previous"
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["ov.mp4"]
    # audio="drop": no audio stream.
    out = write_overlay_video(src, old, np.zeros((1, 2, 2)), np.zeros(1), audio="drop")
    with av.open(str(out)) as c:
        assert not c.streams.audio and c.streams.video[0].frames == FPS * SECONDS
