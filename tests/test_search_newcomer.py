"""A newcomer's first hour with search (issue 28), on real encoded media.

``looklisten.search`` returns a :class:`SearchResult` (hits to iterate, a table
to print), at most ``per_video`` hits a file, whole-file sound queries, index
folders that can be copied and moved, and videos inside audio containers.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from media import make_clip, truncate
from test_search import ckpt  # noqa: F401  (the module's tiny AVE-Net checkpoint)

import looklisten
from looklisten.cli.main import main
from looklisten.core.fileio import file_sha256
from looklisten.media.video import write_video
from looklisten.report.search_page import SHADE, render_html
from looklisten.tasks.index import EmbeddingIndex, Hit
from looklisten.tasks.search import SearchResult, build_index, search

ROW = re.compile(r"^\s+(\d+)\s+(-?\d\.\d{4})\s+(\S+)\s+(.*?)\s*(/\S+)$")


def _write(root: Path) -> Path:
    """birds/static.mp4: 6 s of one picture and a tone (its items are near twins);
    cars/r0..r2.mp4: random frames and noise; cars/song.ogg: 3.4 s of sound (Vorbis);
    codes.webm: VP9 + Opus."""
    rng = np.random.default_rng(7)
    (root / "birds").mkdir(parents=True)
    (root / "cars").mkdir()
    yy, xx = np.mgrid[0:72, 0:96]
    picture = np.stack([xx * 2, yy * 3, 255 - xx * 2], -1).astype(np.uint8)
    tone = 0.3 * np.sin(2 * np.pi * 330 * np.arange(6 * 16000) / 16000)
    write_video(
        root / "birds" / "static.mp4",
        np.repeat(picture[None], 60, 0),
        10.0,
        tone.astype(np.float32),
        16000,
    )
    for i in range(3):
        frames = rng.integers(0, 256, (20, 72, 96, 3), dtype=np.uint8)
        noise = (0.3 * rng.standard_normal(32000)).astype(np.float32)
        write_video(root / "cars" / f"r{i}.mp4", frames, 10.0, noise, 16000)
    make_clip(root / "cars" / "song.ogg", "vorbis-ogg", 3.4, sample_rate=22050)
    make_clip(root / "codes.webm", "vp9-opus", 2.0, 10.0, 16000, 1)
    return root


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp("newcomer") / "media")


@pytest.fixture(scope="module")
def index_dir(media_dir, ckpt) -> Path:  # noqa: F811
    out = media_dir.parent / "videos.index"
    _, failures = build_index(ckpt, [media_dir], out, progress=False, device="cpu")
    assert failures == []
    return out


# ---------------------------------------------------------------------------- the result


def test_search_returns_hits_to_iterate_and_a_table_to_print(index_dir, media_dir, tmp_path):
    from PIL import Image

    dog = tmp_path / "dog.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (60, 80, 3), np.uint8)).save(dog)
    hits = looklisten.search(index_dir, image=dog, k=4, device="cpu")
    assert isinstance(hits, SearchResult) and len(hits) == 4
    files = [h.file for h in hits]  # what the newcomer wrote
    assert all(os.path.isfile(f) and Path(f).is_relative_to(media_dir) for f in files)
    assert all(isinstance(h, Hit) and h.modality == "audio" for h in hits)
    assert hits[0] is list(hits)[0] and hits[-1] is list(hits)[3]
    part = hits[1:3]
    assert isinstance(part, SearchResult) and list(part) == list(hits)[1:3]
    assert hits[1] in hits and hits.count(hits[2]) == 1
    # print(result): the query line and one row per hit, no pixels
    text = str(hits)
    assert repr(hits) == text and len(text) < 1500
    lines = text.splitlines()
    assert lines[0].startswith(f"query: image {dog} -> audio: 4 hits, at most 1 per file")
    rows = [ROW.match(line) for line in lines[2:]]
    assert len(rows) == 4 and all(rows)
    for (rank, h), m in zip(enumerate(hits, 1), rows):
        assert (int(m[1]), m[2], m[5]) == (rank, f"{h.score:.4f}", h.file)
    assert "array" not in text and "..." not in text
    # the query keeps its arrays, which print as shapes
    assert hits.query["pixels"].shape == (60, 80, 3)
    assert hits.query["target"] == "audio" and hits.query["time"] is None
    assert "<array (60, 80, 3) uint8>" in repr(hits.query) and "array(" not in str(hits.query)
    assert isinstance(hits.index, EmbeddingIndex) and hits.index.count("audio") > 0


def test_by_video_and_the_grouped_table():
    def hit(file, score, t=0.5):
        return Hit(file=file, time=t, modality="image", score=score, index=0)

    hits = [hit("/a.mp4", 0.9), hit("/b.mp4", 0.8), hit("/a.mp4", 0.7, 1.5), hit("/c.mp4", 0.6)]
    result = SearchResult(hits, {"modality": "image", "file": "/q.png", "time": None}, None, 3)
    groups = result.by_video()
    assert list(groups) == ["/a.mp4", "/b.mp4", "/c.mp4"]
    assert [h.score for h in groups["/a.mp4"]] == [0.9, 0.7]
    # per_video > 1: a file's hits together, files by their best score; ranks kept
    assert [(r, h.file) for r, h in result.rows()] == [
        (1, "/a.mp4"), (3, "/a.mp4"), (2, "/b.mp4"), (4, "/c.mp4"),
    ]  # fmt: skip
    ranks = [int(m[1]) for m in map(ROW.match, str(result).splitlines()[2:])]
    assert ranks == [1, 3, 2, 4]
    one = SearchResult(hits, result.query, None, 1)
    assert [r for r, _ in one.rows()] == [1, 2, 3, 4]


# ---------------------------------------------------------------------------- per video


def test_per_video_keeps_one_clip_from_filling_the_hits(index_dir, media_dir, capsys):
    static = media_dir / "birds" / "static.mp4"
    ask = dict(video=static, at=2.5, target="image", k=5, device="cpu")
    every = search(index_dir, per_video=0, **ask)
    assert [h.file for h in every] == [str(static)] * 5  # the still clip fills the top 5
    default = search(index_dir, **ask)
    assert len(default) == 5 and len({h.file for h in default}) == 5
    assert default[0].file == str(static)
    assert [h.score for h in default] == sorted((h.score for h in default), reverse=True)
    three = search(index_dir, per_video=3, **ask)
    per = [h.file for h in three]
    assert len(three) == 5 and per.count(str(static)) == 3
    assert max(per.count(f) for f in per) <= 3
    mine = search(index_dir, exclude_self=True, **ask)
    assert len(mine) == 4 and str(static) not in {h.file for h in mine}  # 4 other files
    # the command line: --per-video, a file's hits listed together
    argv = ["search", str(index_dir), "--video", str(static), "--at", "2.5"]
    assert main([*argv, "--target", "image", "--k", "5", "--per-video", "3"]) == 0
    out = capsys.readouterr().out
    rows = [m for m in map(ROW.match, out.splitlines()) if m]
    shown = [m[5] for m in rows]
    assert shown == [h.file for _, h in three.rows()] and len(shown) == 5
    for f in set(shown):  # each file's rows are next to each other
        at = [i for i, g in enumerate(shown) if g == f]
        assert at == list(range(at[0], at[0] + len(at)))
    assert "at most 3 per file" in out.splitlines()[0]


def test_per_file_fetches_more_until_k_files_or_the_end():
    rng = np.random.default_rng(0)
    base = rng.standard_normal(16)
    twins = base + 0.01 * rng.standard_normal((200, 16))  # one file, 200 near twins
    others = rng.standard_normal((6, 16))
    index = EmbeddingIndex(dim=16)
    index.add("image", twins, [{"file": "/big.mp4", "time": float(i)} for i in range(200)])
    index.add("image", others, [{"file": f"/o{i}.mp4", "time": 0.0} for i in range(6)])
    assert {h.file for h in index.search(base, "image", k=3)[0]} == {"/big.mp4"}
    hits = index.search(base, "image", k=3, per_file=1)[0]
    assert len({h.file for h in hits}) == 3 and hits[0].file == "/big.mp4"
    hits = index.search(base, "image", k=10, per_file=2)[0]
    assert len(hits) == 8 and [h.file for h in hits].count("/big.mp4") == 2  # 7 files: 2 + 6
    hits = index.search(base, "image", k=10, per_file=1, exclude_files="/big.mp4")[0]
    assert len(hits) == 6 and "/big.mp4" not in {h.file for h in hits}
    with pytest.raises(ValueError, match="per_file"):
        index.search(base, "image", per_file=-1)


# ---------------------------------------------------------------------------- whole-file sounds


def _waveform_pixels(page: str) -> np.ndarray:
    from PIL import Image

    uri = re.search(r"<img src='data:image/png;base64,([A-Za-z0-9+/=]+)' alt='query'>", page)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.group(1)))).convert("RGB"))


def test_a_sound_without_at_is_the_whole_file_pooled(index_dir, media_dir, tmp_path, capsys):
    song = media_dir / "cars" / "song.ogg"
    result = search(index_dir, audio=song, target="audio", k=3, per_video=0, device="cpu")
    q = result.query
    assert q["time"] is None and q["span"] == (0.0, 3.0) and q["windows"] == 3
    # the mean of the index's own (unit) vectors of the file, normalised
    index = result.index
    ids = [i for i, it in enumerate(index.meta("audio")) if it["file"] == str(song)]
    assert [index.meta("audio")[i]["time"] for i in ids] == [0.5, 1.5, 2.5]
    stored = np.stack([index.faiss_index("audio").reconstruct(i) for i in ids])
    mean = stored.mean(axis=0)
    np.testing.assert_allclose(q["vector"], mean / np.linalg.norm(mean), atol=1e-5)
    assert result[0].file == str(song)
    # with --at: the one window there
    one = search(index_dir, audio=song, at=1.5, target="audio", k=1, device="cpu")
    assert one.query["span"] == (1.0, 2.0) and one.query["windows"] == 1
    assert (one[0].file, one[0].time) == (str(song), 1.5)
    assert one[0].score == pytest.approx(1.0, abs=1e-4)
    # a video's sound without --at: its whole track; its frame without --at: the first
    static = media_dir / "birds" / "static.mp4"
    sound = search(index_dir, video=static, modality="audio", k=1, device="cpu").query
    assert sound["span"] == (0.0, 6.0) and sound["windows"] == 6 and sound["label"] == "birds"
    frame = search(index_dir, video=static, k=1, device="cpu").query
    assert frame["modality"] == "image" and frame["time"] == 0.0

    # the command line and the page say which seconds were used
    page_path = tmp_path / "hits.html"
    assert main(["search", str(index_dir), "--audio", str(song), "--html", str(page_path)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"query: audio {song}, seconds 0.00–3.00, 3 windows pooled")
    page = page_path.read_text()
    assert "seconds 0.00–3.00, 3 windows pooled" in page
    px = _waveform_pixels(page)
    width, seconds = px.shape[1], q["duration"]

    def shaded(t: float) -> bool:
        return tuple(px[1, int(t / seconds * width)]) == SHADE

    assert shaded(0.2) and shaded(1.5) and shaded(2.9) and not shaded(3.3)
    page = render_html(one)
    assert "seconds 1.00–2.00 (the 1 s at 1.50 s)" in page
    px = _waveform_pixels(page)
    assert shaded(1.5) and not shaded(0.5) and not shaded(2.5)


# ---------------------------------------------------------------------------- portable index


def _key(result: SearchResult, media: Path) -> list[tuple]:
    return [(Path(h.file).relative_to(media), h.time, round(h.score, 4)) for h in result]


def test_an_index_folder_can_be_copied_and_moved_with_its_media(media_dir, ckpt, tmp_path):  # noqa: F811
    old, new = tmp_path / "old", tmp_path / "new"
    media = old / "media"
    for rel in ("birds/static.mp4", "cars/r0.mp4", "cars/song.ogg"):
        (media / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(media_dir / rel, media / rel)
    run = shutil.copytree(ckpt, old / "run")
    build_index(run, [media], old / "videos.index", progress=False, device="cpu")
    static = media / "birds" / "static.mp4"
    ask = dict(at=2.5, target="audio", k=4, per_video=2, device="cpu")
    before = search(old / "videos.index", video=static, **ask)
    assert before.query["label"] == "birds" and len(before) == 4
    # what the folder holds: the model, and files relative to itself
    meta = json.loads((old / "videos.index" / "meta.json").read_text())
    assert (meta["version"], meta["checkpoint"], meta["checkpoint_relative"]) == (2, "model", True)
    names = sorted(p.name for p in (old / "videos.index" / "model").iterdir())
    assert names == ["config.json", "model.safetensors", "state.json"]
    items = json.loads((old / "videos.index" / "image.items.json").read_text())
    assert sorted(items["files"]) == ["../media/birds/static.mp4", "../media/cars/r0.mp4"]

    # the index copied alone still finds the media where they are
    alone = shutil.copytree(old / "videos.index", tmp_path / "alone" / "videos.index")
    assert _key(search(alone, video=static, **ask), media) == _key(before, media)

    # copied (links followed) beside the media moved to a new parent; the run is gone
    new.mkdir()
    shutil.copytree(old / "videos.index", new / "videos.index", symlinks=False)
    shutil.move(media, new / "media")
    shutil.rmtree(old)
    index = new / "videos.index"
    after = search(index, video=new / "media" / "birds" / "static.mp4", **ask)
    assert _key(after, new / "media") == _key(before, media)
    assert all(os.path.isfile(h.file) for h in after)
    assert after.query["checkpoint"] == str(index / "model") and after.query["label"] == "birds"
    mine = search(index, video=new / "media" / "birds" / "static.mp4", exclude_self=True, **ask)
    assert mine and "static.mp4" not in {Path(h.file).name for h in mine}


def test_a_version_1_index_still_loads(index_dir, media_dir, ckpt, tmp_path):  # noqa: F811
    """Absolute files and checkpoint, no copy of the model: what looklisten wrote before."""
    v1 = shutil.copytree(index_dir, tmp_path / "v1.index", symlinks=False)
    shutil.rmtree(v1 / "model")
    meta = json.loads((v1 / "meta.json").read_text())
    for m in ("audio", "image"):
        name = meta["modalities"][m]["items_file"]
        cols = json.loads((v1 / name).read_text())
        cols["files"] = [os.path.normpath(os.path.join(index_dir, f)) for f in cols["files"]]
        del cols["relative"], cols["origin"]
        (v1 / name).write_text(json.dumps(cols))
        meta["modalities"][m]["sha256"][name] = file_sha256(v1 / name)
    meta.update(version=1, checkpoint=str(Path(ckpt).absolute() / "checkpoint"))
    del meta["checkpoint_relative"], meta["info"]
    (v1 / "meta.json").write_text(json.dumps(meta))
    old, new = EmbeddingIndex.load(v1), EmbeddingIndex.load(index_dir)
    assert old.meta("audio") == new.meta("audio") and old.checkpoint == meta["checkpoint"]
    song = media_dir / "cars" / "song.ogg"
    a = search(v1, audio=song, at=1.5, k=3, device="cpu")
    b = search(index_dir, audio=song, at=1.5, k=3, device="cpu")
    assert [(h.file, h.time) for h in a] == [(h.file, h.time) for h in b]
    meta["version"] = 3
    (v1 / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="unsupported version 3"):
        EmbeddingIndex.load(v1)


# ---------------------------------------------------------------------------- content, not name


def test_a_video_in_an_ogg_file_is_indexed_as_a_video(ckpt, tmp_path, capsys):  # noqa: F811
    src = tmp_path / "src"
    src.mkdir()
    make_clip(src / "x.ogg", "vp8-vorbis-ogv", 2.0, 10.0, 22050, 2)
    truncate(src / "x.ogg", src / "cut.ogg", 0.3)
    (src / "notes.ogg").write_bytes(b"this is not an ogg file\n" * 10)
    out = tmp_path / "index"
    argv = ["index", str(src), "--checkpoint", str(ckpt), "--out", str(out), "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"error: {src / 'cut.ogg'}: truncated or corrupt" in err
    assert f"error: {src / 'notes.ogg'}: not a media file" in err
    index = EmbeddingIndex.load(out)
    for modality in ("image", "audio"):
        items = index.meta(modality)
        assert {it["file"] for it in items} == {str(src / "x.ogg")}
        assert {it["kind"] for it in items} == {"video"}
        # an item every 1.0 s, windows inside the file: centred at 0.5 s and 1.5 s
        assert [it["time"] for it in items] == [0.5, 1.5]


def test_the_index_help_states_its_hop_and_windows(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["index", "--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "an item every 1.0 s (embed's default is 0.1 s: features" in text
    assert "windows lie inside the file, centred at 0.5 s, 1.5 s, ... unless --center" in text
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--per-video K" in text and "without --at the whole file" in text
