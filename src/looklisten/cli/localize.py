"""The ``looklisten localize`` command line."""

from __future__ import annotations

from pathlib import Path

from looklisten.cli.main import add_command
from looklisten.core.config import MAP_MODES

LOCALIZE_HELP = """\
Blend AVOL-Net's localisation heatmap over a video (every frame, or every N
frames; each heatmap from the frame at t and the 1 s of audio centred on t;
output: an MP4 with the original sound) or over an image given a sound
(--audio; output: a PNG). By default the whole frame is analysed (the network
is fully convolutional); --mode crop analyses only the centre crop the model
was evaluated on in training and leaves the rest of the frame uncoloured. Only
AVOL-Net checkpoints have a localisation map.

The map is calibrated (a value is the probability that the location makes the
sound) and by default it is drawn as a magenta highlight whose opacity rises
with it: nothing below 0.1, clearly coloured at 0.6, --alpha (0.8) at 1. Where
nothing on screen sounds (silence, or the source off screen) the frame stays
as it is. Each PNG carries a legend strip below the frame (the colour and
opacity for 0 .. 1); the MP4 keeps the source's frame size and has none unless
--legend all. --cmap jet (or any matplotlib colour map) colours the map
instead, with opacity --alpha (0.5) times the map: the look before the
highlight, faint at mid values. --normalize stretches each map to [0, 1] on its
own (its peak always opaque: a silent frame then looks as confident as any
other); --no-fade colours the whole frame at a constant --alpha with a colour
map (jet unless --cmap; a map of zeros paints it dark blue).

Each heatmap also comes with the probability that a visible object makes the
sound (calibrated on the run's validation pairs, with silence, noise and other
videos' sounds as the negatives). Where it is below the threshold saved with
the checkpoint, nothing is painted (--paint-always paints every map).
"""


def cmd_localize(args) -> int:
    """``looklisten localize``: see :func:`add_cli`."""
    from looklisten.inputs.prepare import (
        audio_window,
        load_audio,
        load_image,
        media_kind,
        read_frame_at,
    )
    from looklisten.media.overlay import resolve_look, write_overlay_png, write_overlay_video
    from looklisten.media.video import MediaError, MediaReader, probe
    from looklisten.models.checkpoint import get_model
    from looklisten.tasks.localize import localize, localize_video, paint_visible

    src = Path(args.input)
    out = Path(args.out)
    if args.every < 1:
        raise ValueError(f"--every must be >= 1, got {args.every}")
    # The look, checked before the model runs (a typo in --cmap fails at once).
    cmap, alpha = resolve_look(args.cmap, args.alpha, fade=args.fade)
    look = {"alpha": alpha, "cmap": cmap, "normalize": args.normalize, "fade": args.fade}
    png_legend = args.legend in ("png", "all")
    if not src.exists():
        raise MediaError(src, "no such file")
    model = get_model(args.checkpoint, args.device, arch="avol")
    cfg = model.cfg
    info = probe(src)
    if media_kind(info) == "image":
        if not args.audio:
            raise ValueError(f"{src} is an image: give the sound with --audio AUDIO_FILE")
        if args.png_dir:
            raise ValueError("--png-dir is for video inputs; for an image --out is the PNG")
        image = load_image(src)
        wave = load_audio(args.audio, cfg.audio.sample_rate)
        if args.audio_at is not None:
            if not 0 <= args.audio_at * cfg.audio.sample_rate <= len(wave):
                raise ValueError(
                    f"--audio-at {args.audio_at} s is outside {args.audio} "
                    f"({len(wave) / cfg.audio.sample_rate:.2f} s)"
                )
            wave = audio_window(wave, args.audio_at, cfg)
        heat, prob = localize(model, image, wave, mode=args.mode, with_probability=True)
        shown = heat if args.paint_always else paint_visible(model, heat[None], [prob])[0]
        write_overlay_png(out, image, shown, legend=png_legend, **look)
        answer = "yes" if prob >= model.detector.threshold else "no: nothing painted"
        if args.paint_always and answer != "yes":
            answer = "no"
        print(
            f"wrote {out} (heatmap max {heat.max():.3f}, mean {heat.mean():.3f}; a visible "
            f"object makes the sound: p = {prob:.3f}, {answer})"
        )
        return 0

    if args.audio:
        raise ValueError(
            "--audio is for a still image; a video is localised with its own soundtrack"
        )
    if not info.has_video:
        raise MediaError(src, "no video stream: give a video with sound, or an image and --audio")
    hop = args.every / info.fps if (args.every > 1 and info.fps > 0) else None
    heat, times, prob = localize_video(
        model,
        src,
        hop,
        mode=args.mode,
        progress=not args.quiet,
        batch_size=args.batch_size,
        with_probability=True,
    )
    visible = prob >= model.detector.threshold
    if not args.paint_always:
        heat = paint_visible(model, heat, prob)
    write_overlay_video(
        src,
        out,
        heat,
        times,
        legend=args.legend == "all",
        interpolation="linear" if hop else "nearest",
        **look,
    )
    msg = (
        f"wrote {out} ({len(times)} heatmaps of {heat.shape[1]}x{heat.shape[2]}; a visible "
        f"object makes the sound in {int(visible.sum())} of them"
        + ("" if args.paint_always else ", the others are left unpainted")
    )
    if args.png_dir:
        png_dir = Path(args.png_dir)
        with MediaReader(src) as reader:
            for i, t in enumerate(times):
                frame = read_frame_at(reader, t)
                write_overlay_png(
                    png_dir / f"frame_{i:06d}_t{t:09.3f}.png",
                    frame,
                    heat[i],
                    legend=png_legend,
                    **look,
                )
        msg += f"; {len(times)} PNGs in {png_dir}"
    print(msg + ")")
    return 0


def add_cli(subparsers) -> None:
    """Register ``looklisten localize`` on an argparse subparsers object."""
    sp = add_command(
        subparsers,
        "localize",
        func=cmd_localize,
        checkpoint="AVOL-Net run or checkpoint",
        batch_size=16,
        quiet="no progress bar",
        help="AVOL-Net heatmaps: where the sound comes from (video -> MP4, image + audio -> PNG)",
        description=LOCALIZE_HELP,
    )
    sp.add_argument("input", metavar="INPUT", help="a video with sound, or an image with --audio")
    sp.add_argument(
        "--out", required=True, metavar="OUT", help="output MP4 (video input) or PNG (image input)"
    )
    sp.add_argument(
        "--audio",
        metavar="AUDIO_FILE",
        help="the sound for an image input (any audio or video file)",
    )
    sp.add_argument(
        "--audio-at",
        type=float,
        metavar="SECONDS",
        help="with --audio: use the 1 s centred here (default: average the heatmaps of "
        "1 s windows every 0.5 s over the whole file)",
    )
    sp.add_argument(
        "--png-dir", metavar="DIR", help="video: also write one PNG overlay per heatmap time"
    )
    sp.add_argument(
        "--every",
        type=int,
        default=1,
        metavar="N",
        help="video: a heatmap every N frames, interpolated in between (default 1: every frame)",
    )
    sp.add_argument(
        "--mode",
        choices=MAP_MODES,
        default="full",
        help="whole frame (default) or centre crop only",
    )
    sp.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="opacity where the map is 1 (default 0.8 for the highlight, 0.5 with --cmap; "
        "with --no-fade: everywhere)",
    )
    sp.add_argument(
        "--cmap",
        metavar="NAME",
        help="colour the map with this matplotlib colour map (e.g. jet, the look before the "
        "highlight; viridis, magma) instead of the magenta highlight",
    )
    sp.add_argument(
        "--legend",
        choices=("png", "all", "none"),
        default="png",
        help="where to add the legend strip (colour and opacity for 0 .. 1) below the "
        "picture: png (default: the PNGs; the MP4 keeps the source's frame size), all (the "
        "MP4 too), none",
    )
    sp.add_argument(
        "--normalize",
        action="store_true",
        help="stretch each heatmap to [0, 1] on its own: its peak is always opaque, so a "
        "silent frame looks as confident as any other (default: the calibrated sigmoid values)",
    )
    sp.add_argument(
        "--paint-always",
        action="store_true",
        help="paint every heatmap (default: none where AVOL-Net's calibrated probability that a "
        "visible object makes the sound is below the threshold saved with the checkpoint)",
    )
    sp.add_argument(
        "--no-fade",
        dest="fade",
        action="store_false",
        help="constant opacity --alpha over the whole frame, with a colour map (jet unless "
        "--cmap) (default: the opacity follows the map, so where nothing sounds the frame "
        "shows through unchanged)",
    )
