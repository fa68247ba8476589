"""Optical flow for AVE+OF: TV-L1 (OpenCV) once per clip, stored as uint8.

Objects that Sound's AVE+OF feeds the vision network an RGB frame plus a stack
of 10 TV-L1 optical-flow fields. Computing flow is far costlier than training
on it, so it is computed **once per clip** in the data path (the in-memory
cache of :class:`looklisten.data.sampler.MemorySource`, or ``looklisten shard``
with an optical-flow preset, which stores every clip's fields in its shards,
see :mod:`looklisten.data.shards`), never per training step.

Conventions
-----------
* Flow field ``j`` of a clip goes from frame ``j`` to frame ``j + 1``:
  ``(dx, dy)`` in pixels of the frame as decoded (shorter side
  ``cfg.resize``), such that ``frame_j(x, y) ~ frame_{j+1}(x + dx, y + dy)``:
  content moving right has ``dx > 0``, moving down ``dy > 0``.
* Grey frames (ITU-R BT.601 luma, OpenCV's RGB2GRAY) go into
  ``cv2.optflow.DualTVL1OpticalFlow`` (opencv-contrib) with the config's
  scales, warps and iterations.
* Quantisation, as the usual TV-L1 pipelines do: clipped to
  ``+-cfg.flow_bound`` pixels, ``q = 128 + round(127 * f / bound)`` in
  ``[1, 255]`` (uint8); zero flow is exactly 128 and a horizontal flip
  (``dx -> -dx``) is exactly ``q -> 256 - q``. :func:`dequantize` gives
  ``(q - 128) / 127`` (flow / bound, in [-1, 1]): what the network sees.
* The example of frame ``i`` stacks the ``L = cfg.flow_frames`` fields
  ``i - L // 2 ... i + L - L // 2 - 1`` (frames ``i - L // 2 ... i + L - L // 2``:
  centred on the frame, like its audio), clamped to the clip
  (:func:`field_indices`).

Cost: see ``benchmarks/compare_motion.py`` (it prints the precompute time per
frame); the ``tiny-ave-of`` settings take ~40 ms per 72x72 field on one core.
"""

from __future__ import annotations

import numpy as np

from looklisten.core.config import Config, VisionConfig

__all__ = [
    "FLOW_ZERO",
    "clip_flow",
    "compute_flow",
    "dequantize",
    "field_indices",
    "quantize",
    "stack_fields",
]

#: The uint8 code of zero flow (codes run over 1..255, symmetric about it).
FLOW_ZERO = 128
_LEVELS = 127  # codes on each side of FLOW_ZERO


def _vision(cfg: Config | VisionConfig) -> VisionConfig:
    return cfg.vision if isinstance(cfg, Config) else cfg


def quantize(flow: np.ndarray, bound: float) -> np.ndarray:
    """Float flow in pixels -> uint8 codes: ``128 + round(127 * clip(f, +-bound) / bound)``."""
    f = np.clip(np.asarray(flow, np.float32) / float(bound), -1.0, 1.0)
    return (np.rint(f * _LEVELS) + FLOW_ZERO).astype(np.uint8)


def dequantize(q, bound: float | None = None):
    """uint8 codes -> flow / bound in [-1, 1] (times ``bound``: pixels). numpy or torch."""
    f = (q.astype(np.float32) if isinstance(q, np.ndarray) else q.float()) - FLOW_ZERO
    f = f / _LEVELS
    return f * bound if bound is not None else f


def _tvl1(v: VisionConfig):
    import cv2

    tv = cv2.optflow.DualTVL1OpticalFlow_create()
    tv.setScalesNumber(int(v.flow_scales))
    tv.setWarpingsNumber(int(v.flow_warps))
    tv.setOuterIterations(int(v.flow_outer_iterations))
    tv.setInnerIterations(int(v.flow_inner_iterations))
    return tv


def _grey(frame: np.ndarray) -> np.ndarray:
    import cv2

    frame = np.ascontiguousarray(frame)
    if frame.ndim == 2:
        return frame
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def compute_flow(
    frames: np.ndarray, cfg: Config | VisionConfig, threads: int | None = None
) -> np.ndarray:
    """Float TV-L1 flow between consecutive frames.

    Parameters
    ----------
    frames : np.ndarray, uint8, shape (N, H, W, 3) (RGB) or (N, H, W) (grey)
        N >= 2 consecutive frames.
    cfg : Config or VisionConfig
        TV-L1 settings (``flow_scales``, ``flow_warps``, ``flow_*_iterations``).
    threads : int, optional
        ``cv2.setNumThreads`` for the call (1 in data-loader / pool workers).

    Returns
    -------
    np.ndarray, float32, shape (N - 1, H, W, 2)
        Field ``j``: (dx, dy) from frame ``j`` to frame ``j + 1``, in pixels.
    """
    import cv2

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or len(frames) < 2:
        raise ValueError(f"expected >= 2 uint8 frames (N, H, W[, 3]), got {frames.shape}")
    if threads is not None:
        old = cv2.getNumThreads()
        cv2.setNumThreads(int(threads))
    try:
        tv = _tvl1(_vision(cfg))
        grey = [_grey(f) for f in frames]
        out = np.empty((len(frames) - 1, *grey[0].shape, 2), np.float32)
        for j in range(len(frames) - 1):
            out[j] = tv.calc(grey[j], grey[j + 1], None)
    finally:
        if threads is not None:
            cv2.setNumThreads(old)
    return out


def clip_flow(
    frames: np.ndarray, cfg: Config | VisionConfig, threads: int | None = None
) -> np.ndarray:
    """The quantised flow of a whole clip, computed once (for caches and shards).

    Parameters
    ----------
    frames : np.ndarray, uint8, shape (N, H, W, 3)
        Every frame of the clip, as decoded for training (shorter side
        ``cfg.vision.resize``).
    cfg : Config or VisionConfig
    threads : int, optional
        OpenCV threads during the call.

    Returns
    -------
    np.ndarray, uint8, shape (max(N - 1, 1), H, W, 2)
        Field ``j`` from frame ``j`` to ``j + 1`` (see the module docstring for
        the codes); a one-frame clip gives one zero field.
    """
    v = _vision(cfg)
    frames = np.asarray(frames)
    if len(frames) < 2:
        h, w = frames.shape[1:3]
        return np.full((1, h, w, 2), FLOW_ZERO, np.uint8)
    return quantize(compute_flow(frames, v, threads), v.flow_bound)


def field_indices(index: int, num_fields: int, count: int) -> np.ndarray:
    """The ``count`` flow fields of the example of frame ``index``, clamped to the clip.

    Fields ``index - count // 2 ... index + count - count // 2 - 1``, each
    clamped to ``[0, num_fields - 1]`` (the edge field repeats at the ends).
    """
    idx = np.arange(count) + int(index) - count // 2
    return np.clip(idx, 0, max(num_fields - 1, 0))


def stack_fields(fields: np.ndarray) -> np.ndarray:
    """(L, H, W, 2) fields -> (H, W, 2L) channels (dx_0, dy_0, dx_1, dy_1, ...)."""
    fields = np.asarray(fields)
    L, h, w, _ = fields.shape
    return np.ascontiguousarray(fields.transpose(1, 2, 0, 3).reshape(h, w, 2 * L))
