"""The report's grad_cam_analysis.py: thin wrapper around `deepfake-xai grad_cam_analysis` (same flags; see --help)."""
import sys

from deepfake_xai.cli import main

if __name__ == "__main__":
    sys.exit(main(["grad_cam_analysis", *sys.argv[1:]]))
