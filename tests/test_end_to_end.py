"""The whole pipeline through the CLI on real encoded demo clips, tiny preset:
data -> train (AVE and AVOL, a few steps) -> embed -> index -> search -> localise -> eval."""

import json
import stat

import av
import numpy as np
import pytest

from looklisten.cli.main import main

pytestmark = pytest.mark.slow


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return out.out


def test_pipeline(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data"
    run(capsys, "make-demo-data", data, "--videos", 8, "--seed", 1)
    assert len(list(data.glob("clip_*.mp4"))) == 8 and (data / "annotations.jsonl").is_file()
    small = ["--preset", "tiny", "--batch-size", 8, "--epoch-pairs", 32, "--epochs", 1, "--quiet"]

    out = run(capsys, "train", data, "--model", "ave", "--out", tmp_path / "ave", *small)
    summary = json.loads(out[out.index("{") :])
    assert summary["model"] == "ave" and summary["steps"] == 4
    run(capsys, "train", data, "--model", "avol", "--out", tmp_path / "avol", *small)

    # embed: a video gives time-aligned audio and image embeddings
    clip = sorted(data.glob("clip_*.mp4"))[0]
    run(
        capsys,
        "embed",
        clip,
        "--checkpoint",
        tmp_path / "ave",
        "--out",
        tmp_path / "emb",
        "--hop",
        0.5,
    )
    npz = np.load(next((tmp_path / "emb").rglob("*.npz")))
    assert npz["audio_embedding"].shape == npz["image_embedding"].shape
    assert len(npz["timestamps"]) == npz["audio_embedding"].shape[0] > 1

    # index both modalities, then search sounds by a frame
    run(
        capsys,
        "index",
        data,
        "--checkpoint",
        tmp_path / "ave",
        "--out",
        tmp_path / "index",
        "--quiet",
    )
    out = run(
        capsys,
        "search",
        tmp_path / "index",
        "--video",
        clip,
        "--at",
        2.0,
        "--target",
        "audio",
        "--k",
        3,
        "--html",
        tmp_path / "hits.html",
    )
    assert "clip_" in out
    html = (tmp_path / "hits.html").read_text()
    assert "<audio" in html and "data:audio/wav;base64" in html

    # localise: an overlay video with the original sound
    run(capsys, "localize", clip, "--checkpoint", tmp_path / "avol", "--out", tmp_path / "loc.mp4")
    with av.open(str(tmp_path / "loc.mp4")) as c:
        assert c.streams.video and c.streams.audio
        assert abs(c.duration / 1e6 - 3.0 * 2) < 0.5  # demo clips are 6 s

    # evaluations print one JSON object each
    out = run(capsys, "eval", "localization", data, "--checkpoint", tmp_path / "avol")
    res = json.loads(out[out.index("{") :])
    assert "baselines" in res

    # one permission rule for every file the project wrote: 0666 less the umask
    from looklisten.core.fileio import default_file_mode

    modes = {
        str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in tmp_path.rglob("*")
        if p.is_file() and not p.is_symlink()
    }
    assert len(modes) > 30
    odd = {k: m for k, m in modes.items() if m != oct(default_file_mode())}
    assert not odd, odd
