import json
import shutil

import pytest
import torch

from looklisten.core.config import ARCHS, Config, get_config, list_presets
from looklisten.models.checkpoint import (
    init_weights,
    load_config,
    load_model,
    run_dir,
    save_checkpoint,
    save_eval,
)
from looklisten.models.losses import AVCLoss
from looklisten.models.network import create_model

# conv4_2 map sizes per preset (vision, audio)
EXPECTED_MAPS = {
    "paper": ((28, 28), (32, 24)),
    "ots": ((14, 14), (16, 12)),
    "small": ((7, 7), (8, 12)),
    "tiny": ((4, 4), (8, 7)),
}
# the motion variants (AVE+MF, AVE+OF) keep their base preset's maps
MOTION_BASE = {
    f"{prefix}ave-{kind}": base
    for prefix, base in (("", "ots"), ("small-", "small"), ("tiny-", "tiny"))
    for kind in ("mf", "of")
}


@pytest.mark.parametrize("preset", list_presets())
def test_forward_shapes_every_preset(preset):
    torch.manual_seed(0)
    for arch in ARCHS:
        cfg = get_config(preset, arch=arch)
        model = create_model(cfg).eval()
        image = torch.randn(2, *cfg.vision.shape)
        if cfg.vision.num_frames > 1:  # AVE+MF: (B, 3, K, S, S) clips
            image = torch.randn(2, 3, cfg.vision.num_frames, *cfg.vision.shape[1:])
        wave = torch.randn(2, cfg.audio.clip_samples) * 0.1
        with torch.no_grad():
            v, a = model.forward_features(image, wave)
            out = model.forward_head(v, a)
        c = cfg.model.widths[-1]
        maps = EXPECTED_MAPS[MOTION_BASE.get(preset, preset)]
        assert v.shape == (2, c, *maps[0])
        assert a.shape == (2, c, *maps[1])
        assert out["logit"].shape == (2,)
        if arch in ("l3", "ave"):
            assert out["logits"].shape == (2, 2)
            torch.testing.assert_close(out["logit"], out["logits"][:, 1] - out["logits"][:, 0])
        if arch == "ave":
            assert out["image_embedding"].shape == (2, cfg.model.embed_dim)
            torch.testing.assert_close(out["image_embedding"].norm(dim=1), torch.ones(2))
        if arch == "avol":
            assert out["heatmap"].shape == (2, *maps[0])
            torch.testing.assert_close(out["logit"], out["map_logits"].amax(dim=(1, 2)))
        if preset != "paper":
            break  # all heads on the paper preset; the rest only once (speed)


def test_paper_preset_is_the_paper():
    cfg = get_config("paper")
    assert cfg.audio.shape == (1, 257, 199)
    assert cfg.vision.shape == (3, 224, 224)
    assert cfg.model.widths == (64, 128, 256, 512) and cfg.model.conv1_stride == 1
    assert cfg.train.lr == 1e-4 and cfg.train.weight_decay == 1e-5 and cfg.train.batch_size == 256
    assert cfg.sampler.max_shift_seconds == 1.0 and cfg.sampler.frame_grid
    ots = get_config("ots", arch="ave")
    assert ots.audio.shape == (1, 257, 200) and ots.model.conv1_stride == 2
    assert ots.train.lr_decay == 0.94 and ots.train.lr_decay_epochs == 16
    # the L3 fusion: fc 1024 -> 128 -> 2
    m = create_model(cfg)
    assert m.head.fc1.in_features == 1024 and m.head.fc1.out_features == 128
    assert m.head.fc2.out_features == 2


def test_smaller_presets_change_sizes_only():
    paper = get_config("paper").to_dict()
    for name in ("small", "tiny"):
        d = get_config(name).to_dict()
        assert d["audio"]["kind"] == paper["audio"]["kind"]
        assert d["sampler"]["frame_grid"] and d["sampler"]["positive_fraction"] == 0.5
        assert d["train"]["optimizer"] == "adam"


def test_ave_distance_fc_has_the_right_sign():
    cfg = get_config("tiny", arch="ave")
    head = create_model(cfg).head
    d = torch.tensor([[0.0], [2.0]])
    logits = head.fc(d)
    margin = logits[:, 1] - logits[:, 0]
    assert margin[0] > 0 > margin[1]  # small distance -> "correspond"


def test_avc_loss_matches_cross_entropy_and_bce():
    logits = torch.randn(8, 2)
    label = torch.randint(0, 2, (8,))
    out = {"logits": logits, "logit": logits[:, 1] - logits[:, 0]}
    ce = AVCLoss()(out, label)
    bce = AVCLoss()({"logit": out["logit"]}, label)
    torch.testing.assert_close(ce, bce)


def test_config_json_round_trip_and_overrides():
    cfg = get_config("small", arch="avol", **{"train.lr": 3e-4, "sampler.max_shift_seconds": 1.0})
    back = Config.from_json(cfg.to_json())
    assert back == cfg
    assert back.train.lr == 3e-4 and back.model.arch == "avol"
    with pytest.raises(ValueError):
        get_config("tiny", **{"train.nope": 1})
    with pytest.raises(ValueError):
        get_config("nope")


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    cfg = get_config("tiny", arch="ave")
    model = create_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    image = torch.randn(3, *cfg.vision.shape)
    wave = torch.randn(3, cfg.audio.clip_samples) * 0.1
    model.train()
    loss = AVCLoss()(model(image, wave), torch.tensor([0, 1, 1]))
    loss.backward()
    opt.step()
    save_checkpoint(tmp_path / "run", model, cfg, opt, {"step": 1})
    # only safetensors + json on disk
    files = sorted(p.name for p in (tmp_path / "run" / "checkpoint").iterdir())
    assert files == ["config.json", "model.safetensors", "optimizer.safetensors", "state.json"]
    json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert load_config(tmp_path / "run") == cfg
    loaded = load_model(tmp_path / "run")
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(image, wave)["logit"], model(image, wave)["logit"])
    # saving again swaps the directory atomically and leaves no temporary behind
    save_checkpoint(tmp_path / "run", model, cfg, opt, {"step": 2})
    siblings = [p.name for p in (tmp_path / "run").iterdir()]
    assert siblings.count("checkpoint") == 1
    assert [s for s in siblings if s.startswith(".checkpoint")] == []  # a plain folder, swapped
    assert not (tmp_path / "run" / "checkpoint").is_symlink()


def test_evaluations_are_saved_in_the_run_whichever_path_names_it(tmp_path):
    cfg = get_config("tiny", arch="l3")
    run = tmp_path / "run"
    save_checkpoint(run, create_model(cfg), cfg)
    assert run_dir(run) == run and run_dir(run / "checkpoint") == run
    # a checkpoint folder copied on its own is its own run
    alone = tmp_path / "shared-model"
    shutil.copytree(run / "checkpoint", alone)
    assert run_dir(alone) == alone
    path = save_eval(run / "checkpoint", "retrieval.json", {"b": 1, "a": 2})
    assert path == run / "eval" / "retrieval.json"
    assert json.loads(path.read_text()) == {"b": 1, "a": 2}
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run_dir(tmp_path / "nothing")


def test_embedding_does_not_load_training_code():
    import subprocess
    import sys

    code = (
        "import sys, looklisten, looklisten.tasks.embed, looklisten.tasks.localize, looklisten.tasks.search;"
        "m = [k for k in ('looklisten.training.trainer', 'looklisten.data.sampler', 'looklisten.models.losses', 'looklisten.training.distributed', 'looklisten.data.shards') if k in sys.modules];"
        "assert not m, m"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_preset_arch_overrides_give_tiny_avol_a_map_that_can_localise():
    # tiny's vision trunk sees 133 px per location: AVOL-Net gets 128 px frames (8x8 map)
    cfg = get_config("tiny", arch="avol")
    assert cfg.vision.image_size == 128 and cfg.vision.resize == 144
    assert get_config("tiny", arch="ave").vision.image_size == 64
    assert get_config("tiny").vision.image_size == 64
    # explicit overrides still win over the preset's per-head ones
    assert get_config("tiny", arch="avol", **{"vision.image_size": 96}).vision.image_size == 96
    model = create_model(cfg).eval()
    with torch.no_grad():
        out = model(torch.randn(1, *cfg.vision.shape), torch.zeros(1, cfg.audio.clip_samples))
    assert out["heatmap"].shape == (1, 8, 8)
    assert Config.from_json(cfg.to_json()) == cfg  # saved with the checkpoint as built


def _atrous_pair(preset="tiny", arch="avol", **over):
    plain = get_config(preset, arch=arch, **over)
    return plain, plain.with_overrides(**{"model.atrous": True})


def test_atrous_tiny_avol_map_is_twice_as_fine():
    torch.manual_seed(0)
    _, cfg = _atrous_pair()
    model = create_model(cfg).eval()
    image = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        v, a = model.forward_features(image, torch.randn(2, cfg.audio.clip_samples) * 0.1)
        out = model.forward_head(v, a)
    c = cfg.model.widths[-1]
    assert v.shape == (2, c, 16, 16)  # 8x8 without atrous
    assert a.shape == (2, c, *EXPECTED_MAPS["tiny"][1])  # the audio trunk never changes
    assert out["map_logits"].shape == out["heatmap"].shape == (2, 16, 16)
    torch.testing.assert_close(out["logit"], out["map_logits"].amax(dim=(1, 2)))


def test_atrous_ots_vision_map_is_28x28():
    plain, cfg = _atrous_pair("ots", "avol", **{"model.widths": (8, 8, 16, 16)})
    with torch.no_grad():
        v = create_model(cfg).eval().vision(torch.randn(1, 3, 224, 224))
        v0 = create_model(plain).eval().vision(torch.randn(1, 3, 224, 224))
    assert v.shape == (1, 16, 28, 28) and v0.shape == (1, 16, 14, 14)


def test_atrous_keeps_every_weight_name_and_shape():
    plain, cfg = _atrous_pair()
    a, b = create_model(plain), create_model(cfg)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    assert all(sa[k].shape == sb[k].shape for k in sa)
    b.load_state_dict(sa, strict=True)  # plain weights load into the atrous model
    # and the two forms compute different maps from the same weights
    convs = [m for m in b.vision.features if isinstance(m, torch.nn.Conv2d)]
    assert [m.dilation for m in convs] == [(1, 1)] * 6 + [(2, 2)] * 2
    pools = [m for m in b.vision.features if isinstance(m, torch.nn.MaxPool2d)]
    assert [(m.kernel_size, m.stride) for m in pools] == [(2, 2), (2, 2), (3, 1)]


def test_atrous_warm_start_from_a_plain_ave_net(tmp_path):
    torch.manual_seed(0)
    ave = get_config("tiny", arch="ave")
    save_checkpoint(tmp_path / "ave", create_model(ave), ave)
    _, cfg = _atrous_pair()
    info = init_weights(create_model(cfg), tmp_path / "ave", cfg)
    assert sum(k.startswith("vision.") for k in info["copied"]) == sum(
        k.startswith("vision.") for k in create_model(cfg).state_dict()
    )


def test_atrous_config_set_saved_and_refused_with_motion(tmp_path):
    from looklisten.cli.main import _overrides

    over = _overrides(["model.atrous=true"])
    cfg = get_config("tiny", arch="avol", **over)
    assert cfg.model.atrous is True
    assert Config.from_json(cfg.to_json()) == cfg
    # a config saved before the field existed loads as atrous=False
    d = json.loads(get_config("tiny", arch="avol").to_json())
    del d["model"]["atrous"]
    assert Config.from_dict(d).model.atrous is False
    with pytest.raises(ValueError, match="model.atrous must be true or false"):
        get_config("tiny", **{"model.atrous": "yes"})
    for preset in ("tiny-ave-mf", "tiny-ave-of"):
        with pytest.raises(ValueError, match="model.atrous is for the single-frame vision trunk"):
            get_config(preset, **{"model.atrous": True})
    # a checkpoint keeps it
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "run", create_model(cfg), cfg)
    assert load_config(tmp_path / "run").model.atrous is True
    assert load_model(tmp_path / "run").vision(torch.randn(1, 3, 128, 128)).shape[-2:] == (16, 16)
