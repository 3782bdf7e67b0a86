"""The report's train_main.py: thin wrapper around `deepfake-xai train` (same flags; see --help)."""
import sys

from deepfake_xai.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
