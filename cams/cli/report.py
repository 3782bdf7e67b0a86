"""`cams report OUT`: a self-contained report.html of an explanation run (see `cams.report`)."""
from __future__ import annotations

from cams.cli.errors import positive_int

REPORT_HELP = ("also write OUT/report.html (with thumbnails in OUT/report_files/): every image, its prediction and "
               "each method's overlay, sortable and filterable, opened from file:// without a server")


def add_report_option(p) -> None:
    """--report on a command that explains images into --out."""
    p.add_argument("--report", action="store_true", help=REPORT_HELP)


def check_report_option(args) -> None:
    """Before any work: with --report, a local --out with no report.html / report_files of the user's."""
    if not getattr(args, "report", False):
        return
    if "://" in str(args.out):
        raise ValueError(f"--report writes into a local folder, --out {args.out} is a URL; run `cams report` on a "
                         f"local copy of the folder instead")
    from cams.report import check_report

    check_report(args.out, overwrite=False, overwrite_option=None)


def write_report_option(args, labels=None) -> None:
    """After the run: write OUT/report.html when --report was given, and say where it is."""
    if getattr(args, "report", False):
        from cams.report import report_for_run

        print(f"report:   {report_for_run(args.out, labels=labels)}")


def cmd_report(args) -> int:
    from cams.core.labels import read_class_names
    from cams.report import report_for_run

    labels = read_class_names(args.labels) if args.labels else None
    path = report_for_run(args.out, labels=labels, title=args.title, thumb=args.thumb_size, overwrite=args.overwrite,
                          progress=True)
    print(f"report: {path} (open it in a browser; thumbnails in {path.parent / 'report_files'})")
    return 0


def add_commands(sub) -> None:
    """Add `report` to the `cams` command line."""
    p = sub.add_parser(
        "report", help="write OUT/report.html for the images a cams explain, explain-folder or evaluate run "
                       "explained into OUT",
        description="Reads the run in OUT (cams explain-folder: predictions.csv, maps/, overlays/; cams explain: "
        "predictions.csv, maps.npz; cams evaluate: per_image.csv, maps/, its metrics as per-image scores; an "
        "optional scores.csv with file[,method],<score>... columns adds scores) and writes "
        "OUT/report.html plus thumbnails in OUT/report_files/. The page needs no server or network: each image "
        "with its prediction and probability and every method's overlay side by side, filters by class, "
        "probability and file name, sorting by probability or any score, a method selector, pages of rows, "
        "and the run's settings. A rerun replaces its own report; a report.html of yours is never replaced.")
    p.add_argument("out", metavar="OUT", help="the --out folder of a cams explain, explain-folder or evaluate run")
    p.add_argument("--labels", default=None, metavar="FILE",
                   help="class names (one per line, class 0 first, or a JSON list) for runs that did not record them")
    p.add_argument("--title", default=None, help="the page's title (default: the command and the folder's name)")
    p.add_argument("--thumb-size", type=positive_int, default=128, metavar="PX",
                   help="longer side of the thumbnails in pixels (default 128)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a report.html or report_files in OUT that cams report did not write")
    p.set_defaults(func=cmd_report)
