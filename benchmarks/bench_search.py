"""Benchmark exact vs approximate search of :class:`looklisten.tasks.index.EmbeddingIndex`.

Builds, over the same N unit vectors, an exact index (IndexFlatIP), an IVF
index (IndexIVFFlat, k-means quantizer with nlist = 4 sqrt(N) by default)
searched with several ``nprobe`` values, and an HNSW index (IndexHNSWFlat)
searched with several ``efSearch`` values; then prints, per setting, the build
time, the search throughput (queries/s, one batch of all queries), its ratio to
the exact index's throughput measured in the same run, and recall@10 against
the exact result (share of the exact top 10 found in the approximate top 10).

Timings go through ``EmbeddingIndex.add``/``search``, so they include the
metadata handling (one small dict per item) and the creation of ``Hit``
objects, i.e. what a caller gets.

Usage::

    python benchmarks/bench_search.py                      # 1M x 128, 1000 queries
    python benchmarks/bench_search.py --n 200000 --data clustered

``--data random`` (default) draws i.i.d. uniform unit vectors: the hardest case
for approximate search, since such points have no neighbourhood structure
(every point is nearly equidistant from all others). Real embeddings cluster
(by class, by video); ``--data clustered`` draws points around random centres.
"""

from __future__ import annotations

import argparse
import gc
import math
import platform
import sys
import time
from pathlib import Path

import faiss
import numpy as np

try:
    from looklisten.tasks.index import EmbeddingIndex
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from looklisten.tasks.index import EmbeddingIndex


def unit_vectors(
    rng: np.random.Generator, n: int, dim: int, centres: np.ndarray | None, spread: float
) -> np.ndarray:
    """(n, dim) float32 unit vectors, uniform or around ``centres``; made in chunks."""
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        x = rng.standard_normal((e - s, dim), dtype=np.float32)
        if centres is not None:
            x = centres[rng.integers(0, len(centres), e - s)] + spread * x
        faiss.normalize_L2(x)
        out[s:e] = x
    return out


def make_meta(n: int) -> list[dict]:
    # ten 1 s items per video, as if embedded once per second
    return [{"file": f"video{i // 10:07d}.mp4", "time": float(i % 10)} for i in range(n)]


def timed_search(index: EmbeddingIndex, q: np.ndarray, k: int, repeats: int):
    best, hits = math.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        hits = index.search(q, target="image", k=k)
        best = min(best, time.perf_counter() - t0)
    ids = np.array([[h.index for h in row] + [-1] * (k - len(row)) for row in hits])
    return best, ids


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)]))


def parse_ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="database size")
    ap.add_argument("--queries", type=int, default=1000, help="number of queries")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--data", choices=("random", "clustered"), default="random")
    ap.add_argument("--clusters", type=int, default=1000, help="--data clustered: centres")
    ap.add_argument("--spread", type=float, default=0.15, help="--data clustered: noise std")
    ap.add_argument("--nlist", type=int, default=None, help="IVF lists (default 4 sqrt(N))")
    ap.add_argument("--nprobe", type=parse_ints, default=[16, 64, 256])
    ap.add_argument("--pq-m", type=int, default=None, help="also benchmark IVFPQ, pq_m codes")
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=40)
    ap.add_argument("--ef-search", type=parse_ints, default=[64, 256])
    ap.add_argument("--skip", choices=("ivf", "hnsw"), action="append", default=[])
    ap.add_argument("--threads", type=int, default=None, help="OpenMP threads for FAISS")
    ap.add_argument("--repeats", type=int, default=1, help="time each search this often, best")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    centres = None
    if args.data == "clustered":
        centres = rng.standard_normal((args.clusters, args.dim), dtype=np.float32)
        faiss.normalize_L2(centres)

    print(
        f"# n={args.n:,} dim={args.dim} queries={args.queries} k={args.k} data={args.data} "
        f"| faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, "
        f"{platform.processor() or platform.machine()}",
        flush=True,
    )
    t0 = time.perf_counter()
    db = unit_vectors(rng, args.n, args.dim, centres, args.spread)
    q = unit_vectors(rng, args.queries, args.dim, centres, args.spread)
    meta = make_meta(args.n)
    print(f"# data generated in {time.perf_counter() - t0:.1f} s", flush=True)

    rows: list[tuple[str, str, float, float, float | None]] = []  # name, params, build, qps, rec

    def build(**kw) -> tuple[EmbeddingIndex, float]:
        index = EmbeddingIndex(dim=args.dim, metric="ip", **kw)
        t = time.perf_counter()
        index.add("image", db, meta)
        index.build()
        return index, time.perf_counter() - t

    def report(name: str, params: str, build_s: float, search_s: float, rec: float | None):
        qps = args.queries / search_s
        rows.append((name, params, build_s, qps, rec))
        rec_s = "-" if rec is None else f"{rec:.3f}"
        print(
            f"  {name}{' ' + params if params else ''}: build {build_s:.1f} s, {qps:,.0f} q/s, recall@{args.k} {rec_s}",
            flush=True,
        )

    exact, b = build(kind="flat")
    search_s, gt = timed_search(exact, q, args.k, args.repeats)
    report("exact (IndexFlatIP)", "", b, search_s, 1.0)
    del exact
    gc.collect()

    if "ivf" not in args.skip:
        variants = [("IVFFlat", None)] + ([("IVFPQ", args.pq_m)] if args.pq_m else [])
        for label, pq_m in variants:
            index, b = build(kind="ivf", nlist=args.nlist, pq_m=pq_m)
            nlist = faiss.extract_index_ivf(index.faiss_index("image")).nlist
            name = f"{label} (nlist={nlist}{f', m={pq_m}' if pq_m else ''})"
            for nprobe in args.nprobe:
                index.set_search_params(nprobe=nprobe)
                search_s, ids = timed_search(index, q, args.k, args.repeats)
                report(name, f"nprobe={nprobe}", b, search_s, recall_at_k(ids, gt))
            del index
            gc.collect()

    if "hnsw" not in args.skip:
        index, b = build(kind="hnsw", hnsw_m=args.hnsw_m, ef_construction=args.ef_construction)
        name = f"HNSWFlat (M={args.hnsw_m}, efC={args.ef_construction})"
        for ef in args.ef_search:
            index.set_search_params(ef_search=ef)
            search_s, ids = timed_search(index, q, args.k, args.repeats)
            report(name, f"efSearch={ef}", b, search_s, recall_at_k(ids, gt))
        del index
        gc.collect()

    exact_qps = rows[0][3]
    head = ("index", "search params", "build s", "queries/s", "x exact q/s", f"recall@{args.k}")
    table = [
        (n, p or "-", f"{b:.1f}", f"{qps:,.0f}", f"{qps / exact_qps:.1f}", f"{r:.3f}")
        for n, p, b, qps, r in rows
    ]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(head)]
    print()
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in table:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
