"""AVOL-Net localisation: the Python API, ``looklisten localize`` and ``eval localization``.

All with random-weight ``tiny`` checkpoints: these check shapes, plumbing and
errors, not what a trained model localises (see the issue's measurements).
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from media import make_clip
from PIL import Image

from looklisten.cli.main import main
from looklisten.core.config import get_config
from looklisten.data.demo_data import load_annotations, make_demo_data
from looklisten.inputs.prepare import (
    VisionTransform,
    crop_region,
    full_input_size,
    map_stride,
    resize_short_side,
)
from looklisten.media.video import MediaError, probe, read_frame
from looklisten.models.checkpoint import save_checkpoint
from looklisten.models.network import create_model
from looklisten.tasks.localize import (
    heatmap_to_frame,
    localize,
    localize_batch,
    localize_video,
    maps_for,
)


@pytest.fixture(scope="module")
def avol():
    torch.manual_seed(0)
    cfg = get_config("tiny", arch="avol")
    return create_model(cfg).eval()


@pytest.fixture(scope="module")
def avol_run(tmp_path_factory, avol):
    run = tmp_path_factory.mktemp("avol_run")
    save_checkpoint(run, avol, avol.cfg)
    return run


@pytest.fixture(scope="module")
def l3_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("l3_run")
    cfg = get_config("tiny", arch="l3")
    save_checkpoint(run, create_model(cfg), cfg)
    return run


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    return make_clip(path, "h264-aac", duration=2.0, fps=10.0, size=(96, 72))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    make_demo_data(out, videos=3, seed=1, duration=3.0, workers=1, progress=False)
    return out


def _image(h=50, w=70, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def _wave(n=16000, seed=1):
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def _write_wav(path: Path, x: np.ndarray, sr: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return path


# ---------------------------------------------------------------------------
# Python API
# ---------------------------------------------------------------------------


def test_localize_shapes_at_input_resolution(avol):
    img, wav = _image(50, 70), _wave()
    h = localize(avol, img, wav)
    assert h.shape == (50, 70) and h.dtype == np.float32
    assert 0.0 <= h.min() and h.max() <= 1.0
    # Any length and sample rate of audio, mono or multi-channel.
    assert localize(avol, img, np.tile(wav, 3)).shape == (50, 70)
    assert localize(avol, img, wav[:8000], sr=8000).shape == (50, 70)
    assert localize(avol, img, np.stack([wav, wav])).shape == (50, 70)
    assert localize(avol, img, wav[:3000]).shape == (50, 70)
    # Batches: same size -> an array; mixed sizes -> a list.
    b = localize_batch(avol, np.stack([img, img]), np.stack([wav, wav]))
    assert b.shape == (2, 50, 70)
    np.testing.assert_allclose(b[0], h, atol=1e-6)
    mixed = localize_batch(avol, [img, _image(33, 41)], [wav, wav])
    assert [m.shape for m in mixed] == [(50, 70), (33, 41)]


def test_full_mode_map_tiles_the_frame(avol):
    cfg = avol.cfg
    H, W = 192, 256
    h, w = (s // map_stride(cfg) for s in full_input_size(H, W, cfg))
    # shorter side scaled to resize, each side rounded to a multiple of the map stride
    s, r = map_stride(cfg), cfg.vision.resize
    assert (h, w) == (round(H * r / H / s), round(W * r / H / s))  # tiny AVOL: 144x192 px, (9, 12)
    m = localize_batch(avol, [_image(H, W)], [_wave()], resolution="map")
    assert m.shape == (1, h, w)


def test_crop_mode_is_the_training_view(avol):
    cfg = avol.cfg
    img, wav = _image(192, 256), _wave()
    h = localize(avol, img, wav, mode="crop")
    x0, y0, x1, y1 = crop_region(192, 256, cfg)
    inside = np.zeros((192, 256), bool)
    inside[int(np.ceil(y0)) : int(y1), int(np.ceil(x0)) : int(x1)] = True
    assert np.all(h[~inside] == 0) and np.all(h[inside] > 0)
    # Same numbers as the model on the evaluation crop of training.
    x = VisionTransform(cfg.vision)(resize_short_side(img, cfg.vision.resize)[None], train=False)
    with torch.no_grad():
        ref = avol(x, torch.from_numpy(wav)[None])["heatmap"][0].numpy()
    np.testing.assert_allclose(heatmap_to_frame(ref, (192, 256), cfg, "crop"), h, atol=1e-6)


@pytest.mark.parametrize("mode", ["full", "crop"])
def test_map_cells_land_on_their_pixels(avol, mode):
    """A one-hot map cell peaks inside the frame region that cell looks at."""
    cfg = avol.cfg
    H, W = 192, 256
    if mode == "full":
        h, w = (s // map_stride(cfg) for s in full_input_size(H, W, cfg))
        x0, y0, x1, y1 = 0.0, 0.0, W, H
    else:
        h = w = cfg.vision.image_size // map_stride(cfg)
        x0, y0, x1, y1 = crop_region(H, W, cfg)
    for r, c in [(0, 0), (h - 1, w - 1), (h // 2, w // 3)]:
        m = np.zeros((h, w), np.float32)
        m[r, c] = 1.0
        up = heatmap_to_frame(m, (H, W), cfg, mode)
        i, j = np.unravel_index(np.argmax(up), up.shape)
        cy0, cy1 = y0 + r * (y1 - y0) / h, y0 + (r + 1) * (y1 - y0) / h
        cx0, cx1 = x0 + c * (x1 - x0) / w, x0 + (c + 1) * (x1 - x0) / w
        assert cy0 <= i + 0.5 <= cy1 and cx0 <= j + 0.5 <= cx1


def test_atrous_map_is_twice_as_fine_in_both_modes(avol):
    torch.manual_seed(0)
    cfg = get_config("tiny", arch="avol", **{"model.atrous": True})
    model = create_model(cfg).eval()
    assert map_stride(cfg) == 8 and map_stride(avol.cfg) == 16
    H, W = 192, 256
    h, w = (s // map_stride(cfg) for s in full_input_size(H, W, cfg))
    assert (h, w) == (18, 24)  # 144x192 px in; (9, 12) without atrous
    imgs, waves = [_image(H, W)], [_wave()]
    assert localize_batch(model, imgs, waves, resolution="map").shape == (1, h, w)
    crop = maps_for(model, imgs, waves, "crop", batch_size=4)[0]
    assert crop.shape == (cfg.vision.image_size // map_stride(cfg),) * 2 == (16, 16)
    full = maps_for(model, imgs, waves, "full", batch_size=4)[0]
    assert full.shape == (h, w)
    assert localize(model, imgs[0], waves[0]).shape == (H, W)


def test_localize_video(avol, clip):
    heat, times = localize_video(avol, clip.path)
    assert heat.ndim == 3 and len(times) == len(heat) == clip.num_frames
    np.testing.assert_allclose(times, clip.frame_times, atol=1e-6)
    heat, times = localize_video(avol, clip.path, hop=0.5, resolution="frame")
    np.testing.assert_allclose(times, [0.0, 0.5, 1.0, 1.5])
    assert heat.shape == (4, 72, 96)


def test_localize_rejects_non_avol(l3_run):
    with pytest.raises(ValueError, match="L3-Net.*localisation map"):
        localize(l3_run, _image(), _wave())


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def test_cli_video_to_mp4(avol_run, clip, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    png_dir = tmp_path / "png"
    args = ["localize", str(clip.path), "--checkpoint", str(avol_run), "--out", str(out)]
    rc = main(args + ["--png-dir", str(png_dir), "--every", "5", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    src, res = probe(clip.path), probe(out)
    assert res.has_video and res.has_audio
    assert res.num_frames == src.num_frames
    assert abs(res.duration - src.duration) < 0.1
    assert (res.width, res.height) == (src.width, src.height)
    assert read_frame(out, 1.0).shape == (72, 96, 3)
    assert len(list(png_dir.glob("*.png"))) == 4  # every 5th of 20 frames


def test_cli_image_and_audio_to_png(avol_run, tmp_path, capsys):
    img_path = tmp_path / "img.png"
    Image.fromarray(_image(60, 80)).save(img_path)
    wav = _write_wav(tmp_path / "a.wav", _wave(32000), 16000)
    out = tmp_path / "o.png"
    rc = main(
        ["localize", str(img_path), "--checkpoint", str(avol_run), "--out", str(out)]
        + ["--audio", str(wav)]
    )
    assert rc == 0, capsys.readouterr().err
    from looklisten.media.overlay import legend_strip

    assert Image.open(out).size == (80, 60 + legend_strip(80).shape[0])  # the legend below
    rc = main(
        ["localize", str(img_path), "--checkpoint", str(avol_run), "--out", str(out)]
        + ["--audio", str(wav), "--audio-at", "1.0", "--mode", "crop"]
    )
    assert rc == 0, capsys.readouterr().err


def test_cli_errors(avol_run, l3_run, clip, tmp_path, capsys):
    def run(*args):
        rc = main(["localize", *map(str, args)])
        return rc, capsys.readouterr().err

    out = tmp_path / "o.mp4"
    rc, err = run(clip.path, "--checkpoint", l3_run, "--out", out)
    assert rc == 2 and "L3-Net" in err and "localisation map" in err
    rc, err = run(tmp_path / "missing.mp4", "--checkpoint", avol_run, "--out", out)
    assert rc == 2 and "no such file" in err
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    rc, err = run(junk, "--checkpoint", avol_run, "--out", out)
    assert rc == 2 and "junk.mp4" in err
    silent = make_clip(tmp_path / "mute.mp4", "h264-aac", duration=1.5, fps=10.0, audio=False)
    rc, err = run(silent.path, "--checkpoint", avol_run, "--out", out)
    assert rc == 2 and "no audio stream" in err
    img = tmp_path / "i.png"
    Image.fromarray(_image()).save(img)
    rc, err = run(img, "--checkpoint", avol_run, "--out", tmp_path / "o.png")
    assert rc == 2 and "--audio" in err
    rc, err = run(img, "--checkpoint", tmp_path, "--out", tmp_path / "o.png", "--audio", clip.path)
    assert rc == 2 and "no checkpoint" in err
    assert not out.exists()
    with pytest.raises(MediaError):
        localize_video(avol_run, silent.path)


# ---------------------------------------------------------------------------
# eval localization
# ---------------------------------------------------------------------------


def test_eval_localization_json(avol_run, demo, tmp_path, capsys):
    png_dir = tmp_path / "png"
    args = ["eval", "localization", str(demo), "--checkpoint", str(avol_run)]
    rc = main(
        args + ["--times", "2", "--quiet", "--png-dir", str(png_dir), "--png-count", "2", "--save"]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    res = json.loads(captured.out)
    assert res["split"] == "all" and res["clips"] == 3 and res["samples"] == 6
    assert "median" in res["protocol"]["ciou_binarization"]
    methods = {"avol": res["avol"], **res["baselines"]}
    assert set(res["baselines"]) == {"centre_prior", "whole_image", "random_map"}
    for m in methods.values():
        for key in ("ciou@0.5", "auc", "mean_ciou", "pointing", "two_object_accuracy"):
            assert key in m
        assert 0.0 <= m["mean_ciou"] <= 1.0 and 0.0 <= m["pointing"] <= 1.0
        assert set(m["fixed_0.5"]) == {"ciou@0.5", "auc", "mean_ciou"}
    # The whole-image baseline predicts every pixel: cIoU = box share of the frame.
    assert 0.0 < res["baselines"]["whole_image"]["mean_ciou"] < 0.5  # = box share of the frame
    assert res["chance"]["two_object_accuracy"] == 0.5
    # the breakdown by objects shown partitions the samples
    parts = [p for p in res["by_objects"].values() if p is not None]
    assert sum(p["samples"] for p in parts) == res["samples"]
    for p in parts:
        assert set(p) == {"samples", "avol", *res["baselines"]}
        assert set(p["avol"]) == {"pixel_ap", "best_threshold_iou", "ciou@0.5", "pointing"}
    assert len(res["overlays"]) == 2 and all(Path(p).is_file() for p in res["overlays"])
    vs = res["avol_minus_best_baseline"]  # (tests/test_eval_localization.py checks it)
    assert vs["resampled"].startswith("3 clips")
    assert json.loads((avol_run / "eval" / "localization.json").read_text()) == res
    # without --save the run is left alone
    (avol_run / "eval" / "localization.json").unlink()
    assert main(args + ["--times", "1", "--quiet", "--max-clips", "1"]) == 0
    assert not (avol_run / "eval").joinpath("localization.json").exists()
    # a run folder that cannot be written: the result is still printed, the failure named
    import looklisten.models.checkpoint

    def read_only(*a, **k):
        raise PermissionError(13, "Permission denied", str(avol_run / "eval"))

    capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(looklisten.models.checkpoint, "save_eval", read_only)
        assert main(args + ["--times", "1", "--quiet", "--max-clips", "1", "--save"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["samples"] == 1
    assert "could not save localization.json" in captured.err
    assert "without --save nothing is written" in captured.err


def test_eval_uses_held_out_clips_of_the_training_folder(avol, demo, tmp_path, capsys):
    run = tmp_path / "run"
    save_checkpoint(run, avol, avol.cfg)
    files = sorted(load_annotations(demo))
    (run / "manifest.jsonl").write_text(json.dumps({"root": str(demo.resolve())}) + "\n")
    (run / "split.json").write_text(json.dumps({"train": files[:2], "val": files[2:]}))
    rc = main(["eval", "localization", str(demo), "--checkpoint", str(run), "--times", "1"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    res = json.loads(captured.out)
    assert res["split"] == "val" and res["clips"] == 1


def test_eval_rejects_non_avol(l3_run, demo, capsys):
    rc = main(["eval", "localization", str(demo), "--checkpoint", str(l3_run)])
    assert rc == 2 and "AVOL" in capsys.readouterr().err
