"""SavedModels that explain: one serving call returns predictions, probabilities and a CAM.

    savedmodel.py   export_savedmodel(model, out, explain="gradcam"), exportable_methods()
"""
from cams.export.savedmodel import export_savedmodel, exportable_methods

__all__ = ["export_savedmodel", "exportable_methods"]
