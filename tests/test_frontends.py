"""Tests of the audio and vision frontends (looklisten.models.audio, looklisten.inputs.prepare)."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from looklisten.core.config import VisionConfig, get_config, list_presets
from looklisten.inputs.prepare import (
    CHANNEL_ORDERS,
    VisionTransform,
    denormalize,
    random_channel_order,
    resize_short_side,
)
from looklisten.models.audio import (
    VOICE_NOISE_RANGE_DB,
    Spectrogram,
    mel_filterbank,
    random_gain,
    random_voice,
)


def test_random_voice_changes_speed_and_colour_not_the_word():
    sr, n = 16000, 16000
    t = torch.arange(n) / sr
    tone = 0.5 * torch.sin(2 * math.pi * 440 * t)
    wave = tone.repeat(64, 1)
    sped = random_voice(wave, sr, 0.2, 0.0, torch.Generator().manual_seed(0))
    peaks = torch.fft.rfft(sped).abs().argmax(1).double()  # bin k = k Hz (1 s)
    assert peaks.min() >= 440 / 1.2 - 2 and peaks.max() <= 440 * 1.2 + 2
    assert peaks.max() - peaks.min() > 100  # fills the range: other pitches
    assert torch.equal(random_voice(wave, sr, 0.0, 0.0), wave)
    # the envelope: a smooth gain per example, within +-eq dB, the same tone otherwise
    noise = torch.randn(64, n)
    eq = random_voice(noise, sr, 0.0, 6.0, torch.Generator().manual_seed(1))
    gain_db = 20 * torch.log10(torch.fft.rfft(eq).abs() / torch.fft.rfft(noise).abs())
    assert gain_db.abs().max() <= 6.0 + 1e-3
    assert gain_db[:, 100:].std(0).mean() > 2.0  # examples differ
    again = random_voice(noise, sr, 0.2, 6.0, torch.Generator().manual_seed(3), 5.0)
    assert torch.equal(
        again, random_voice(noise, sr, 0.2, 6.0, torch.Generator().manual_seed(3), 5.0)
    )
    # added noise: at an SNR in [5, 5 + VOICE_NOISE_RANGE_DB] dB
    noisy = random_voice(wave, sr, 0.0, 0.0, torch.Generator().manual_seed(4), 5.0)
    snr = 10 * torch.log10(wave.pow(2).mean(1) / (noisy - wave).pow(2).mean(1))
    assert snr.min() >= 5.0 - 1e-6 and snr.max() <= 5.0 + VOICE_NOISE_RANGE_DB + 1e-6
    assert snr.max() - snr.min() > 10  # fills the range


def test_random_channel_order():
    frames = torch.randint(0, 256, (600, 2, 4, 4, 5), dtype=torch.uint8)  # RGB + 2 flow
    out = random_channel_order(frames, torch.Generator().manual_seed(0))
    assert torch.equal(out[..., 3:], frames[..., 3:])  # flow stays
    seen = []
    for b in range(len(frames)):
        order = next(
            o for o in CHANNEL_ORDERS if torch.equal(out[b, ..., :3], frames[b][..., list(o)])
        )
        seen.append(order)
    counts = [seen.count(o) for o in CHANNEL_ORDERS]
    assert min(counts) > 60, counts  # all six, about equally often


# ---------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------


def reference_spectrogram(wave: np.ndarray, c) -> np.ndarray:
    """Plain numpy: a loop over frames, a periodic Hann window, np.fft.rfft."""
    x = np.pad(wave.astype(np.float64), c.pad_samples)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(c.win_length) / c.win_length)
    power = []
    for t in range(c.n_frames):
        seg = x[t * c.hop_length : t * c.hop_length + c.win_length]
        power.append(np.abs(np.fft.rfft(seg * win, n=c.n_fft)) ** 2)
    power = np.stack(power, axis=1)  # (n_fft // 2 + 1, T)
    if c.kind == "logmel":
        fb = mel_filterbank(c.sample_rate, c.n_fft, c.n_mels, c.fmin, c.fmax)
        power = fb.astype(np.float64) @ power
    return np.log(power + c.log_eps)


def test_preset_shapes():
    expected = {"paper": (1, 257, 199), "ots": (1, 257, 200)}
    for preset in list_presets():
        c = get_config(preset).audio
        out = Spectrogram(c)(torch.randn(3, c.clip_samples))
        assert out.shape == (3, *c.shape) and out.dtype == torch.float32
        assert c.shape == expected.get(preset, c.shape)
        assert Spectrogram(c)(torch.randn(c.clip_samples)).shape == (1, *c.shape)


@pytest.mark.parametrize("preset", ["paper", "tiny"])
@pytest.mark.parametrize("kind", ["spectrogram", "logmel"])
@pytest.mark.parametrize("pad", [False, True])
def test_matches_numpy_reference(preset, kind, pad):
    c = dataclasses.replace(get_config(preset).audio, kind=kind, pad=pad)
    rng = np.random.default_rng(0)
    t = np.arange(c.clip_samples) / c.sample_rate
    wave = 0.3 * rng.standard_normal(c.clip_samples) + 0.5 * np.sin(2 * np.pi * 440 * t)
    wave = wave.astype(np.float32)
    out = Spectrogram(c)(torch.from_numpy(wave))[0, 0].double().numpy()
    ref = reference_spectrogram(wave, c)
    assert out.shape == ref.shape == (c.n_bins, c.n_frames)
    # 1e-4 relative, with an absolute floor of 1e-4 of the log-power range for
    # the few bins whose log power is near 0.
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("freq", [3750.0, 1000.0, 15000.0])
def test_sine_peaks_at_its_bin(freq):
    c = get_config("paper").audio
    t = np.arange(c.clip_samples) / c.sample_rate
    wave = torch.from_numpy(np.sin(2 * np.pi * freq * t).astype(np.float32))
    peak = Spectrogram(c)(wave)[0, 0].argmax(0)  # (T,)
    assert (peak == round(freq * c.n_fft / c.sample_rate)).all()


def test_batch_independence():
    c = get_config("tiny").audio
    spec = Spectrogram(c)
    wave = torch.randn(4, c.clip_samples, generator=torch.Generator().manual_seed(0))
    out = spec(wave)
    other = wave.clone()
    other[1:] = torch.randn(3, c.clip_samples) * 10
    torch.testing.assert_close(spec(other)[0], out[0], rtol=0, atol=1e-5)
    for i in range(4):
        torch.testing.assert_close(spec(wave[i])[0], out[i], rtol=0, atol=1e-5)


def test_float32_under_autocast_and_no_state():
    c = dataclasses.replace(get_config("tiny").audio, kind="logmel")
    spec = Spectrogram(c)
    wave = torch.randn(2, c.clip_samples)
    ref = spec(wave)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = spec(wave.bfloat16())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, spec(wave.bfloat16().float()))
    assert spec.state_dict() == {}  # window and filterbank are not checkpointed
    torch.testing.assert_close(spec.double()(wave), ref)  # buffers cast back to float32
    with pytest.raises(ValueError):
        spec(torch.randn(2, c.clip_samples + 1))


@pytest.mark.parametrize(
    "sr, n_fft, n_mels, fmin, fmax",
    [(48000, 512, 64, 0.0, None), (16000, 256, 64, 0.0, None), (16000, 1024, 40, 300.0, 6000.0)],
)
def test_mel_filterbank(sr, n_fft, n_mels, fmin, fmax):
    fb = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    fmax = sr / 2 if fmax is None else fmax
    df = sr / n_fft
    freqs = np.arange(n_fft // 2 + 1) * df
    assert fb.shape == (n_mels, n_fft // 2 + 1) and fb.dtype == np.float32
    assert (fb >= 0).all() and (fb.sum(1) > 0).all()  # no empty band
    # Covers [fmin, fmax] and nothing beyond (up to half a bin).
    support = fb.sum(0) > 0
    assert freqs[support].min() <= fmin + df and freqs[support].max() >= fmax - df
    assert freqs[support].min() >= fmin - df and freqs[support].max() <= fmax + df
    centroid = (fb * freqs).sum(1) / fb.sum(1)
    assert (np.diff(centroid) > 0).all() and (np.diff(fb.argmax(1)) >= 0).all()
    # Partition of unity between the first and last band centres.
    inner = (freqs > centroid[0] + df) & (freqs < centroid[-1] - df)
    np.testing.assert_allclose(fb.sum(0)[inner], 1.0, atol=1e-5)


def test_mel_filterbank_peaks_strictly_increase_with_fine_fft():
    fb = mel_filterbank(16000, 4096, 64, 0.0, None)
    assert (np.diff(fb.argmax(1)) > 0).all()


def test_random_gain():
    wave = torch.randn(1000, 16).abs() + 0.1
    gained = random_gain(wave, 0.1, torch.Generator().manual_seed(1))
    ratio = gained / wave
    assert torch.allclose(ratio, ratio[:, :1], rtol=1e-6)  # one gain per example
    assert ratio.min() >= 0.9 - 1e-6 and ratio.max() <= 1.1 + 1e-6
    assert ratio.min() < 0.92 and ratio.max() > 1.08  # fills the range
    again = random_gain(wave, 0.1, torch.Generator().manual_seed(1))
    other = random_gain(wave, 0.1, torch.Generator().manual_seed(2))
    assert torch.equal(gained, again) and not torch.equal(gained, other)


# ---------------------------------------------------------------------------
# Vision
# ---------------------------------------------------------------------------


def normalise_np(crop: np.ndarray, c: VisionConfig) -> np.ndarray:
    """(..., S, S, 3) uint8 -> (..., 3, S, S) float32, in numpy."""
    x = (crop.astype(np.float32) / 255 - np.float32(c.mean)) / np.float32(c.std)
    return np.moveaxis(x, -1, -3)


def find_crop(frame: np.ndarray, crop: np.ndarray) -> list[tuple[int, int, bool]]:
    """All (top, left, flipped) placements of ``crop`` (S, S, 3) in ``frame``."""
    S = crop.shape[0]
    win = np.lib.stride_tricks.sliding_window_view(frame, (S, S, 3))[:, :, 0]
    hits = []
    for flipped, target in ((False, crop), (True, crop[:, ::-1])):
        for top, left in zip(*np.nonzero((win == target).all(axis=(2, 3, 4)))):
            hits.append((int(top), int(left), flipped))
    return hits


def frames(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_vision_shapes():
    c = get_config("tiny").vision
    tf = VisionTransform(c)
    S = c.image_size
    g = torch.Generator().manual_seed(0)
    for train in (False, True):
        out = tf(frames((4, 72, 90, 3)), train, g)
        assert out.shape == (4, 3, S, S) and out.dtype == torch.float32
        out = tf(torch.from_numpy(frames((4, 2, 80, 72, 3))), train, g)
        assert out.shape == (4, 3, 2, S, S) and out.dtype == torch.float32
    with pytest.raises(ValueError):
        tf(frames((4, 60, 90, 3)), False)


def test_eval_is_normalised_centre_crop():
    c = get_config("tiny").vision
    S = c.image_size
    x = frames((3, 75, 90, 3))
    out = VisionTransform(c)(x, train=False).numpy()
    top, left = (75 - S) // 2, (90 - S) // 2
    ref = normalise_np(x[:, top : top + S, left : left + S], c)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)
    crop = denormalize(torch.from_numpy(out), c)
    np.testing.assert_array_equal(crop, x[:, top : top + S, left : left + S])


def test_train_reproducible():
    tf = VisionTransform(get_config("tiny").vision)
    x = frames((8, 72, 96, 3))
    a = tf(x, True, torch.Generator().manual_seed(3))
    b = tf(x, True, torch.Generator().manual_seed(3))
    c = tf(x, True, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_train_crop_is_a_sub_window_and_flips_half_the_time():
    c = VisionConfig(image_size=8, resize=10, brightness=0.0, saturation=0.0)
    x = frames((200, 10, 13, 3), seed=1)
    out = denormalize(VisionTransform(c)(x, True, torch.Generator().manual_seed(0)), c)
    placements = []
    for frame, crop in zip(x, out):
        hits = find_crop(frame, crop)
        assert len(hits) == 1  # random content: exactly one placement matches
        placements.append(hits[0])
    tops, lefts, flips = map(np.array, zip(*placements))
    assert 0.35 < flips.mean() < 0.65
    assert set(tops) == {0, 1, 2} and set(lefts) == set(range(6))  # every offset used


def test_k_frames_share_crop_flip_and_jitter():
    c = VisionConfig(image_size=8, resize=10, brightness=0.0, saturation=0.0)
    x = frames((20, 3, 10, 13, 3), seed=2)
    out = denormalize(VisionTransform(c)(x, True, torch.Generator().manual_seed(0)), c)
    for clip, crops in zip(x, out):  # (K, H, W, 3), (K, S, S, 3)
        hits = [find_crop(f, crop) for f, crop in zip(clip, crops)]
        assert all(h == hits[0] and len(h) == 1 for h in hits)
    # With jitter on, K copies of one frame come out identical.
    tf = VisionTransform(get_config("tiny").vision)
    same = np.repeat(frames((6, 1, 72, 80, 3)), 3, axis=1)
    out = tf(same, True, torch.Generator().manual_seed(0))
    assert torch.equal(out[:, :, 0], out[:, :, 1]) and torch.equal(out[:, :, 0], out[:, :, 2])


def test_jitter_stays_in_range_and_does_its_job():
    c = VisionConfig(image_size=8, resize=8, brightness=0.9, saturation=0.9)
    x = np.concatenate([frames((30, 8, 8, 3)), np.zeros((5, 8, 8, 3), np.uint8) + 255])
    out = VisionTransform(c)(x, True, torch.Generator().manual_seed(0))
    mean, std = torch.tensor(c.mean).view(3, 1, 1), torch.tensor(c.std).view(3, 1, 1)
    assert (out >= -mean / std - 1e-6).all() and (out <= (1 - mean) / std + 1e-6).all()

    # Brightness alone scales a gray image by a factor in [1 - b, 1 + b].
    c = VisionConfig(image_size=8, resize=8, brightness=0.4, saturation=0.0)
    gray = np.full((100, 8, 8, 3), 100, np.uint8)
    out = VisionTransform(c)(gray, True, torch.Generator().manual_seed(0))
    factor = (out * std + mean)[:, :, 0, 0] / (100 / 255)  # (B, 3)
    assert torch.allclose(factor, factor[:, :1], atol=1e-5)
    assert factor.min() >= 0.6 - 1e-5 and factor.max() <= 1.4 + 1e-5 and factor.std() > 0.1

    # Saturation alone keeps the luma (no clipping for mid-range colours).
    c = VisionConfig(image_size=8, resize=8, hflip=False, brightness=0.0, saturation=0.4)
    x = np.random.default_rng(0).integers(100, 156, (50, 8, 8, 3), dtype=np.uint8)
    out = VisionTransform(c)(x, True, torch.Generator().manual_seed(0)) * std + mean
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    inp = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close((out * luma).sum(1), (inp * luma).sum(1), atol=1e-5, rtol=0)
    assert not torch.allclose(out, inp, atol=1e-3)


def test_resize_short_side():
    img = frames((90, 120, 3))
    assert resize_short_side(img, 45).shape == (45, 60, 3)
    assert resize_short_side(img.transpose(1, 0, 2), 45).shape == (60, 45, 3)
    assert resize_short_side(img, 180).shape == (180, 240, 3)
    np.testing.assert_array_equal(resize_short_side(img, 90), img)
    # Antialiased: a 1-pixel checkerboard scaled by 1/4 becomes flat mid-gray.
    board = ((np.indices((64, 96)).sum(0) % 2) * 255).astype(np.uint8)
    small = resize_short_side(np.repeat(board[..., None], 3, -1), 16)
    assert small.shape == (16, 24, 3) and np.abs(small[2:-2, 2:-2].astype(int) - 128).max() <= 2
