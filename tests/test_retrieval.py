"""Tests of looklisten.evaluation.metrics (nDCG, recall@k, baselines, CCA) and looklisten.tasks.index."""

from __future__ import annotations

import json
import logging
import math
from math import comb
from pathlib import Path

import faiss
import numpy as np
import pytest

from looklisten.evaluation.metrics import (
    accuracy,
    cca_align,
    cross_modal_eval,
    dcg_discounts,
    ndcg_at_k,
    paired_bootstrap,
    random_baseline,
    retrieval_scores,
    top_k_accuracy,
)
from looklisten.tasks.index import EmbeddingIndex, Hit

# discounts 1/log2(i+1): d1 = 1, d2 = 1/log2(3) = 0.6309298, d3 = 1/log2(4) = 0.5,
# d4 = 1/log2(5) = 0.4306766
D1, D2, D3, D4 = 1.0, 1 / math.log2(3), 0.5, 1 / math.log2(5)


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def rand_unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    return unit(rng.standard_normal((n, d)).astype(np.float32))


def clustered_unit(rng: np.random.Generator, n: int, d: int, centers: np.ndarray) -> np.ndarray:
    """Points around random centres on the sphere (embeddings cluster by class)."""
    c = rng.integers(0, len(centers), n)
    return unit(centers[c] + 0.15 * rng.standard_normal((n, d)).astype(np.float32))


# ---------------------------------------------------------------------- nDCG


def test_discounts():
    np.testing.assert_allclose(dcg_discounts(4), [D1, D2, D3, D4])


def test_ndcg_hand_values():
    rel = np.array(
        [
            [1, 0, 1, 0],  # DCG = 1 + 0.5 = 1.5 ; IDCG(2 relevant) = 1 + 0.63093 -> 0.91972
            [1, 1, 0, 0],  # perfect ranking of 2 relevant items -> 1.0
            [0, 0, 1, 1],  # reversed: DCG = 0.5 + 0.43068 = 0.93068 ; / 1.63093 -> 0.57064
            [1, 0, 1, 0],  # 5 relevant, k = 3: DCG = 1.5 ; IDCG = 1 + .63093 + .5 -> 0.70392
            [0, 0, 0, 0],  # nothing relevant in the database -> NaN (excluded)
        ]
    )
    n_rel = np.array([2, 2, 2, 5, 0])
    out4 = ndcg_at_k(rel, n_rel, k=4)
    assert out4[0] == pytest.approx(1.5 / (1 + D2))
    assert out4[0] == pytest.approx(0.9197208, abs=1e-6)
    assert out4[1] == pytest.approx(1.0)
    assert out4[2] == pytest.approx((D3 + D4) / (1 + D2))
    assert out4[2] == pytest.approx(0.5706417, abs=1e-6)
    assert np.isnan(out4[4])
    out3 = ndcg_at_k(rel, n_rel, k=3)
    assert out3[3] == pytest.approx(1.5 / (1 + D2 + D3))
    assert out3[3] == pytest.approx(0.7039181, abs=1e-6)
    assert np.nanmean(out4) == pytest.approx(np.mean(out4[:4]))


def test_ndcg_perfect_and_reversed_long():
    # database of 40 items, 10 relevant, k = 30
    perfect = np.r_[np.ones(10), np.zeros(30)][None]
    assert ndcg_at_k(perfect, [10], k=30)[0] == pytest.approx(1.0)
    # reversed: the 10 relevant items at ranks 31..40 -> nothing in the top 30
    reversed_ = perfect[:, ::-1]
    assert ndcg_at_k(reversed_, [10], k=30)[0] == 0.0
    # reversed with k = 40: DCG = sum_{i=31..40} d_i, IDCG = sum_{i=1..10} d_i
    d = dcg_discounts(40)
    assert ndcg_at_k(reversed_, [10], k=40)[0] == pytest.approx(d[30:].sum() / d[:10].sum())


def test_ndcg_graded():
    # ranked relevances 2, 3, 0 ; database relevances {3, 2, 1, 0}
    # DCG = 2 + 3 * 0.63093 = 3.89279 ; IDCG = 3 + 2 * 0.63093 + 1 * 0.5 = 4.76186
    out = ndcg_at_k(np.array([[2, 3, 0]]), k=3, ideal=np.array([[0, 1, 3, 2]]))
    assert out[0] == pytest.approx((2 + 3 * D2) / (3 + 2 * D2 + D3))
    assert out[0] == pytest.approx(0.8174935, abs=1e-6)
    assert np.isnan(ndcg_at_k(np.array([[0, 0]]), k=2, ideal=np.zeros((1, 5)))[0])


def test_ndcg_input_checks():
    with pytest.raises(ValueError, match="fewer than k"):
        ndcg_at_k(np.ones((1, 3)), [3], k=5)
    with pytest.raises(ValueError):
        ndcg_at_k(np.ones((1, 3)), None, k=3)


# ---------------------------------------------------------------------- retrieval_scores

# Four 2-D items; cosines: s01 = .8, s02 = .6, s03 = 0, s12 = .96, s13 = .6, s23 = .8
TOY_EMB = np.array([[1, 0], [0.8, 0.6], [0.6, 0.8], [0, 1]], dtype=np.float32)
TOY_LAB = np.array(["A", "A", "B", "B"])


def test_retrieval_scores_hand_values():
    # query 0: ranks 1(A) 2 3 -> rel 1 0 0 ; 1 relevant       -> nDCG 1     , hit@1
    # query 1: ranks 2(B) 0(A) 3 -> rel 0 1 0                  -> nDCG .63093, hit@2
    # query 2: ranks 1(A) 3(B) 0 -> rel 0 1 0                  -> nDCG .63093, hit@2
    # query 3: ranks 2(B) 1 0 -> rel 1 0 0                     -> nDCG 1     , hit@1
    out = retrieval_scores(
        TOY_EMB, TOY_LAB, TOY_EMB, TOY_LAB, k_ndcg=3, recall_ks=(1, 2), exclude_self=True,
        return_per_query=True,
    )  # fmt: skip
    np.testing.assert_allclose(out["per_query"]["ndcg"], [1, D2, D2, 1], rtol=1e-6)
    assert out["ndcg@3"] == pytest.approx((2 + 2 * D2) / 4)
    assert out["recall@1"] == pytest.approx(0.5)
    assert out["recall@2"] == pytest.approx(1.0)
    assert out["n_queries"] == out["n_evaluated"] == 4
    # k larger than the database: same values (rankings padded with nothing)
    out30 = retrieval_scores(TOY_EMB, TOY_LAB, TOY_EMB, TOY_LAB, exclude_self=True)
    assert out30["ndcg@30"] == pytest.approx((2 + 2 * D2) / 4)
    # scale does not matter (vectors are normalised inside)
    out_s = retrieval_scores(7 * TOY_EMB, TOY_LAB, TOY_EMB, TOY_LAB, k_ndcg=3, exclude_self=True)
    assert out_s["ndcg@3"] == pytest.approx(out["ndcg@3"])
    # exclude_self as an index array gives the same
    out_a = retrieval_scores(
        TOY_EMB, TOY_LAB, TOY_EMB, TOY_LAB, k_ndcg=3, exclude_self=np.arange(4)
    )
    assert out_a["ndcg@3"] == pytest.approx(out["ndcg@3"])


def test_retrieval_scores_without_exclusion_finds_itself():
    out = retrieval_scores(TOY_EMB, TOY_LAB, TOY_EMB, TOY_LAB, k_ndcg=3, recall_ks=(1,))
    # every query retrieves itself first, which has its label
    assert out["recall@1"] == 1.0


def test_group_exclusion():
    # groups: items 2 and 3 come from the same video
    groups = np.array([0, 1, 2, 2])
    # query 0: database {1, 2, 3}: rel 1 0 0 -> 1.0 ; query 1: {0, 2, 3}: ranks 2 0 3 -> .63093
    # query 2: database {0, 1}: no B left -> excluded ; query 3: likewise
    out = retrieval_scores(
        TOY_EMB, TOY_LAB, TOY_EMB, TOY_LAB, k_ndcg=3, recall_ks=(1,),
        query_groups=groups, db_groups=groups, return_per_query=True,
    )  # fmt: skip
    ndcg = out["per_query"]["ndcg"]
    assert ndcg[0] == pytest.approx(1.0)
    assert ndcg[1] == pytest.approx(D2)
    assert np.isnan(ndcg[2]) and np.isnan(ndcg[3])
    assert out["n_evaluated"] == 2
    assert out["ndcg@3"] == pytest.approx((1 + D2) / 2)
    assert out["recall@1"] == pytest.approx(0.5)

    # a query whose only near neighbour is from its own video
    q = np.array([[1, 0]], dtype=np.float32)
    db = np.array([[1, 0.01], [0.9, 0.3], [0, 1]], dtype=np.float32)
    kw = dict(k_ndcg=2, recall_ks=(1,), return_per_query=True)
    a = retrieval_scores(q, ["x"], db, ["x", "y", "x"], **kw)
    assert a["recall@1"] == 1.0
    b = retrieval_scores(
        q, ["x"], db, ["x", "y", "x"], query_groups=["v1"], db_groups=["v1", "v2", "v3"], **kw
    )
    # own-video item removed: ranking = item 1 (y), item 2 (x): DCG = .63093, 1 relevant left
    assert b["recall@1"] == 0.0
    assert b["per_query"]["ndcg"][0] == pytest.approx(D2)
    with pytest.raises(ValueError, match="both"):
        retrieval_scores(q, ["x"], db, ["x", "y", "x"], query_groups=["v1"])


def naive_scores(q, ql, db, dbl, qg, dbg, k, ks):
    q, db = unit(q), unit(db)
    nd, hit = [], {r: [] for r in ks}
    for i in range(len(q)):
        keep = dbg != qg[i]
        s, lab = db[keep] @ q[i], dbl[keep]
        order = np.argsort(-s, kind="stable")
        rel = (lab[order] == ql[i]).astype(float)
        n_rel = int(rel.sum())
        if n_rel == 0:
            continue
        rel = np.r_[rel, np.zeros(k)][:k]
        d = 1 / np.log2(np.arange(2, k + 2))
        nd.append((rel * d).sum() / d[: min(n_rel, k)].sum())
        for r in ks:
            hit[r].append(rel[:r].any())
    return np.mean(nd), {r: np.mean(v) for r, v in hit.items()}


def test_retrieval_scores_matches_naive_loop():
    rng = np.random.default_rng(0)
    n_q, n_db, d = 150, 400, 16
    q, db = rng.standard_normal((n_q, d)), rng.standard_normal((n_db, d))
    ql, dbl = rng.integers(0, 6, n_q), rng.integers(0, 6, n_db)
    qg, dbg = rng.integers(0, 40, n_q), rng.integers(0, 40, n_db)
    ref_nd, ref_hit = naive_scores(q, ql, db, dbl, qg, dbg, 30, (1, 5, 10))
    out = retrieval_scores(q, ql, db, dbl, query_groups=qg, db_groups=dbg, block_size=37)
    assert out["ndcg@30"] == pytest.approx(ref_nd, rel=1e-5)
    for r in (1, 5, 10):
        assert out[f"recall@{r}"] == pytest.approx(ref_hit[r])


# ---------------------------------------------------------------------- cross-modal + baselines


def test_cross_modal_eval_keys_and_pair_exclusion():
    rng = np.random.default_rng(1)
    n = 60
    labels = np.repeat(np.arange(6), 10)
    img = rand_unit(rng, n, 32)
    aud = img.copy()  # perfectly aligned modalities
    out = cross_modal_eval(img, aud, labels, groups=np.arange(n))
    assert set(out) == {"im2im", "im2aud", "aud2im", "aud2aud"}
    for v in out.values():
        assert {"ndcg@30", "recall@1", "recall@5", "recall@10"} <= set(v)
    # the paired item (same group) is excluded, so im2aud == im2im exactly
    assert out["im2aud"]["ndcg@30"] == pytest.approx(out["im2im"]["ndcg@30"])
    # label-clustered embeddings retrieve well in all directions
    centres = rand_unit(rng, 6, 32)
    emb = unit(centres[labels] + 0.05 * rng.standard_normal((n, 32)))
    good = cross_modal_eval(emb, emb, labels)
    assert all(good[d]["ndcg@30"] > 0.99 for d in good)


def test_random_baseline_expected_value():
    # 20 balanced classes of 100 items, one item per video: each query's database
    # has N - 1 = 1999 items of which n - 1 = 99 relevant, p = 99 / 1999.
    # E[R@1] = p ; E[R@k] = 1 - C(1900, k) / C(1999, k) ; E[nDCG@30] = p (as 99 >= 30)
    n_cls, per = 20, 100
    labels = np.repeat(np.arange(n_cls), per)
    out = random_baseline(labels, dim=128, seed=0, n_repeats=2)
    n = n_cls * per
    p = (per - 1) / (n - 1)
    for direction in ("im2im", "im2aud", "aud2im", "aud2aud"):
        r = out[direction]
        assert r["ndcg@30"] == pytest.approx(p, abs=0.008)
        assert r["recall@1"] == pytest.approx(p, abs=0.02)
        for k in (5, 10):
            expected = 1 - comb(n - per, k) / comb(n - 1, k)
            assert r[f"recall@{k}"] == pytest.approx(expected, abs=0.04)
    # seeded
    assert random_baseline(labels[:200], seed=3) == random_baseline(labels[:200], seed=3)


def test_cca_improves_cross_modal_retrieval():
    # paired features share a latent z (with distinct signal strengths per latent
    # direction) through unrelated random mixings plus noise: raw cross-modal
    # retrieval is at chance, CCA recovers the shared space
    rng = np.random.default_rng(0)
    n_train, n_test, latent, d = 1000, 300, 6, 10
    z = rng.standard_normal((n_train + n_test, latent)) * np.linspace(1.0, 3.0, latent)
    mix_i, mix_a = rng.standard_normal((latent, d)), rng.standard_normal((latent, d))
    img = z @ mix_i + 1.0 * rng.standard_normal((len(z), d))
    aud = z @ mix_a + 1.0 * rng.standard_normal((len(z), d)) + 3.0  # offset too
    tr, te = slice(0, n_train), slice(n_train, None)
    pair = np.arange(n_test)  # each test item is relevant only to its own pair
    raw = retrieval_scores(img[te], pair, aud[te], pair, k_ndcg=10)
    align = cca_align(img[tr], aud[tr], dim=latent, normalize=False)
    zi, za = align(img[te], aud[te])
    assert zi.shape == za.shape == (n_test, latent)
    cca = retrieval_scores(zi, pair, za, pair, k_ndcg=10)
    assert raw["recall@10"] < 0.15
    assert cca["recall@10"] > 0.6
    assert cca["recall@10"] > raw["recall@10"] + 0.4
    # the projections agree with sklearn's own transform
    xs, ys = align.cca.transform(img[te], aud[te])
    np.testing.assert_allclose(zi, xs, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(za, ys, rtol=1e-4, atol=1e-4)
    # normalised projections are unit vectors
    align.normalize = True
    np.testing.assert_allclose(np.linalg.norm(align.transform_audio(aud[te]), axis=1), 1, atol=1e-5)


def test_cca_clamps_dim(caplog):
    rng = np.random.default_rng(0)
    with caplog.at_level(logging.WARNING):
        align = cca_align(rng.standard_normal((50, 6)), rng.standard_normal((50, 5)), dim=128)
    assert align.dim == 5
    assert "clamped" in caplog.text


def test_paired_bootstrap_hand_cases():
    groups = np.repeat(np.arange(10), 3)  # 10 videos, 3 queries each
    a = np.linspace(0, 1, 30)
    same = paired_bootstrap(a, a, groups)
    assert same["difference"] == 0 and same["ci"] == [0.0, 0.0] and same["p_not_better"] == 1.0
    shifted = paired_bootstrap(a + 0.1, a, groups)  # always better by 0.1
    assert shifted["ci"] == pytest.approx([0.1, 0.1]) and shifted["p_not_better"] == 0.0
    assert shifted["groups"] == 10 and shifted["queries"] == 30
    # NaN queries (no relevant item) are dropped from both sides
    b = a.copy()
    b[:3] = np.nan
    assert paired_bootstrap(a, b, groups)["queries"] == 27
    # many groups: the resamples are drawn in chunks, all of them filled
    many = np.arange(5000)
    x = np.random.default_rng(1).normal(size=5000)
    big = paired_bootstrap(x + 0.1, x, many, n_boot=2000)
    assert big["ci"] == pytest.approx([0.1, 0.1]) and big["p_not_better"] == 0.0
    noisy = paired_bootstrap(x, np.zeros_like(x), many, n_boot=2000)
    assert noisy["ci"][0] < noisy["difference"] < noisy["ci"][1]  # no unfilled (zero) resamples
    assert noisy["ci"][1] - noisy["ci"][0] == pytest.approx(2 * 1.96 / np.sqrt(5000), rel=0.15)


def test_paired_bootstrap_resamples_videos_not_queries():
    # one video far better, nine a little worse: the mean favours a, but only by luck
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(10), 20)
    d = np.where(groups == 0, 1.0, -0.05) + rng.normal(0, 0.01, len(groups))
    res = paired_bootstrap(d, np.zeros_like(d), groups, n_boot=4000)
    assert res["difference"] > 0
    lo, hi = res["ci"]
    assert lo < 0 < hi  # resampling videos sees that one video carries the win
    assert 0.2 < res["p_not_better"] < 0.6  # P(video 0 never drawn) = 0.9**10 = 0.35
    # resampling single queries would have claimed certainty
    flat = paired_bootstrap(d, np.zeros_like(d), np.arange(len(d)), n_boot=4000)
    assert flat["ci"][0] > 0
    with pytest.raises(ValueError):
        paired_bootstrap(a=np.ones(3), b=np.ones(2), groups=np.ones(3))


def test_accuracy():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert accuracy(logits, [1, 0, 0]) == pytest.approx(2 / 3)
    assert accuracy(np.array([1, 0, 0]), np.array([1, 0, 0])) == 1.0
    assert accuracy(np.array([[0.6], [0.4]]), [1, 1]) == 0.5
    scores = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])
    assert top_k_accuracy(scores, [1, 0], k=1) == 0.0
    assert top_k_accuracy(scores, [1, 0], k=2) == 0.5
    assert top_k_accuracy(scores, [1, 0], k=3) == 1.0


# ---------------------------------------------------------------------- EmbeddingIndex


def make_meta(n: int, prefix: str = "v", labels=None) -> list[dict]:
    return [
        {
            "file": f"{prefix}{i // 5}.mp4",
            "time": float(i % 5),
            **({"label": labels[i]} if labels is not None else {}),
            "thumbnail": f"thumbs/{i}.jpg",
        }
        for i in range(n)
    ]


@pytest.fixture
def small_index():
    rng = np.random.default_rng(0)
    aud, img = rand_unit(rng, 500, 32), rand_unit(rng, 400, 32)
    index = EmbeddingIndex(dim=32, checkpoint="ckpt/ave.safetensors")
    index.add("audio", aud, make_meta(500, "a", labels=[f"c{i % 7}" for i in range(500)]))
    index.add("image", img, make_meta(400, "i"))
    return index, aud, img


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_exact_search_matches_brute_force(metric):
    rng = np.random.default_rng(2)
    db, q = rand_unit(rng, 2000, 64), rand_unit(rng, 30, 64)
    index = EmbeddingIndex(dim=64, metric=metric)
    # added in two parts
    index.add("audio", db[:1200], make_meta(1200))
    index.add("audio", db[1200:], make_meta(800, "w"))
    hits = index.search(q, target="audio", k=10)
    sims = q @ db.T
    ref = np.argsort(-sims, axis=1)[:, :10]
    for qi in range(len(q)):
        assert [h.index for h in hits[qi]] == ref[qi].tolist()
        expected = sims[qi, ref[qi]]
        if metric == "l2":  # |a - b| = sqrt(2 - 2 a.b) for unit vectors
            expected = np.sqrt(np.maximum(2 - 2 * expected, 0))
        np.testing.assert_allclose([h.score for h in hits[qi]], expected, atol=1e-4)
    # a single 1-D query
    one = index.search(q[0], target="audio", k=3)
    assert len(one) == 1 and [h.index for h in one[0]] == ref[0, :3].tolist()


def test_hits_carry_metadata(small_index):
    index, aud, img = small_index
    hit = index.search(aud[42], target="audio", k=1)[0][0]
    assert isinstance(hit, Hit)
    assert (hit.index, hit.file, hit.time, hit.modality) == (42, "a8.mp4", 2.0, "audio")
    assert hit.label == "c0"
    assert hit.extra == {"thumbnail": "thumbs/42.jpg"}
    assert hit.score == pytest.approx(1.0, abs=1e-5)
    # cross-modal target, and unlabelled items
    h2 = index.search(aud[42], target="image", k=4)[0]
    assert len(h2) == 4 and all(h.modality == "image" and h.label is None for h in h2)
    # the query's own video can be excluded
    ex = index.search(aud[42], target="audio", k=10, exclude_files="a8.mp4")[0]
    assert len(ex) == 10 and all(h.file != "a8.mp4" for h in ex)
    # fewer items than k
    tiny = EmbeddingIndex()
    tiny.add("image", img[:3], make_meta(3))
    assert len(tiny.search(img[0], "image", k=10)[0]) == 3
    assert tiny.search(img[0], "audio", k=10) == [[]]
    assert tiny.dim == 32 and len(tiny) == 3


def test_add_checks(small_index):
    index, aud, _ = small_index
    with pytest.raises(ValueError, match="dimension"):
        index.add("audio", np.ones((2, 16), np.float32), make_meta(2))
    with pytest.raises(ValueError, match="metadata"):
        index.add("audio", aud[:2], make_meta(3))
    with pytest.raises(ValueError, match="modality"):
        index.add("text", aud[:2], make_meta(2))
    with pytest.raises(ValueError, match="'file' and 'time'"):
        index.add("audio", aud[:1], [{"file": "x"}])
    with pytest.raises(ValueError, match="NaN"):
        index.add("audio", np.full((1, 32), np.nan, np.float32), make_meta(1))
    assert index.count("audio") == 500


def test_save_load_round_trip(small_index, tmp_path):
    index, aud, img = small_index
    path = index.save(tmp_path / "idx")
    assert sorted(p.name for p in path.iterdir()) == [
        "audio.faiss", "audio.items.json", "image.faiss", "image.items.json", "meta.json",
    ]  # fmt: skip
    cfg = json.loads((path / "meta.json").read_text())
    assert cfg["dim"] == 32 and cfg["metric"] == "ip" and cfg["kind"] == "flat"
    assert cfg["counts"] == {"audio": 500, "image": 400}
    assert cfg["checkpoint"] == "ckpt/ave.safetensors"
    loaded = EmbeddingIndex.load(path)
    assert loaded.meta("audio") == index.meta("audio")
    assert loaded.meta("image") == index.meta("image")
    for target in ("audio", "image"):
        assert loaded.search(img[:20], target, k=7) == index.search(img[:20], target, k=7)
    # still usable: add more and search
    loaded.add("image", img[:1], make_meta(1, "new"))
    assert loaded.search(img[0], "image", k=2)[0][1].file in ("new0.mp4", "i0.mp4")


def test_atomic_save_survives_crash(small_index, tmp_path, monkeypatch):
    index, aud, img = small_index
    path = index.save(tmp_path / "idx")
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    entries = sorted(p.name for p in tmp_path.iterdir())

    index.add("image", img[:10], make_meta(10, "extra"))
    real_write = faiss.write_index
    calls = []

    def flaky_write(idx, fname):
        calls.append(fname)
        if len(calls) == 2:  # the second modality
            raise OSError("disk full (simulated)")
        real_write(idx, fname)

    monkeypatch.setattr(faiss, "write_index", flaky_write)
    with pytest.raises(OSError, match="simulated"):
        index.save(path)
    monkeypatch.setattr(faiss, "write_index", real_write)

    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == entries  # no temp dir left behind
    reloaded = EmbeddingIndex.load(path)
    assert reloaded.count("image") == 400 and reloaded.count("audio") == 500
    # and a later successful save replaces it
    index.save(path)
    assert EmbeddingIndex.load(path).count("image") == 410


def test_load_errors(small_index, tmp_path):
    index, _, _ = small_index
    with pytest.raises(ValueError, match="no such directory"):
        EmbeddingIndex.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="meta.json is missing"):
        EmbeddingIndex.load(tmp_path / "empty")

    path = index.save(tmp_path / "idx")
    data = (path / "audio.faiss").read_bytes()
    (path / "audio.faiss").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(ValueError, match=r"idx.*audio\.faiss is corrupt"):
        EmbeddingIndex.load(path)
    with pytest.raises(ValueError, match=r"audio\.faiss is not a readable FAISS index"):
        EmbeddingIndex.load(path, verify=False)

    path = index.save(tmp_path / "idx2")
    (path / "image.faiss").unlink()
    with pytest.raises(ValueError, match=r"image\.faiss is missing"):
        EmbeddingIndex.load(path)

    path = index.save(tmp_path / "idx3")
    (path / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"idx3: meta\.json is unreadable or corrupt"):
        EmbeddingIndex.load(path)

    path = index.save(tmp_path / "idx4")
    (path / "image.items.json").write_text('{"n": 1}')
    with pytest.raises(ValueError, match="items.json"):
        EmbeddingIndex.load(path, verify=False)


def test_ivf_small_n_falls_back_to_exact(caplog):
    rng = np.random.default_rng(0)
    x = rand_unit(rng, 300, 32)
    index = EmbeddingIndex(kind="ivf")
    index.add("audio", x, make_meta(300))
    with caplog.at_level(logging.WARNING, logger="looklisten.tasks.index"):
        hits = index.search(x[:5], "audio", k=1)
    assert "too few" in caplog.text
    assert index.built_kind("audio") == "flat"
    assert [h[0].index for h in hits] == [0, 1, 2, 3, 4]
    # an explicit nlist that cannot be trained also falls back
    index = EmbeddingIndex(kind="ivf", nlist=64)
    index.add("image", x, make_meta(300))
    index.build()
    assert index.built_kind("image") == "flat"
    assert index.built_kind("audio") is None  # nothing added: not built


def recall_vs_exact(approx: list[list[Hit]], exact: list[list[Hit]]) -> float:
    return float(
        np.mean(
            [
                len({h.index for h in a} & {h.index for h in e}) / len(e)
                for a, e in zip(approx, exact)
            ]
        )
    )


@pytest.fixture(scope="module")
def ann_data():
    # 20k 128-d unit vectors clustered around 200 centres (embeddings cluster by
    # class; uniformly random vectors have no neighbourhood structure at all and
    # are the worst case, see benchmarks/bench_search.py)
    rng = np.random.default_rng(0)
    centres = rand_unit(rng, 200, 128)
    db = clustered_unit(rng, 20_000, 128, centres)
    q = clustered_unit(rng, 200, 128, centres)
    exact = EmbeddingIndex(dim=128)
    exact.add("image", db, make_meta(len(db)))
    return db, q, exact.search(q, "image", k=10)


@pytest.mark.parametrize(
    "kind, kwargs",
    [
        ("ivf", {"nprobe": 16}),  # auto nlist = min(4 sqrt(N), N / 39) = 512
        ("hnsw", {"ef_search": 64}),
        ("ivf", {"nlist": 256, "nprobe": 16, "pq_m": 16}),  # lossy codes: lower bar
    ],
)
def test_approximate_recall(ann_data, tmp_path, kind, kwargs):
    db, q, exact_hits = ann_data
    index = EmbeddingIndex(dim=128, kind=kind, **kwargs)
    index.add("image", db, make_meta(len(db)))
    hits = index.search(q, "image", k=10)
    built = index.built_kind("image")
    assert built == ("ivfpq" if "pq_m" in kwargs else kind)
    r = recall_vs_exact(hits, exact_hits)
    # product quantisation ranks by compressed codes: ~0.5 here (vs 0.96+ without)
    assert r >= (0.4 if built == "ivfpq" else 0.9), r
    # round trip keeps the search parameters
    loaded = EmbeddingIndex.load(index.save(tmp_path / kind))
    assert loaded.built_kind("image") == built
    assert [[h.index for h in hs] for hs in loaded.search(q, "image", k=10)] == [
        [h.index for h in hs] for hs in hits
    ]
    # and changing them works
    loaded.set_search_params(nprobe=1, ef_search=10)
    worse = recall_vs_exact(loaded.search(q, "image", k=10), exact_hits)
    assert worse <= r


def test_empty_modality_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = rand_unit(rng, 10, 8)
    index = EmbeddingIndex(kind="hnsw")
    index.add("audio", x, make_meta(10))
    loaded = EmbeddingIndex.load(index.save(tmp_path / "i"))
    assert loaded.count("image") == 0 and loaded.search(x[0], "image") == [[]]
    loaded.add("image", x, make_meta(10))
    assert loaded.built_kind("image") == "hnsw"
    assert loaded.search(x[3], "image", k=1)[0][0].index == 3
    with pytest.raises(ValueError, match="no vectors"):
        EmbeddingIndex().save(tmp_path / "none")
    assert not Path(tmp_path / "none").exists()
