"""deepfake_xai: reproduction of the real/fake face detection study (SimpleNet, Xception, XAI)."""
