"""The report's numerical_analysis.py: thin wrapper around `deepfake-xai numerical_analysis` (same flags; see --help)."""
import sys

from deepfake_xai.cli import main

if __name__ == "__main__":
    sys.exit(main(["numerical_analysis", *sys.argv[1:]]))
