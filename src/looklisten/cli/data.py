"""The ``looklisten data`` command line."""

from __future__ import annotations

from pathlib import Path

from looklisten.cli.main import add_command, call
from looklisten.core.config import DEFAULT_JPEG_QUALITY, DEFAULT_SHARD_SIZE

SHARD_HELP = """\
Scan DIR like 'looklisten train' does, decode every usable video once (in
parallel) into WebDataset tar shards in OUT: frames at the preset's size as
JPEG, the audio track at its rate, the metadata; OUT/index.json lists them,
OUT/rejected.tsv the rejected files. Rerunning resumes (complete shards are
kept). Train with 'looklisten train OUT ...' (or an fsspec URL of a copy of
OUT).
"""


def cmd_shard(args) -> int:
    from looklisten.core.config import get_config
    from looklisten.data.shards import shard_folder

    index = call(shard_folder, args, cfg=get_config(args.preset), progress=not args.quiet)
    out = Path(args.out)
    print(
        f"{len(index['videos'])} videos in {len(index['shards'])} shards in {out} "
        f"({index['written']} written, {index['skipped']} already complete); "
        f"{len(index['rejected'])} rejected, see {out / 'rejected.tsv'}"
    )
    return 0


def add_cli(sub) -> None:
    from looklisten.core.config import list_presets

    sp = add_command(
        sub,
        "shard",
        func=cmd_shard,
        device=False,
        help="decode a folder of videos once into WebDataset shards for training",
        description=SHARD_HELP,
    )
    sp.add_argument("data", metavar="DIR", help="folder of videos (searched recursively)")
    sp.add_argument("--out", required=True, metavar="SHARDS", help="shard folder")
    sp.add_argument(
        "--preset",
        choices=list_presets(),
        default="small",
        help="frame size and audio rate of the shards (train with the same preset)",
    )
    sp.add_argument("--workers", type=int, help="decoding processes (default: CPU count)")
    sp.add_argument(
        "--shard-size",
        type=int,
        default=DEFAULT_SHARD_SIZE,
        metavar="VIDEOS",
        help=f"videos per shard (default {DEFAULT_SHARD_SIZE})",
    )
    sp.add_argument(
        "--jpeg-quality",
        type=int,
        default=DEFAULT_JPEG_QUALITY,
        help=f"JPEG quality of the frames (default {DEFAULT_JPEG_QUALITY})",
    )
