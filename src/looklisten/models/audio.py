"""Audio frontend: waveforms -> log-spectrogram images, plus gain augmentation.

One implementation serves training, evaluation and inference: every entry point
builds :class:`Spectrogram` from the :class:`~looklisten.core.config.AudioConfig`
saved beside the checkpoint.

The paper's spectrogram (L3 / Objects that Sound): 1 s of mono audio, a 0.01 s
periodic Hann window zero-padded to a 512-point FFT, hop 0.005 s, no centre
padding, log power. At 48 kHz that is 257 bins x 199 frames (200 with ``pad``).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from looklisten.core.config import AudioConfig


def hz_to_mel(f):
    """HTK mel scale: ``2595 log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Triangular filters on the HTK mel scale, integrated over each FFT bin.

    Band ``m`` is a triangle (peak 1) rising from edge ``m`` to edge ``m + 1`` and
    falling to edge ``m + 2``, where the ``n_mels + 2`` edges are evenly spaced
    in HTK mel between ``fmin`` and ``fmax``. Instead of sampling the triangle at
    the bin centres, each weight is the triangle's mean over the bin's width
    ``[f_k - df/2, f_k + df/2]``. For wide bands this equals the usual sampled
    filterbank; narrow low-frequency bands (narrower than one bin) still get a
    non-zero weight instead of coming out empty. No area normalisation: the
    bands sum to 1 on every bin between the first and last band centres.

    Parameters
    ----------
    sample_rate : int
        Sample rate in Hz.
    n_fft : int
        FFT size; there are ``n_fft // 2 + 1`` frequency bins.
    n_mels : int
        Number of mel bands.
    fmin, fmax : float
        Frequency range in Hz; ``fmax=None`` means ``sample_rate / 2``.

    Returns
    -------
    np.ndarray, shape (n_mels, n_fft // 2 + 1), float32
        Non-negative weights; ``mel_power = fb @ power``.
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2, got {fmin}, {fmax}")
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    left, centre, right = (edges[i : i + n_mels, None] for i in range(3))
    df = sample_rate / n_fft
    freqs = np.arange(n_fft // 2 + 1) * df

    def area(x):  # integral of each triangle from -inf to x, shape (n_mels, n_bins)
        a = np.clip(x, left, centre)
        b = np.clip(x, centre, right)
        return (a - left) ** 2 / (2 * (centre - left)) + (
            (right - centre) / 2 - (right - b) ** 2 / (2 * (right - centre))
        )

    return ((area(freqs + df / 2) - area(freqs - df / 2)) / df).astype(np.float32)


class Spectrogram(torch.nn.Module):
    """Waveforms -> log power (or log-mel) spectrogram images.

    Frames of ``cfg.win_length`` samples every ``cfg.hop_length`` samples (no
    centre padding; ``cfg.pad_samples`` zeros on each side when ``cfg.pad``),
    times a periodic Hann window, zero-padded to ``cfg.n_fft`` points, then
    ``log(|X|^2 + cfg.log_eps)``. With ``cfg.kind == "logmel"`` the power goes
    through :func:`mel_filterbank` (HTK mel scale) before the log.

    The STFT always runs in float32 with autocast disabled. The window and the
    filterbank are non-persistent buffers: they follow ``.to(device)`` but are
    not saved in checkpoints.

    Parameters
    ----------
    cfg : AudioConfig
        The preprocessing parameters.

    Shapes
    ------
    input : (B, N) or (N,) float, ``N == cfg.clip_samples``
    output : (B, 1, cfg.n_bins, cfg.n_frames) float32
    """

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        if not 0 < cfg.win_length <= cfg.n_fft:
            raise ValueError(f"need 0 < win_length <= n_fft, got {cfg.win_length}, {cfg.n_fft}")
        self.cfg = cfg
        # torch.stft takes n_fft-sample frames and centres a shorter window in
        # them; shifting the signal by the same left margin makes each frame
        # start at a multiple of hop, as with win_length-sample frames.
        self.margin = ((cfg.n_fft - cfg.win_length) // 2, (cfg.n_fft - cfg.win_length + 1) // 2)
        window = F.pad(torch.hann_window(cfg.win_length, periodic=True), self.margin)
        self.register_buffer("window", window, persistent=False)
        fb = None
        if cfg.kind == "logmel":
            fb = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
            fb = torch.from_numpy(fb)
        self.register_buffer("mel_fb", fb, persistent=False)

    def forward(self, wave: Tensor) -> Tensor:
        cfg = self.cfg
        if wave.ndim == 1:
            wave = wave[None]
        if wave.ndim != 2 or wave.shape[-1] != cfg.clip_samples:
            raise ValueError(f"expected (B, {cfg.clip_samples}) audio, got {tuple(wave.shape)}")
        with torch.autocast(wave.device.type, enabled=False):
            p = cfg.pad_samples
            x = F.pad(wave.float(), (p + self.margin[0], p + self.margin[1]))
            w = self.window.float()  # float32 even after module.half() / .double()
            X = torch.stft(
                x, cfg.n_fft, cfg.hop_length, window=w, center=False, return_complex=True
            )
            power = X.real.square() + X.imag.square()  # (B, n_fft // 2 + 1, T)
            if self.mel_fb is not None:
                power = self.mel_fb.float() @ power  # (B, n_mels, T)
            return power.add_(cfg.log_eps).log_().unsqueeze(1)

    def extra_repr(self) -> str:
        c = self.cfg
        return (
            f"kind={c.kind}, sample_rate={c.sample_rate}, win={c.win_length}, "
            f"hop={c.hop_length}, n_fft={c.n_fft}, pad={c.pad_samples}, "
            f"out=(1, {c.n_bins}, {c.n_frames})"
        )


def random_gain(wave: Tensor, jitter: float, generator: torch.Generator | None = None) -> Tensor:
    """Scale each example by a random gain uniform in ``[1 - jitter, 1 + jitter]``.

    Parameters
    ----------
    wave : Tensor, shape (B, N)
        Waveform batch (any trailing shape works; one gain per example).
    jitter : float
        Half-width of the gain range (the papers use 0.1).
    generator : torch.Generator, optional
        Source of randomness; the gains are drawn on its device.

    Returns
    -------
    Tensor, shape (B, N)
        A new tensor; ``wave`` is not modified.
    """
    device = generator.device if generator is not None else "cpu"
    u = torch.rand(wave.shape[0], generator=generator, device=device, dtype=torch.float64)
    gain = (1.0 + jitter * (2.0 * u - 1.0)).to(wave.device, wave.dtype)
    return wave * gain.view(-1, *([1] * (wave.ndim - 1)))


#: Bands of :func:`random_voice`'s spectral envelope: log-spaced centres from 100 Hz
#: to the Nyquist frequency.
VOICE_EQ_BANDS = 8
#: float64 draws per example of :func:`random_voice`: the speed, the band gains, then
#: the added noise's SNR, colour and seed.
VOICE_DRAWS = 1 + VOICE_EQ_BANDS + 3
#: Width (dB) of the range of SNRs of :func:`random_voice`'s added noise.
VOICE_NOISE_RANGE_DB = 20.0


@functools.lru_cache(maxsize=4)
def _noise_table(n: int, device: torch.device) -> Tensor:
    """Fixed white noise (float32, 16 * n + 2**16 samples, seed 0) that :func:`random_voice`
    takes its noise from, a stretch at a random place per example: one draw, no
    generator per example."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(16 * n + 2**16, generator=g).to(device)


def random_voice(
    wave: Tensor,
    sample_rate: int,
    speed: float,
    eq_db: float,
    generator: torch.Generator | None = None,
    noise_snr_db: float = 0.0,
) -> Tensor:
    """Another voice (and room) for each example: speed, spectral envelope, noise.

    Per example, the window is played ``f`` times faster about its centre (pitch and
    tempo together, as a tape; ``log f`` uniform in ``[-log(1 + speed), log(1 +
    speed)]``; samples from beyond the window's ends are silence), then filtered by
    a smooth random envelope: :data:`VOICE_EQ_BANDS` log-spaced bands with gains
    uniform in ``[-eq_db, eq_db]`` dB, linear in log frequency between them; then,
    with ``noise_snr_db > 0``, noise is added at an SNR uniform in ``[noise_snr_db,
    noise_snr_db + VOICE_NOISE_RANGE_DB]`` dB, its colour between white and pink
    (power ~ 1 / f^a, ``a`` uniform in [0, 1]). So a clip's own voice, colour and
    noise floor are not the same twice, while the word is.

    Parameters
    ----------
    wave : Tensor, shape (B, N)
    sample_rate : int
    speed, eq_db : float
        Ranges (0: that part off).
    generator : torch.Generator, optional
        Source of randomness: :data:`VOICE_DRAWS` float64 draws per example, on its
        device (the noise itself is a stretch of a fixed table at a place one of them
        draws, so an example's noise does not depend on its position in the batch).
    noise_snr_db : float
        Lowest SNR of the added noise (0: no noise).

    Returns
    -------
    Tensor, shape (B, N)
        A new tensor; ``wave`` is not modified.
    """
    B, N = wave.shape
    device = generator.device if generator is not None else "cpu"
    u = torch.rand(B, VOICE_DRAWS, generator=generator, device=device, dtype=torch.float64)
    u = u.to(wave.device)
    x = wave.float()  # float32 throughout: batched and cheap beside a training step
    if speed > 0:
        f = torch.exp(math.log1p(speed) * (2 * u[:, :1] - 1)).float()  # (B, 1)
        c = (N - 1) / 2
        pos = c + (torch.arange(N, device=x.device, dtype=torch.float32) - c) * f  # (B, N)
        grid = torch.stack([pos * (2 / (N - 1)) - 1, torch.zeros_like(pos)], -1)[:, None]
        # linear interpolation, silence beyond the window's ends: (B, 1, 1, N) -> (B, N)
        x = F.grid_sample(x[:, None, None], grid, "bilinear", "zeros", align_corners=True)
        x = x[:, 0, 0]
    freqs = torch.fft.rfftfreq(N, 1.0 / sample_rate, device=x.device)
    if eq_db > 0:
        gains = (eq_db * (2 * u[:, 1 : 1 + VOICE_EQ_BANDS] - 1)).float()  # (B, K) dB
        lo, hi = math.log(100.0), math.log(sample_rate / 2)
        p = (freqs.clamp(min=100.0).log() - lo) / (hi - lo) * (VOICE_EQ_BANDS - 1)
        i0 = p.floor().long().clamp(0, VOICE_EQ_BANDS - 2)
        w = (p - i0).clamp(0, 1)
        db = gains[:, i0] * (1 - w) + gains[:, i0 + 1] * w  # (B, F)
        x = torch.fft.irfft(torch.fft.rfft(x, dim=1) * 10 ** (db / 20), n=N, dim=1)
    if noise_snr_db > 0:
        snr, colour, where = u[:, -3], u[:, -2:-1].float(), u[:, -1]
        table = _noise_table(N, x.device)  # each example: a stretch of it at a random place
        start = (where * (len(table) - N)).long().clamp(0, len(table) - N)
        white = table[start[:, None] + torch.arange(N, device=x.device)]  # (B, N)
        shape = freqs.clamp(min=float(freqs[1]) if N > 2 else 1.0) ** (-colour / 2)  # (B, F)
        noise = torch.fft.irfft(torch.fft.rfft(white, dim=1) * shape, n=N, dim=1)
        p_sig = x.pow(2).mean(1, keepdim=True) + 1e-12
        p_noise = noise.pow(2).mean(1, keepdim=True) + 1e-12
        db = (noise_snr_db + VOICE_NOISE_RANGE_DB * snr).float().unsqueeze(1)
        x = x + noise * torch.sqrt(p_sig / p_noise / 10 ** (db / 10))
    return x.to(wave.dtype)
