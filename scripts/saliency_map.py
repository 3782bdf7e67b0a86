"""The report's saliency_map.py: thin wrapper around `deepfake-xai saliency_map` (same flags; see --help)."""
import sys

from deepfake_xai.cli import main

if __name__ == "__main__":
    sys.exit(main(["saliency_map", *sys.argv[1:]]))
