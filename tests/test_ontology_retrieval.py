"""Graded retrieval relevance with the AudioSet ontology (looklisten.data.ontology,
the ``relevance`` of looklisten.evaluation.metrics, ``eval retrieval --ontology``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from looklisten.cli.main import main
from looklisten.core.config import get_config
from looklisten.data.ontology import LabelSets, load_ontology, read_label_sets
from looklisten.evaluation.metrics import (
    DIRECTIONS,
    cross_modal_eval,
    random_baseline,
    retrieval_scores,
)
from looklisten.evaluation.retrieval import PUBLISHED, ontology_relevance
from looklisten.media.video import write_video
from looklisten.models.checkpoint import save_checkpoint
from looklisten.models.network import create_model

D2, D3 = 1 / math.log2(3), 0.5  # DCG discounts of ranks 2 and 3

MUSIC, INSTR, PLUCKED, GUITAR = "/m/04rlf", "/m/04szw", "/m/0fx80y", "/m/0342h"
ELECTRIC, ACOUSTIC, KEYS, PIANO = "/m/02sgy", "/m/042v_gx", "/m/05148p4", "/m/05r5c"
HUMAN, VOICE, SINGING, FORK = "/m/0dgw9r", "/m/09l8g", "/m/015lz1", "/m/0dwtp"
ANIMAL, DOG = "/m/0jbk", "/m/0bt9lr"


def _cls(cid, name, kids=(), restrictions=()):
    """One class as Google publishes it in ontology.json."""
    return {
        "id": cid,
        "name": name,
        "description": f"The sound of {name.lower()}.",
        "citation_uri": "",
        "positive_examples": ["youtu.be/abcdefghijk?start=30&end=40"],
        "child_ids": list(kids),
        "restrictions": list(restrictions),
    }


# depths: Music 1, Musical instrument 2, Plucked 3, Guitar 4, Electric/Acoustic 5,
# Keyboard 3, Piano 4; Human sounds 1, Human voice 2; Singing has two parents
# (Human voice and Music): depth 2; Animal 1, Dog 2.
ONTOLOGY = [
    _cls(HUMAN, "Human sounds", [VOICE], ["abstract"]),
    _cls(VOICE, "Human voice", [SINGING], ["abstract"]),
    _cls(SINGING, "Singing"),
    _cls(MUSIC, "Music", [INSTR, SINGING]),
    _cls(INSTR, "Musical instrument", [PLUCKED, KEYS, FORK]),
    _cls(PLUCKED, "Plucked string instrument", [GUITAR]),
    _cls(GUITAR, "Guitar", [ELECTRIC, ACOUSTIC]),
    _cls(ELECTRIC, "Electric guitar"),
    _cls(ACOUSTIC, "Acoustic guitar"),
    _cls(KEYS, "Keyboard (musical)", [PIANO]),
    _cls(PIANO, "Piano"),
    _cls(FORK, "Tuning fork", restrictions=["blacklist"]),
    _cls(ANIMAL, "Animal", [DOG]),
    _cls(DOG, "Dog"),
]


@pytest.fixture(scope="module")
def onto_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("onto") / "ontology.json"
    p.write_text(json.dumps(ONTOLOGY, indent=1))
    return p


@pytest.fixture(scope="module")
def onto(onto_file):
    return load_ontology(onto_file)


# ---------------------------------------------------------------------- the ontology


def test_reads_the_published_format(onto):
    assert len(onto) == 14 and onto.top == [HUMAN, MUSIC, ANIMAL]
    assert sorted(onto.parents[SINGING]) == sorted([VOICE, MUSIC])
    assert onto.restrictions[HUMAN] == ["abstract"] and onto.restrictions[FORK] == ["blacklist"]
    assert onto.resolve("Electric guitar") == ELECTRIC == onto.resolve("electric GUITAR")
    assert onto.resolve(ELECTRIC) == ELECTRIC and onto.resolve("Banjo") is None
    assert [onto.depth(c) for c in (MUSIC, GUITAR, ELECTRIC, SINGING, DOG)] == [1, 4, 5, 2, 2]


def test_tree_distances(onto):
    assert onto.distance(GUITAR, GUITAR) == 0
    assert onto.distance(GUITAR, ELECTRIC) == onto.distance(ELECTRIC, GUITAR) == 1
    assert onto.distance(ELECTRIC, ACOUSTIC) == 2  # siblings
    assert onto.distance(GUITAR, PIANO) == 4  # through Musical instrument
    # Singing's best path is through Music (1 + 3), not through the root (2 + 4)
    assert onto.distance(SINGING, GUITAR) == 4
    assert onto.distance(SINGING, VOICE) == 1
    assert onto.distance(DOG, ELECTRIC) == 2 + 5  # through the virtual root
    assert onto.distance(MUSIC, ANIMAL) == 2


def test_grading_of_labels_and_label_sets(onto):
    sets = [
        [GUITAR],  # 0
        [ELECTRIC],  # 1
        [ACOUSTIC],  # 2
        [PIANO],  # 3
        [DOG],  # 4
        [GUITAR, SINGING],  # 5
        [DOG, SINGING, GUITAR],  # 6
    ]
    r = ontology_relevance(onto, sets)  # C = 20
    assert r.shape == (7, 7)
    np.testing.assert_allclose(np.diag(r), 1.0)  # the same label (set)
    assert r[1, 2] == pytest.approx(18 / 20)  # siblings
    assert r[0, 1] == r[1, 0] == pytest.approx(19 / 20)  # parent and child
    assert r[0, 3] == pytest.approx(16 / 20)
    assert r[4, 1] == pytest.approx(13 / 20)  # far apart, different top-level classes
    # a set query: the mean over its labels of the best match among the item's labels
    # {Guitar, Singing} -> {Electric guitar}: (19/20 + (20 - 5)/20) / 2
    assert r[5, 1] == pytest.approx((19 / 20 + 15 / 20) / 2)
    assert r[1, 5] == pytest.approx(19 / 20)  # best of Electric -> Guitar, Electric -> Singing
    assert r[5, 6] == 1.0  # the item holds every label of the query
    # Dog's best match in {Guitar, Singing} is Singing (2 + 2 through the root), not Guitar (6)
    assert r[6, 5] == pytest.approx((16 / 20 + 1 + 1) / 3)
    # unrelated labels get 0 once d >= C
    r5 = ontology_relevance(onto, [[DOG], [ELECTRIC], [ACOUSTIC]], c=5)
    assert r5[0, 1] == 0.0 and r5[1, 2] == pytest.approx(3 / 5)


# ---------------------------------------------------------------------- graded nDCG


def _toy():
    """A query at angle 0 and six database items at 5, 10, 20, 30, 40, 50 degrees.

    Item 0 (rel 1) is in the query's video; items 1..5 have relevances .9, 1, 0, .95, .8.
    """
    ang = np.deg2rad([0, 5, 10, 20, 30, 40, 50])
    emb = np.stack([np.cos(ang), np.sin(ang)], axis=1).astype(np.float32)
    rel = np.array([[1.0, 0.9, 1.0, 0.0, 0.95, 0.8]])
    return emb[:1], emb[1:], rel


def test_graded_ndcg_by_hand():
    q, db, rel = _toy()
    kw = dict(k_ndcg=3, recall_ks=(1, 2), relevance=rel, return_per_query=True)
    # item 0 excluded (own video): ranking 1, 2, 3 -> .9, 1, 0; the ideal DCG takes the
    # best of the *whole* database minus item 0: 1, .95, .9 (.95 is ranked 4th)
    out = retrieval_scores(
        q, [0], db, np.arange(6), query_groups=[7], db_groups=[7, 1, 2, 3, 4, 5], **kw
    )
    want = (0.9 + 1 * D2) / (1 + 0.95 * D2 + 0.9 * D3)
    assert out["ndcg@3"] == pytest.approx(want)
    assert out["ndcg@3"] == pytest.approx(0.7470197, abs=1e-6)  # 1.53093 / 2.04938
    assert out["recall@1"] == 0.0 and out["recall@2"] == 1.0  # a hit = relevance 1
    assert out["n_evaluated"] == out["n_evaluated_recall"] == 1
    # without the exclusion item 0 is retrieved first and counts in the ideal
    out = retrieval_scores(q, [0], db, np.arange(6), **kw)
    assert out["ndcg@3"] == pytest.approx((1 + 0.9 * D2 + 1 * D3) / (1 + 1 * D2 + 0.95 * D3))
    assert out["recall@1"] == 1.0
    # no item of relevance 1 left: nDCG defined, recall not
    low = np.array([[0.5, 0.5, 0.2, 0.0, 0.1, 0.3]])
    out = retrieval_scores(q, [0], db, np.arange(6), k_ndcg=3, relevance=low)
    # ranked .5, .5, .2; ideal .5, .5, .3 (the .3 is ranked 6th)
    assert out["ndcg@3"] == pytest.approx((0.5 + 0.5 * D2 + 0.2 * D3) / (0.5 + 0.5 * D2 + 0.3 * D3))
    assert math.isnan(out["recall@1"]) and out["n_evaluated_recall"] == 0
    # all zero: no nDCG
    out = retrieval_scores(q, [0], db, np.arange(6), k_ndcg=3, relevance=np.zeros((1, 6)))
    assert math.isnan(out["ndcg@3"]) and out["n_evaluated"] == 0


def test_graded_input_checks():
    q, db, rel = _toy()
    with pytest.raises(ValueError, match="integers"):
        retrieval_scores(q, ["a"], db, np.arange(6), relevance=rel)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        retrieval_scores(q, [0], db, np.arange(6), relevance=rel * 2)
    with pytest.raises(ValueError, match="integers"):
        retrieval_scores(q, [0], db, np.arange(6) + 1, relevance=rel)


def _flat_inputs():
    rng = np.random.default_rng(11)
    n = 40
    img = rng.standard_normal((n, 8)).astype(np.float32)
    aud = rng.standard_normal((n, 8)).astype(np.float32)
    lab = np.array(list("abcd"))[rng.integers(0, 4, n)]
    return img, aud, lab, rng.integers(0, 10, n)


def test_flat_mode_unchanged():
    img, aud, lab, grp = _flat_inputs()
    # the numbers of the flat code before graded relevance existed (commit a674a91)
    before = {
        "im2im": (0.3507272796591551, 0.325, 0.825),
        "im2aud": (0.24900992178508688, 0.225, 0.675),
        "aud2im": (0.2623113864171562, 0.225, 0.725),
        "aud2aud": (0.33391051454275217, 0.3, 0.85),
    }
    out = cross_modal_eval(img, aud, lab, grp, k=10, recall_ks=(1, 5))
    for d, (nd, r1, r5) in before.items():
        assert (out[d]["ndcg@10"], out[d]["recall@1"], out[d]["recall@5"]) == (nd, r1, r5)
        assert set(out[d]) == {"ndcg@10", "recall@1", "recall@5", "n_queries", "n_evaluated"}
    rnd = random_baseline(lab, grp, dim=8, k=10, recall_ks=(1, 5), n_repeats=3, seed=2)
    assert rnd["im2aud"]["ndcg@10"] == 0.2902111100761316
    # the identity matrix as graded relevance gives the flat scores
    codes = np.unique(lab, return_inverse=True)[1]
    eye = cross_modal_eval(img, aud, codes, grp, k=10, recall_ks=(1, 5), relevance=np.eye(4))
    for d in DIRECTIONS:
        assert eye[d]["ndcg@10"] == pytest.approx(out[d]["ndcg@10"], abs=1e-12)
        assert eye[d]["recall@5"] == out[d]["recall@5"]


def test_random_baseline_uses_the_grading(onto):
    img, aud, lab, grp = _flat_inputs()
    sets = {"a": [GUITAR], "b": [ELECTRIC], "c": [PIANO], "d": [DOG]}
    names = sorted(sets)
    rel = ontology_relevance(onto, [sets[x] for x in names])
    codes = np.array([names.index(x) for x in lab])
    graded = random_baseline(codes, grp, dim=8, k=10, n_repeats=2, relevance=rel)
    flat = random_baseline(lab, grp, dim=8, k=10, n_repeats=2)
    # near items get partial credit: the graded random row is far above the flat one
    for d in DIRECTIONS:
        assert graded[d]["ndcg@10"] > flat[d]["ndcg@10"] + 0.2
        assert graded[d]["n_evaluated"] == 40


# ---------------------------------------------------------------------- label files

SEGMENTS = f"""\
# Segments csv created Sun Mar  5 10:54:31 2017
# num_ytids=3, num_segs=3, num_unique_labels=4, num_positive_labels=5
# YTID, start_seconds, end_seconds, positive_labels
--PJHxphWEs, 30.000, 40.000, "{MUSIC},{ELECTRIC}"
-0RWZT-miFs, 420.000, 430.000, "{DOG}"
a_b-cdEfGh1, 0.000, 10.000, "{SINGING},{PIANO},{MUSIC}"
"""


def test_segment_csv(onto, tmp_path):
    csv = tmp_path / "eval_segments.csv"
    csv.write_text(SEGMENTS)
    parsed = read_label_sets(csv, onto)
    assert parsed["kind"] == "segments"
    assert parsed["map"]["--PJHxphWEs"] == [(30.0, 40.0, (MUSIC, ELECTRIC))]
    lab = LabelSets(tmp_path, csv, onto)
    assert lab.kind == "audioset-segments"
    assert lab(tmp_path / "--PJHxphWEs_30000_40000.mp4") == (MUSIC, ELECTRIC)
    assert lab("--PJHxphWEs.mp4") == (MUSIC, ELECTRIC)
    assert lab("sub/-0RWZT-miFs_420000_430000.mkv") == (DOG,)
    assert lab("a_b-cdEfGh1_0_10000.mp4") == (SINGING, PIANO, MUSIC)
    assert lab("zzzzzzzzzzz.mp4") is None


def test_file_labels_csv_names_ids_and_separators(onto, tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text(
        "file,labels\n"
        'a.mp4,"Guitar;Singing"\n'
        f'sub/b.mp4,"Electric guitar, {DOG}"\n'
        "c.mp4,Keyboard (musical)\n"
    )
    lab = LabelSets(tmp_path, csv, onto)
    assert lab.kind == "csv-label-sets"
    assert lab(tmp_path / "a.mp4") == (GUITAR, SINGING)
    assert lab(tmp_path / "sub" / "b.mp4") == (ELECTRIC, DOG)
    assert lab("c.mp4") == (KEYS,)


@pytest.mark.parametrize(
    "entries, needle",
    [
        ({"id": MUSIC}, "top level: expected a JSON list"),
        ([_cls(MUSIC, "Music"), {"name": "x", "child_ids": []}], "entry 1: missing 'id'"),
        ([{"id": MUSIC, "name": "Music"}], f"entry 0 ({MUSIC}): missing 'child_ids'"),
        ([_cls(MUSIC, "Music", [GUITAR])], f"entry 0 ({MUSIC}): child id '{GUITAR}' is not"),
        ([_cls(MUSIC, "Music"), _cls(MUSIC, "Again")], "entry 1 (/m/04rlf): duplicate id"),
        (
            [_cls(MUSIC, "Music", [GUITAR]), _cls(GUITAR, "Guitar", [MUSIC])],
            "a cycle",
        ),
        ("[{", "line 1: not valid JSON"),
    ],
)
def test_malformed_ontology_one_clear_line(tmp_path, entries, needle):
    p = tmp_path / "ontology.json"
    p.write_text(entries if isinstance(entries, str) else json.dumps(entries))
    with pytest.raises(ValueError) as e:
        load_ontology(p)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(p)) and needle in msg


def test_unknown_label_names_file_line_and_label(onto, tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text('file,labels\na.mp4,Guitar\nb.mp4,"Piano;Banjo"\n')
    with pytest.raises(ValueError) as e:
        read_label_sets(csv, onto)
    msg = str(e.value)
    assert "\n" not in msg and str(csv) in msg and "line 3" in msg and "'Banjo'" in msg
    seg = tmp_path / "segs.csv"
    seg.write_text("# YTID, start_seconds, end_seconds, positive_labels\nabc, x, 1, /m/x\n")
    with pytest.raises(ValueError, match=r"segs.csv: line 2: expected YTID"):
        read_label_sets(seg, onto)


# ---------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Six 2 s clips named by YouTube id, and an AudioSet segment CSV for them."""
    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    ytids = [
        "--PJHxphWEs",
        "-0RWZT-miFs",
        "a_b-cdEfGh1",
        "Zz9_8-xYw0Q",
        "k0-Ll_mM1nN",
        "pQ_r-sT0uVw",
    ]
    sets = [[ELECTRIC], [ACOUSTIC], [PIANO], [GUITAR, SINGING], [DOG], [ELECTRIC, MUSIC]]
    lines = [
        "# Segments csv",
        "# num_ytids=6",
        "# YTID, start_seconds, end_seconds, positive_labels",
    ]
    flat = ["file,label"]
    for i, (y, s) in enumerate(zip(ytids, sets)):
        frames = rng.integers(0, 256, (20, 72, 96, 3), dtype=np.uint8)
        audio = (0.3 * rng.standard_normal(2 * 16000)).astype(np.float32)
        name = f"{y}_{30000 * i}_{30000 * i + 10000}.mp4"
        write_video(root / name, frames, 10.0, audio, 16000, options={"g": "5"})
        lines.append(f'{y}, {30.0 * i:.3f}, {30.0 * i + 10:.3f}, "{",".join(s)}"')
        flat.append(f"{name},{s[0]}")
    (root.parent / f"{root.name}_segments.csv").write_text("\n".join(lines) + "\n")
    (root.parent / f"{root.name}_flat.csv").write_text("\n".join(flat) + "\n")
    return root


def _save(run: Path, arch: str, seed: int) -> Path:
    torch.manual_seed(seed)
    cfg = get_config("tiny", arch=arch)
    save_checkpoint(run, create_model(cfg), cfg)
    return run


def test_cli_eval_retrieval_with_ontology(clips, onto_file, tmp_path, capsys):
    ave, l3 = _save(tmp_path / "ave", "ave", 0), _save(tmp_path / "l3", "l3", 2)
    labels = clips.parent / f"{clips.name}_segments.csv"
    args = ["eval", "retrieval", str(clips), "--checkpoint", str(ave)]
    args += ["--baseline-checkpoint", str(l3), "--cca-dim", "2", "--quiet"]
    assert main(args + ["--labels", str(labels), "--ontology", str(onto_file)]) == 0
    res = json.loads(capsys.readouterr().out)
    rel = res["relevance"]
    assert rel["kind"] == "ontology" and rel["ontology"] == str(onto_file)
    assert rel["classes"] == 14 and rel["c"] == 20 and "could not be retrieved" in rel["rule"]
    assert res["labels_from"] == "audioset-segments"
    # 6 videos split in halves (3 evaluated, CCA on 3), 2 s clips: items at 0.5 and 1.5 s
    assert res["items"]["videos"] == 3 and res["items"]["items"] == 6
    assert res["items"]["evaluated_queries"] == 6  # every query has graded relevance > 0
    for block in (res["scores"], res["random"], res["l3"]["raw"], res["l3"]["cca"]):
        for d in DIRECTIONS:
            assert 0.0 <= block[d]["ndcg@30"] <= 1.0
    assert res["published"] == PUBLISHED
    for d in ("im2aud", "aud2im"):
        row = res["cross_modal_ndcg"][d]
        assert row["published"]["ave_net"] == PUBLISHED["ave_net"][d]
        diff = row["minus_l3_cca"]
        assert diff["difference"] == pytest.approx(row["model"] - row["l3_cca"], abs=2e-4)
    # a smaller C grades the same rankings more steeply: the random baseline drops
    assert (
        main(
            args + ["--labels", str(labels), "--ontology", str(onto_file)] + ["--relevance-c", "3"]
        )
        == 0
    )
    steep = json.loads(capsys.readouterr().out)
    assert steep["relevance"]["c"] == 3 and "C = 3" in steep["relevance"]["rule"]
    assert steep["random"]["im2aud"]["ndcg@30"] < res["random"]["im2aud"]["ndcg@30"]
    # C without an ontology would be ignored: refused in one line instead
    assert main(args + ["--relevance-c", "3"]) == 2
    assert "--ontology" in capsys.readouterr().err
    # flat mode on the same videos (first labels): relevance says so, no published figures
    assert main(args + ["--labels", str(clips.parent / f"{clips.name}_flat.csv")]) == 0
    flat = json.loads(capsys.readouterr().out)
    assert flat["relevance"]["kind"] == "flat" and "published" not in flat
    # a bad ontology: one clear line on stderr, exit code 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([_cls(MUSIC, "Music", ["/m/nope"])]))
    assert main(args + ["--labels", str(labels), "--ontology", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "/m/nope" in err and str(bad) in err
