"""The ``looklisten search`` command line."""

from __future__ import annotations

import sys

from looklisten.cli.main import add_command, call

# ---------------------------------------------------------------------------

INDEX_HELP = """\
Embed every video, audio file and image under SOURCE (folders are searched
recursively), or read the .npz files written by 'looklisten embed', into a FAISS
index of both modalities. Items: every --hop seconds (the centres of the 1 s
windows inside each file; --center puts the first window's centre at 0 s); a
video gives an image and an audio item at each time. Metadata: file, time,
modality, and the label when known (demo annotations.jsonl: the object heard at
that time; labels.csv with file,label; or the sub-folder name). The index
remembers the checkpoint, which 'looklisten search' uses to embed queries.
Bad files are reported (one line each) and skipped; the exit code is then 1.
"""

SEARCH_HELP = """\
Embed a query with the index's checkpoint (or --checkpoint) and print the k
nearest items (rank, score = cosine similarity, time, label, file). Query: an
image (--image), 1 s of audio centred at --at (--audio; default the middle of
the file), or a video's frame / audio at --at (--video, --modality). --target
is the modality searched (default: the other one: cross-modal). --html writes a
self-contained page with thumbnails and audio players.
"""


def cmd_index(args) -> int:
    from looklisten.tasks.search import build_index

    _, failures = call(build_index, args, progress=not args.quiet)
    from looklisten.tasks.index import EmbeddingIndex

    index = EmbeddingIndex.load(args.out, verify=False)
    for f in failures:
        print(f"error: {f}", file=sys.stderr)
    print(
        f"indexed {index.count('image')} image and {index.count('audio')} audio items "
        f"into {args.out} ({len(failures)} file(s) failed)",
        file=sys.stderr,
    )
    return 1 if failures else 0


def cmd_search(args) -> int:
    from looklisten.report.search_page import render_html
    from looklisten.tasks.search import search

    query, hits, index = call(search, args, index_dir=args.index)
    t = query["time"]
    print(
        f"query: {query['modality']} {query['file']}"
        + (f" @ {t:.2f} s" if t is not None else "")
        + (f" [{query['label']}]" if query.get("label") is not None else "")
        + f" -> {query['target']}, k={args.k}"
    )
    print(f"{'rank':>4}  {'score':>8}  {'time':>8}  {'label':<14}  file")
    for rank, h in enumerate(hits, 1):
        lab = "" if h.label is None else str(h.label)
        print(f"{rank:>4}  {h.score:8.4f}  {h.time:7.2f}s  {lab:<14}  {h.file}")
    if args.html:
        from looklisten.core.fileio import atomic_write_text
        from looklisten.models.checkpoint import get_model

        sr = get_model(query["checkpoint"], args.device).cfg.audio.sample_rate
        atomic_write_text(args.html, render_html(query, hits, sr))
        print(f"wrote {args.html}", file=sys.stderr)
    return 0


def add_cli(subparsers) -> None:
    """Register ``looklisten index`` and ``looklisten search`` on argparse subparsers."""
    sp = add_command(
        subparsers,
        "index",
        func=cmd_index,
        help="embed a folder of media into a searchable index",
        description=INDEX_HELP,
        batch_size=64,
        hop=1.0,
        labels=True,
    )
    sp.add_argument("sources", nargs="+", metavar="SOURCE", help="folders, media or .npz files")
    sp.add_argument(
        "--checkpoint", metavar="RUN", help="the model (default: the one named in the .npz files)"
    )
    sp.add_argument("--out", required=True, metavar="INDEX", help="index directory")
    sp.add_argument("--kind", choices=["flat", "ivf", "hnsw"], default="flat")
    sp.add_argument(
        "--center", action="store_true", help="first window centred at 0 s (zero-padded)"
    )

    sp = add_command(
        subparsers,
        "search",
        func=cmd_search,
        help="query an index with an image, a sound or a video moment",
        description=SEARCH_HELP,
        quiet=None,
    )
    sp.add_argument("index", metavar="INDEX")
    q = sp.add_mutually_exclusive_group(required=True)
    q.add_argument("--image", metavar="F", help="query image (or a video's frame at --at)")
    q.add_argument("--audio", metavar="F", help="query sound: 1 s centred at --at")
    q.add_argument("--video", metavar="F", help="query video moment (needs --at)")
    sp.add_argument("--at", type=float, metavar="T", help="time in the query file (seconds)")
    sp.add_argument(
        "--modality",
        choices=["image", "audio"],
        default="image",
        help="with --video: query with the frame (default) or the audio",
    )
    sp.add_argument(
        "--target", choices=["audio", "image"], help="modality to search (default: the other)"
    )
    sp.add_argument("--k", type=int, default=10)
    sp.add_argument("--exclude-self", action="store_true", help="drop hits from the query file")
    sp.add_argument("--checkpoint", metavar="RUN", help="override the index's checkpoint")
    sp.add_argument("--html", metavar="OUT.html", help="write a self-contained results page")
