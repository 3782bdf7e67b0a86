"""The analysis commands of the face study, one module each:

    common        Analysis: the checkpoint, the test split at the model's input size, figure paths
    plots         plot_accuracy_and_loss: loss and accuracy figures of a training run
    numerical     numerical_analysis: soft scores, ROC and DET curves with AUC
    saliency      saliency_map: gradient saliency maps and per-class mean maps
    gradcam       grad_cam_analysis: Grad-CAM of one real and one fake test image
    localization  pointing game and energy-in-mask of the planted region
"""
