"""What the units learned: running top-k, selectivity, and the galleries of a tiny run."""

import json
import wave
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from looklisten.cli.main import main
from looklisten.core.config import get_config
from looklisten.data.demo_data import make_demo_data
from looklisten.evaluation.units import TopK, selectivity, wav_bytes
from looklisten.media.video import read_audio
from looklisten.training.trainer import train

SMALL_RUN = {
    "train.batch_size": 8,
    "train.epoch_pairs": 32,
    "train.val_pairs": 16,
    "train.epochs": 1,
    "sampler.val_fraction": 0.3,
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny L3-Net trained for 4 steps on 10 encoded demo clips (3 held out)."""
    root = tmp_path_factory.mktemp("units")
    mp = pytest.MonkeyPatch()
    mp.setenv("LOOKLISTEN_CACHE", str(root / "cache"))
    make_demo_data(root / "data", videos=10, seed=5, workers=2, progress=False, duration=3.0)
    train(root / "data", root / "run", get_config("tiny", **SMALL_RUN), progress=False)
    yield root
    mp.undo()


def test_topk_matches_a_full_sort():
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((50, 6, 3, 2)).astype(np.float32)
    tk = TopK(4)
    for s in range(0, 50, 7):  # uneven batches
        tk.update(maps[s : s + 7], np.arange(s, min(s + 7, 50)))
    acts = maps.max(axis=(2, 3))  # (N, C)
    for u in range(6):
        ref = np.argsort(-acts[:, u], kind="stable")[:4]
        assert tk.ids[u].tolist() == ref.tolist()
        np.testing.assert_array_equal(tk.maps[u], maps[ref, u])
        np.testing.assert_allclose(tk.acts[u], acts[ref, u])
    assert tk.kept_ids() == set(tk.ids.ravel().tolist())


def test_selectivity_hand_values():
    counts = Counter({"dog": 50, "cat": 30, "saw": 20})
    s = selectivity(["saw", "saw", "saw", "dog"], counts)
    # top share 3/4 of a label that is 20 % of the data: (0.75 - 0.2) / 0.8
    assert s == {"top_label": "saw", "top_share": 0.75, "base_rate": 0.2, "selectivity": 0.6875}
    assert selectivity(["dog"] * 2 + ["cat"] * 2, counts)["top_label"] == "cat"  # tie: rarer
    assert selectivity([None, None], Counter())["selectivity"] is None


def test_wav_bytes_round_trip(tmp_path):
    x = 0.5 * np.sin(np.linspace(0, 100, 1600))
    p = tmp_path / "a.wav"
    p.write_bytes(wav_bytes(x, 16000))
    with wave.open(str(p)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (
            1,
            2,
            16000,
            1600,
        )
    np.testing.assert_allclose(read_audio(p), x, atol=1e-4)  # decodable by FFmpeg too


@pytest.mark.slow  # a tiny run is trained first (module fixture)
def test_cli_units_writes_galleries(run, capsys, monkeypatch):
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(run / "cache"))
    argv = ["eval", "units", run / "data", "--checkpoint", run / "run", "--top", 3, "--units", 2]
    rc = main([str(a) for a in [*argv, "--quiet", "--save"]])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    res = json.loads(captured.out)
    ev = run / "run" / "eval"
    assert json.loads((ev / "units.json").read_text()) == res
    split = json.loads((run / "run" / "split.json").read_text())
    for branch, n_units in (("image", 128), ("audio", 128)):
        b = res["branches"][branch]
        assert b["layer"] == "conv4_2" and b["units"] == n_units
        assert b["files"] == len(split["val"]) and b["items"] == 3 * len(split["val"])
        assert b["items_from"].startswith("held-out")
        rows = [r for r in res["units"] if r["branch"] == branch]
        assert len(rows) == n_units
        live = [r for r in rows if not r["dead"]]
        sels = [r["selectivity"] for r in live]
        assert sels == sorted(sels, reverse=True)  # most selective first
        assert all(0.0 <= r["top_share"] <= 1.0 for r in live)
        galleries = [r for r in rows if r["top_items"]]
        assert 1 <= len(galleries) <= 2
        for r in galleries:
            assert len(r["top_items"]) == 3
            assert r["top_files"] == len({it["file"] for it in r["top_items"]})
            acts = [it["activation"] for it in r["top_items"]]
            assert acts == sorted(acts, reverse=True) and acts[0] == r["max_activation"]
            for it in r["top_items"]:
                assert it["file"] in split["val"] and it["label"] is not None
                png = ev / (it["thumbnail"] if branch == "image" else it["spectrogram"])
                with Image.open(png) as im:
                    im.load()
                    assert im.mode == "RGB" and min(im.size) >= 128
                if branch == "audio":
                    snd = read_audio(ev / it["audio"])
                    assert len(snd) == get_config("tiny").audio.clip_samples
                    assert np.abs(snd).max() > 0
