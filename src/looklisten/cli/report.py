"""The ``looklisten report`` command line."""

from __future__ import annotations

from looklisten.cli.main import add_command, call

# ---------------------------------------------------------------------------

REPORT_HELP = """\
Write one self-contained HTML page about a run (RUN/report.html): summary,
training and validation curves, retrieval examples on held-out videos with
thumbnails and audio players, AVOL-Net localisation overlays, the evaluations
saved in RUN/eval/ by 'looklisten eval ... --save' (retrieval, localisation, linear probes, shortcut audit,
unit galleries) and the run's config. Pictures and sounds are embedded as data
URIs: the page needs nothing else. What is missing is named, with the command
that makes it. --with adds more runs to the same page.
"""


def cmd_report(args) -> int:
    from looklisten.report.page import write_report

    path = call(write_report, args, others=args.with_runs or (), progress=not args.quiet)
    print(path)
    return 0


def add_cli(subparsers) -> None:
    """Register ``looklisten report`` on argparse subparsers."""
    sp = add_command(
        subparsers,
        "report",
        func=cmd_report,
        help="one self-contained HTML page about a run (curves, examples, evaluations)",
        description=REPORT_HELP,
        quiet="no timing lines on stderr",
    )
    sp.add_argument("run", metavar="RUN", help="run directory")
    sp.add_argument("--data", metavar="DIR", help="the videos (default: the run's training folder)")
    sp.add_argument("--out", metavar="FILE.html", help="the page (default: RUN/report.html)")
    sp.add_argument(
        "--with",
        dest="with_runs",
        nargs="+",
        action="extend",
        metavar="RUN2",
        help="more runs on the same page (e.g. the demo's l3, ave and avol)",
    )
