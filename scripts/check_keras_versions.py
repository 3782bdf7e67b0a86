"""Check the supported Keras / TensorFlow range: install the oldest and the newest into fresh venvs, run cams' core tests.

For each (keras, tensorflow) pair this script creates a temporary virtual environment, installs the pair,
then this project (`pip install <repo>` with its other dependencies) and pytest, and runs the cams core tests
(input checks, layer lookup and the graph replay every explainer relies on, metrics, bad inputs of the Python
API). It prints one line per pair, PASS or FAIL, and exits 1 if any pair failed. The bounds in setup.cfg
(`tensorflow>=...,<...`, `keras>=...,<...`) should match the pairs that passed.

    python scripts/check_keras_versions.py                      # the default oldest and newest pairs
    python scripts/check_keras_versions.py --pair 3.5.0 2.17.1  # any pair(s): KERAS TENSORFLOW

Downloads from PyPI (about 600 MB per TensorFlow wheel); several minutes per pair.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: (keras, tensorflow): the oldest and the newest pair the setup.cfg bounds claim
DEFAULT_PAIRS = [("3.3.3", "2.16.2"), ("3.15.1", "2.21.0")]
CORE_TESTS = ["tests/test_cams_inputs.py", "tests/test_cams_metrics.py", "tests/test_bad_inputs_api.py"]


def run(cmd, log, **kw) -> int:
    """Run `cmd`, appending its output to the open file `log`; the exit status."""
    log.write(f"\n$ {' '.join(map(str, cmd))}\n")
    log.flush()
    return subprocess.run(list(map(str, cmd)), stdout=log, stderr=subprocess.STDOUT, **kw).returncode


def check_pair(keras_version: str, tf_version: str, log_dir: Path) -> tuple[bool, str]:
    """Install keras==keras_version and tensorflow==tf_version in a new venv and run CORE_TESTS there."""
    log_path = log_dir / f"keras-{keras_version}_tf-{tf_version}.log"
    with tempfile.TemporaryDirectory(prefix="keras-check-") as tmp, open(log_path, "w") as log:
        env_dir = Path(tmp) / "venv"
        venv.EnvBuilder(with_pip=True).create(env_dir)
        py = env_dir / "bin" / "python"
        pins = [f"keras=={keras_version}", f"tensorflow=={tf_version}"]
        if run([py, "-m", "pip", "install", "-q", *pins, str(ROOT), "pytest"], log) != 0:
            return False, f"install failed (see {log_path})"
        versions = subprocess.run([py, "-c", "import keras, tensorflow as tf, numpy; "
                                   "print(keras.__version__, tf.__version__, numpy.__version__)"],
                                  capture_output=True, text=True, cwd=tmp).stdout.split()
        # run from the temporary folder (not the checkout) so the installed copy is what is tested
        tests = [str(ROOT / t) for t in CORE_TESTS if (ROOT / t).exists()]
        code = run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT), *tests], log, cwd=tmp)
        tail = log_path.read_text().strip().splitlines()[-1] if log_path.stat().st_size else ""
        got = "keras {} tensorflow {} numpy {}".format(*versions) if len(versions) == 3 else "versions unknown"
        return code == 0, f"{got}: {tail}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", nargs=2, action="append", metavar=("KERAS", "TENSORFLOW"),
                    help="a Keras and TensorFlow version to check (repeatable; default: %s)" % DEFAULT_PAIRS)
    ap.add_argument("--logs", default=str(Path(tempfile.gettempdir()) / "keras-version-check"),
                    help="folder for one pip + pytest log per pair")
    args = ap.parse_args(argv)
    log_dir = Path(args.logs)
    log_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for keras_version, tf_version in args.pair or DEFAULT_PAIRS:
        t0 = time.time()
        ok, detail = check_pair(keras_version, tf_version, log_dir)
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  keras=={keras_version} tensorflow=={tf_version}  "
              f"({time.time() - t0:.0f} s) {detail}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
