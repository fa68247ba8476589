"""Data-parallel training with torch.distributed, launched by ``torchrun``.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and the rendezvous
variables) in every process; :func:`init_from_env` reads them and joins the
process group (NCCL on CUDA, gloo on the CPU). With ``WORLD_SIZE`` unset or 1
everything here is a no-op and training is the single-process one.

What keeps a run with W processes equal to one process with the same global
batch B (see looklisten.training.trainer):

* Rank ``r`` computes the contiguous slice ``[r B/W, (r + 1) B/W)`` of every
  global batch's pair indices, so the union over ranks is the single-process
  batch, pair for pair.
* Gradients are averaged by DDP: the mean over ranks of the rank-local mean
  losses is the global mean loss.
* Batch norm statistics are computed over the whole global batch
  (:func:`sync_batchnorm`): ``torch.nn.SyncBatchNorm`` on CUDA,
  :class:`CrossRankBatchNorm` (differentiable all-reduces) elsewhere.
* Augmentation is drawn per position in the global batch, not per rank.
* A contrastive objective is computed on the features of the whole global
  batch (:func:`all_gather_cat`), the same loss on every rank.
"""

from __future__ import annotations

import inspect
import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a (possibly one-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    owns_group: bool = False  # this process initialised the group (and tears it down)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistEnv()


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env(device: torch.device) -> DistEnv:
    """Join the process group described by torchrun's environment variables.

    Parameters
    ----------
    device : the device this process trains on (picks the backend: NCCL for
        CUDA, gloo otherwise)

    Returns
    -------
    DistEnv
        ``SINGLE`` when ``WORLD_SIZE`` is unset or 1.
    """
    world = env_world_size()
    if world <= 1:
        return SINGLE
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kw = {"device_id": device} if device.type == "cuda" else {}
        store = _attempt_store(world)
        if store is not None:
            kw.update(store=store, rank=rank, world_size=world)
        dist.init_process_group(backend=backend, **kw)
        owns = True
    if dist.get_world_size() != world or dist.get_rank() != rank:
        raise RuntimeError("the process group does not match RANK / WORLD_SIZE")
    return DistEnv(rank, world, local_rank, local_world, owns)


def _attempt_store(world: int):
    """The rendezvous store of this torchrun attempt: torchrun's own, under a fresh prefix.

    torchrun hosts one TCP store for the whole job and its workers connect to it
    (``TORCHELASTIC_USE_AGENT_STORE``). torch's ``env://`` initialisation uses it
    without a per-attempt prefix, so after ``--max-restarts`` restarts the ranks,
    they read the killed attempt's addresses and connect to dead peers (seen with
    torch 2.13 and gloo: "connectFullMesh failed ... Connection refused", or a
    hang; ``tests/test_cluster.py``). A prefix per ``TORCHELASTIC_RESTART_COUNT``
    gives every attempt its own keys. None: not under torchrun's store.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    from torch.distributed.constants import default_pg_timeout

    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    client = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        world,
        is_master=False,
        timeout=default_pg_timeout,
    )
    return dist.PrefixStore(f"looklisten/attempt_{attempt}/", client)


def pick_local_device(device: str | None) -> torch.device:
    """The device of this process: ``device`` if given, else ``cuda:LOCAL_RANK`` or the CPU."""
    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        d = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(d)
        return d
    return torch.device("cpu")


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def shutdown(env: DistEnv) -> None:
    if env.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(x: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Sum over ranks (in place, returned); identity in one process."""
    if env.distributed:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


class _GatherCat(torch.autograd.Function):
    """Concatenate every rank's tensor along dim 0; backward: the sum over ranks of
    the gradient of this rank's slice (an all-reduce, on any backend)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        # the collectives fill plain contiguous buffers (not e.g. channels-last ones)
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        ctx.rows = (dist.get_rank() * len(x), (dist.get_rank() + 1) * len(x))
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rows[0] : ctx.rows[1]]


def all_gather_cat(x: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Every rank's ``x`` concatenated along dim 0, in rank order; identity in one process.

    Differentiable: the gradient of each rank's slice is summed over the ranks'
    graphs. So when every rank computes the same loss of the gathered batch
    (a contrastive loss), DDP's mean of the ranks' gradients is the gradient
    of that loss, as in one process. (torch.distributed.nn.functional.all_gather
    fills its gradient buffers with the layout of the incoming gradient, wrong
    for a transposed or channels-last one on gloo.)
    """
    if not env.distributed:
        return x
    return _GatherCat.apply(x)


def all_gather_objects(obj, env: DistEnv) -> list:
    """Every rank's ``obj`` (small, picklable: made by this program), in rank order."""
    if not env.distributed:
        return [obj]
    out: list = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_flag(flag: bool, env: DistEnv, device: torch.device) -> bool:
    """Rank 0's value of ``flag`` on every rank (a host sync: call it at log steps only)."""
    if not env.distributed:
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


class CrossRankBatchNorm(_BatchNorm):
    """Batch norm with statistics over the batches of all ranks, on any backend.

    ``torch.nn.SyncBatchNorm`` runs on CUDA only; this is the same computation
    with the differentiable ``torch.distributed.nn.functional.all_reduce``, for
    gloo on the CPU. Two passes (mean, then the mean squared deviation), like
    ``F.batch_norm``, so the result equals one process's up to summation order.
    Statistics and normalisation are computed in float64, like the CPU kernels.
    Assumes every rank holds the same number of examples (true for the slices
    of a global batch). The state dict is the one of ``nn.BatchNorm2d``.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        world = dist.get_world_size()
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        n = x.numel() // x.shape[1] * world
        # float64, as the CPU kernels of F.batch_norm accumulate: inputs with a large
        # mean (a spectrogram's log floor) lose the variance to cancellation in float32.
        xd = x.double()
        mean = all_reduce(xd.sum(dims)) / n
        d = xd - mean.view(shape)
        var = all_reduce((d * d).sum(dims)) / n
        y = d * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.double().view(shape) + self.bias.double().view(shape)
        y = y.to(x.dtype)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (
                    self.momentum
                    if self.momentum is not None
                    else 1.0 / float(self.num_batches_tracked)
                )
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), m)
                self.running_var.lerp_(
                    (var.detach() * n / max(n - 1, 1)).to(self.running_var.dtype), m
                )
        return y


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Replace every batch norm by one with cross-rank statistics (same parameters and buffers)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    # its replacement in torch._functional_collectives is not differentiable
    warnings.filterwarnings(
        "ignore", "torch.distributed.nn.functional.all_reduce is deprecated", FutureWarning
    )
    return _convert(model)


def _convert(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, _BatchNorm) and not isinstance(module, CrossRankBatchNorm):
        out = CrossRankBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        ref = next(iter(module.state_dict().values()), None)
        if ref is not None:
            out.to(device=ref.device, dtype=ref.dtype if ref.is_floating_point() else None)
        out.load_state_dict(module.state_dict())
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _convert(child))
    return out


def wrap_ddp(model: nn.Module, env: DistEnv, device: torch.device) -> nn.Module:
    """``DistributedDataParallel`` around ``model`` (whose BN is already synchronised)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    # Every rank computes the same BN running statistics: no buffer broadcast per step.
    if "forward_sync_buffers" in inspect.signature(DDP).parameters:
        return DDP(model, device_ids=ids, forward_sync_buffers=False)
    return DDP(model, device_ids=ids, broadcast_buffers=False)


__all__ = [
    "DistEnv",
    "SINGLE",
    "CrossRankBatchNorm",
    "all_gather_cat",
    "all_gather_objects",
    "all_reduce_sum",
    "barrier",
    "broadcast_flag",
    "init_from_env",
    "pick_local_device",
    "shutdown",
    "sync_batchnorm",
    "wrap_ddp",
]
