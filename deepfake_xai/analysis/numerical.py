"""numerical_analysis: soft scores of both classes, ROC and DET curves with AUC (the report's ROC and DET figures).

As in the report, both curves use the true labels with fake (1) as the positive class, so the real
score's curve is the mirror image of the fake score's and its AUC is about 1 - AUC(fake).
"""
from __future__ import annotations


import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import DetCurveDisplay, auc, det_curve, roc_curve  # noqa: E402

from cams.core.files import save_figure, write_csv, write_json  # noqa: E402
from cams.metrics import probabilities  # noqa: E402

from .common import Analysis  # noqa: E402


def get_soft_scores_and_true_labels(an: Analysis, split: str = "test", batch_size: int = 32
                                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Softmax scores of class real and class fake, true labels and paths (the report's API)."""
    real, fake, labels, paths = [], [], [], []
    for images, y, p in an.batches(split, batch_size):
        prob = probabilities(an.model, images, batch_size)
        real.append(prob[:, 0]), fake.append(prob[:, 1]), labels.append(y), paths.extend(p)
    return np.concatenate(real), np.concatenate(fake), np.concatenate(labels), paths


def numerical_analysis(an: Analysis, batch_size: int = 32) -> dict:
    """ROC + DET figures for the real and the fake score; returns AUCs, accuracy and file paths."""
    an.outputs("numerical-analysis")
    real, fake, labels, paths = get_soft_scores_and_true_labels(an, "test", batch_size)
    if len(np.unique(labels)) < 2:
        raise ValueError(f"the test split of {an.dataset_dir} has only one class; ROC/DET need both")
    curves = {}
    for name, score in (("real", real), ("fake", fake)):
        fpr, tpr, _ = roc_curve(labels, score, pos_label=1)
        dfpr, dfnr, _ = det_curve(labels, score, pos_label=1)
        curves[name] = dict(fpr=fpr, tpr=tpr, auc=float(auc(fpr, tpr)), det_fpr=dfpr, det_fnr=dfnr)

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, c in curves.items():
        ax.plot(c["fpr"], c["tpr"], label=f"{name} score (AUC = {c['auc']:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="no skill")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC: {an.dataset_name} / {an.model_name} (positive = fake)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    roc_path = save_figure(fig, an.figure("roc_curve"))

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, c in curves.items():
        DetCurveDisplay(fpr=c["det_fpr"], fnr=c["det_fnr"], estimator_name=f"{name} score").plot(ax=ax)
    ax.set_title(f"DET: {an.dataset_name} / {an.model_name} (positive = fake)")
    det_path = save_figure(fig, an.figure("det_curve"))

    pred = (fake > real).astype(int)
    rows = [(p, int(y), f"{r:.6f}", f"{f:.6f}") for p, y, r, f in zip(paths, labels, real, fake)]
    scores_path = write_csv(an.out_dir / f"{an.dataset_name}_{an.model_name}_soft_scores.csv",
                            ("path", "label", "real_score", "fake_score"), rows)
    summary = {
        "dataset": an.dataset_name, "model": an.model_name, "n_test": int(len(labels)),
        "n_real": int((labels == 0).sum()), "n_fake": int((labels == 1).sum()),
        "test_accuracy": float(100.0 * (pred == labels).mean()),
        "auc_real_score": curves["real"]["auc"], "auc_fake_score": curves["fake"]["auc"],
        "roc_curve": str(roc_path), "det_curve": str(det_path), "soft_scores": str(scores_path),
    }
    write_json(an.result("numerical_analysis"), summary)
    an.log(f"test: {summary['n_test']} images, accuracy {summary['test_accuracy']:.2f}%; "
           f"AUC real score {summary['auc_real_score']:.4f}, AUC fake score {summary['auc_fake_score']:.4f} "
           f"(positive class = fake, so the real score's AUC is about 1 - the fake score's)")
    for p in (roc_path, det_path, scores_path, an.result("numerical_analysis")):
        an.log(f"wrote {p}")
    return summary
