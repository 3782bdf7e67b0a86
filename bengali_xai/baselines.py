"""The paper's ten scikit-learn baselines on an 80/20 split: table, bar charts, confusion matrix."""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cams.core.files import save_figure, write_csv, write_text

from .digits import NUM_CLASSES, DigitData, stratified_indices
from .outputs import BASELINE_FILES, output_folder
from .pipeline import split_data


def classifiers(seed: int = 0) -> dict[str, Callable[[], Any]]:
    """Name -> factory of the ten classifiers with the paper's settings (others at sklearn defaults)."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis
    from sklearn.ensemble import AdaBoostClassifier, GradientBoostingClassifier, RandomForestClassifier
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC, NuSVC
    from sklearn.tree import DecisionTreeClassifier

    return {
        "KNeighborsClassifier": lambda: KNeighborsClassifier(n_neighbors=10),
        "SVC": lambda: SVC(kernel="rbf", C=0.025, probability=True, random_state=seed),
        "NuSVC": lambda: NuSVC(probability=True, random_state=seed),
        "DecisionTreeClassifier": lambda: DecisionTreeClassifier(random_state=seed),
        "RandomForestClassifier": lambda: RandomForestClassifier(random_state=seed),
        "AdaBoostClassifier": lambda: AdaBoostClassifier(random_state=seed),
        "GradientBoostingClassifier": lambda: GradientBoostingClassifier(random_state=seed),
        "GaussianNB": lambda: GaussianNB(),
        "LinearDiscriminantAnalysis": lambda: LinearDiscriminantAnalysis(),
        "QuadraticDiscriminantAnalysis": lambda: QuadraticDiscriminantAnalysis(),
    }


SLOW = ("SVC", "NuSVC", "GradientBoostingClassifier")
QDA_FALLBACK_SHRINKAGE = 0.1


def run_baselines(
    data: DigitData,
    out: str | os.PathLike,
    seed: int = 0,
    only: list[str] | None = None,
    slow_max_train: int | None = None,
    outputs=None,
) -> list[dict[str, Any]]:
    """Fit each classifier on 80% (held-out fonts form the 20% test set for synthetic data).

    QDA falls back to the eigen solver with shrinkage 0.1 when its class covariances are
    singular (constant border pixels, or fewer images per class than pixels): scikit-learn
    >= 1.8 refuses to fit there, older versions only warned. The Markdown table notes the
    fallback. Writes baselines.csv (classifier,accuracy,log_loss), baselines.md, accuracy and
    log-loss bar charts, and the confusion matrix of the most accurate classifier. Prints one
    progress line per classifier.

    Args:
        data: the digit images and labels.
        out: output folder.
        seed: seed of the split, the classifiers and the slow ones' subset.
        only: classifier names to fit (default: all ten).
        slow_max_train: cap on the training images of the slow classifiers (SVC, NuSVC,
            GradientBoosting), taken as a stratified subset.
        outputs: the checked OutputFolder (cams.core.outputs) of `out`; default: checked here
            (no file of another origin where the five outputs go).

    Returns:
        One table row per classifier: classifier, accuracy, log_loss, seconds, n_train, note.
    """
    out = Path(out)
    models = classifiers(seed)
    names = _checked_names(models, only)
    outputs = outputs or output_folder(out, "baselines", baseline_settings(data.name, seed, names, slow_max_train),
                                       BASELINE_FILES)
    split = split_data(data, val=0.0, test=0.2, seed=seed)
    xtr = data.x[split.train].reshape(len(split.train), -1)
    xte = data.x[split.test].reshape(len(split.test), -1)
    ytr, yte = data.y[split.train], data.y[split.test]
    rows, preds = [], {}
    print(f"baselines on {data.name}: {len(ytr)} train / {len(yte)} test images", flush=True)
    for i, name in enumerate(names, start=1):
        row, preds[name] = _fit_and_score(name, models[name], (xtr, ytr), (xte, yte), seed, slow_max_train)
        rows.append(row)
        print(f"[{i}/{len(names)}] {name:30s} accuracy {row['accuracy']:.4f}  log loss "
              f"{row['log_loss']:.4f}  ({row['seconds']:.1f} s)", flush=True)
    outputs.record(*BASELINE_FILES)
    for f in _write_results(rows, preds, yte, out, data.name, n_train=len(ytr)).values():
        print(f"wrote {f}")
    return rows


def baseline_settings(data: str, seed: int, names: list[str] | None, slow_max_train: int | None) -> dict[str, Any]:
    """What the baselines' outputs depend on, kept in the run manifest."""
    return {"data": data, "seed": seed, "classifiers": names, "slow_max_train": slow_max_train}


def _checked_names(models: dict[str, Callable[[], Any]], only: list[str] | None) -> list[str]:
    """The classifier names to fit, in order; unknown names raise BengaliXAIError."""
    from .errors import BengaliXAIError

    names = list(models) if only is None else list(only)
    unknown = [n for n in names if n not in models]
    if unknown:
        raise BengaliXAIError(f"unknown classifier(s) {', '.join(unknown)}; choose from {', '.join(models)}")
    return names


def _fit_and_score(name: str, factory: Callable[[], Any], train: tuple[np.ndarray, np.ndarray],
                   test: tuple[np.ndarray, np.ndarray], seed: int,
                   slow_max_train: int | None) -> tuple[dict[str, Any], np.ndarray]:
    """Fit one classifier on `train` (a stratified subset for the slow ones) and score it on `test`.

    Returns the table row (timed from subset choice to scoring) and the predicted test digits.
    """
    from sklearn.metrics import accuracy_score, log_loss

    (xtr, ytr), (xte, yte) = train, test
    t0 = time.time()
    xs, ys = xtr, ytr
    if name in SLOW and slow_max_train is not None and slow_max_train < len(ytr):
        keep = stratified_indices(ytr, max(slow_max_train, NUM_CLASSES), seed)
        xs, ys = xtr[keep], ytr[keep]
    clf = factory()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # QDA collinearity, AdaBoost deprecations, ...
        note = _fit_with_qda_fallback(clf, name, xs, ys)
        proba = _full_proba(clf, clf.predict_proba(xte))
    proba = np.clip(proba, 1e-15, 1.0)
    proba /= proba.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    row = {
        "classifier": name,
        "accuracy": float(accuracy_score(yte, pred)),
        "log_loss": float(log_loss(yte, proba, labels=list(range(NUM_CLASSES)))),
        "seconds": round(time.time() - t0, 1),
        "n_train": int(len(ys)),
        "note": note,
    }
    return row, pred


def _fit_with_qda_fallback(clf, name: str, xs: np.ndarray, ys: np.ndarray) -> str:
    """Fit `clf`; a QDA with singular covariances is refitted with the eigen solver and shrinkage.

    Returns the table note: empty, or the fallback that was used.
    """
    try:
        clf.fit(xs, ys)
    except np.linalg.LinAlgError:
        if name != "QuadraticDiscriminantAnalysis":
            raise
        clf.set_params(solver="eigen", shrinkage=QDA_FALLBACK_SHRINKAGE).fit(xs, ys)
        return f"singular covariances: eigen solver, shrinkage {QDA_FALLBACK_SHRINKAGE}"
    return ""


def _write_results(rows: list[dict[str, Any]], preds: dict[str, np.ndarray], yte: np.ndarray, out: Path,
                   dataset: str, n_train: int) -> dict[str, Path]:
    """Tables, bar charts and the most accurate classifier's confusion matrix; returns the files written."""
    from sklearn.metrics import confusion_matrix

    best = max(rows, key=lambda r: r["accuracy"])
    cm = confusion_matrix(yte, preds[best["classifier"]], labels=list(range(NUM_CLASSES)))
    files = write_tables(rows, out, dataset, n_train=n_train, n_test=len(yte))
    files.update(save_bar_charts(rows, out, dataset))
    files["confusion_matrix"] = save_confusion_matrix(cm, out / "confusion_matrix.png",
                                                      f"{best['classifier']} ({dataset})")
    return files


def _full_proba(clf, proba: np.ndarray) -> np.ndarray:
    """Probabilities over all ten digits even when a class was absent from the training split."""
    full = np.zeros((len(proba), NUM_CLASSES), np.float64)
    full[:, np.asarray(clf.classes_, int)] = proba
    return full


def write_tables(rows: list[dict[str, Any]], out: Path, dataset: str, n_train: int, n_test: int) -> dict[str, Path]:
    """baselines.csv (classifier,accuracy,log_loss; UTF-8 through the csv module) and baselines.md
    (with percentages and fit time)."""
    table = [(r["classifier"], f"{r['accuracy']:.6f}", f"{r['log_loss']:.6f}") for r in rows]
    md = [f"Baselines on `{dataset}` ({n_train} train / {n_test} test images)", "",
          "| Classifier | Accuracy (%) | Log loss | Train images | Fit + predict (s) | Note |",
          "|---|---:|---:|---:|---:|---|"]
    md += [f"| {r['classifier']} | {100 * r['accuracy']:.2f} | {r['log_loss']:.4f} | {r.get('n_train', n_train)} | "
           f"{r['seconds']:.1f} | {r.get('note', '')} |" for r in rows]
    return {"csv": write_csv(out / "baselines.csv", ("classifier", "accuracy", "log_loss"), table),
            "markdown": write_text(out / "baselines.md", "\n".join(md) + "\n")}


def save_bar_charts(rows: list[dict[str, Any]], out: Path, dataset: str) -> dict[str, Path]:
    """The paper's two bar charts: accuracy and log loss per classifier."""
    import matplotlib.pyplot as plt

    files = {}
    names = [r["classifier"].replace("Classifier", "").replace("Analysis", "") for r in rows]
    for key, label, colour in (("accuracy", "accuracy (%)", "tab:blue"), ("log_loss", "log loss", "tab:red")):
        values = [100 * r[key] if key == "accuracy" else r[key] for r in rows]
        fig, ax = plt.subplots(figsize=(8, 3.8))
        bars = ax.bar(names, values, color=colour)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_ylabel(label)
        ax.set_title(f"{label} of the baselines ({dataset})")
        ax.tick_params(axis="x", rotation=40, labelsize=8)
        for t in ax.get_xticklabels():
            t.set_horizontalalignment("right")
        fig.tight_layout()
        files[f"{key}_chart"] = save_figure(fig, out / f"baselines_{key}.png")
    return files


def save_confusion_matrix(cm: np.ndarray, path: Path, title: str) -> Path:
    """Annotated confusion matrix (rows true digit, columns predicted)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    im = ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks(range(NUM_CLASSES))
    ax.set_yticks(range(NUM_CLASSES))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return save_figure(fig, path)
