"""The `cams` command line called in the test process, for tests that read its exit status and output."""
import contextlib
import io


def run(*argv):
    """(exit status, stdout, stderr) of `cams *argv` called in this process (arguments turned to str)."""
    from cams.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()
