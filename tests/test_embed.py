"""Tests of looklisten.tasks.embed: inputs of every kind, windows and timestamps, batching, CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from media import CLICK_AT, decode_index, make_clip, truncate, write_wav
from PIL import Image

from looklisten.cli.main import main
from looklisten.core.config import get_config
from looklisten.inputs.prepare import frame_lookup_time, window_times
from looklisten.media.video import MediaError, read_frame
from looklisten.models.checkpoint import get_model, save_checkpoint
from looklisten.models.network import create_model
from looklisten.tasks.embed import (
    embed_audio,
    embed_file,
    embed_image,
    embed_many,
    embed_video,
    make_task,
)

ATOL = 1e-5


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A tiny AVE-Net with random weights (and non-trivial BatchNorm statistics)."""
    torch.manual_seed(0)
    cfg = get_config("tiny", arch="ave")
    model = create_model(cfg)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    run = tmp_path_factory.mktemp("ave_run")
    save_checkpoint(run, model, cfg)
    return run


@pytest.fixture(scope="module")
def model(ckpt):
    return get_model(ckpt, "cpu")


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(0)
    files = {}
    files["video"] = make_clip(d / "clip.mp4", "h264-aac", 3.0, 10.0, size=(96, 72), gop=5).path
    files["webm"] = make_clip(d / "clip.webm", "vp9-opus", 2.0, 10.0, size=(96, 72)).path
    files["m4a"] = make_clip(d / "sound.m4a", "aac-m4a", 2.5).path
    files["wav"] = write_wav(d / "noise.wav", 0.3 * rng.standard_normal(16000 * 2), 16000)
    img = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(img).save(d / "pic.png")
    Image.fromarray(img).save(d / "pic.jpg", quality=90)
    files["png"], files["jpg"] = d / "pic.png", d / "pic.jpg"
    return files


# ---------------------------------------------------------------------------- windows


@pytest.mark.parametrize(
    "duration, hop, center, expected",
    [
        (3.0, 0.5, True, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]),
        (3.0, 0.5, False, [0.5, 1.0, 1.5, 2.0, 2.5]),
        (2.95, 1.0, True, [0.0, 1.0, 2.0]),
        (2.95, 1.0, False, [0.5, 1.5]),
        (0.4, 0.1, False, [0.5]),  # shorter than a window: one, zero-padded
        (0.0, 0.1, True, [0.0]),
    ],
)
def test_window_times(duration, hop, center, expected):
    np.testing.assert_allclose(window_times(duration, hop, center), expected, atol=1e-12)


def test_window_count_formula():
    for duration in (1.0, 2.37, 10.0):
        for hop in (0.1, 0.25, 0.3):
            n = len(window_times(duration, hop, True))
            assert n == int(np.floor(duration / hop + 1e-9)) + 1
            m = len(window_times(duration, hop, False))
            assert m == int(np.floor((duration - 1.0) / hop + 1e-9)) + 1
    with pytest.raises(ValueError, match="hop"):
        window_times(1.0, 0.0)


def test_audio_windows_are_what_the_docstring_says(model):
    """center=True: window i is centred at i*hop, zero-padded by half a window at the start."""
    sr, n = model.cfg.audio.sample_rate, model.cfg.audio.clip_samples
    x = np.random.default_rng(1).uniform(-0.5, 0.5, int(2.0 * sr)).astype(np.float32)
    emb, ts = embed_audio(model, x, sr=sr, hop=0.25)
    np.testing.assert_allclose(ts, np.arange(9) * 0.25)
    assert emb.shape == (9, model.cfg.model.embed_dim)
    manual = np.stack(
        [
            np.concatenate([np.zeros(n // 2, np.float32), x[: n // 2]]),  # centred at 0
            x[int(0.75 * sr) - n // 2 : int(0.75 * sr) + n // 2],  # centred at 0.75 s
            np.concatenate([x[-n // 2 :], np.zeros(n // 2, np.float32)]),  # centred at the end
        ]
    )
    with torch.no_grad():
        ref = model.embed_audio(torch.from_numpy(manual)).numpy()
    np.testing.assert_allclose(emb[[0, 3, 8]], ref, atol=ATOL)

    emb2, ts2 = embed_audio(model, x, sr=sr, hop=0.25, center=False)
    np.testing.assert_allclose(ts2, 0.5 + np.arange(5) * 0.25)
    with torch.no_grad():
        first = model.embed_audio(torch.from_numpy(x[None, :n])).numpy()
    np.testing.assert_allclose(emb2[0], first[0], atol=ATOL)


def test_audio_array_kinds_agree(model):
    sr = model.cfg.audio.sample_rate
    x = (0.4 * np.sin(np.arange(int(1.5 * sr)) * 0.05)).astype(np.float32)
    ref, ts = embed_audio(model, x, sr=sr, hop=0.5)
    assert len(ts) == 4
    # a tensor, a stereo (C, N) array and an (N, C) array give the same
    for arr in (torch.from_numpy(x), np.stack([x, x]), np.stack([x, x], axis=1)):
        e, t = embed_audio(model, arr, sr=sr, hop=0.5)
        np.testing.assert_allclose(e, ref, atol=ATOL)
        np.testing.assert_array_equal(t, ts)
    # int16 samples are scaled by 1/32768 (quantisation noise moves the log of
    # near-silent spectrogram bins a little)
    e16, _ = embed_audio(model, np.round(x * 32767).astype(np.int16), sr=sr, hop=0.5)
    assert (np.sum(e16 * ref, axis=1) > 0.98).all()
    # another sample rate is resampled: same duration, same number of windows
    x48 = (0.4 * np.sin(np.arange(int(1.5 * 48000)) * 0.05 / 3)).astype(np.float32)
    e48, t48 = embed_audio(model, x48, sr=48000, hop=0.5)
    np.testing.assert_array_equal(t48, ts)
    assert np.abs(e48 - ref).max() < 0.05
    # a list gives a list
    out = embed_audio(model, [x, x48], sr=sr, hop=0.5)
    assert isinstance(out, list) and len(out) == 2
    with pytest.raises(ValueError, match="sample rate"):
        embed_audio(model, x)


# ---------------------------------------------------------------------------- images


def test_images_from_files_arrays_tensors_lists(model, media):
    pixels = np.array(Image.open(media["png"]).convert("RGB"))
    ref = embed_image(model, pixels)
    assert ref.shape == (1, model.cfg.model.embed_dim)
    np.testing.assert_allclose(embed_image(model, media["png"]), ref, atol=ATOL)
    np.testing.assert_allclose(embed_image(model, str(media["png"])), ref, atol=ATOL)
    np.testing.assert_allclose(embed_image(model, torch.from_numpy(pixels)), ref, atol=ATOL)
    chw = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255  # float, channels first
    np.testing.assert_allclose(embed_image(model, chw), ref, atol=ATOL)
    jpg = embed_image(model, media["jpg"])  # lossy, but close
    assert float((jpg @ ref.T)[0, 0]) > 0.9
    batch = embed_image(model, [media["png"], np.stack([pixels, pixels[::-1]]), media["jpg"]])
    assert batch.shape == (4, model.cfg.model.embed_dim)
    np.testing.assert_allclose(batch[0], ref[0], atol=ATOL)
    np.testing.assert_allclose(batch[1], ref[0], atol=ATOL)
    assert embed_image(model, []).shape == (0, model.cfg.model.embed_dim)


def test_ave_embeddings_are_unit_vectors_l3_are_conv4_features(model, media, tmp_path):
    e = embed_image(model, media["png"])
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    cfg = get_config("tiny", arch="l3")
    l3 = create_model(cfg).eval()
    out = embed_file(media["video"], l3, hop=1.0)
    assert out["image_embedding"].shape[1] == cfg.model.widths[-1]
    assert (out["audio_embedding"] >= 0).all()  # max-pooled ReLU maps


# ---------------------------------------------------------------------------- batching


@pytest.mark.parametrize("bs", [1, 3, 7])
def test_results_do_not_depend_on_batch_size(model, media, bs):
    ref = embed_file([media["video"], media["wav"], media["png"]], model, hop=0.3)
    out = embed_file([media["video"], media["wav"], media["png"]], model, hop=0.3, batch_size=bs)
    np.testing.assert_allclose(out[0]["audio_embedding"], ref[0]["audio_embedding"], atol=ATOL)
    np.testing.assert_allclose(out[0]["image_embedding"], ref[0]["image_embedding"], atol=ATOL)
    np.testing.assert_allclose(out[1]["embedding"], ref[1]["embedding"], atol=ATOL)
    np.testing.assert_allclose(out[2]["embedding"], ref[2]["embedding"], atol=ATOL)


def test_training_mode_model_is_embedded_in_eval_mode(ckpt, media):
    net = create_model(get_config("tiny", arch="ave"))
    net.load_state_dict(get_model(ckpt, "cpu").state_dict())
    net.train()
    a = embed_image(net, media["png"], batch_size=1)
    b = embed_image(get_model(ckpt, "cpu"), media["png"])
    np.testing.assert_allclose(a, b, atol=ATOL)
    assert net.training  # the caller's mode is restored


def test_embed_many_does_not_leak_modes_into_the_callers_loop(ckpt, media):
    net = create_model(get_config("tiny", arch="ave"))
    net.train()
    seen = []
    for _, _res, err in embed_many([media["png"], media["wav"], media["video"]], net, hop=0.5):
        assert err is None
        seen.append((torch.is_inference_mode_enabled(), torch.is_grad_enabled(), net.training))
    assert seen == [(False, True, True)] * 3


def test_model_path_is_loaded_once(ckpt, media):
    assert get_model(ckpt, "cpu") is get_model(str(ckpt), "cpu")
    e1 = embed_image(ckpt, media["png"], device="cpu")
    e2 = embed_image(get_model(ckpt, "cpu"), media["png"])
    np.testing.assert_allclose(e1, e2, atol=0)


# ---------------------------------------------------------------------------- videos


def test_video_audio_and_frames_are_time_aligned(model, tmp_path):
    """Each timestamp t gets the frame at t (the nearest: looklisten.inputs.prepare) and
    the 1 s of audio centred at t."""
    cfg = model.cfg
    r = cfg.vision.resize  # a square frame of the model's size: the crop is the whole frame
    fps = 10.0
    clip = make_clip(tmp_path / "a.avi", "mjpeg-pcm", 3.0, fps, 16000, 1, size=(r, r))
    task = make_task(0, clip.path, cfg, hop=0.35, center=True)
    ts = task.timestamps
    np.testing.assert_allclose(ts, np.arange(9) * 0.35, atol=1e-12)
    squares = list(task.items["image"]())
    windows = list(task.items["audio"]())
    n, sr = cfg.audio.clip_samples, cfg.audio.sample_rate
    for t, sq, w in zip(ts, squares, windows):
        # the frame nearest to t: the one shown half a frame later (0.35 s -> frame 4 at 0.4 s)
        assert decode_index(sq) == clip.frame_at(frame_lookup_time(t, fps))
        # the click of second k sits at (k + CLICK_AT - t) s from the window centre
        for k in range(3):
            pos = int(round((k + CLICK_AT - t) * sr)) + n // 2
            if 20 <= pos < n - 20:
                near = np.abs(w[pos - 20 : pos + 20])
                assert int(np.argmax(near)) - 20 in range(-2, 3)
                assert near.max() > 0.3
    out = embed_video(model, clip.path, hop=0.35)
    np.testing.assert_array_equal(out["timestamps"], ts)
    with torch.no_grad():
        ref_a = model.embed_audio(torch.from_numpy(np.stack(windows))).numpy()
    np.testing.assert_allclose(out["audio_embedding"], ref_a, atol=ATOL)
    np.testing.assert_allclose(out["image_embedding"], embed_image(model, squares), atol=ATOL)


def test_video_image_embedding_is_the_frame_at_each_time(model, media):
    out = embed_video(model, media["video"], hop=0.5, center=False)
    ts = out["timestamps"]
    np.testing.assert_allclose(ts, [0.5, 1.0, 1.5, 2.0, 2.5])
    frames = np.stack([read_frame(media["video"], t, size=model.cfg.vision.resize) for t in ts])
    np.testing.assert_allclose(out["image_embedding"], embed_image(model, frames), atol=ATOL)
    # audio embeddings match embed_audio on the file (same decode)
    a, ta = embed_audio(model, media["video"], hop=0.5, center=False)
    np.testing.assert_allclose(a, out["audio_embedding"], atol=ATOL)
    np.testing.assert_array_equal(ta, ts)


def test_embed_file_dispatches_by_content(model, media, tmp_path):
    disguised = {
        "video": tmp_path / "x.bin",
        "png": tmp_path / "y.dat",
        "m4a": tmp_path / "z.data",
    }
    for key, dst in disguised.items():
        shutil.copy(media[key], dst)
    out = embed_file(list(disguised.values()), model, hop=0.5)
    assert [o["modality"] for o in out] == ["video", "image", "audio"]
    assert out[0]["audio_embedding"].shape == out[0]["image_embedding"].shape == (7, 64)
    assert out[1]["embedding"].shape == (1, 64)
    assert len(out[2]["timestamps"]) == 6  # 2.5 s, hop 0.5, centred: 0 .. 2.5
    webm = embed_file(media["webm"], model, hop=1.0)
    assert webm["modality"] == "video" and len(webm["timestamps"]) == 3
    mute = make_clip(tmp_path / "mute.mp4", "h264-aac", 2.0, 10.0, size=(96, 72), audio=False)
    out = embed_file(mute.path, model, hop=0.5)  # a video without sound: pictures only
    assert out["modality"] == "video" and out["audio_embedding"] is None
    assert out["image_embedding"].shape == (5, 64)
    arr = embed_file(np.zeros((50, 60, 3), np.uint8), model)
    assert arr["modality"] == "image"
    aud = embed_file(np.zeros(16000, np.float32), model, sr=16000, hop=0.5)
    assert aud["modality"] == "audio" and len(aud["timestamps"]) == 3


# ---------------------------------------------------------------------------- bad inputs


@pytest.fixture(scope="module")
def bad(media, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    out = {
        "truncated video": truncate(media["video"], d / "cut.mp4", 0.3),
        "empty audio": d / "empty.wav",
        "not an image": d / "text.png",
        "missing": d / "missing.mp4",
    }
    out["empty audio"].write_bytes(b"")
    out["not an image"].write_text("not a picture")
    data = Path(media["png"]).read_bytes()
    out["truncated image"] = d / "cut.png"
    out["truncated image"].write_bytes(data[: len(data) // 3])
    return out


def test_bad_inputs_name_the_file_and_others_still_embed(model, media, bad):
    inputs = [
        media["png"],
        *bad.values(),
        media["wav"],
        np.full(100, np.nan, np.float32),  # bad array
        np.zeros((2, 3, 4, 5, 6), np.uint8),  # bad image array
    ]
    got = {key: (res, err) for key, res, err in embed_many(inputs, model, sr=16000)}
    assert sorted(got) == list(range(len(inputs)))
    assert got[0][1] is None and got[0][0]["modality"] == "image"
    assert got[len(bad) + 1][1] is None and got[len(bad) + 1][0]["modality"] == "audio"
    for i, path in enumerate(bad.values(), start=1):
        res, err = got[i]
        assert res is None and isinstance(err, MediaError), (path, err)
        assert str(err).startswith(str(path) + ": ") and err.reason
        assert "\n" not in str(err)
    assert isinstance(got[len(inputs) - 2][1], ValueError)
    assert "NaN" in str(got[len(inputs) - 2][1])
    assert isinstance(got[len(inputs) - 1][1], ValueError)
    with pytest.raises(MediaError, match="empty"):
        embed_audio(model, bad["empty audio"])
    with pytest.raises(MediaError, match="cut.mp4"):
        embed_video(model, bad["truncated video"])
    with pytest.raises(MediaError, match="no video stream or image"):
        embed_image(model, media["wav"])


# ---------------------------------------------------------------------------- CLI


def test_cli_embeds_a_folder_and_reports_bad_files(ckpt, media, bad, tmp_path, capsys):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    shutil.copy(media["video"], src / "sub" / "clip.mp4")
    shutil.copy(media["wav"], src / "noise.wav")
    shutil.copy(media["png"], src / "pic.png")
    shutil.copy(bad["truncated video"], src / "sub" / "cut.mp4")
    shutil.copy(bad["not an image"], src / "text.png")
    (src / "notes.txt").write_text("ignored: not a media extension")
    out = tmp_path / "emb"
    rc = main(
        ["embed", str(src), str(media["m4a"]), "--checkpoint", str(ckpt), "--out", str(out)]
        + ["--hop", "0.5", "--batch-size", "5", "--quiet"]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert f"error: {src / 'sub' / 'cut.mp4'}: truncated or corrupt" in err
    assert f"error: {src / 'text.png'}: " in err
    assert "embedded 4 of 6" in err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npz"))
    assert written == ["noise.wav.npz", "pic.png.npz", "sound.m4a.npz", "sub/clip.mp4.npz"]

    with np.load(out / "sub" / "clip.mp4.npz") as z:
        assert str(z["modality"]) == "video"
        np.testing.assert_allclose(z["timestamps"], np.arange(7) * 0.5)
        assert z["audio_embedding"].shape == z["image_embedding"].shape == (7, 64)
        assert Path(str(z["checkpoint"])) == Path(ckpt).absolute() / "checkpoint"
        assert bool(z["center"]) and float(z["hop"]) == 0.5
        ref = embed_video(ckpt, media["video"], hop=0.5, device="cpu")
        np.testing.assert_allclose(z["image_embedding"], ref["image_embedding"], atol=ATOL)
    with np.load(out / "noise.wav.npz") as z:
        assert str(z["modality"]) == "audio" and z["embedding"].shape == (5, 64)
        np.testing.assert_allclose(z["timestamps"], np.arange(5) * 0.5)
    with np.load(out / "pic.png.npz") as z:
        assert str(z["modality"]) == "image" and z["embedding"].shape == (1, 64)

    # --no-center: windows inside the file
    rc = main(
        ["embed", str(src / "noise.wav"), "--checkpoint", str(ckpt), "--out", str(out / "nc")]
        + ["--hop", "0.5", "--no-center", "--quiet"]
    )
    assert rc == 0
    with np.load(out / "nc" / "noise.wav.npz") as z:
        np.testing.assert_allclose(z["timestamps"], [0.5, 1.0, 1.5])
        assert not bool(z["center"])
