"""Contrastive objectives (train.objective): the losses by hand, the config rules, training, resume.

Training runs on toy videos decoded by nothing (a source that paints each
video's frames one colour and plays one tone), through the real
``Trainer.from_folder`` / ``train`` with the folder scan and the decoding
replaced: the trainer's own wiring (positive-only training pairs, balanced
validation pairs, metrics, checkpoints, resume) is what is tested.
"""

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import looklisten.training.trainer as trainer_mod
from looklisten.core.config import ARCHS, get_config, list_presets
from looklisten.data.scan import Manifest, VideoEntry
from looklisten.models.losses import (
    AllPairsAVCLoss,
    AVCLoss,
    CalibrationLoss,
    ContrastiveObjective,
    InfoNCELoss,
    MILNCELoss,
    create_loss,
)
from looklisten.models.network import create_model
from looklisten.training.trainer import Trainer, train

C = 1 / math.sqrt(2)
# image i = e_i; audio = e1, e2, (e2 + e3) / sqrt 2: cosines [[1, 0, 0], [0, 1, C], [0, 0, C]]
X = torch.eye(3)
Y = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, C, C]])
IDS = torch.arange(3)


def lse(*z):
    return math.log(sum(math.exp(v) for v in z))


def test_infonce_by_hand_on_three_pairs():
    # tau = 0.5: logits = 2 x cosine; rows: image -> audios, columns: audio -> images
    rows = [lse(2, 0, 0) - 2, lse(0, 2, 2 * C) - 2, lse(0, 0, 2 * C) - 2 * C]
    cols = [lse(2, 0, 0) - 2, lse(0, 2, 0) - 2, lse(0, 2 * C, 2 * C) - 2 * C]
    expected = 0.5 * (sum(rows) / 3 + sum(cols) / 3)
    # the embeddings are normalised first: their scale does not matter
    loss = InfoNCELoss()(3 * X, 0.5 * Y, IDS, IDS, torch.tensor(0.5))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_mil_is_infonce_with_one_location_and_takes_the_best_location():
    torch.manual_seed(0)
    x, y, ids = torch.randn(5, 16), torch.randn(5, 16), torch.tensor([0, 1, 1, 2, 3])
    tau = torch.tensor(0.07)
    nce = InfoNCELoss()(x, y, ids, ids, tau)
    mil = MILNCELoss()(x[:, :, None, None], y, ids, ids, tau)  # (N, D, 1, 1) maps
    torch.testing.assert_close(mil, nce)
    # a second location less similar to every audio than the first changes nothing
    w = -Y.sum(0) / Y.sum(0).norm()  # negative cosine with every audio
    maps = torch.stack([X, w.expand(3, 3)], dim=2)[..., None]  # (3, 3, 2, 1)
    torch.testing.assert_close(
        MILNCELoss()(maps, Y, IDS, IDS, tau), InfoNCELoss()(X, Y, IDS, IDS, tau)
    )


def test_pairs_of_one_video_are_no_negatives_of_each_other():
    x, y = X.clone().requires_grad_(), Y.clone().requires_grad_()
    video = torch.tensor([4, 4, 7])  # pairs 0 and 1 come from one video
    loss = InfoNCELoss()(x, y, video, video, torch.tensor(0.5))
    # (0, 1) and (1, 0) leave both softmaxes
    rows = [lse(2, 0) - 2, lse(2, 2 * C) - 2, lse(0, 0, 2 * C) - 2 * C]
    cols = [lse(2, 0) - 2, lse(2, 0) - 2, lse(0, 2 * C, 2 * C) - 2 * C]
    assert loss.item() == pytest.approx(0.5 * (sum(rows) + sum(cols)) / 3, rel=1e-6)
    unmasked = InfoNCELoss()(X, Y, IDS, IDS, torch.tensor(0.5))
    assert loss.item() < unmasked.item()  # fewer negatives
    loss.backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()


@pytest.mark.parametrize("arch", ["ave", "avol"])
def test_calibration_trains_the_calibration_only(arch):
    torch.manual_seed(0)
    objective = "infonce" if arch == "ave" else "mil"
    cfg = get_config("tiny", arch=arch, **{"train.objective": objective})
    model = create_model(cfg)
    image = torch.randn(4, *cfg.vision.shape)
    wave = torch.randn(4, cfg.audio.clip_samples) * 0.1
    video = torch.tensor([0, 1, 2, 2])
    loss_fn = create_loss(cfg)
    out = model(image, wave)
    calibration = {"ave": ("head.fc.",), "avol": ("head.calibration.",)}[arch]

    def grads(term):
        model.zero_grad(set_to_none=True)
        terms = loss_fn(out, model.head, video, video, model.log_temperature)
        terms[term].backward(retain_graph=True)
        return {n: p.grad for n, p in model.named_parameters()}

    cal, nce, total = grads("calibration"), grads("contrastive"), grads("loss")
    for name, g in cal.items():
        if name.startswith(calibration):
            assert g is not None and g.abs().sum() > 0, name
            assert nce[name] is None, name  # the contrastive term leaves the calibration alone
            torch.testing.assert_close(total[name], g)
        else:  # trunks, embeddings, temperature: nothing from the calibration term
            assert g is None or not g.any(), name
            assert nce[name] is not None, name
            torch.testing.assert_close(total[name], nce[name])
    # the calibration scores as the head does: positives are the head's own logits
    _, correct, pairs = CalibrationLoss()(model.head, *(out[k] for k in loss_fn.keys), video, video)
    assert pairs.item() == 4 + 3  # pair (2, audio 3) is of one video: no negative
    assert 0 <= correct.item() <= pairs.item()


def test_config_objectives():
    from looklisten.core.config import ARCH_OBJECTIVES, PAPER_PRESETS

    for preset in list_presets():
        for arch in ARCHS:
            # each head's best measured objective; the papers' presets keep the papers' loss
            want = "avc" if preset in PAPER_PRESETS else ARCH_OBJECTIVES.get(arch, "avc")
            assert get_config(preset, arch=arch).train.objective == want, (preset, arch)
    assert isinstance(create_loss(get_config("tiny")), AVCLoss)
    assert isinstance(
        create_loss(get_config("tiny", arch="ave", **{"train.objective": "infonce"})),
        ContrastiveObjective,
    )
    for arch, objective, words in [
        ("l3", "infonce", ("train.objective='infonce'", "model.arch='ave'")),
        ("ave", "mil", ("train.objective='mil'", "model.arch='avol'")),
        ("ave", "clip", ("train.objective", "avc, avc-all, infonce, mil")),
    ]:
        with pytest.raises(ValueError) as e:
            get_config("tiny", arch=arch, **{"train.objective": objective})
        msg = str(e.value)
        assert len(msg.splitlines()) == 1 and all(w in msg for w in words), msg
    with pytest.raises(ValueError, match="train.temperature"):
        get_config("tiny", arch="ave", **{"train.temperature": 0.001})
    # a fixed temperature is no parameter of the optimiser
    cfg = get_config(
        "tiny", arch="ave", **{"train.objective": "infonce", "train.learn_temperature": False}
    )
    model = create_model(cfg)
    assert not model.log_temperature.requires_grad
    assert model.log_temperature.item() == pytest.approx(math.log(0.07))
    opt = trainer_mod.make_optimizer(model, cfg)
    assert all(p is not model.log_temperature for g in opt.param_groups for p in g["params"])


# -- training on toy videos ---------------------------------------------------------

VIDEOS = [VideoEntry(f"toy{i}.mp4", 3.0, 10.0, 0.0, 80, 72, 16000, 1, 0, 0) for i in range(12)]
RUN = {
    "train.batch_size": 8,
    "train.epoch_pairs": 32,
    "train.val_pairs": 16,
    "train.epochs": 2,
    "train.log_every_steps": 2,
    "sampler.val_fraction": 0.3,  # 9 training, 3 validation videos
}


class ToySource:
    """Video v: frames of one colour (its hue), audio one tone (its pitch)."""

    def __init__(self, cfg):
        self.vision_cfg, self.audio_cfg = cfg.vision, cfg.audio

    def frame(self, vid, index, t):
        r = self.vision_cfg.resize
        rng = np.random.default_rng([vid, index])
        colour = np.array([vid * 20, 255 - vid * 20, (vid * 97) % 256])
        noise = rng.integers(-20, 21, (r, r + 8, 3))
        return np.clip(colour + noise, 0, 255).astype(np.uint8)

    def audio(self, vid, center):
        n = self.audio_cfg.clip_samples
        t = center + np.arange(n) / self.audio_cfg.sample_rate
        return (0.3 * np.sin(2 * np.pi * (200 + 150 * vid) * t)).astype(np.float32)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A data folder whose scan finds VIDEOS, decoded by ToySource."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setattr(trainer_mod, "scan_folder", lambda root, **kw: Manifest(data, VIDEOS, []))
    monkeypatch.setattr(trainer_mod, "_make_source", lambda root, videos, cfg, *a: ToySource(cfg))
    return data


@pytest.mark.parametrize("arch,objective", [("ave", "infonce"), ("avol", "mil")])
def test_training_with_a_contrastive_objective(toy, tmp_path, arch, objective):
    torch.manual_seed(0)
    cfg = get_config("tiny", arch=arch, **RUN, **{"train.objective": objective})
    run = tmp_path / "run"
    trainer = Trainer.from_folder(toy, run, cfg, device="cpu", progress=False, workers=0)
    # training pairs are positives only (and AVOL's null pairs: a sound nothing on screen
    # makes, label 0); validation keeps the balanced AVC pairs
    assert trainer.train_set.sampler.positive_fraction == 1.0
    items = [trainer.train_set[k] for k in range(16)]
    assert all(it["label"] == int(it["audio_video"] >= 0) for it in items)
    assert (arch == "avol") == any(it["audio_video"] < 0 for it in items)
    assert trainer.val_set.sampler.positive_fraction == cfg.sampler.positive_fraction == 0.5
    assert {int(trainer.val_set[k]["label"]) for k in range(16)} == {0, 1}
    # a few steps on one batch lower the loss
    batch = torch.utils.data.default_collate([trainer.train_set[k] for k in range(8)])
    losses = []
    for _ in range(4):
        trainer.step = 0  # the same augmentation
        losses.append(trainer.train_step(batch)[0].item())
    assert losses[-1] < losses[0], losses
    trainer.step = 0
    summary = trainer.fit(max_steps=4)
    assert summary["steps"] == 4 and 0.0 <= summary["val_avc_accuracy"] <= 1.0
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in (r for r in recs if r["split"] == "train"):
        assert {"loss", "avc_accuracy", "contrastive_loss", "calibration_loss"} <= r.keys()
        assert r["loss"] == pytest.approx(r["contrastive_loss"] + r["calibration_loss"])
        assert 0 < r["temperature"] and math.isfinite(r["loss"])
    val = [r for r in recs if r["split"] == "val"]
    assert val and all(math.isfinite(r["val_loss"]) for r in val)
    saved = load_file(str(run / "checkpoint" / "model.safetensors"))
    assert "log_temperature" in saved
    assert json.loads((run / "checkpoint" / "config.json").read_text())["train"]["objective"] == (
        objective
    )


def test_a_balanced_training_set_is_refused_by_a_contrastive_run(toy, tmp_path):
    cfg = get_config("tiny", arch="ave", **RUN, **{"train.objective": "infonce"})
    trainer = Trainer.from_folder(
        toy, tmp_path / "run", cfg, device="cpu", progress=False, workers=0
    )
    trainer.train_set.sampler.positive_fraction = 0.5
    with pytest.raises(ValueError, match="positive pairs only"):
        trainer.fit(max_steps=1)


def test_infonce_resumes_exactly(toy, tmp_path):
    cfg = get_config("tiny", arch="ave", **RUN, **{"train.objective": "infonce"})
    kw = {"progress": False, "workers": 0, "device": "cpu"}
    full = train(toy, tmp_path / "full", cfg, **kw)
    train(toy, tmp_path / "half", cfg, max_steps=3, **kw)
    resumed = train(toy, tmp_path / "half", cfg, resume=True, **kw)
    assert resumed["steps"] == full["steps"] == 8
    a = load_file(str(tmp_path / "full" / "checkpoint" / "model.safetensors"))
    b = load_file(str(tmp_path / "half" / "checkpoint" / "model.safetensors"))
    assert a.keys() == b.keys() and "log_temperature" in a
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert resumed["val_avc_accuracy"] == full["val_avc_accuracy"]
    # the objective is part of the run: resuming with another one is refused
    other = cfg.with_overrides(**{"train.objective": "avc"})
    with pytest.raises(ValueError, match="train.objective='avc'"):
        train(toy, tmp_path / "half", other, resume=True, **kw)


# -- several processes ----------------------------------------------------------------

GRADIENT_SCRIPT = """
import sys
import torch
from looklisten.core.config import get_config
from looklisten.models.losses import create_loss
from looklisten.models.network import create_model
from looklisten.training.distributed import (
    all_gather_cat, init_from_env, shutdown, sync_batchnorm, wrap_ddp,
)

env = init_from_env(torch.device("cpu"))
grads = {}
for objective, arch in [("infonce", "ave"), ("mil", "avol"), ("avc-all", "l3")]:
    over = {"vision.image_size": 64, "vision.resize": 72, "train.objective": objective}
    cfg = get_config("tiny", arch=arch, **over)
    torch.manual_seed(0)
    model = create_model(cfg).double()
    model.audio.register_forward_pre_hook(lambda m, a: tuple(x.double() for x in a))
    g = torch.Generator().manual_seed(1)
    image = torch.randn(8, 3, 64, 64, generator=g, dtype=torch.float64)
    image = image.contiguous(memory_format=torch.channels_last)
    wave = torch.randn(8, cfg.audio.clip_samples, generator=g) * 0.1
    video = torch.tensor([0, 1, 2, 2, 3, 4, 5, 0])
    net = model
    if env.distributed:
        model = sync_batchnorm(model, torch.device("cpu"))
        net = wrap_ddp(model, env, torch.device("cpu"))
        rows = slice(env.rank * 4, env.rank * 4 + 4)
        image, wave = image[rows], wave[rows]
    loss_fn = create_loss(cfg)
    o = net(image, wave)
    feats = {k: all_gather_cat(o[k], env) for k in loss_fn.keys}
    terms = loss_fn(feats, model.head, video, video, getattr(model, "log_temperature", None))
    terms["loss"].backward()
    grads[objective] = {n: p.grad for n, p in model.named_parameters()}
if env.rank == 0:
    torch.save(grads, sys.argv[1])
if env.distributed:  # leave together, as train() does: a gloo rank tearing its connections
    torch.distributed.barrier()  # down while the other still works was seen to abort
shutdown(env)
"""


@pytest.mark.slow
def test_two_processes_compute_the_gradient_of_one(tmp_path):
    """A contrastive loss of the global batch (features gathered over ranks) and its
    exact gradient: 2 gloo processes give one process's gradients (float64). The
    gathered features' gradients arrive transposed (audio) and channels-last (AVOL's
    maps); torch's own differentiable all_gather got those wrong on gloo."""
    import os
    import subprocess
    import sys

    script = tmp_path / "grad.py"
    script.write_text(GRADIENT_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("WORLD_SIZE", None)
    two = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    for cmd, name in [([sys.executable], "one.pt"), (two, "two.pt")]:
        proc = subprocess.run(
            [*cmd, str(script), str(tmp_path / name)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    ones, twos = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    for objective, one in ones.items():
        two = twos[objective]
        assert one.keys() == two.keys()
        for k in one:
            assert (one[k] is None) == (two[k] is None), k
            if one[k] is not None:
                scale = one[k].abs().max().clamp_min(1e-30)
                torch.testing.assert_close(
                    two[k] / scale, one[k] / scale, rtol=0, atol=1e-9, msg=f"{objective} {k}"
                )


# -- avc-all: the papers' loss on every pair of the batch ------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_all_pairs_logit_is_the_heads_own_logit_for_every_pair(arch):
    torch.manual_seed(0)
    cfg = get_config("tiny", arch=arch, **{"train.objective": "avc-all"})
    model = create_model(cfg).eval()
    assert not hasattr(model, "log_temperature")  # no temperature to learn
    image = torch.randn(5, *cfg.vision.shape)
    wave = torch.randn(5, cfg.audio.clip_samples) * 0.1
    with torch.no_grad():
        v, a = model.forward_features(image, wave)
        out = model.head(v, a)
        keys = create_loss(cfg).keys
        every = model.head.all_pairs_logit(out[keys[0]], out[keys[1]])  # (5, 5)
        assert every.shape == (5, 5)
        for shift in range(5):  # image i with audio i - shift, through the head's forward
            logit = model.head(v, a.roll(shift, 0))["logit"]
            torch.testing.assert_close(
                every[torch.arange(5), (torch.arange(5) - shift) % 5], logit, rtol=1e-4, atol=1e-4
            )


def test_avc_all_by_hand():
    """Balanced BCE: the mean over positives and over the negatives of other videos."""

    class Head(torch.nn.Module):
        def all_pairs_logit(self, x, y):
            return x @ y.T

    s = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, 3.0], [-2.0, 1.0, -0.5]])
    out = {"image_features": s, "audio_features": torch.eye(3)}
    video = torch.tensor([0, 0, 1])  # pairs (0, 1) and (1, 0) are of one video
    loss_fn = AllPairsAVCLoss("l3")

    def sp(z):  # softplus: BCE(z, 0) = sp(z), BCE(z, 1) = sp(-z)
        return math.log1p(math.exp(z))

    terms = loss_fn(out, Head(), video, video)
    pos = [sp(-2.0), sp(-1.0), sp(0.5)]
    neg = [sp(0.5), sp(3.0), sp(-2.0), sp(1.0)]  # (0,2), (1,2), (2,0), (2,1)
    assert terms["loss"].item() == pytest.approx(0.5 * (sum(pos) / 3 + sum(neg) / 4), rel=1e-6)
    # balanced accuracy: positives 2 of 3 right (s > 0), negatives 1 of 4 (s <= 0)
    assert terms["correct"].item() / terms["pairs"].item() == pytest.approx(0.5 * (2 / 3 + 1 / 4))
    # a null row (row 2: silence) is a negative of every image, its own included
    terms = loss_fn(
        out, Head(), video, torch.tensor([0, 0, -1]), positive=torch.tensor([1, 1, 0]) > 0
    )
    pos = [sp(-2.0), sp(-1.0)]
    neg = [sp(0.5), sp(3.0), sp(-2.0), sp(1.0), sp(-0.5)]
    assert terms["loss"].item() == pytest.approx(0.5 * (sum(pos) / 2 + sum(neg) / 5), rel=1e-6)


@pytest.mark.parametrize("arch", ["l3", "avol"])
def test_training_with_avc_all(toy, tmp_path, arch):
    torch.manual_seed(0)
    cfg = get_config("tiny", arch=arch, **RUN, **{"train.objective": "avc-all"})
    run = tmp_path / "run"
    trainer = Trainer.from_folder(toy, run, cfg, device="cpu", progress=False, workers=0)
    assert trainer.train_set.sampler.positive_fraction == 1.0  # in-batch negatives
    batch = torch.utils.data.default_collate([trainer.train_set[k] for k in range(8)])
    losses = []
    for _ in range(4):
        trainer.step = 0
        losses.append(trainer.train_step(batch)[0].item())
    assert losses[-1] < losses[0], losses
    trainer.step = 0
    summary = trainer.fit(max_steps=4)
    assert summary["steps"] == 4 and 0.0 <= summary["val_avc_accuracy"] <= 1.0
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_recs = [r for r in recs if r["split"] == "train"]
    assert train_recs and all(0 <= r["avc_accuracy"] <= 1 for r in train_recs)
    assert all("temperature" not in r for r in train_recs)
    assert "log_temperature" not in load_file(str(run / "checkpoint" / "model.safetensors"))
