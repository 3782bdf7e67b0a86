"""bengali_xai: reproduction of the Bengali handwritten digit study (CNN + Grad-CAM).

    from bengali_xai.data import load_data            # "synthetic" | "ekush" | "numtadb" -> DigitData
    from bengali_xai.train import train_cnn           # the paper's CNN, 60/20/20, writes model/metrics/figures
    from bengali_xai.baselines import run_baselines   # the ten scikit-learn classifiers, 80/20
    from bengali_xai.explain import explain           # Grad-CAM family figures + stroke-energy share

Command line: `bengali-xai {train,baselines,explain,export,demo} --help`.
"""
