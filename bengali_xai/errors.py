"""The one exception type the command line turns into a readable one-line error."""
from __future__ import annotations


class BengaliXAIError(ValueError):
    """An expected user-facing error (bad input file, bad option); the message says what to fix."""


#: how to get a model file, for "no such model file" errors
MODEL_HINT = "train one with `bengali-xai train --out DIR`, which writes DIR/model.keras"
