"""bengali_xai: reproduction of the Bengali handwritten digit study (CNN + Grad-CAM)."""
