"""Training helpers shared by both apps and L-CAM, for what Keras does not do itself.

    distribute (in cams.core)  seeding, the mixed-precision policy per device, strategies by name
    run_state (in cams.core)   the run history kept across a BackupAndRestore resume
    resume.py                  evaluation of extra sets each epoch; the callbacks that resume a run
    records.py                 atomic `.keras` files and a JSON list of run records
    checkpoint.py              the best-model checkpoint, replaced only by a complete save
"""
from cams.core.distribute import STRATEGIES, has_gpu, make_strategy, set_mixed_precision, set_seed
from cams.core.run_state import RunState
from cams.training.checkpoint import AtomicModelCheckpoint
from cams.training.records import save_model_atomic, upsert_json_record
from cams.training.resume import EvaluateEachEpoch, resumable

__all__ = ["STRATEGIES", "AtomicModelCheckpoint", "EvaluateEachEpoch", "RunState", "has_gpu", "make_strategy", "resumable",
           "save_model_atomic", "set_mixed_precision", "set_seed", "upsert_json_record"]
