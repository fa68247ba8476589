"""``looklisten report``: a self-contained HTML page, checked by parsing and in a real browser.

Fast tests build run folders by hand (curves, evaluation files, a unit gallery,
no checkpoint) and check what the page says about what is there and what is
missing. The slow ones train a tiny AVE-Net and AVOL-Net for a few steps on
real encoded demo clips, run the evaluations that save into RUN/eval, write
the report, and load it in headless Chromium (installed from Debian's package
when possible; skipped with a message otherwise).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import wave
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from looklisten.cli.main import main
from looklisten.report.page import EVAL_FILES, write_report

# ---------------------------------------------------------------------------
# Reading a page back
# ---------------------------------------------------------------------------


class Page(HTMLParser):
    """Tags of interest in a report: media sources, ids, external references, notes."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.media: list[tuple[str, str]] = []  # (tag, src)
        self.ids: set[str] = set()
        self.external: list[str] = []
        self.scripts = 0
        self.notes: list[str] = []
        self._in_note = 0
        self._note_text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag in ("img", "audio", "source", "video") and "src" in a:
            self.media.append((tag, a["src"]))
        if tag == "script":
            self.scripts += 1
        for key in ("href", "src"):
            v = a.get(key)
            if v and not v.startswith(("data:", "#")):
                self.external.append(v)
        if "note" in (a.get("class") or "").split():
            self._in_note += 1
            self._note_text = []
        elif self._in_note:
            self._in_note += 1 if tag not in ("br",) else 0

    def handle_endtag(self, tag):
        if self._in_note and tag != "br":
            self._in_note -= 1
            if self._in_note == 0:
                self.notes.append("".join(self._note_text))

    def handle_data(self, data):
        if self._in_note:
            self._note_text.append(data)

    def images(self) -> list[str]:
        return [s for t, s in self.media if t == "img"]

    def audios(self) -> list[str]:
        return [s for t, s in self.media if t in ("audio", "source")]


def decode_uri(uri: str) -> tuple[str, bytes]:
    m = re.fullmatch(r"data:([\w/+.-]+);base64,([A-Za-z0-9+/=]+)", uri)
    assert m, f"not a base64 data URI: {uri[:60]}"
    return m.group(1), base64.b64decode(m.group(2), validate=True)


def check_media(page: Page) -> tuple[int, int]:
    """Every image and sound is a data URI that decodes; return their numbers."""
    for src in page.images():
        mime, data = decode_uri(src)
        assert mime in ("image/png", "image/jpeg"), mime
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            assert im.width > 0 and im.height > 0
    for src in page.audios():
        mime, data = decode_uri(src)
        assert mime == "audio/wav", mime
        with wave.open(io.BytesIO(data)) as w:
            assert w.getnframes() > 0 and w.getframerate() > 0
    return len(page.images()), len(page.audios())


# ---------------------------------------------------------------------------
# Hand-made run folders
# ---------------------------------------------------------------------------


def write_history(run: Path, steps: int = 60, every: int = 10) -> None:
    """metrics.jsonl / metrics.json as the trainer writes them."""
    rng = np.random.default_rng(0)
    lines = []
    for s in range(every, steps + 1, every):
        lines.append(
            {
                "split": "train",
                "step": s,
                "epoch": s / 20,
                "lr": 1e-3 * 0.5 * (1 + math.cos(math.pi * s / steps)),
                "loss": 0.69 - 0.002 * s + 0.01 * rng.standard_normal(),
                "avc_accuracy": 0.5 + 0.004 * s,
                "pairs_per_s": 100 + rng.standard_normal(),
                "time": s * 0.5,
            }
        )
        if s % 20 == 0:
            lines.append(
                {
                    "split": "val",
                    "step": s,
                    "epoch": s / 20,
                    "val_loss": 0.69 - 0.001 * s,
                    "val_avc_accuracy": 0.5 + 0.003 * s,
                    "val_pairs": 64,
                }
            )
    run.mkdir(parents=True, exist_ok=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    vals = [r["val_avc_accuracy"] for r in lines if r["split"] == "val"]
    summary = {
        "preset": "tiny",
        "model": "l3",
        "steps": steps,
        "pairs": steps * 8,
        "train_seconds": steps * 0.5,
        "val_avc_accuracy": vals[-1],
        "best_val_avc_accuracy": max(vals),
        "stopped_by_time_budget": False,
        "train_videos": 6,
        "val_videos": 2,
    }
    (run / "metrics.json").write_text(json.dumps(summary))


def wav_file(path: Path, seconds: float = 1.0, sr: int = 16000) -> None:
    t = np.arange(int(seconds * sr)) / sr
    pcm = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())


def png_file(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    px = np.random.default_rng(seed).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    Image.fromarray(px).save(path)


def write_units(run: Path) -> None:
    """A units.json in the layout of ``looklisten eval units`` with its gallery files."""
    ev = run / "eval"
    units = []
    for branch in ("image", "audio"):
        for u in range(3):
            items = []
            for r in range(2):
                stem = f"units/{branch}/conv4_2_u{u:04d}_{r:02d}"
                item = {"file": f"clip_{r}.mp4", "time": 0.5 + r, "label": "dog", "activation": 1.0}
                png_file(ev / f"{stem}.png", seed=u * 10 + r)
                if branch == "image":
                    item["thumbnail"] = f"{stem}.png"
                else:
                    item["spectrogram"] = f"{stem}.png"
                    item["audio"] = f"{stem}.wav"
                    wav_file(ev / f"{stem}.wav")
                items.append(item)
            units.append(
                {
                    "branch": branch,
                    "layer": "conv4_2",
                    "unit": u,
                    "selectivity": 0.9 - 0.1 * u,
                    "top_label": "dog",
                    "top_share": 1.0,
                    "base_rate": 0.5,
                    "dead": False,
                    "top_items": items,
                }
            )
        # a unit without a gallery and a dead one: not shown
        units.append(
            {"branch": branch, "layer": "conv4_2", "unit": 7, "selectivity": 0.95, "top_items": []}
        )
        units.append(
            {"branch": branch, "layer": "conv4_2", "unit": 8, "dead": True, "top_items": []}
        )
    (ev / "units.json").write_text(json.dumps({"evaluation": "units", "units": units}))


def probe_json(modality: str) -> dict:
    def acc(folds):
        a = np.asarray(folds)
        return {"mean": float(a.mean()), "std": float(a.std()), "per_fold": folds}

    return {
        "evaluation": "probe",
        "modality": modality,
        "layer": "conv4_2",
        "classifier": "svm",
        "folds": 3,
        "items": 30,
        "files": 6,
        "classes": 3,
        "chance": 1 / 3,
        "accuracy": acc([0.8, 0.7, 0.9]),
        "baselines": {
            "random_weights": acc([0.4, 0.5, 0.45]),
            "handmade": acc([0.6, 0.55, 0.5]),
            "majority": acc([0.33, 0.34, 0.33]),
        },
    }


# ---------------------------------------------------------------------------
# Fast tests
# ---------------------------------------------------------------------------


def test_page_from_files_only(tmp_path):
    run = tmp_path / "run"
    write_history(run)
    write_units(run)
    (run / "eval" / "probe_audio.json").write_text(json.dumps(probe_json("audio")))
    out = write_report(run)
    assert out == run / "report.html"
    text = out.read_text()
    page = Page(text)
    n_img, n_aud = check_media(page)
    # curves + 3 image units x 2 items + 3 audio units x 2 spectrograms; 3 x 2 WAVs
    assert (n_img, n_aud) == (1 + 6 + 6, 6)
    assert page.external == [] and page.scripts == 0
    for key in ("summary", "curves", "examples", "overlays", "evals", "config"):
        assert f"run-{key}" in page.ids
    # present: the probe table (with its baselines) and the galleries
    assert "run-probe_audio" in page.ids and "run-units" in page.ids
    assert "random weights" in text and "0.800 ± 0.082" in html.unescape(text)
    assert "unit 7" not in text and "unit 8" not in text  # no gallery / dead
    assert text.index("unit 0") < text.index("unit 1") < text.index("unit 2")
    # missing: each named with the command that makes it; not-applicable ones left out
    notes = " ".join(page.notes)
    assert "looklisten eval probe" in notes and "--modality image" in notes
    assert "looklisten eval shortcut" in notes
    assert "eval localization" not in notes and "eval retrieval" not in notes  # L3 run
    assert "probe_audio.json" not in notes and "units.json" not in notes
    assert "no checkpoint" in notes  # no examples, no config
    assert "0.680" in text  # final held-out AVC accuracy (0.5 + 0.003 * 60)


def test_broken_and_empty_runs_still_give_a_page(tmp_path):
    broken = tmp_path / "broken"
    write_history(broken)
    with open(broken / "metrics.jsonl", "a") as f:
        f.write('{"split": "train", "step": 7')  # a line being written
    (broken / "eval").mkdir()
    (broken / "eval" / "shortcut.json").write_text("{not json")
    (broken / "eval" / "units.json").write_text(json.dumps({"units": "?"}))
    empty = tmp_path / "empty"
    empty.mkdir()
    out = write_report(broken, others=[empty], out=tmp_path / "page.html")
    page = Page(out.read_text())
    check_media(page)
    notes = " ".join(page.notes)
    assert "shortcut.json could not be shown" in notes
    assert "units.json lists no units" in notes
    assert "has not finished an epoch" in notes and "RUN/metrics.jsonl is missing" in notes
    assert {"broken", "empty"} <= page.ids
    # written atomically: nothing but the page is left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "empty", "page.html"]


def test_cli(tmp_path, capsys):
    run = tmp_path / "run"
    write_history(run)
    assert main(["report", str(run), "--out", str(tmp_path / "r.html"), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "r.html")
    assert main(["report", str(tmp_path / "nothing")]) == 2  # not a run directory


def test_eval_files_name_real_commands():
    """Every command the page suggests parses with the real command line."""
    from looklisten.cli.main import build_parser

    parser = build_parser()
    for title, cmd, _ in EVAL_FILES.values():
        argv = cmd.format(run="RUN", data="DATA").split()[1:]
        args = parser.parse_args(argv)
        assert callable(args.func), title


# ---------------------------------------------------------------------------
# A real run (slow)
# ---------------------------------------------------------------------------


def cli(*argv) -> None:
    assert main([str(a) for a in argv]) == 0, argv


@pytest.fixture(scope="module")
def real_report(tmp_path_factory):
    """Tiny AVE-Net and AVOL-Net runs on 8 demo clips, their evaluations, and the page."""
    tmp = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOOKLISTEN_CACHE", str(tmp / "cache"))
        data = tmp / "data"
        cli("make-demo-data", data, "--videos", 8, "--seed", 3)
        small = ["--preset", "tiny", "--batch-size", 8, "--epoch-pairs", 32, "--epochs", 1]
        small += ["--quiet", "--set", "sampler.val_fraction=0.5", "--set", "train.val_pairs=64"]
        for arch in ("ave", "avol"):
            cli("train", data, "--model", arch, "--out", tmp / arch, *small)
        loc = ["--quiet", "--times", 2, "--compare", tmp / "ave", "--png-count", 2]
        loc += ["--png-dir", tmp / "avol" / "eval" / "overlays"]
        cli("eval", "localization", data, "--checkpoint", tmp / "avol", *loc, "--save")
        units = ["--units", 2, "--top", 3, "--quiet"]
        cli("eval", "units", data, "--checkpoint", tmp / "ave", *units, "--save")
        out = tmp / "page.html"
        cli("report", tmp / "ave", "--with", tmp / "avol", "--out", out, "--quiet")
    return out


@pytest.mark.slow
def test_real_runs_page(real_report):
    text = real_report.read_text()
    page = Page(text)
    n_img, n_aud = check_media(page)
    assert page.external == [] and page.scripts == 0
    for run in ("ave", "avol"):
        for key in ("summary", "curves", "examples", "overlays", "evals", "config"):
            assert f"{run}-{key}" in page.ids
    # AVE-Net: cross-modal examples; AVOL-Net: within-modality, and overlays
    assert "image query &rarr; audio hits" in text and "audio query &rarr; image hits" in text
    assert "image query &rarr; image hits" in text and "audio query &rarr; audio hits" in text
    assert text.count("alt='clip_") >= 2 * 2 * (1 + 1)  # queries and hits of both runs
    overlays = text[text.index("id='avol-overlays'") : text.index("id='avol-evals'")]
    assert overlays.count("<img") >= 1 and overlays.count("<audio") >= 1
    # the evaluations that were run are tables, the others listed as missing
    assert "avol-localization" in page.ids and "whole image" in text
    assert "AVOL-Net minus the best trivial baseline" in text and "95 % interval" in text
    # metrics with a ceiling of 1, breakdowns, and the maps for negative sounds
    assert "pixel AP" in text and "By object size" in text and "By distance" in text
    assert "Negative audio" in text and "AVE-Net correspondence score" in text
    loc_html = text[text.index("id='avol-localization'") :]
    assert loc_html.count("alt='negative sounds'") == 1
    assert "ave-units" in page.ids
    notes = " ".join(page.notes)
    assert "looklisten eval retrieval" in notes and "looklisten eval probe" in notes
    assert "no checkpoint" not in notes and "could not be built" not in notes
    plain = html.unescape(text)
    assert '"arch": "avol"' in plain and '"arch": "ave"' in plain  # the configs
    assert n_img >= 10 and n_aud >= 10


@pytest.mark.slow
def test_real_runs_page_in_chromium(real_report, tmp_path):
    from browser import check_page, ensure_browser, screenshot

    chromium, why = ensure_browser()
    if chromium is None:
        pytest.skip(f"no headless browser: {why}")
    page = Page(real_report.read_text())
    res = check_page(real_report, chromium)
    assert "fatal" not in res, res.get("fatal")
    assert len(res["images"]) == len(page.images()) > 0
    assert len(res["audios"]) == len(page.audios()) > 0
    bad = [i for i in res["images"] if not (i["complete"] and i["naturalWidth"] > 0) or i["error"]]
    assert not bad, bad[:3]
    bad = [
        a
        for a in res["audios"]
        if a["how"] not in ("loadedmetadata", "ready") or a["error"] or not a["duration"] > 0
    ]
    assert not bad, bad[:3]
    assert res["external"] == [] and res["text_length"] > 1000
    png = screenshot(real_report, tmp_path / "report.png", chromium, size=(1280, 2400))
    with Image.open(png) as im:
        px = np.asarray(im.convert("RGB"))
    assert px.shape[:2] == (2400, 1280)
    assert px.std() > 20 and len(np.unique(px.reshape(-1, 3), axis=0)) > 500


def test_browser_check_catches_broken_media(tmp_path):
    """The browser check itself can fail: a page with a broken image and sound."""
    from browser import check_page, find_browser

    chromium = find_browser()
    if chromium is None:
        pytest.skip("no chromium / google-chrome on PATH (the slow report test installs one)")
    ok = tmp_path / "ok.png"
    png_file(ok, 0)
    good_img = "data:image/png;base64," + base64.b64encode(ok.read_bytes()).decode()
    wav_file(tmp_path / "ok.wav")
    good_wav = (
        "data:audio/wav;base64," + base64.b64encode((tmp_path / "ok.wav").read_bytes()).decode()
    )
    page = (
        f"<html><body><img src='{good_img}'><img src='data:image/png;base64,AAAA'>"
        f"<audio controls src='{good_wav}'></audio>"
        "<audio controls src='data:audio/wav;base64,AAAA'></audio></body></html>"
    )
    (tmp_path / "p.html").write_text(page)
    res = check_page(tmp_path / "p.html", chromium)
    assert [i["naturalWidth"] > 0 for i in res["images"]] == [True, False]
    assert [a["error"] is None for a in res["audios"]] == [True, False]
