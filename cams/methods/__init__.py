"""The explainers, one module (or package) per family; each declares its methods in the registry.

    gradient.py       Grad-CAM, Grad-CAM++, Smooth Grad-CAM++, HiResCAM, XGrad-CAM, Layer-CAM
    cam.py            CAM (global-average-pooling heads)
    eigen.py          Eigen-CAM (gradient-free)
    perturbation.py   Score-CAM (its masking and scoring, shared by the variants), RISE
    score_variants.py SS-CAM, IS-CAM (Score-CAM with noisy / integrated masks)
    ablation.py       Ablation-CAM (channel ablations through the head only)
    saliency.py       gradient saliency and SmoothGrad
    feature_cam/      Feature CAM (a CAM combined with HED or Canny edges)
    lcam/             L-CAM-Fm / L-CAM-Img (a learned attention layer)
    registry.py       `register`, `make_explainer`, the table every command line reads

Only the registry is imported with the package (it needs no TensorFlow); it imports the method
modules, in the order of its `METHOD_MODULES`, when first asked.
"""
from cams.methods import registry  # noqa: E402,F401
