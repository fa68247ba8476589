"""Overlays people can see: the highlight at its default, measured on real footage, and the legend.

A newcomer found the old default (jet, opacity ``0.5 * value``) changed the
pixels of a map peaking at 0.61 by a few levels: it looked untouched. These
tests measure, on frames of encoded demo clips (colourful backgrounds, photos
of objects), the mean absolute change (0..255, averaged over RGB) inside the
map's top 10 % and outside its support, for the default and for ``jet``; and
that a map the model does not believe in still leaves the frame as it was.
"""

from __future__ import annotations

import base64
import io
import re

import av
import numpy as np
import pytest
import torch
from media import make_clip, write_wav
from PIL import Image

from looklisten.cli.main import main
from looklisten.core.config import get_config
from looklisten.data.demo_data import make_demo_data
from looklisten.inputs.prepare import load_audio, load_image
from looklisten.media.overlay import (
    HIGHLIGHT_FLOOR,
    HIGHLIGHT_RGB,
    legend_strip,
    overlay,
    upsample_heatmap,
    with_legend,
    write_overlay_png,
    write_overlay_video,
)
from looklisten.media.video import probe, read_frame
from looklisten.models.checkpoint import save_checkpoint
from looklisten.models.network import create_model
from looklisten.tasks.localize import localize

PEAK = 0.61


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Four 3 s demo clips (224 x 224 H.264): colourful backgrounds with objects."""
    out = tmp_path_factory.mktemp("demo")
    make_demo_data(out, videos=4, seed=3, duration=3.0, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def frames(demo):
    return [read_frame(p, 0.5) for p in sorted(demo.glob("clip_*.mp4"))]


@pytest.fixture(scope="module")
def avol_run(tmp_path_factory):
    torch.manual_seed(0)
    cfg = get_config("tiny", arch="avol")
    run = tmp_path_factory.mktemp("avol_run")
    save_checkpoint(run, create_model(cfg).eval(), cfg)
    return run


def blob(peak=PEAK, base=0.03, n=14, centre=(7.0, 6.0), sigma=2.5) -> np.ndarray:
    """A model-sized map: a Gaussian bump of height ``peak`` on a low floor of ``base``."""
    y, x = np.mgrid[0:n, 0:n]
    g = np.exp(-((y - centre[0]) ** 2 + (x - centre[1]) ** 2) / (2 * sigma**2))
    return (base + (peak - base) * g).astype(np.float32)


def change(frame, out, heatmap) -> tuple[float, float]:
    """Mean |out - frame| (0..255) inside the map's top 10 % and where it is below 0.1."""
    up = upsample_heatmap(heatmap, frame.shape[:2])
    d = np.abs(out.astype(np.float64) - frame.astype(np.float64)).mean(-1)
    top = up >= np.quantile(up, 0.9)
    outside = up < HIGHLIGHT_FLOOR
    assert top.any() and outside.mean() > 0.3  # the bump leaves most of the frame alone
    return float(d[top].mean()), float(d[outside].mean())


def _png(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# ---------------------------------------------------------------------------
# Visible at the default
# ---------------------------------------------------------------------------


def test_a_map_peaking_at_0_61_is_clearly_visible_on_colourful_footage(frames, tmp_path):
    hm = blob()
    for i, frame in enumerate(frames):
        H = frame.shape[0]
        new = _png(write_overlay_png(tmp_path / f"new{i}.png", frame, hm))[:H]
        old = _png(write_overlay_png(tmp_path / f"old{i}.png", frame, hm, cmap="jet"))[:H]
        new_in, new_out = change(frame, new, hm)
        old_in, old_out = change(frame, old, hm)
        # The default: clearly coloured where the map is high, untouched outside.
        assert new_in >= 40, (i, new_in)
        assert new_out == 0, (i, new_out)
        # The old look (jet at 0.5 * value): a faint tint, less than half as strong.
        assert old_in < new_in / 2, (i, old_in, new_in)
        # Where the colour goes: magenta, i.e. red and blue up against green.
        up = upsample_heatmap(hm, frame.shape[:2])
        top = up >= np.quantile(up, 0.9)
        shift = new[top].astype(np.float64).mean(0) - frame[top].astype(np.float64).mean(0)
        assert shift[0] - shift[1] > 40 and shift[2] - shift[1] > 40, (i, shift)


def test_opacity_follows_the_probability_and_unbelieved_maps_stay_unpainted(frames):
    frame = frames[0]
    inside = [change(frame, overlay(frame, blob(p)), blob(p))[0] for p in (0.3, PEAK, 0.9)]
    assert inside[0] < inside[1] < inside[2], inside
    # Nothing below the floor: a faint map (peak 0.08) and a map zeroed because
    # the detector said no (tasks.localize.paint_visible) leave every byte.
    for hm in (blob(0.08, base=0.0), np.zeros((14, 14), np.float32)):
        np.testing.assert_array_equal(overlay(frame, hm), frame)
    # Without renormalising, a weak map stays weak; normalize=True stretches it.
    weak = blob(0.2, base=0.0)
    assert change(frame, overlay(frame, weak), weak)[0] < inside[1] / 2
    assert change(frame, overlay(frame, weak, normalize=True), weak)[0] > inside[1]


def test_overlay_video_is_visible_and_keeps_the_frame_size(demo, frames, tmp_path):
    src = sorted(demo.glob("clip_*.mp4"))[0]
    hm = blob()[None]
    out = write_overlay_video(src, tmp_path / "o.mp4", hm, np.zeros(1))
    with av.open(str(src)) as a, av.open(str(out)) as b:
        pairs = list(zip(a.decode(video=0), b.decode(video=0)))
    assert len(pairs) == probe(src).num_frames
    for fa, fb in pairs[::5]:
        x, y = fa.to_ndarray(format="rgb24"), fb.to_ndarray(format="rgb24")
        assert x.shape == y.shape  # no legend by default: the source's size
        inside, outside = change(x, y, hm[0])
        assert inside >= 40 and outside < 3, (inside, outside)  # re-encoding noise only
    # legend=True: the strip below every frame (padded to an even height).
    out = write_overlay_video(src, tmp_path / "l.mp4", hm, np.zeros(1), legend=True)
    strip = legend_strip(224)
    with av.open(str(out)) as c:
        f = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert f.shape[0] == 224 + strip.shape[0] + strip.shape[0] % 2
    bottom = f[224 : 224 + strip.shape[0]].astype(np.float64)
    assert np.abs(bottom - strip).mean() < 6  # H.264 blurs the text a little


# ---------------------------------------------------------------------------
# The legend
# ---------------------------------------------------------------------------


def _magenta(img) -> np.ndarray:
    x = img.astype(np.int64)
    return (x[..., 0] - x[..., 1] > 80) & (x[..., 2] - x[..., 1] > 80)


def test_legend_strip_shows_the_look(tmp_path):
    for width in (32, 64, 224, 640, 1280):
        s = legend_strip(width)
        assert s.dtype == np.uint8 and s.shape[1] == width and 30 <= s.shape[0] <= 110
    s = legend_strip(224)
    # The bar: transparent (grey squares) at 0, magenta at 0.8 opacity at 1.
    rows = np.flatnonzero(_magenta(s).sum(1) > 5)
    assert len(rows) >= 6
    row = s[rows[len(rows) // 2]].astype(np.int64)
    light = np.flatnonzero(row.min(-1) > 200)  # the bar's light outline, left and right
    xl = light[0]
    xr = light[light > xl + 5][0]
    bar = row[xl + 1 : xr]
    assert len(bar) >= 60
    left = bar[:5]  # values under the floor: the bare grey squares
    assert np.abs(left[:, 0] - left[:, 1]).max() <= 1 and np.abs(left[:, 2] - left[:, 1]).max() <= 1
    end = bar[-1]
    grey = end[1] / (1 - 0.8)  # the square behind the end: the green channel is all grey
    np.testing.assert_allclose(end, 0.2 * grey + 0.8 * np.array(HIGHLIGHT_RGB), atol=2)
    assert _magenta(bar[None]).sum() > len(bar) / 2
    # Light text (ticks and caption) below the bar.
    text = s[rows.max() + 1 :]
    assert (text.min(-1) > 200).sum() > 50
    # The look and the caption change the strip; alpha changes the bar.
    assert not _magenta(legend_strip(224, cmap="jet")).any()
    assert _magenta(legend_strip(224, alpha=0.3)).sum() < _magenta(s).sum() / 2
    assert not np.array_equal(legend_strip(224, normalize=True), s)
    assert not np.array_equal(legend_strip(224, label="something else"), s)
    # PNGs carry it below the frame; the frame's pixels are all there, uncovered.
    frame = (np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8)
    png = _png(write_overlay_png(tmp_path / "o.png", frame, blob(), box=(5, 5, 30, 30)))
    ref = overlay(frame, blob(), box=(5, 5, 30, 30))
    np.testing.assert_array_equal(png, np.concatenate([ref, legend_strip(70)]))
    np.testing.assert_array_equal(png, with_legend(ref))
    png = _png(write_overlay_png(tmp_path / "n.png", frame, blob(), legend=False))
    np.testing.assert_array_equal(png, overlay(frame, blob()))


# ---------------------------------------------------------------------------
# A newcomer's command line
# ---------------------------------------------------------------------------


def test_cli_png_defaults_and_options(avol_run, frames, tmp_path, capsys):
    img = tmp_path / "frame.png"
    Image.fromarray(frames[1]).save(img)
    t = np.arange(16000) / 16000
    wav = write_wav(tmp_path / "a.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 16000)
    base = ["localize", str(img), "--checkpoint", str(avol_run), "--audio", str(wav)]
    base += ["--paint-always"]

    def run(*extra):
        out = tmp_path / "o.png"
        rc = main([*base, "--out", str(out), *extra])
        assert rc == 0, capsys.readouterr().err
        return _png(out)

    image = load_image(img)
    H, W = image.shape[:2]
    heat = localize(
        avol_run, image, load_audio(wav, get_config("tiny", arch="avol").audio.sample_rate)
    )
    # Default: the highlight at 0.8 with its legend below.
    got = run()
    np.testing.assert_array_equal(got, np.concatenate([overlay(image, heat), legend_strip(W)]))
    # --legend none: the picture alone; --cmap jet: the old look, with jet's legend.
    np.testing.assert_array_equal(run("--legend", "none"), overlay(image, heat))
    got = run("--cmap", "jet")
    np.testing.assert_array_equal(got[:H], overlay(image, heat, 0.5, "jet"))
    np.testing.assert_array_equal(got[H:], legend_strip(W, cmap="jet"))
    got = run("--no-fade", "--alpha", "0.3")
    np.testing.assert_array_equal(got[H:], legend_strip(W, alpha=0.3, fade=False))
    # A bad colour map fails before the model is loaded (here: no checkpoint at all).
    rc = main(
        ["localize", str(img), "--checkpoint", str(tmp_path / "none"), "--out", "x.png"]
        + ["--audio", str(wav), "--cmap", "nosuchmap"]
    )
    assert rc == 2 and "colour map" in capsys.readouterr().err


def test_cli_video_legend_all(avol_run, tmp_path, capsys):
    clip = make_clip(tmp_path / "c.mp4", "h264-aac", 1.0, 10.0, 16000, 1, size=(64, 48))
    out = tmp_path / "o.mp4"
    args = ["localize", str(clip.path), "--checkpoint", str(avol_run), "--out", str(out)]
    rc = main(args + ["--quiet", "--every", "5", "--legend", "all", "--png-dir", str(tmp_path)])
    assert rc == 0, capsys.readouterr().err
    h = 48 + legend_strip(64).shape[0]
    assert (probe(out).width, probe(out).height) == (64, h + h % 2)
    pngs = sorted(tmp_path.glob("frame_*.png"))
    assert pngs and all(_png(p).shape == (h, 64, 3) for p in pngs)


# ---------------------------------------------------------------------------
# The report's overlay cards
# ---------------------------------------------------------------------------


def test_report_overlay_cards_carry_the_legend(avol_run, demo):
    from looklisten.report.page import load_run, render_report

    page = render_report([load_run(avol_run, data=demo)], device="cpu")
    sec = page[page.index("sec-overlays'") : page.index("sec-evals'")]
    assert "could not be built" not in sec
    cards = sec.count("<article")
    legends = re.findall(r"<img src='data:image/png;base64,([^']+)' alt='legend", sec)
    assert cards >= 4 and len(legends) == cards
    with Image.open(io.BytesIO(base64.b64decode(legends[0]))) as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), legend_strip(200))
    assert "magenta" in sec
