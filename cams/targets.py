"""Target objects: what `targets=` explains beyond a class index (re-exported from `cams.core`).

    import cams
    maps = cams.GradCAM(model, layer="block3_conv")(images, targets=cams.targets.Segmentation(3, mask))
    maps = cams.HiResCAM(detector, layer=...)(images, targets=cams.targets.BoxScore(boxes, labels))
    maps = cams.GradCAM(model)(images, targets=[cams.targets.ClassProbability(c) for c in classes])

Every explainer and metric accepts them; see `cams.core.targets` for the formulas.
"""
from cams.core.dense_targets import BoxScore, Segmentation, keras_hub_decoder, pairwise_iou
from cams.core.target_batch import Bound, TargetBatch, bind_targets, evaluate_targets, resolve_batch, target_probabilities
from cams.core.targets import (Binary, Class, ClassProbability, Function, MultiLabel, Output, Regression, Target,
                               as_target, is_target_objects, output_info)

__all__ = ["Binary", "Bound", "BoxScore", "Class", "ClassProbability", "Function", "MultiLabel", "Output",
           "Regression", "Segmentation", "Target", "TargetBatch", "as_target", "bind_targets", "evaluate_targets",
           "is_target_objects", "keras_hub_decoder", "output_info", "pairwise_iou", "resolve_batch",
           "target_probabilities"]
