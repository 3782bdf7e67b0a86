#!/usr/bin/env python
"""Rebuild bengali_xai/assets/glyphs.npz from installed Bengali fonts (thin wrapper)."""
import sys

from bengali_xai.atlas import main

if __name__ == "__main__":
    sys.exit(main())
