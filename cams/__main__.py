"""`python -m cams ...` runs the `cams` command line (the same as the `cams` console script)."""
import sys

from cams.cli import main

sys.exit(main())
