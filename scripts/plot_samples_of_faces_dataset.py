"""The report's plot_samples_of_faces_dataset.py: thin wrapper around `deepfake-xai plot-samples`
(Figure 1: real and fake samples of each data set under --data-root; see --help)."""
import sys

from deepfake_xai.cli import main

if __name__ == "__main__":
    sys.exit(main(["plot-samples", *sys.argv[1:]]))
