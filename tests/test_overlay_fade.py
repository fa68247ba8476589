"""Overlays whose opacity follows the calibrated map (fade) and the constant-opacity look.

The default look is the magenta highlight (``cmap=None``); the colour-map look
(``cmap="jet"``) keeps its opacity ``alpha * value``. Visibility and the legend:
``tests/test_overlay_visible.py``.
"""

from __future__ import annotations

import av
import matplotlib
import numpy as np
import pytest
import torch
from media import make_clip
from PIL import Image

import looklisten.media.overlay as ov
from looklisten.cli.main import build_parser, main
from looklisten.core.config import get_config
from looklisten.media.overlay import (
    HIGHLIGHT,
    HIGHLIGHT_RGB,
    blend,
    colorize,
    highlight_ramp,
    overlay,
    resolve_look,
    upsample_heatmap,
    write_overlay_png,
    write_overlay_video,
)
from looklisten.models.checkpoint import save_checkpoint
from looklisten.models.network import create_model

H, W = 48, 64


def _frame(h=H, w=W, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def _old_overlay(frame, heatmap, alpha, cmap="jet", normalize=False):
    """The constant-alpha overlay as it was before fading, written out."""
    up = upsample_heatmap(heatmap, frame.shape[:2])
    if normalize:
        lo, hi = float(up.min()), float(up.max())
        up = (up - lo) / (hi - lo) if hi > lo else np.zeros_like(up)
    cm = matplotlib.colormaps[cmap](np.clip(up, 0, 1), bytes=True)[..., :3]
    if alpha == 0:
        return frame.copy()
    if alpha == 1:
        return cm
    out = frame.astype(np.float32) * (1.0 - alpha) + cm.astype(np.float32) * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------
# overlay / blend
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cmap", [None, "jet"])
@pytest.mark.parametrize("alpha", [0.3, 0.5, 0.7, 1.0])
def test_zeros_leave_the_frame_and_ones_blend_with_full_alpha(alpha, cmap):
    frame = _frame()
    out = overlay(frame, np.zeros((7, 7), np.float32), alpha=alpha, cmap=cmap)
    assert out.dtype == np.uint8 and out is not frame
    np.testing.assert_array_equal(out, frame)
    ones = np.ones((7, 7), np.float32)
    color = colorize(ones, (H, W), cmap or HIGHLIGHT)
    assert np.all(color == (HIGHLIGHT_RGB if cmap is None else color[0, 0]))
    np.testing.assert_array_equal(
        overlay(frame, ones, alpha=alpha, cmap=cmap), blend(frame, color, alpha)
    )
    # Values outside [0, 1] are clipped for the opacity as for the colour.
    np.testing.assert_array_equal(
        overlay(frame, ones * 3.0, alpha=alpha, cmap=cmap),
        overlay(frame, ones, alpha=alpha, cmap=cmap),
    )
    np.testing.assert_array_equal(overlay(frame, -ones, alpha=alpha, cmap=cmap), frame)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 0.35, 0.5, 1.0])
def test_no_fade_is_the_old_constant_alpha(alpha, normalize):
    frame = _frame()
    h = np.random.default_rng(1).random((7, 7)).astype(np.float32) * 0.8 + 0.1
    got = overlay(frame, h, alpha=alpha, normalize=normalize, fade=False)
    np.testing.assert_array_equal(got, _old_overlay(frame, h, alpha, normalize=normalize))
    # A map of zeros without fade paints the whole frame in jet's dark blue.
    z = overlay(frame, np.zeros((3, 3)), alpha=1.0, fade=False)
    assert np.all(z == matplotlib.colormaps["jet"](0.0, bytes=True)[:3])


def test_fade_opacity_is_alpha_times_value_per_pixel_with_a_colour_map():
    frame = _frame()
    h = np.random.default_rng(2).random((6, 6)).astype(np.float32)
    alpha = 0.6
    out = overlay(frame, h, alpha=alpha, cmap="jet")
    up = np.clip(upsample_heatmap(h, (H, W)), 0, 1).astype(np.float64)
    cm = colorize(h, (H, W)).astype(np.float64)
    a = (alpha * up)[..., None]
    want = np.rint((1 - a) * frame + a * cm)
    assert np.abs(out.astype(np.float64) - want).max() <= 1
    # The same as blend with an (H, W) alpha map (up to the opacity's 1/65536 rounding).
    ref = blend(frame, colorize(h, (H, W)), alpha * up)
    assert np.abs(out.astype(int) - ref).max() <= 1


def test_highlight_opacity_is_alpha_times_the_ramp_per_pixel():
    frame = _frame()
    h = np.random.default_rng(2).random((6, 6)).astype(np.float32)
    up = np.clip(upsample_heatmap(h, (H, W)), 0, 1).astype(np.float64)
    # The ramp by hand: nothing up to 0.1, 1 at 1, a power 0.7 in between.
    ramp = np.clip((up - 0.1) / 0.9, 0, 1) ** 0.7
    np.testing.assert_allclose(highlight_ramp(up), ramp)
    assert highlight_ramp(np.array([0.0, 0.1, 1.0])).tolist() == [0.0, 0.0, 1.0]
    for alpha in (0.6, None):  # None: the default, 0.8
        out = overlay(frame, h, alpha=alpha)
        a = ((alpha or 0.8) * ramp)[..., None]
        want = np.rint((1 - a) * frame + a * np.array(HIGHLIGHT_RGB, np.float64))
        assert np.abs(out.astype(np.float64) - want).max() <= 1
    # Below the floor the frame is untouched, to the byte.
    low = up <= 0.1
    assert low.any() and np.array_equal(overlay(frame, h)[low], frame[low])


def test_look_defaults_and_errors():
    frame = _frame()
    h = np.random.default_rng(3).random((5, 5)).astype(np.float32)
    # The defaults: the highlight at 0.8; jet at 0.5 with a colour map or without fade.
    assert resolve_look() == (HIGHLIGHT, 0.8)
    assert resolve_look("jet") == ("jet", 0.5)
    assert resolve_look(fade=False) == ("jet", 0.5)
    assert resolve_look("viridis", 0.3, fade=False) == ("viridis", 0.3)
    np.testing.assert_array_equal(overlay(frame, h), overlay(frame, h, 0.8, HIGHLIGHT))
    np.testing.assert_array_equal(overlay(frame, h, cmap="jet"), overlay(frame, h, 0.5, "jet"))
    with pytest.raises(ValueError, match="colour map"):
        overlay(frame, h, cmap="no-such-map")
    with pytest.raises(ValueError, match="without fading"):
        overlay(frame, h, cmap=HIGHLIGHT, fade=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        resolve_look(alpha=1.2)


def test_fade_opacity_grows_monotonically_with_the_value():
    frame = _frame()
    full = overlay(frame, np.ones((4, 4)), alpha=0.8, cmap="jet")
    dist_frame, dist_full = [], []
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        # A constant map in jet's colour for 1 with opacity 0.8 * v: only the opacity changes.
        color = colorize(np.ones((4, 4)), (H, W))
        out = blend(frame, color, np.full((H, W), 0.8 * v))
        dist_frame.append(np.abs(out.astype(int) - frame).mean())
        dist_full.append(np.abs(out.astype(int) - full).mean())
    assert dist_frame[0] == 0 and dist_full[-1] == 0
    assert all(a < b for a, b in zip(dist_frame, dist_frame[1:]))
    assert all(a > b for a, b in zip(dist_full, dist_full[1:]))
    # overlay with a half map: strictly between the frame and the constant-alpha look.
    half = np.full((5, 5), 0.5, np.float32)
    faded = overlay(frame, half, alpha=0.8, cmap="jet")
    const = overlay(frame, half, alpha=0.8, fade=False)
    np.testing.assert_array_equal(faded, blend(frame, colorize(half, (H, W)), 0.4))
    d_frame = np.abs(faded.astype(int) - frame).mean()
    d_const = np.abs(const.astype(int) - frame).mean()
    assert 0 < d_frame < d_const


def test_normalize_then_fade():
    frame = _frame()
    # A constant map normalises to zeros: no colour at all.
    np.testing.assert_array_equal(overlay(frame, np.full((5, 5), 0.7), normalize=True), frame)
    # (decided on the map, not on its upsampled float noise: without fade, all low colour)
    const = overlay(frame, np.full((5, 5), 0.7, np.float32), 1.0, normalize=True, fade=False)
    assert np.all(const == matplotlib.colormaps["jet"](0.0, bytes=True)[:3])
    # A faint map barely shows; stretched, its peak is as opaque as a confident map's.
    faint = np.zeros((5, 5), np.float32)
    faint[2, 2] = 0.02
    assert np.abs(overlay(frame, faint).astype(int) - frame).max() <= 2
    stretched = overlay(frame, faint, normalize=True)
    sure = overlay(frame, faint / upsample_heatmap(faint, (H, W)).max())  # upsampled peak -> 1
    assert np.abs(stretched.astype(int) - sure).max() <= 1
    assert np.abs(stretched.astype(int) - frame).max() > 50


def test_blend_alpha_map():
    frame, color = _frame(seed=3), _frame(seed=4)
    np.testing.assert_array_equal(blend(frame, color, np.zeros((H, W))), frame)
    np.testing.assert_array_equal(blend(frame, color, np.ones((H, W), np.float32)), color)
    for a in (0.1, 0.3, 0.5, 0.77):  # a constant map gives the float's bytes
        np.testing.assert_array_equal(
            blend(frame, color, np.full((H, W), a)), blend(frame, color, a)
        )
    a = np.zeros((H, W))
    a[:, W // 2 :] = 1.0
    out = blend(frame, color, a)
    np.testing.assert_array_equal(out[:, : W // 2], frame[:, : W // 2])
    np.testing.assert_array_equal(out[:, W // 2 :], color[:, W // 2 :])
    with pytest.raises(ValueError, match="alpha map"):
        blend(frame, color, np.zeros((H, W + 1)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        blend(frame, color, np.full((H, W), 1.5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        blend(frame, color, np.full((H, W), np.nan))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        overlay(frame, np.ones((2, 2)), alpha=1.5)


def test_write_overlay_png_fades(tmp_path):
    frame = _frame()
    zeros = np.zeros((4, 4))
    p = write_overlay_png(tmp_path / "f.png", frame, zeros)  # the frame, then the legend
    np.testing.assert_array_equal(np.asarray(Image.open(p))[:H], frame)
    p = write_overlay_png(tmp_path / "f.png", frame, zeros, legend=False)
    np.testing.assert_array_equal(np.asarray(Image.open(p)), frame)
    q = write_overlay_png(tmp_path / "c.png", frame, zeros, fade=False, alpha=0.4, legend=False)
    np.testing.assert_array_equal(np.asarray(Image.open(q)), _old_overlay(frame, zeros, 0.4))


# ---------------------------------------------------------------------------
# Video
# ---------------------------------------------------------------------------


def _frames(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24").astype(np.float64) for f in c.decode(video=0)]


def test_write_overlay_video_fades(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", "h264-aac", 1.0, 10.0, 16000, 1, size=(64, 48))
    src = _frames(clip.path)
    zeros = np.zeros((2, 3, 4), np.float32)
    times = np.array([0.0, 0.5])
    faded = _frames(write_overlay_video(clip.path, tmp_path / "f.mp4", zeros, times, alpha=1.0))
    const = _frames(
        write_overlay_video(clip.path, tmp_path / "c.mp4", zeros, times, alpha=1.0, fade=False)
    )
    assert len(faded) == len(const) == len(src) == clip.num_frames
    d_faded = max(np.abs(a - b).mean() for a, b in zip(src, faded))
    d_const = min(np.abs(a - b).mean() for a, b in zip(src, const))
    assert d_faded < 4 and d_const > 30, (d_faded, d_const)
    blue = matplotlib.colormaps["jet"](0.0, bytes=True)[:3]
    assert all(np.abs(f.reshape(-1, 3).mean(0) - blue).max() < 12 for f in const)
    # A map of ones at full alpha is the colour in every look: magenta by default.
    ones = np.ones((2, 3, 4), np.float32)
    red = matplotlib.colormaps["jet"](1.0, bytes=True)[:3]
    for cmap, want in ((None, HIGHLIGHT_RGB), ("jet", red)):
        sure = _frames(
            write_overlay_video(clip.path, tmp_path / "r.mp4", ones, times, 1.0, cmap=cmap)
        )
        assert all(np.abs(f.reshape(-1, 3).mean(0) - want).max() < 12 for f in sure)


def test_transcode_fade_matches_overlay(tmp_path, monkeypatch):
    """The video path blends each frame exactly as overlay() would (before encoding)."""
    clip = make_clip(tmp_path / "a.mp4", "h264-aac", 0.5, 10.0, 16000, 1, size=(64, 48))
    hm = np.random.default_rng(5).random((2, 3, 4)).astype(np.float32)
    seen = []
    real = ov._even_pad

    def spy(img, He, We):
        seen.append(img.copy())
        return real(img, He, We)

    monkeypatch.setattr(ov, "_even_pad", spy)
    decoded = []
    with av.open(str(clip.path)) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    for fade, cmap in ((True, None), (True, "jet"), (False, None)):
        seen.clear()
        write_overlay_video(
            clip.path, tmp_path / "o.mp4", hm, np.array([0.0, 10.0]), 0.7, cmap=cmap, fade=fade
        )
        assert len(seen) == len(decoded)
        for got, src in zip(seen, decoded):
            np.testing.assert_array_equal(got, overlay(src, hm[0], 0.7, cmap, fade=fade))


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def test_cli_no_fade_parses():
    base = ["localize", "in.mp4", "--checkpoint", "run", "--out", "o.mp4"]
    assert build_parser().parse_args(base).fade is True
    args = build_parser().parse_args(base + ["--no-fade", "--normalize"])
    assert args.fade is False and args.normalize is True


@pytest.fixture(scope="module")
def avol_run(tmp_path_factory):
    torch.manual_seed(0)
    cfg = get_config("tiny", arch="avol")
    run = tmp_path_factory.mktemp("avol_run")
    save_checkpoint(run, create_model(cfg).eval(), cfg)
    return run


def test_cli_no_fade_reaches_png_and_video(avol_run, tmp_path, capsys, monkeypatch):
    calls = []

    def record(name):
        real = getattr(ov, name)

        def wrapped(*args, **kwargs):
            calls.append((name, kwargs.get("fade"), kwargs.get("normalize")))
            return real(*args, **kwargs)

        monkeypatch.setattr(ov, name, wrapped)

    record("write_overlay_png")
    record("write_overlay_video")
    img = tmp_path / "i.png"
    Image.fromarray(_frame(40, 56)).save(img)
    clip = make_clip(tmp_path / "c.mp4", "h264-aac", 1.0, 10.0, 16000, 1, size=(64, 48))
    ck = ["--checkpoint", str(avol_run)]
    for extra, fade in (([], True), (["--no-fade"], False)):
        calls.clear()
        rc = main(
            ["localize", str(img), *ck, "--out", str(tmp_path / "o.png")]
            + ["--audio", str(clip.path), *extra]
        )
        assert rc == 0, capsys.readouterr().err
        assert calls == [("write_overlay_png", fade, False)]
        calls.clear()
        rc = main(
            ["localize", str(clip.path), *ck, "--out", str(tmp_path / "o.mp4"), "--quiet"]
            + ["--every", "5", "--png-dir", str(tmp_path / "png"), *extra]
        )
        assert rc == 0, capsys.readouterr().err
        assert calls[0] == ("write_overlay_video", fade, False)
        assert calls[1:] and all(c == ("write_overlay_png", fade, False) for c in calls[1:])


def test_localize_help_says_what_the_look_means():
    from looklisten.cli.localize import LOCALIZE_HELP

    assert "--no-fade" in LOCALIZE_HELP and "--normalize" in LOCALIZE_HELP
    assert "confident" in LOCALIZE_HELP
