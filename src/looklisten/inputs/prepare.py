"""Vision frontend: uint8 RGB frames -> normalised square crops.

Frames arrive from the video decoder already scaled so that their shorter side
is ``cfg.resize`` pixels. :class:`VisionTransform` crops (random in training,
centre in evaluation), flips, jitters brightness and saturation and normalises,
on whole batches at once and on whatever device the frames are on.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from looklisten.core.config import VisionConfig

# ITU-R BT.601 luma weights, for the grayscale image of the saturation jitter.
_LUMA = (0.299, 0.587, 0.114)


class VisionTransform:
    """Crop, flip, jitter and normalise a batch of frames.

    Training (``train=True``), per example: a random ``S x S`` crop position,
    a horizontal flip with probability 0.5 (if ``cfg.hflip``), brightness
    jitter (multiply by a factor uniform in ``[1 - b, 1 + b]``), then
    saturation jitter (blend with the grayscale image by a factor uniform in
    ``[1 - s, 1 + s]``), each clamped to [0, 1]. The K frames of one example
    share all of these. Evaluation: the centre crop (offset ``(H - S) // 2``,
    ``(W - S) // 2``), nothing random. Then ``(x - mean) / std``.

    With optical flow (``cfg.flow_frames = L > 0``, AVE+OF) frames carry
    ``3 + 2L`` channels: RGB, then uint8 flow codes (see looklisten.inputs.flow). The
    flow is cropped and flipped with the frame (a flip also negates every dx),
    not jittered, and becomes ``(q - 128) / 127`` (flow / bound, in [-1, 1]).

    Crop and flip are one gather on the uint8 frames, so moving uint8 frames to
    the GPU first and transforming there is cheap. Given the generator, the
    output is deterministic.

    Parameters
    ----------
    cfg : VisionConfig
        The preprocessing parameters; ``S = cfg.image_size``.
    """

    def __init__(self, cfg: VisionConfig):
        self.cfg = cfg
        self.mean = torch.tensor(cfg.mean, dtype=torch.float32)
        self.std = torch.tensor(cfg.std, dtype=torch.float32)

    def __call__(self, frames, train: bool, generator: torch.Generator | None = None) -> Tensor:
        """Transform a batch.

        Parameters
        ----------
        frames : np.ndarray or Tensor, uint8, shape (B, H, W, C) or (B, K, H, W, C)
            RGB frames (C = 3; C = 3 + 2L with flow), ``H, W >= cfg.image_size``.
        train : bool
            Random crop, flip and jitter if True; centre crop otherwise.
        generator : torch.Generator, optional
            Source of randomness in training; draws happen on its device.

        Returns
        -------
        Tensor, float32, shape (B, C, S, S) or (B, C, K, S, S)
            Normalised crops (contiguous), on the device of ``frames``.
        """
        if isinstance(frames, np.ndarray) and not frames.flags.writeable:
            frames = frames.copy()  # torch warns about read-only arrays (e.g. np.frombuffer)
        x = torch.as_tensor(frames)
        channels = 3 + 2 * self.cfg.flow_frames
        if x.dtype != torch.uint8 or x.ndim not in (4, 5) or x.shape[-1] != channels:
            raise ValueError(
                f"expected uint8 (B, [K,] H, W, {channels}) frames, got {tuple(x.shape)} {x.dtype}"
            )
        single = x.ndim == 4
        if single:
            x = x[:, None]
        B, K, H, W, _ = x.shape
        S = self.cfg.image_size
        if H < S or W < S:
            raise ValueError(f"frames {H}x{W} are smaller than the crop size {S}")
        dev = x.device

        if train:
            gdev = generator.device if generator is not None else "cpu"
            r = torch.rand(B, 5, generator=generator, device=gdev, dtype=torch.float64).to(dev)
            top = (r[:, 0] * (H - S + 1)).long().clamp_(max=H - S)
            left = (r[:, 1] * (W - S + 1)).long().clamp_(max=W - S)
            flip = (r[:, 2] < 0.5) if self.cfg.hflip else torch.zeros_like(top, dtype=torch.bool)
        else:
            top = torch.full((B,), (H - S) // 2, device=dev)
            left = torch.full((B,), (W - S) // 2, device=dev)
            flip = torch.zeros(B, dtype=torch.bool, device=dev)

        # Crop and flip as one gather: (B, H, W, K, 3) -> (B, S, S, K, 3).
        ar = torch.arange(S, device=dev)
        rows = top[:, None] + ar
        cols = left[:, None] + torch.where(flip[:, None], S - 1 - ar, ar)
        b = torch.arange(B, device=dev)[:, None, None]
        x = x.permute(0, 2, 3, 1, 4)[b, rows[:, :, None], cols[:, None, :]]
        x = x.permute(0, 4, 3, 1, 2)  # (B, C, K, S, S) uint8
        flow = x[:, 3:] if channels > 3 else None
        x = x[:, :3].float().div_(255)  # (B, 3, K, S, S)

        if train:
            bshape = (B, 1, 1, 1, 1)
            if self.cfg.brightness > 0:
                f = 1 + self.cfg.brightness * (2 * r[:, 3] - 1)
                x = x.mul_(f.float().view(bshape)).clamp_(0, 1)
            if self.cfg.saturation > 0:
                f = (1 + self.cfg.saturation * (2 * r[:, 4] - 1)).float().view(bshape)
                luma = torch.tensor(_LUMA, device=dev).view(1, 3, 1, 1, 1)
                gray = (x * luma).sum(1, keepdim=True)
                x = torch.lerp(gray, x, f).clamp_(0, 1)

        cshape = (1, 3, 1, 1, 1)
        x = (x - self.mean.to(dev).view(cshape)) / self.std.to(dev).view(cshape)
        if flow is not None:
            from looklisten.inputs.flow import dequantize

            flow = dequantize(flow)  # (B, 2L, K, S, S), flow / bound
            sign = torch.where(flip, -1.0, 1.0).view(B, 1, 1, 1, 1)
            flow[:, 0::2] *= sign  # mirrored motion: dx -> -dx
            x = torch.cat([x, flow], dim=1)
        x = x[:, :, 0] if single else x
        return x.contiguous()

    def __repr__(self) -> str:
        c = self.cfg
        return (
            f"VisionTransform(size={c.image_size}, hflip={c.hflip}, "
            f"brightness={c.brightness}, saturation={c.saturation})"
        )


def resize_short_side(frame: np.ndarray, size: int) -> np.ndarray:
    """Scale an image so that its shorter side is ``size`` pixels.

    Bilinear, antialiased when downscaling (``F.interpolate(..., antialias=True)``),
    aspect ratio kept (longer side rounded to the nearest pixel). For images
    that did not come through the video decoder, e.g. a loaded PNG or JPEG.

    Parameters
    ----------
    frame : np.ndarray, shape (H, W, 3), uint8
    size : int
        Target length of the shorter side.

    Returns
    -------
    np.ndarray, shape (H', W', 3), uint8
        ``min(H', W') == size``.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected a (H, W, 3) uint8 image, got {frame.shape} {frame.dtype}")
    h, w = frame.shape[:2]
    scale = size / min(h, w)
    out_hw = (size, max(1, round(w * scale))) if h <= w else (max(1, round(h * scale)), size)
    if out_hw == (h, w):
        return frame.copy()
    x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False, antialias=True)
    return x[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8).numpy()


def denormalize(x: Tensor, cfg: VisionConfig) -> np.ndarray:
    """Undo the normalisation of :class:`VisionTransform`, for making pictures.

    Parameters
    ----------
    x : Tensor, shape (B, 3, S, S) or (B, 3, K, S, S)
        Normalised images.
    cfg : VisionConfig
        The config they were normalised with.

    Returns
    -------
    np.ndarray, uint8, shape (B, S, S, 3) or (B, K, S, S, 3)
    """
    x = x.detach().float().cpu()
    shape = (1, 3) + (1,) * (x.ndim - 2)
    mean = torch.tensor(cfg.mean).view(shape)
    std = torch.tensor(cfg.std).view(shape)
    x = (x * std + mean).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return x.movedim(1, -1).numpy()
