"""Model FLOPs: what one forward pass costs in multiply-adds, for model FLOPs utilisation.

:func:`count_flops` runs a function once and counts the floating-point
operations of its matrix products: every convolution (``conv1d/2d/3d``, also
inside ``nn.Conv*``), every linear layer (``linear``, ``addmm``) and every
explicit product (``matmul``, ``mm``, ``bmm``, ``einsum``, ``@``). One
multiply-add counts as 2 FLOPs, so a convolution costs
``2 * (output elements) * (in_channels / groups) * prod(kernel)``. The calls are
caught with a :class:`~torch.overrides.TorchFunctionMode`, so functional calls
(the AVOL-Net ``einsum``, a mel filterbank product) count as well as modules.

What is *not* counted: element-wise work (batch norm, ReLU, pooling, the
optimiser), the STFT of the spectrogram (an FFT, ~0.1 % of a preset's
convolutions) and bias additions. That is the usual convention for model FLOPs
utilisation (MFU): the model's matrix-multiply work divided by the device's
peak matrix-multiply rate.

Training costs ``3 x`` the forward FLOPs by the same convention (the backward
pass computes a gradient for the inputs and one for the weights of every
layer, each as costly as the forward product). The backward pass skips the
input gradient of the very first convolutions, so the work actually done is a
little less than ``3 x`` (about 1 % for the ``ots`` preset): the utilisation
reported with ``3 x`` is the standard, comparable figure.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

TRAINING_FLOPS_FACTOR = 3  # forward + backward (input and weight gradients)


def _conv(args, kwargs, out) -> int:
    w = args[1] if len(args) > 1 else kwargs["weight"]
    # weight: (C_out, C_in / groups, *kernel); each output element is one dot
    # product of length C_in / groups * prod(kernel).
    return 2 * out.numel() * (w.numel() // w.shape[0])


def _linear(args, kwargs, out) -> int:
    x = args[0] if args else kwargs["input"]
    return 2 * out.numel() * x.shape[-1]


def _addmm(args, kwargs, out) -> int:  # addmm(bias, a, b): (n, k) @ (k, m)
    return 2 * out.numel() * args[1].shape[-1]


def _matmul(args, kwargs, out) -> int:
    a = args[0] if args else kwargs["input"]
    k = a.shape[-1] if a.ndim > 0 else 1
    return 2 * out.numel() * k


def _einsum(args, kwargs, out) -> int:
    # 2 x the product of every index's size: one multiply-add per point of
    # the full index space (exact for two-operand contractions).
    ops = args[1:]
    if len(ops) == 1 and isinstance(ops[0], (list, tuple)):
        ops = tuple(ops[0])
    if len(ops) < 2:
        return 0  # a sum, a trace or a transpose: no products
    sizes: dict[str, int] = {}
    for spec, t in zip(args[0].replace(" ", "").split("->")[0].split(","), ops):
        if "..." in spec:  # name the broadcast dims by their position from the right
            head, tail = spec.split("...")
            n = t.ndim - len(head) - len(tail)
            spec = [*head, *(f"...{n - i}" for i in range(n)), *tail]
        for name, size in zip(spec, t.shape):
            sizes[name] = max(size, sizes.get(name, 1))
    return 2 * math.prod(sizes.values())


_COUNTERS = {
    F.conv1d: ("conv", _conv),
    F.conv2d: ("conv", _conv),
    F.conv3d: ("conv", _conv),
    F.linear: ("linear", _linear),
    torch.addmm: ("linear", _addmm),
    torch.matmul: ("matmul", _matmul),
    torch.mm: ("matmul", _matmul),
    torch.bmm: ("matmul", _matmul),
    torch.Tensor.matmul: ("matmul", _matmul),
    torch.Tensor.__matmul__: ("matmul", _matmul),
    torch.Tensor.mm: ("matmul", _matmul),
    torch.Tensor.bmm: ("matmul", _matmul),
    torch.einsum: ("einsum", _einsum),
}


class _FlopMode(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        hit = _COUNTERS.get(func)
        if hit is not None and isinstance(out, torch.Tensor):
            kind, count = hit
            self.counts[kind] += int(count(args, kwargs, out))
        return out


def count_flops(fn, *args, **kwargs) -> dict[str, int]:
    """Run ``fn(*args, **kwargs)`` once and count its matrix-product FLOPs.

    Returns
    -------
    dict
        FLOPs by kind (``"conv"``, ``"linear"``, ``"matmul"``, ``"einsum"``)
        and their ``"total"``, for the whole call (all examples of a batch).
    """
    with _FlopMode() as mode:
        fn(*args, **kwargs)
    counts = dict(mode.counts)
    counts["total"] = sum(mode.counts.values())
    return counts


@dataclass(frozen=True)
class ModelFlops:
    """FLOPs of one AVC pair (one frame and one second of audio)."""

    forward: int
    by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def training(self) -> int:
        """Forward + backward: ``3 x forward`` (see the module docstring)."""
        return TRAINING_FLOPS_FACTOR * self.forward


def example_inputs(cfg, batch: int = 1, device=None, dtype=None) -> tuple[torch.Tensor, ...]:
    """Zero inputs of a config's shapes: image (B, 3, S, S) and waveform (B, N)."""
    k = cfg.vision.num_frames
    image_shape = (3, k, *cfg.vision.shape[1:]) if k > 1 else cfg.vision.shape
    image = torch.zeros(batch, *image_shape, device=device, dtype=dtype)
    wave = torch.zeros(batch, cfg.audio.clip_samples, device=device, dtype=dtype)
    return image, wave


def model_flops_per_pair(
    model: nn.Module, batch: int = 1, inputs: tuple | None = None
) -> ModelFlops:
    """Forward FLOPs per pair of an :class:`~looklisten.models.network.AVNet`.

    Runs one forward pass in eval mode without gradients, then divides by the
    batch size. The model's train/eval mode is restored afterwards.

    Parameters
    ----------
    model : AVNet
        A model built by :func:`looklisten.models.network.create_model`.
    batch : int
        Examples in the counting pass, when ``inputs`` is not given (the count
        per pair does not depend on it).
    inputs : tuple of Tensor, optional
        The forward's arguments; default :func:`example_inputs` of
        ``model.cfg`` on the model's device.
    """
    if inputs is None:
        p = next(model.parameters())
        inputs = example_inputs(model.cfg, batch, p.device, p.dtype)
    batch = inputs[0].shape[0]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            counts = count_flops(model, *inputs)
    finally:
        model.train(was_training)
    total = counts.pop("total")
    return ModelFlops(
        forward=total // batch, by_kind={k: v // batch for k, v in sorted(counts.items())}
    )
