"""Check the supported Keras / TensorFlow range: install the oldest and the newest into fresh venvs, run the tests.

For each (keras, tensorflow) pair this script creates a virtual environment (`python -m venv`, without the
system site-packages, so it holds exactly the pinned versions) in a temporary folder, installs the pair, this
project (`pip install -e <repo>` with its other install_requires, resolved together with the pins) and pytest,
and runs every test that needs no optional extra: the cams explainer contract and method tests, L-CAM, Feature
CAM, export, bad inputs, CLI, and the bengali_xai / deepfake_xai tests. It prints one line per pair, PASS or
FAIL with the installed versions and the passed / failed / skipped counts, and exits 1 if any pair failed.
The bounds in setup.cfg (`tensorflow>=...,<...`, `keras>=...,<...`) should match the pairs that passed.

Left out, because they need the dev extra (references and tools that are not cams dependencies):
  * tests/test_beam.py: imports apache-beam (the `beam` extra) at module level;
  * tests/test_feature_cam_edges.py: imports scikit-image (its sample photos) at module level;
  * tests/test_notebooks.py: executes the notebooks with nbformat / nbclient / ipykernel;
  * single tests that import tf-keras-vis, xplique or scikit-image inside the test (the agreement checks
    against tf-keras-vis in test_cams_gradient / test_cams_perturbation, the scikit-image photos and
    PSNR / SSIM references in the deepfake tests) are reported as skipped, not failed: a small pytest
    plugin turns their ModuleNotFoundError for exactly those modules into a skip.

    python scripts/check_keras_versions.py                      # setup.cfg's lower bounds, and the newest pair
    python scripts/check_keras_versions.py --pair 3.5.0 2.17.1  # any pair(s): KERAS TENSORFLOW
    python scripts/check_keras_versions.py --pair 3.3.3 2.16.2 --venv /tmp/k333  # keep (and reuse) the venv
    python scripts/check_keras_versions.py -- -k ablation        # extra arguments go to pytest

Downloads from PyPI (about 600 MB per TensorFlow wheel); several minutes per pair to install, and the
length of the test suite to run.
"""
from __future__ import annotations

import argparse
import configparser
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: (keras, tensorflow): the newest pair checked; the oldest is read from setup.cfg's `>=` bounds
NEWEST = ("3.15.1", "2.21.0")
#: test files left out (module-level imports of the dev extra), with the reason
EXCLUDED = {
    "tests/test_beam.py": "apache-beam (beam extra)",
    "tests/test_feature_cam_edges.py": "scikit-image (dev extra)",
    "tests/test_notebooks.py": "nbformat / nbclient / ipykernel (dev extra)",
}
#: top-level modules of the dev extra: a test that fails importing one of them is skipped
OPTIONAL_MODULES = ("tf_keras_vis", "xplique", "skimage", "apache_beam", "nbformat", "nbclient")
PLUGIN = f'''"""Skip (not fail) a test that imports a module of cams' dev extra absent from this venv."""
import pytest

OPTIONAL = {OPTIONAL_MODULES!r}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] in OPTIONAL:
            pytest.skip(f"needs {{err.name}} (dev extra, not installed in this venv)")
        raise
'''


def run(cmd, log, **kw) -> int:
    """Run `cmd`, appending its output to the open file `log`; the exit status."""
    log.write(f"\n$ {' '.join(map(str, cmd))}\n")
    log.flush()
    return subprocess.run(list(map(str, cmd)), stdout=log, stderr=subprocess.STDOUT, **kw).returncode


def declared_oldest(setup_cfg: Path = ROOT / "setup.cfg") -> tuple[str, str]:
    """The (keras, tensorflow) lower bounds of setup.cfg's install_requires, e.g. ("3.3.3", "2.16.2").

    Args:
        setup_cfg: the project's setup.cfg.

    Returns:
        The two versions after `keras>=` and `tensorflow>=` (ValueError if either bound is missing).
    """
    cfg = configparser.ConfigParser()
    cfg.read(setup_cfg)
    found = dict(re.findall(r"^(keras|tensorflow)>=([\w.]+)", cfg.get("options", "install_requires"), re.M))
    if set(found) != {"keras", "tensorflow"}:
        raise ValueError(f"{setup_cfg} declares no keras>= and tensorflow>= lower bounds")
    return found["keras"], found["tensorflow"]


def selected_test_files() -> list[str]:
    """The test files each pair runs: every tests/test_*.py except EXCLUDED, as absolute paths."""
    return [str(p) for p in sorted((ROOT / "tests").glob("test_*.py"))
            if p.relative_to(ROOT).as_posix() not in EXCLUDED]


def counts(junit: Path) -> dict:
    """{'passed', 'failed', 'errors', 'skipped'} from a pytest --junitxml report (empty if there is none)."""
    if not junit.exists():
        return {}
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    return {"passed": total["tests"] - total["failures"] - total["errors"] - total["skipped"],
            "failed": total["failures"], "errors": total["errors"], "skipped": total["skipped"]}


def install(env_dir: Path, keras_version: str, tf_version: str, log) -> Path | None:
    """Create (or reuse) the venv `env_dir` and install the pinned pair, the project and pytest: its python."""
    py = env_dir / "bin" / "python"
    if not py.exists() and run([sys.executable, "-m", "venv", env_dir], log) != 0:
        return None
    pins = [f"keras=={keras_version}", f"tensorflow=={tf_version}"]
    if run([py, "-m", "pip", "install", "-q", "--upgrade", "pip"], log) != 0:
        return None
    # one resolver call: the pins, the project's other install_requires (through -e) and pytest together
    if run([py, "-m", "pip", "install", "-q", *pins, "-e", ROOT, "pytest>=8"], log) != 0:
        return None
    return py


def check_pair(keras_version: str, tf_version: str, log_dir: Path, env_dir: str | None = None,
               pytest_args: list | None = None) -> tuple[bool, str]:
    """Install keras==keras_version and tensorflow==tf_version in a venv and run the tests there.

    Args:
        keras_version, tf_version: the pair to check, e.g. "3.3.3", "2.16.2".
        log_dir: folder for the pip + pytest log and the junit report of this pair.
        env_dir: a venv folder to create (or reuse) and keep; None: a temporary one, removed after.
        pytest_args: extra arguments for pytest (e.g. ["-k", "ablation"]).

    Returns:
        (passed, one line: the installed versions and the pytest counts, or why it failed).
    """
    stem = f"keras-{keras_version}_tf-{tf_version}"
    log_path, junit = log_dir / f"{stem}.log", log_dir / f"{stem}.xml"
    junit.unlink(missing_ok=True)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="keras-check-")))
        log = stack.enter_context(open(log_path, "w"))
        py = install(Path(env_dir) if env_dir else tmp / "venv", keras_version, tf_version, log)
        if py is None:
            return False, f"install failed (see {log_path})"
        versions = subprocess.run([py, "-c", "import keras, tensorflow as tf, numpy; "
                                   "print(keras.__version__, tf.__version__, numpy.__version__)"],
                                  capture_output=True, text=True, cwd=tmp).stdout.split()
        (tmp / "skip_optional_extras.py").write_text(PLUGIN)
        cmd = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "skip_optional_extras",
               "--rootdir", ROOT, f"--junitxml={junit}", *selected_test_files(), *(pytest_args or [])]
        code = run(cmd, log, cwd=tmp, env={**_environ(), "PYTHONPATH": str(tmp)})
        got = "keras {} tensorflow {} numpy {}".format(*versions) if len(versions) == 3 else "versions unknown"
        n = counts(junit)
        summary = ", ".join(f"{v} {k}" for k, v in n.items()) if n else f"no test report (pytest exit {code})"
        return code == 0, f"{got}: {summary} (log: {log_path})"


def _environ() -> dict:
    """This process' environment without the variables that would leak its Python into the venv."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", nargs=2, action="append", metavar=("KERAS", "TENSORFLOW"),
                    help="a Keras and TensorFlow version to check (repeatable; default: the lower bounds in "
                         "setup.cfg, then keras %s tensorflow %s)" % NEWEST)
    ap.add_argument("--logs", default=str(Path(tempfile.gettempdir()) / "keras-version-check"),
                    help="folder for one pip + pytest log (and junit report) per pair")
    ap.add_argument("--venv", default=None,
                    help="keep the venv in this folder (created if missing, reused otherwise); one --pair only")
    ap.add_argument("pytest_args", nargs="*", help="extra arguments for pytest, after --")
    args = ap.parse_args(argv)
    pairs = args.pair or [declared_oldest(), NEWEST]
    if args.venv and len(pairs) != 1:
        ap.error("--venv needs exactly one --pair")
    log_dir = Path(args.logs)
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"tests: {len(selected_test_files())} files under tests/ (left out: {', '.join(EXCLUDED)})", flush=True)
    failed = 0
    for keras_version, tf_version in pairs:
        t0 = time.time()
        ok, detail = check_pair(keras_version, tf_version, log_dir, args.venv, args.pytest_args)
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  keras=={keras_version} tensorflow=={tf_version}  "
              f"({time.time() - t0:.0f} s) {detail}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
