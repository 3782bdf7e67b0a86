"""The `cams` command line: one module per subcommand group, each with `add_commands(subparsers)`.

    explain.py       layers, explain, explain-folder
    feature_cam.py   feature-cam (the Feature CAM paper's Tables 2/3 and figures)
    lcam.py          lcam-train, lcam-eval (the L-CAM paper's Table 1)
    evaluate.py      evaluate (methods x metrics with 95% confidence intervals)
    report.py        report (a self-contained report.html of an explanation run)
    sanity.py        sanity (Adebayo et al.'s randomisation checks: sanity.csv and figures)
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from cams.cli.common import add_image_options, images_for, load_model  # noqa: F401  (used by the apps)

#: modules that add their own subcommands: each defines `add_commands(subparsers)` and sets
#: `func(args) -> int` on its parsers (ValueError = the user's error)
COMMAND_MODULES = ("cams.cli.explain", "cams.cli.feature_cam", "cams.cli.lcam", "cams.cli.evaluate", "cams.cli.report",
                   "cams.cli.sanity")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="cams", description="Class activation maps for saved Keras models.")
    sub = ap.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return ap


def main(argv: Optional[Sequence[str]] = None) -> int:
    from cams.core.quiet import import_tensorflow_quietly

    from cams.cli.errors import run_command

    import_tensorflow_quietly()  # no CUDA/oneDNN chatter on CPU machines
    return run_command("cams", build_parser(), argv)  # bad input exit 2, failure 1, Ctrl-C 130; --debug


if __name__ == "__main__":
    sys.exit(main())
