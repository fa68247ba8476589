"""Tests of looklisten.tasks.search (index / search / HTML) and looklisten.evaluation.retrieval."""

from __future__ import annotations

import json
import os
import re
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from media import truncate

from looklisten.cli.main import main
from looklisten.core.config import get_config
from looklisten.data.demo_data import label_at, load_annotations, make_demo_data
from looklisten.data.labels import Labels
from looklisten.evaluation.metrics import DIRECTIONS
from looklisten.evaluation.retrieval import choose_videos, collect_items, evaluate_retrieval
from looklisten.media.video import write_video
from looklisten.models.checkpoint import get_model, save_checkpoint
from looklisten.models.network import create_model
from looklisten.report.search_page import render_html
from looklisten.tasks.index import EmbeddingIndex
from looklisten.tasks.search import build_index, search


def _save(run: Path, arch: str, seed: int) -> Path:
    torch.manual_seed(seed)
    cfg = get_config("tiny", arch=arch)
    save_checkpoint(run, create_model(cfg), cfg)
    return run


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return _save(tmp_path_factory.mktemp("ave"), "ave", 0)


def _wav(path: Path, x: np.ndarray, sr: int = 16000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(np.round(np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """A labelled folder: sub-folder = label; distinct pictures and sounds per file."""
    from PIL import Image

    root = tmp_path_factory.mktemp("library")
    rng = np.random.default_rng(0)
    for label in ("birds", "cars"):
        (root / label).mkdir()
    for i, label in enumerate(("birds", "cars", "birds")):
        frames = rng.integers(0, 256, (20, 72, 96, 3), dtype=np.uint8)
        frames = np.repeat(frames, 1, axis=0)
        audio = (0.3 * rng.standard_normal(int(2.0 * 16000))).astype(np.float32)
        write_video(root / label / f"v{i}.mp4", frames, 10.0, audio, 16000, options={"g": "5"})
    _wav(root / "cars" / "engine.wav", 0.3 * rng.standard_normal(int(2.5 * 16000)))
    Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(
        root / "birds" / "photo.png"
    )
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        root / "cars" / "photo.jpg"
    )
    return root


@pytest.fixture(scope="module")
def index_dir(library, ckpt, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("idx") / "index"
    _, failures = build_index(ckpt, [library], out, hop=0.5, progress=False, device="cpu")
    assert failures == []
    return out


def test_index_contents_labels_and_checkpoint(index_dir, library, ckpt):
    index = EmbeddingIndex.load(index_dir)
    # the index keeps a copy of the model and remembers where it came from
    assert index.checkpoint == str(index_dir / "model")
    assert index.info["built_from"] == str(Path(ckpt).absolute() / "checkpoint")
    assert (index.info["hop"], index.info["center"]) == (0.5, False)
    # videos: 2.0 s, hop 0.5, windows inside: 0.5, 1.0, 1.5 -> 3 items each, both modalities
    # wav: 2.5 s -> 0.5 .. 2.0 = 4 audio items; two images
    assert index.count("image") == 3 * 3 + 2
    assert index.count("audio") == 3 * 3 + 4
    items = index.meta("audio")
    v1 = [it for it in items if it["file"].endswith("v1.mp4")]
    assert [it["time"] for it in v1] == [0.5, 1.0, 1.5]
    assert {it["label"] for it in v1} == {"cars"}
    assert all(it["modality"] == "audio" and it["kind"] == "video" for it in v1)
    photo = [it for it in index.meta("image") if it["file"].endswith("photo.png")]
    assert photo[0]["label"] == "birds" and photo[0]["kind"] == "image"
    assert os.path.isabs(items[0]["file"])


def test_search_ranks_an_indexed_item_first(index_dir, library):
    # an indexed image finds itself
    hits = search(index_dir, image=library / "cars" / "photo.jpg", target="image", k=3)
    assert hits[0].file == str((library / "cars" / "photo.jpg").absolute())
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits.query["label"] == "cars"
    # a video frame at an indexed time finds itself
    v = library / "birds" / "v2.mp4"
    hits = search(index_dir, video=v, at=1.0, target="image", k=5)
    assert (hits[0].file, hits[0].time) == (str(v.absolute()), 1.0)
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # the audio of a video, and an audio file, at an indexed time
    hits = search(index_dir, video=v, at=1.5, modality="audio", target="audio", k=5)
    assert (hits[0].file, hits[0].time) == (str(v.absolute()), 1.5)
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    w = library / "cars" / "engine.wav"
    hits = search(index_dir, audio=w, at=2.0, target="audio", k=5)
    assert (hits[0].file, hits[0].time) == (str(w.absolute()), 2.0)
    # default target: the other modality; --exclude-self drops the query's file
    hits = search(index_dir, audio=w, at=1.0, k=20, exclude_self=True, per_video=0)
    assert hits.query["target"] == "image" and all(h.modality == "image" for h in hits)
    assert len(hits) == 11
    # one hit per file by default: the 5 files with pictures
    hits = search(index_dir, audio=w, at=1.0, k=20, exclude_self=True)
    assert len(hits) == 5 and len({h.file for h in hits}) == 5
    hits = search(index_dir, audio=w, k=20, target="audio", exclude_self=True, per_video=0)
    assert len(hits) == 9 and all(h.file != str(w.absolute()) for h in hits)


def test_html_page_is_self_contained(index_dir, library, ckpt, tmp_path, capsys):
    out = tmp_path / "hits.html"
    v = library / "cars" / "v1.mp4"
    rc = main(
        ["search", str(index_dir), "--video", str(v), "--at", "1.0", "--k", "4"]
        + ["--html", str(out)]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    lines = [ln for ln in printed.splitlines() if re.match(r"\s+\d+\s+-?\d\.\d{4}", ln)]
    assert len(lines) == 4
    page = out.read_text()
    hits = search(index_dir, video=v, at=1.0, k=4)
    for h in hits:
        assert Path(h.file).name in page
        assert f"{h.score:.4f}" in page
    assert page.count("<article") == 4
    assert "<img src='data:image/jpeg;base64," in page
    assert "<audio controls" in page and "src='data:audio/wav;base64," in page
    assert not re.search(r"(src|href)=['\"](?!data:)", page)  # nothing outside the page
    # the audio data URIs are valid 1 s WAV files at the model's rate
    import base64
    import io

    uri = re.search(r"data:audio/wav;base64,([A-Za-z0-9+/=]+)", page).group(1)
    with wave.open(io.BytesIO(base64.b64decode(uri))) as w:
        assert w.getframerate() == 16000 and w.getnframes() == 16000
    # render_html directly: an audio query has a player too
    result = search(index_dir, audio=library / "cars" / "engine.wav", at=1.0, k=2)
    page = render_html(result)
    assert page.count("<audio") >= 1 and page.count("<article") == 2


def test_cli_index_reports_bad_files_and_keeps_the_rest(library, ckpt, tmp_path, capsys):
    src = tmp_path / "src"
    shutil.copytree(library, src)
    truncate(src / "birds" / "v0.mp4", src / "birds" / "cut.mp4", 0.3)
    (src / "cars" / "empty.wav").write_bytes(b"")
    out = tmp_path / "index"
    rc = main(
        ["index", str(src), "--checkpoint", str(ckpt), "--out", str(out), "--hop", "0.5", "--quiet"]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert f"{src / 'birds' / 'cut.mp4'}: truncated or corrupt" in err
    assert f"{src / 'cars' / 'empty.wav'}: not a media file: empty file" in err
    index = EmbeddingIndex.load(out)
    assert index.count("image") == 11 and index.count("audio") == 13
    assert index.config()["kind"] == "flat"


def test_index_from_embed_npz_files(library, ckpt, tmp_path, capsys):
    emb = tmp_path / "emb"
    rc = main(
        ["embed", str(library), "--checkpoint", str(ckpt), "--out", str(emb)]
        + ["--hop", "0.5", "--no-center", "--quiet"]
    )
    assert rc == 0
    out = tmp_path / "index"
    assert main(["index", str(emb), "--out", str(out), "--quiet"]) == 0  # checkpoint from .npz
    a = EmbeddingIndex.load(out)
    assert a.count("image") == 11 and a.count("audio") == 13
    # the same items and labels as indexing the media directly
    v = library / "birds" / "v0.mp4"
    items = [it for it in a.meta("image") if it["file"] == str(v.absolute())]
    assert [it["time"] for it in items] == [0.5, 1.0, 1.5]
    assert {it["label"] for it in items} == {"birds"}
    hits = search(out, video=v, at=1.0, target="image", k=1)
    assert (hits[0].file, hits[0].time) == (str(v.absolute()), 1.0)
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    # another checkpoint's .npz files are refused
    other = _save(tmp_path / "other", "ave", 1)
    rc = main(["index", str(emb), "--checkpoint", str(other), "--out", str(tmp_path / "x")])
    assert rc == 2 and "nothing was indexed" in capsys.readouterr().err


def test_ivf_and_hnsw_kinds(library, ckpt, tmp_path):
    for kind in ("ivf", "hnsw"):
        build_index(ckpt, [library], tmp_path / kind, kind=kind, hop=0.5, progress=False)
        index = EmbeddingIndex.load(tmp_path / kind)
        assert index.kind == kind and index.count("audio") == 13


# ---------------------------------------------------------------------------- labels


def test_labels_from_folders_csv_and_annotations(tmp_path, demo):
    (tmp_path / "dog").mkdir()
    lab = Labels(tmp_path)
    assert lab.kind == "folders"
    assert lab(tmp_path / "dog" / "a.mp4") == "dog" and lab("dog/a.mp4") == "dog"
    assert lab(tmp_path / "top.mp4") is None
    (tmp_path / "labels.csv").write_text("file,label\ndog/a.mp4,puppy\nb.wav,engine\n")
    lab = Labels(tmp_path)
    assert lab.kind == "csv"
    assert lab("dog/a.mp4") == "puppy" and lab(tmp_path / "b.wav") == "engine"
    lab = Labels(demo)
    ann = load_annotations(demo)
    assert lab.kind == "annotations"
    for name, a in ann.items():
        seg = a["sounding"][-1]
        t = (seg["start"] + seg["end"]) / 2
        assert lab(demo / name, t) == a["objects"][seg["object"]]["label"]


# ---------------------------------------------------------------------------- eval retrieval


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    make_demo_data(
        out,
        videos=8,
        seed=3,
        duration=3.0,
        size=(128, 96),
        classes=["dog", "duck", "cello"],
        workers=1,
        progress=False,
    )
    return out


@pytest.fixture(scope="module")
def l3_ckpt(tmp_path_factory) -> Path:
    return _save(tmp_path_factory.mktemp("l3"), "l3", 2)


def test_eval_retrieval_json_with_baselines(demo, ckpt, l3_ckpt, capsys):
    rc = main(
        ["eval", "retrieval", str(demo), "--checkpoint", str(ckpt)]
        + ["--baseline-checkpoint", str(l3_ckpt), "--cca-dim", "4", "--quiet", "--save"]
    )
    assert rc == 0
    res = json.loads(capsys.readouterr().out)  # exactly one JSON object
    assert json.loads((ckpt / "eval" / "retrieval.json").read_text()) == res  # for the report
    metrics = {"ndcg@30", "recall@1", "recall@5", "recall@10"}
    for block in (res["scores"], res["random"], res["l3"]["raw"], res["l3"]["cca"]):
        for d in DIRECTIONS:
            assert set(block[d]) == metrics
            assert all(0.0 <= block[d][m] <= 1.0 for m in metrics)
    # no split.json for this folder: halves, CCA on one, evaluation on the other
    assert "halves" in res["selection"]
    # 3 s clips, hop 1 s: items at 0.5, 1.5 and 2.5 s
    assert res["items"]["videos"] == 4 and res["items"]["items"] == 4 * 3
    assert res["labels_from"] == "annotations"
    assert 0 < res["items"]["evaluated_queries"] <= 12
    assert res["model"]["arch"] == "ave" and res["l3"]["arch"] == "l3"
    assert res["l3"]["cca_train_pairs"] == 4 * 3 and res["l3"]["cca_dim"] == 4
    for d in ("im2aud", "aud2im"):
        row = res["cross_modal_ndcg"][d]
        assert set(row) == {"model", "random", "l3_cca", "beats_baselines", "minus_l3_cca"}
        diff = row["minus_l3_cca"]
        assert diff["difference"] == pytest.approx(row["model"] - row["l3_cca"], abs=2e-4)
        lo, hi = diff["ci95"]
        assert lo <= diff["difference"] <= hi and "videos" in diff["resampled"]


def test_eval_retrieval_uses_the_runs_held_out_split(demo, ckpt, tmp_path):
    # a run trained on `demo` whose split holds out clips 6 and 7
    run = tmp_path / "run"
    shutil.copytree(ckpt, run)
    names = sorted(p.name for p in demo.glob("clip_*.mp4"))
    (run / "split.json").write_text(json.dumps({"train": names[:6], "val": names[6:]}))
    (run / "manifest.jsonl").write_text(json.dumps({"root": str(demo)}) + "\n")
    chosen = choose_videos(demo, run)
    assert [Path(p).name for p in chosen["eval"]] == names[6:]
    assert [Path(p).name for p in chosen["cca_train"]] == names[:6]
    res = evaluate_retrieval(demo, run, hop=1.0)
    assert res["items"]["videos"] == 2 and "split.json" in res["selection"]
    assert res["l3"] is None and "baseline-checkpoint" in res["note"]
    assert set(res["scores"]) == set(DIRECTIONS)
    # each item is labelled with the object heard at its time; groups are the clips
    ann = load_annotations(demo)
    items = collect_items(chosen["eval"], get_model(run, "cpu"), Labels(demo), hop=1.0)
    assert len(items["labels"]) == 2 * 3 == res["items"]["items"]
    for f, t, lab, g in zip(items["files"], items["times"], items["labels"], items["groups"]):
        assert lab == label_at(ann[Path(f).name], t)
        assert g == names[6:].index(Path(f).name)
    assert list(items["times"][:3]) == [0.5, 1.5, 2.5]


def test_index_labels_demo_items_by_the_sound_heard_then(demo, ckpt, tmp_path):
    """Media or .npz: each item's label is the object heard at its time."""
    ann = load_annotations(demo)
    emb = tmp_path / "emb"
    args = ["--hop", "1.0", "--no-center", "--quiet"]
    assert main(["embed", str(demo), "--checkpoint", str(ckpt), "--out", str(emb), *args]) == 0
    for src in (demo, emb):
        out = tmp_path / f"index_{src.name}"
        build_index(ckpt, [src], out, hop=1.0, progress=False)
        index = EmbeddingIndex.load(out)
        for modality in ("audio", "image"):
            items = index.meta(modality)
            assert len(items) == 8 * 3
            for it in items:
                assert it["label"] == label_at(ann[Path(it["file"]).name], it["time"])


def test_eval_retrieval_on_a_labelled_folder(library, ckpt, tmp_path):
    res = evaluate_retrieval(library, ckpt, hop=1.0)
    assert res["labels_from"] == "folders" and res["selection"] == "every video in DATA"
    assert res["items"]["videos"] == 3 and res["items"]["items"] == 3 * 2  # 2 s: 0.5, 1.5
    assert res["l3"] is None and set(res["scores"]) == set(DIRECTIONS)
    # the two "birds" videos find each other; "cars" has no other video: not evaluated
    assert res["items"]["evaluated_queries"] == 4
    # a CSV can relabel the same videos
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label\nbirds/v0.mp4,x\ncars/v1.mp4,x\nbirds/v2.mp4,y\n")
    res = evaluate_retrieval(library, ckpt, hop=1.0, labels=csv)
    assert res["labels_from"] == "csv" and res["items"]["evaluated_queries"] == 4
