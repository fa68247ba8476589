import importlib.util
import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from looklisten.core.config import get_config
from looklisten.models.flops import TRAINING_FLOPS_FACTOR, count_flops, model_flops_per_pair
from looklisten.models.network import create_model

ROOT = Path(__file__).resolve().parents[1]


def test_small_conv_net_matches_a_hand_count():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),  # (3, 16, 16) -> (8, 8, 8)
        nn.ReLU(),
        nn.Conv2d(8, 4, 3, padding=1, groups=2),  # -> (4, 8, 8), 4 input channels per group
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 10),
    )
    x = torch.randn(2, 3, 16, 16)
    counts = count_flops(net, x)
    conv1 = 2 * (8 * 8 * 8) * (3 * 3 * 3)  # 2 x outputs x dot-product length
    conv2 = 2 * (4 * 8 * 8) * (4 * 3 * 3)
    fc = 2 * 10 * 256
    assert counts["conv"] == 2 * (conv1 + conv2)  # batch of 2
    assert counts["linear"] == 2 * fc
    assert counts["total"] == 2 * (conv1 + conv2 + fc)

    conv3d = nn.Conv3d(2, 3, (3, 1, 1), padding=(1, 0, 0))
    assert count_flops(conv3d, torch.randn(1, 2, 4, 5, 5))["conv"] == 2 * (3 * 4 * 5 * 5) * (2 * 3)


def test_functional_products_are_counted():
    a, b = torch.randn(2, 3, 4), torch.randn(4, 5)
    v, w = torch.randn(2, 3, 4, 5), torch.randn(2, 3)

    def f():
        torch.einsum("bdhw,bd->bhw", v, w)  # 2 x 3 x 4 x 5 multiply-adds
        _ = a @ b  # (2, 3, 4) @ (4, 5): 2 x 3 x 5 outputs, 4 each
        torch.mm(a[0], b)
        torch.einsum("bij->bji", a)  # a transpose: no products

    counts = count_flops(f)
    assert counts["einsum"] == 2 * 120
    assert counts["matmul"] == 2 * (30 * 4) + 2 * (15 * 4)


def _hand_trunk(
    cin: int, h: int, w: int, widths, stride: int, atrous: bool = False
) -> tuple[int, int, int]:
    """FLOPs of the VGG trunk (4 blocks of 2 conv3x3, pool after the first 3), from the paper.

    ``atrous``: the third pool keeps the size (3x3, stride 1) and block 4's
    dilated convs keep it too: the same dot products on a 2x larger map.
    """
    total = 0
    for i, c in enumerate(widths):
        s = stride if i == 0 else 1
        h, w = (h - 1) // s + 1, (w - 1) // s + 1  # 3x3, padding 1
        total += 2 * c * h * w * cin * 9 + 2 * c * h * w * c * 9
        cin = c
        if i < 2 or (i == 2 and not atrous):
            h, w = h // 2, w // 2
    return total, h, w


@pytest.mark.parametrize(
    ("arch", "atrous"), [("l3", False), ("ave", False), ("avol", False), ("avol", True)]
)
def test_tiny_preset_model_matches_a_hand_count(arch, atrous):
    cfg = get_config("tiny", arch=arch, **{"model.atrous": atrous})
    m = cfg.model
    s = cfg.vision.image_size
    vision, vh, vw = _hand_trunk(3, s, s, m.widths, m.conv1_stride, atrous)
    if atrous:
        assert (vh, vw) == (16, 16)  # tiny AVOL at 128 px; 8x8 without
    audio, _, _ = _hand_trunk(1, *cfg.audio.shape[1:], m.widths, m.conv1_stride)
    c, d = m.widths[-1], m.embed_dim
    head = {
        "l3": 2 * (2 * c) * m.fusion_dim + 2 * m.fusion_dim * 2,
        "ave": 2 * (2 * c * d + 2 * d * d) + 2 * 1 * 2,  # two MLPs, fc 1 -> 2
        # vision 1x1 convs on the map, audio MLP, per-location dot product, calibration
        "avol": vh * vw * (2 * c * d + 2 * d * d) + (2 * c * d + 2 * d * d) + vh * vw * (2 * d + 2),
    }[arch]
    flops = model_flops_per_pair(create_model(cfg))
    assert flops.forward == vision + audio + head
    assert flops.training == TRAINING_FLOPS_FACTOR * flops.forward


def test_per_pair_count_agrees_with_torch_flop_counter_and_ignores_the_batch():
    cfg = get_config("tiny", arch="avol")
    model = create_model(cfg)
    model.train()
    one = model_flops_per_pair(model, batch=1)
    three = model_flops_per_pair(model, batch=3)
    assert one == three and model.training  # per pair; the mode is restored
    image = torch.randn(2, *cfg.vision.shape)
    wave = torch.randn(2, cfg.audio.clip_samples)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model.eval()(image, wave)
    assert one.forward * 2 == fc.get_total_flops()
    assert one.by_kind["conv"] > 0.99 * one.forward


def _load_benchmark():
    spec = importlib.util.spec_from_file_location(
        "train_throughput", ROOT / "benchmarks" / "train_throughput.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_benchmark_runs_and_reports_mfu(tmp_path):
    bench = _load_benchmark()
    out = tmp_path / "bench.json"
    args = "--presets tiny --batch 4 --steps 2 --warmup 0 --loader none --peak-size 256"
    result = bench.main([*args.split(), "--json", str(out)])
    row = result["rows"][0]
    assert json.loads(out.read_text())["rows"][0]["preset"] == "tiny"
    assert row["train_pairs_per_s"] > 0 and len(row["step_seconds"]) == 2
    flops = model_flops_per_pair(create_model(get_config("tiny")))
    assert row["train_flops_per_pair"] == 3 * flops.forward
    assert row["achieved_flops_per_s"] == pytest.approx(
        row["train_flops_per_pair"] * row["train_pairs_per_s"]
    )
    assert 0 < row["mfu"] < 1.5  # a share of a measured peak (noise can exceed 1 a little)


@pytest.mark.slow
def test_benchmark_measures_the_loader_on_real_clips(tmp_path):
    from looklisten.data.demo_data import make_demo_data

    data = make_demo_data(tmp_path / "clips", videos=3, seed=0, duration=3.0, progress=False)
    bench = _load_benchmark()
    args = "--presets tiny --batch 4 --steps 1 --warmup 0 --peak-size 256 --loader files"
    args += f" --workers 1 --loader-batch 8 --loader-pairs 16 --data {data}"
    row = bench.main(args.split())["rows"][0]
    assert row["source"] == "files" and row["workers"] == 1 and row["videos"] == 3
    assert row["loader_pairs_per_s"] > 0
