"""The ``looklisten search`` command line."""

from __future__ import annotations

import sys

from looklisten.cli.main import add_command, call

# ---------------------------------------------------------------------------

INDEX_HELP = """\
Embed every video, audio file and image under SOURCE (folders are searched
recursively), or read the .npz files written by 'looklisten embed', into a FAISS
index of both modalities. Files are classified by content (a video stream in
an .ogg or .m4a file is a video). Items: an item every 1.0 s (embed's default
is 0.1 s: features; an index keeps one item a second to stay small); windows
lie inside the file, centred at 0.5 s, 1.5 s, ... unless --center (centred at
0 s, 1 s, ..., zero-padded at the ends). A video gives an image and an audio
item at each time. Metadata: file, time, modality, and the label when known
(demo annotations.jsonl: the object heard at that time; labels.csv with
file,label; or the sub-folder name).
The index folder is self-contained: it keeps a copy of the model (INDEX/model),
which 'looklisten search' uses to embed queries, and names the media relative to
itself, so it can be copied, moved together with the media, or archived.
Bad files are reported (one line each) and skipped; the exit code is then 1.
"""

SEARCH_HELP = """\
Embed a query with the index's model (or --checkpoint) and print the k nearest
items (rank, score = cosine similarity, time, label, file), at most --per-video
of them from one file (1; 0: no limit; above 1 a file's hits are listed
together). Query: an image (--image; a video: its frame at --at, default the
first), a sound (--audio: the 1 s centred at --at; without --at the whole file,
every 1 s window as the index cut them, pooled), or a video's frame or sound
(--video, --modality, the same rules). The "query:" line says which seconds
were used. --target is the modality searched (default: the other one:
cross-modal). --html writes a self-contained page with thumbnails and audio
players.
"""


def cmd_index(args) -> int:
    from looklisten.tasks.search import build_index

    _, failures = call(build_index, args, model=args.checkpoint, progress=not args.quiet)
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

    result = call(search, args, index_dir=args.index)
    print(result)  # the "query:" line and the table
    if args.html:
        from looklisten.core.fileio import atomic_write_text

        atomic_write_text(args.html, render_html(result))
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
        labels=True,
    )
    sp.add_argument(
        "--hop",
        type=float,
        default=1.0,
        help="seconds between items (1.0; embed's default is 0.1 s: an index stays small)",
    )
    sp.add_argument("sources", nargs="+", metavar="SOURCE", help="folders, media or .npz files")
    sp.add_argument(
        "--checkpoint", metavar="RUN", help="the model (default: the one named in the .npz files)"
    )
    sp.add_argument("--out", required=True, metavar="INDEX", help="index directory")
    sp.add_argument("--kind", choices=["flat", "ivf", "hnsw"], default="flat")
    sp.add_argument(
        "--center",
        action="store_true",
        help="windows centred at 0 s, 1 s, ... (zero-padded); default: inside the file, "
        "centred at 0.5 s, 1.5 s, ...",
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
    q.add_argument(
        "--audio", metavar="F", help="query sound: 1 s centred at --at, else the whole file"
    )
    q.add_argument(
        "--video", metavar="F", help="query video: its frame or sound (--modality) at --at"
    )
    sp.add_argument(
        "--at",
        type=float,
        metavar="T",
        help="time in the query file (seconds); default: a sound's whole file, a video's "
        "first frame",
    )
    sp.add_argument(
        "--modality",
        choices=["image", "audio"],
        default="image",
        help="with --video: query with the frame (default) or the audio",
    )
    sp.add_argument(
        "--target", choices=["audio", "image"], help="modality to search (default: the other)"
    )
    sp.add_argument("--k", type=int, default=10, help="number of hits (10)")
    sp.add_argument(
        "--per-video",
        type=int,
        default=1,
        metavar="K",
        help="at most K hits from one file (1; 0: no limit)",
    )
    sp.add_argument("--exclude-self", action="store_true", help="drop hits from the query file")
    sp.add_argument("--checkpoint", metavar="RUN", help="override the index's checkpoint")
    sp.add_argument("--html", metavar="OUT.html", help="write a self-contained results page")
