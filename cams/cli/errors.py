"""One error convention for the three command lines (`cams`, `bengali-xai`, `deepfake-xai`).

    bad input (ValueError and the caller's own types)  ->  "prog command: error: <message>", exit 2
    argparse's own errors (unknown option, bad number)  ->  argparse's usage line, exit 2
    a failure while running (OSError such as a full
    disk, MemoryError, TensorFlow out of memory, ...)   ->  one line, exit 1
    Ctrl-C                                              ->  "prog command: interrupted ...", exit 130
    --debug (anywhere on the line)                      ->  the full traceback instead

Outputs are written atomically (cams.core.files), so a failure leaves each output file complete or absent.
Also here: argparse types for numeric options (`positive_int`, ...) and `check_output_path`, which every
command line applies to its output options before any work starts.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple, Type

#: exceptions that mean "the user gave something wrong" (exit 2) unless a command line adds its own
USER_ERRORS: Tuple[Type[BaseException], ...] = (ValueError, FileNotFoundError, NotADirectoryError,
                                                 IsADirectoryError, FileExistsError)
#: argparse attribute names checked by `check_output_path` before a command runs
OUTPUT_OPTIONS = ("out", "out_dir", "checkpoint_dir", "export")
#: an existing file at an output path with one of these suffixes is an output file to replace, not a folder
FILE_SUFFIXES = (".npz", ".json", ".keras", ".h5", ".csv", ".md", ".png", ".txt")
DEBUG_HINT = "(--debug shows the traceback)"


# ---------------------------------------------------------------- argparse types for numeric options
def _number(text: str, kind: Callable, what: str):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (batch sizes, counts, epochs)."""
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    """argparse type: a whole number >= 0 (0 meaning 'none' or 'off')."""
    value = _number(text, int, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def finite_float(text: str) -> float:
    """argparse type: any finite number (NaN and infinities refused)."""
    return _number(text, float, "a number")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (learning rates, scales)."""
    value = _number(text, float, "a number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def unit_float(text: str) -> float:
    """argparse type: a finite number in [0, 1] (fractions, weights, momentum)."""
    value = _number(text, float, "a number")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text}")
    return value


def percentile(text: str) -> float:
    """argparse type: a percentile strictly between 0 and 100."""
    value = _number(text, float, "a number")
    if not 0 < value < 100:
        raise argparse.ArgumentTypeError(f"expected a percentile between 0 and 100 (exclusive), got {text}")
    return value


# ---------------------------------------------------------------- output paths
def check_output_path(path: str, option: str = "--out") -> None:
    """Fail before any work when `path` cannot be written: ValueError naming the path and the fix.

    Creates nothing: finds the nearest existing ancestor, refuses a file where a folder is needed,
    and proves the ancestor writable by creating and removing a temporary folder in it.
    URLs (gs://, s3://, ...) are left to the writer.
    """
    if "://" in str(path):
        return
    p = Path(path).absolute()
    parents = [p, *p.parents]
    existing = next(q for q in parents if q.exists() or q.is_symlink())
    for q in reversed(parents[1:parents.index(existing) + 1]):  # every existing folder on the way must be one
        if q.exists() and not q.is_dir():
            raise ValueError(f"{option} {path}: {q} is a file, not a folder; choose another path")
    if not existing.is_dir():
        if existing != p or p.suffix.lower() not in FILE_SUFFIXES:
            raise ValueError(f"{option} {path}: {existing} is a file, not a folder; choose another path")
        existing = existing.parent  # an output file that is replaced
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".write-test-", dir=existing))
    except OSError as err:
        why = err.strerror or type(err).__name__
        raise ValueError(f"{option} {path}: cannot write in {existing} ({why}); choose a writable folder") from None


def check_outputs(args: argparse.Namespace, options: Sequence[str] = OUTPUT_OPTIONS) -> None:
    """`check_output_path` for each of `options` that `args` has and is set."""
    for name in options:
        value = getattr(args, name, None)
        if isinstance(value, (str, os.PathLike)) and str(value):
            check_output_path(str(value), "--" + name.replace("_", "-"))


# ---------------------------------------------------------------- the wrapper every main() uses
def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:400] if text else type(err).__name__


def _runtime_message(err: BaseException) -> str:
    """The one line for a failure while running (exit 1)."""
    name = type(err).__name__
    if isinstance(err, MemoryError) or name == "ResourceExhaustedError":
        return f"out of memory ({name}); use a smaller --batch-size or fewer images {DEBUG_HINT}"
    if isinstance(err, OSError):
        where = f" ({err.filename})" if err.filename and str(err.filename) not in str(err.strerror or "") else ""
        return f"{err.strerror or _one_line(err)}{where}; outputs already written are complete {DEBUG_HINT}"
    return f"{name}: {_one_line(err)} {DEBUG_HINT}"


def _split_debug(argv: Sequence[str]) -> Tuple[list, bool]:
    """Remove --debug from anywhere before a lone `--` (so it works after the subcommand too)."""
    argv = list(argv)
    end = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:end]
    return [a for i, a in enumerate(argv) if not (i < end and a == "--debug")], debug


def run_command(prog: str, parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None,
                run: Optional[Callable[[argparse.Namespace], Optional[int]]] = None,
                user_errors: Tuple[Type[BaseException], ...] = (),
                interrupted_hint: str = "run the same command again to resume",
                outputs: Sequence[str] = OUTPUT_OPTIONS) -> int:
    """Parse `argv`, check the output options, run the command; the exit status (see the module docstring).

    Args:
        prog: the program name printed before each message.
        parser: the program's parser (with a `command` subcommand dest); `--debug` is added to it.
        argv: the arguments (default sys.argv[1:]).
        run: args -> exit status or None (0); default `args.func(args)`.
        user_errors: exception types that also mean bad input (exit 2), besides USER_ERRORS.
        interrupted_hint: what to do after Ctrl-C, printed on the same line.
        outputs: argparse attribute names of output paths, checked before the command runs.
    Returns:
        0 on success, 2 bad input, 1 failure while running, 130 interrupted.
    """
    argv, debug = _split_debug(sys.argv[1:] if argv is None else argv)
    try:
        parser.add_argument("--debug", action="store_true", help="show the full traceback instead of one-line errors")
    except argparse.ArgumentError:  # the parser already has it
        pass
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse printed its usage line and message (or --help)
        return 0 if exit_.code is None else int(exit_.code)
    command = getattr(args, "command", None)
    where = f"{prog} {command}" if command else prog
    try:
        check_outputs(args, outputs)
        status = (run or args.func)(args)
        return 0 if status is None else int(status)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{where}: interrupted; {interrupted_hint}", file=sys.stderr)
        return 130
    except USER_ERRORS + tuple(user_errors) as err:
        if debug:
            raise
        print(f"{where}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - a failure while running: one line, the traceback with --debug
        if debug:
            raise
        print(f"{where}: error: {_runtime_message(err)}", file=sys.stderr)
        return 1
