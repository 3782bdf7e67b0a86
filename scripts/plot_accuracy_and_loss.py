"""The report's plot_accuracy_and_loss.py: thin wrapper around `deepfake-xai plot_accuracy_and_loss` (same flags; see --help)."""
import sys

from deepfake_xai.cli import main

if __name__ == "__main__":
    sys.exit(main(["plot_accuracy_and_loss", *sys.argv[1:]]))
