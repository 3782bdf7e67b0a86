"""Core machinery: model graph replay, input checks, the base explainer, images and atomic files."""
