"""The ``looklisten embed`` command line."""

from __future__ import annotations

import sys
from pathlib import Path

from looklisten.cli.main import EXIT_OK, EXIT_SOME_FAILED, add_command, show_progress

# ---------------------------------------------------------------------------

EMBED_HELP = """\
Embed audio, image and video files with a trained model: 1 s audio windows every
--hop seconds (timestamps are window centres; by default the first window is
centred at 0 s with half a window of zero padding, --no-center starts the first
window at 0 s, centred at 0.5 s) and, for videos, the frame shown at each
window centre. Files are classified by content (a video stream in an .ogg or
.m4a file is embedded as a video).

The hop and centring differ from 'looklisten index' on purpose: embed gives
features every 0.1 s centred as OpenL3's are (the first window at 0 s), while an
index keeps one item a second with windows inside the file (--hop 1.0, centred at
0.5 s, 1.5 s, ...) to stay small. Both take --hop; 'index --center' and
'embed --no-center' give the other placement.

Writes one OUT/<relative path>.npz per input (a file's relative path is its name;
inside a folder, its path within the folder) holding: 'modality' (audio, image or
video), 'timestamps' (T,) seconds, 'embedding' (T, D) for audio and (1, D) for an
image, or 'audio_embedding' and 'image_embedding' (T, D) for a video, and
'checkpoint', 'source', 'hop', 'center'. Read with numpy.load(path).

A bad input (missing, empty, corrupt, unsupported) prints one line naming the file
and the reason; the others are still processed, and the exit code is 1. So does an
output that cannot be written (a full disk): nothing partial is left, and the next
file is still tried. An OUT that is read-only or forbidden is refused before any
file is embedded (exit code 74).
"""


def add_cli(subparsers) -> None:
    """Register ``looklisten embed`` on an argparse subparsers object."""
    sp = add_command(
        subparsers,
        "embed",
        func=cmd_embed,
        help="embed audio, images and videos into .npz files",
        description=EMBED_HELP,
        checkpoint="run or checkpoint dir",
        batch_size=64,
        hop=0.1,
    )
    sp.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="files, or folders (searched recursively)"
    )
    sp.add_argument("--out", required=True, metavar="DIR", help="output folder")
    sp.add_argument(
        "--no-center",
        dest="center",
        action="store_false",
        help="first window starts at 0 s (centred at 0.5 s) instead of centred at 0 s",
    )


def cmd_embed(args) -> int:
    """Run ``looklisten embed``; return the exit code (1 if any input failed)."""
    from looklisten.core.fileio import WriteError, atomic_write_bytes, check_writable
    from looklisten.core.progress import progress_bar
    from looklisten.inputs.prepare import check_hop, find_media, searched_for
    from looklisten.media.video import MediaError
    from looklisten.models.checkpoint import get_model
    from looklisten.tasks.embed import embed_many, npz_bytes, result_arrays

    check_hop(args.hop)  # before any file is read
    model = get_model(args.checkpoint, args.device)
    check_writable(args.out)
    ckpt = getattr(model, "checkpoint_path", str(args.checkpoint))
    files = find_media(args.inputs)
    out_dir = Path(args.out)
    targets: dict[Path, int] = {}
    dupes: dict[int, str] = {}
    for i, (_, rel) in enumerate(files):
        target = out_dir / (str(rel) + ".npz")
        if target in targets:
            dupes[i] = f"output {target} is already used by {files[targets[target]][0]}"
        else:
            targets[target] = i
    failed = 0
    if not files:
        where = ", ".join(map(str, args.inputs))
        print(f"looklisten embed: no media files in {where} ({searched_for()})", file=sys.stderr)
        return 1
    bar = progress_bar(total=len(files), desc="embed", unit="file", disable=not show_progress(args))
    todo = [i for i in range(len(files)) if i not in dupes]
    for i, reason in dupes.items():
        bar.write(f"error: {files[i][0]}: {reason}", file=sys.stderr)
        failed += 1
        bar.update()
    paths = [str(files[i][0]) for i in todo]
    for key, result, err in embed_many(
        paths, model, hop=args.hop, center=args.center, batch_size=args.batch_size
    ):
        path, rel = files[todo[key]]
        if err is not None:
            msg = str(err) if isinstance(err, MediaError) else f"{path}: {err}"
            bar.write(f"error: {msg}", file=sys.stderr)
            failed += 1
        else:
            target = out_dir / (str(rel) + ".npz")
            arrays = result_arrays(result, ckpt, str(path), args.hop, args.center)
            try:
                atomic_write_bytes(target, npz_bytes(arrays))
            except WriteError as e:  # a full disk: say so, try the next file
                bar.write(f"error: {path}: {e}", file=sys.stderr)
                failed += 1
        bar.update()
    bar.close()
    ok = len(files) - failed
    if ok or len(files) > 1:  # one input that failed: its line says it all
        print(f"embedded {ok} of {len(files)} input(s) into {out_dir}", file=sys.stderr)
    return EXIT_SOME_FAILED if failed else EXIT_OK
