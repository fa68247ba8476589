"""The public API on one screen: every name of ``import looklisten``, callable in any order.

Every submodule is imported first (so a submodule can never shadow a function
of the facade, as ``looklisten.train`` the module once shadowed
``looklisten.train`` the function), then every name is called on a tiny real
data set; the cheap ones twice.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

import looklisten

pytestmark = pytest.mark.slow


def test_every_name_is_a_callable_and_never_a_module():
    for mod in pkgutil.walk_packages(looklisten.__path__, "looklisten."):
        if not mod.name.endswith("__main__"):
            importlib.import_module(mod.name)
    for name in looklisten.__all__:
        value = getattr(looklisten, name)
        assert not isinstance(value, types.ModuleType), name
        assert name == "__version__" or callable(value), name
    assert set(looklisten.__all__) <= set(dir(looklisten))
    with pytest.raises(AttributeError):
        looklisten.no_such_name  # noqa: B018


def test_every_name_works_after_every_submodule_is_imported(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    for mod in pkgutil.walk_packages(looklisten.__path__, "looklisten."):
        if not mod.name.endswith("__main__"):
            importlib.import_module(mod.name)
    ll = looklisten
    for _ in range(2):
        assert "tiny" in ll.list_presets()
        cfg = ll.get_config("tiny", arch="ave")
        assert isinstance(cfg, ll.Config)
        assert ll.create_model(cfg).arch == "ave"
        assert "bad.mp4" in str(ll.MediaError("bad.mp4", "corrupt"))

    data = tmp_path / "data"
    ll.make_demo_data(data, videos=6, seed=3, workers=1)
    index = ll.shard_folder(data, tmp_path / "shards", cfg, workers=1, progress=False)
    assert len(index["videos"]) == 6 and not index["rejected"]

    runs = {}
    for arch in ("l3", "ave", "avol"):
        c = ll.get_config("tiny", arch=arch).with_overrides(
            **{
                "train.batch_size": 4,
                "train.epoch_pairs": 8,
                "train.epochs": 1,
                "sampler.val_fraction": 0.5,
            }
        )
        runs[arch] = tmp_path / arch
        ll.train(data, runs[arch], c, progress=False, max_steps=2)
    ave = ll.load_model(runs["ave"], "cpu")
    again = ll.load_model(runs["ave"], "cpu")  # a model of its own each time, in eval mode
    assert again is not ave and not again.training
    for (k, a), b in zip(ave.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    clip = sorted(data.glob("clip_*.mp4"))[0]

    wave = np.zeros(16000, np.float32)
    for _ in range(2):
        emb, times = ll.embed_audio(ave, wave, sr=16000, hop=0.5)
        assert emb.shape[0] == len(times) == 3
        assert ll.embed_image(ave, np.zeros((80, 96, 3), np.uint8)).shape[0] == 1
        out = ll.embed_video(ave, clip, hop=1.0)
        assert out["audio_embedding"].shape == out["image_embedding"].shape
    ll.build_index(runs["ave"], [data], tmp_path / "index", progress=False, device="cpu")
    hits = ll.search(tmp_path / "index", video=clip, at=2.0, k=3, device="cpu")
    assert len(hits) == 3
    frame = np.zeros((96, 128, 3), np.uint8)
    assert ll.localize(runs["avol"], frame, wave, sr=16000, device="cpu").shape == (96, 128)
    maps, times = ll.localize_video(runs["avol"], clip, hop=2.0, device="cpu")
    assert len(maps) == len(times) == 3

    r = ll.evaluate_retrieval(data, runs["ave"], runs["l3"], batch_size=16, device="cpu")
    assert "cross_modal_ndcg" in r
    assert "avol" in ll.evaluate_localization(data, runs["avol"], device="cpu", split="all")
    assert ll.evaluate_probe(data, runs["l3"], "audio", folds=2, device="cpu")["accuracy"]
    assert ll.evaluate_units(data, runs["l3"], units=2, top=2, device="cpu", out_dir=tmp_path / "u")
    assert ll.evaluate_shortcut(data, tmp_path / "audit", pairs=200, train_runs=False)
    assert ll.write_report(runs["ave"], data=data).is_file()


def test_python_dash_m_looklisten_runs_the_command():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-m", "looklisten", "--help"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: looklisten ") and "train" in proc.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "looklisten", "no-such-command"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
