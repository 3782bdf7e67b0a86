"""`cams evaluate`: one table of explanation methods x metrics, with 95% confidence intervals.

    cams evaluate --model m.keras --images photos/ --masks masks/ --methods gradcam,scorecam \\
        --metrics all --out eval/

Each method explains every image once (targets: the model's top-1 class), then each metric of
`cams.metrics.catalog` scores those maps image by image. Outputs in --out (owned through the run
manifest `.cams-run.evaluate.json`, written atomically):

    evaluation.csv            one row per (method, metric column): method, metric, mean, ci95_low,
                              ci95_high, n_images, forward_passes, seconds
    evaluation.md             methods x metric columns (mean +- half-width of the 95% CI), and the costs
    evaluation.json           the rows, the settings and the versions of the packages
    evaluation.png            one panel per metric column, one bar per method, the 95% CI as error bars
    per_image.csv             every per-image score: file, class, name, method, one column per metric column
    maps/<method>.npz         the method's maps (reused by a resumed run)
    evaluation.progress.json  the finished (method, metric) pairs with their per-image scores

Confidence interval: mean +- t_{0.975, n-1} s / sqrt(n) over the n images (Student's t,
`scipy.stats.t`; s the sample standard deviation; `catalog.mean_ci95`); an image whose score is
undefined (NaN) is left out of n. forward_passes: classifier forward passes per image, the method's
`forward_passes()` plus the metric's `Metric.cost(explainer)`. seconds: wall time of the method's
maps on all images (after one untimed warm-up call that traces it) plus the metric's.

Resume: every finished (method, metric) pair is stored at once, so rerunning the same command skips
what is done (it says how many). The settings the scores depend on (model weights, images and their
pixels, masks, layer, L-CAM file, seed) are recorded; a rerun with others is refused, naming what
changed, unless --restart (which deletes this job's earlier outputs, nothing else). --methods and
--metrics may grow between runs: only the new pairs are computed.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from cams.cli.common import (add_image_options, add_labels_option, add_methods_option, class_names, explainers_for,
                              images_for, load_model)
from cams.cli.errors import nonnegative_int, positive_int
from cams.cli.report import add_report_option, check_report_option, write_report_option

JOB, COMMAND = "evaluate", "cams evaluate"
PROGRESS = "evaluation.progress.json"
OUTPUTS = ("evaluation.csv", "evaluation.md", "evaluation.json", "evaluation.png", "per_image.csv", PROGRESS)
CSV_HEADER = ("method", "metric", "mean", "ci95_low", "ci95_high", "n_images", "forward_passes", "seconds")


# ---------------------------------------------------------------- what to run
def method_names(args) -> List[str]:
    """The --methods names ('all': every registered method that needs no trained file, and those
    too when --lcam is given); sets args.methods to the comma list."""
    from cams.methods import registry

    if str(args.methods).strip().lower() == "all":
        chosen = [n for n, m in registry.methods().items() if not m.trained_file or args.lcam]
    else:
        chosen = list(dict.fromkeys(registry.parse_methods(args.methods)))
    args.methods = ",".join(chosen)
    return chosen


def chosen_metrics(args) -> Tuple[list, List[str]]:
    """(the catalog metrics of --metrics that can run, names of those skipped for want of --masks).

    Metrics that need masks are skipped (with a note) when `all` chose them and no --masks is given;
    named explicitly without --masks they are an error.
    """
    from cams.metrics import catalog

    metrics = catalog.resolve_metrics(args.metrics)
    need = [m.name for m in metrics if m.needs_masks]
    if args.masks or not need:
        return metrics, []
    if str(args.metrics).strip().lower() != "all":
        raise ValueError(f"--metrics {','.join(need)} needs --masks DIR (ground-truth masks named like the images); "
                         f"add --masks or leave {need[0]} out")
    return [m for m in metrics if not m.needs_masks], need


# ---------------------------------------------------------------- masks
def load_masks(folder, images: Sequence[Path], size: Tuple[int, int]):
    """Ground-truth masks for `images`, matched by file stem: bool (N, H, W) at the model's `size`.

    A mask is an image file under `folder` (searched recursively) with the image's stem (photos/cat.jpg
    <- masks/cat.png); pixels > 0 are inside. It must have its image's width and height (it is then
    resized with nearest neighbours, like the image) and must not be empty.

    Raises:
        ValueError: one line naming the folder or the mask, the image, and the fix.
    """
    from cams.core.images import list_images

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"--masks {folder}: no such folder; give the folder of ground-truth masks (named like the images)")
    by_stem: Dict[str, Path] = {}
    for p in list_images([folder]):
        if p.stem in by_stem:
            raise ValueError(f"--masks {folder}: two masks for the stem {p.stem!r} ({by_stem[p.stem]}, {p}); keep one")
        by_stem[p.stem] = p
    import numpy as np

    out = np.zeros((len(images), int(size[0]), int(size[1])), bool)
    for i, image in enumerate(images):
        mask = by_stem.get(Path(image).stem)
        if mask is None:
            raise ValueError(f"--masks {folder} has no mask for the image {image} (expected a file named "
                             f"{Path(image).stem}.png or another image suffix); add it or leave the image out")
        out[i] = _read_mask(mask, Path(image), size)
    return out


def _read_mask(path: Path, image: Path, size: Tuple[int, int]):
    import cv2
    import numpy as np

    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise ValueError(f"mask {path}: not a readable image")
    shown = cv2.imread(str(image), cv2.IMREAD_GRAYSCALE)
    if shown is not None and shown.shape != mask.shape:
        raise ValueError(f"mask {path} is {mask.shape[1]}x{mask.shape[0]} but its image {image} is "
                         f"{shown.shape[1]}x{shown.shape[0]} (width x height); a mask must have its image's size")
    inside = cv2.resize((mask > 0).astype(np.uint8), (int(size[1]), int(size[0])), interpolation=cv2.INTER_NEAREST) > 0
    if not inside.any():
        raise ValueError(f"mask {path} is empty (no pixel > 0 at the model's input size {size[0]}x{size[1]}); "
                         f"localisation metrics need a region: fix the mask or leave {image} out")
    return inside


# ---------------------------------------------------------------- the output folder and its progress
def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def job_settings(args, model, x, kept, masks) -> dict:
    """What the scores depend on (recorded in the run manifest; a rerun with others is refused)."""
    from cams.distributed.local import file_digest
    from cams.methods.lcam.fileformat import model_fingerprint

    return {"model": model_fingerprint(model)[:16], "images": [str(p) for p in args.images], "n_images": len(x),
            "files": hashlib.sha256("\n".join(map(str, kept)).encode()).hexdigest()[:16], "pixels": _digest(x),
            "scale": args.scale, "offset": args.offset, "masks": None if masks is None else _digest(masks),
            "layer": args.layer, "lcam": file_digest(args.lcam), "seed": args.seed}


def check_out(args, methods: Sequence[str]):
    """Refuse, before any work, an --out that overlaps an input or holds a user file where a result goes."""
    from cams.core.outputs import OutputFolder, check_apart

    check_apart(args.out, {"--images": args.images, "--model": [args.model], "--masks": [args.masks],
                           "--labels": [args.labels], "--lcam": [args.lcam]})
    names = list(OUTPUTS) + [f"maps/{m}.npz" for m in methods]
    OutputFolder(args.out, JOB, COMMAND).claim(names)  # this job's own files pass
    return names


def open_folder(args, settings: dict, names: Sequence[str]):
    """The job's OutputFolder: a rerun with other settings is refused unless --restart, which first
    deletes the files the earlier run recorded (and only those)."""
    from cams.core.outputs import OutputFolder, describe_changes, remove_temporary

    folder = OutputFolder(args.out, JOB, COMMAND, settings)
    changed = folder.changed_settings()
    if changed and not args.restart:
        before = folder.previous.get("settings", {})
        raise ValueError(f"--out {args.out} holds a {COMMAND} run with other settings "
                         f"({describe_changes(before, folder.settings, changed)}); choose another --out, "
                         f"or add --restart to delete that run's outputs and start over")
    folder.claim(names)
    if args.restart:
        for name in folder.files:
            folder.path(name).unlink(missing_ok=True)
        folder.files = []
    if folder.previous is not None:
        remove_temporary([folder.folder])
    folder.save()
    return folder


class Progress:
    """The finished work of an evaluation, kept in PROGRESS and rewritten (atomically) after each step.

    maps: {method: {"seconds", "forward_passes"}}; pairs: {"method|metric": {"scores": {column: [N]},
    "seconds", "forward_passes"}}.
    """

    def __init__(self, folder):
        self.folder = folder
        self.maps: Dict[str, dict] = {}
        self.pairs: Dict[str, dict] = {}
        path = folder.path(PROGRESS)
        if folder.owns(PROGRESS) and path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                self.maps, self.pairs = dict(data["maps"]), dict(data["pairs"])
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{path} is not a readable progress file; add --restart to start over") from None

    def done(self, method: str, metric: str) -> bool:
        return method in self.maps and f"{method}|{metric}" in self.pairs

    def pair(self, method: str, metric: str) -> dict:
        return self.pairs[f"{method}|{metric}"]

    def add_maps(self, method: str, seconds: float, forward_passes: float) -> None:
        self.maps[method] = {"seconds": float(seconds), "forward_passes": float(forward_passes)}
        self.save()

    def add_pair(self, method: str, metric: str, scores: dict, seconds: float, forward_passes: float) -> None:
        self.pairs[f"{method}|{metric}"] = {"scores": {c: [float(v) for v in s] for c, s in scores.items()},
                                            "seconds": float(seconds), "forward_passes": float(forward_passes)}
        self.save()

    def save(self) -> None:
        from cams.core.files import write_json

        write_json(self.folder.path(PROGRESS), {"maps": self.maps, "pairs": self.pairs})
        self.folder.record(PROGRESS)


# ---------------------------------------------------------------- computing
def _maps_for(name, explainer, x, targets, folder, progress, batch_size):
    """The method's maps: from maps/<name>.npz when an earlier run of this job wrote them, else computed
    (timed) and saved."""
    import numpy as np

    from cams.core import files

    rel = f"maps/{name}.npz"
    if name in progress.maps and folder.owns(rel) and folder.path(rel).is_file():
        with np.load(folder.path(rel)) as saved:
            if saved["maps"].shape == x.shape[:3]:
                return saved["maps"]
    explainer(x[:1], targets[:1])  # warm-up: tracing is not timed
    start = time.perf_counter()
    maps = np.concatenate([np.asarray(explainer(x[s : s + batch_size], targets[s : s + batch_size]), np.float32)
                           for s in range(0, len(x), batch_size)])
    seconds = time.perf_counter() - start
    files.save_npz(folder.path(rel), maps=maps, targets=targets)
    folder.record(rel)
    progress.add_maps(name, seconds, explainer.forward_passes())
    return maps


def run_pairs(model, explainers: dict, metrics: list, x, targets, masks, folder, progress, args) -> int:
    """Compute every (method, metric) pair not in `progress` yet, storing each as it finishes; returns
    how many were already done."""
    from tqdm import tqdm

    pairs = [(name, metric) for name in explainers for metric in metrics]
    todo = [(name, metric) for name, metric in pairs if not progress.done(name, metric.name)]
    skipped = len(pairs) - len(todo)
    if skipped:
        print(f"resuming: {skipped} of {len(pairs)} (method, metric) pairs already done in {args.out}, skipped")
    bar = tqdm(total=len(pairs), initial=skipped, desc="method x metric", unit="pair", file=sys.stderr)
    for name, explainer in explainers.items():
        mine = [metric for n, metric in todo if n == name]
        if not mine:
            continue
        maps = _maps_for(name, explainer, x, targets, folder, progress, args.batch_size)
        for metric in mine:
            bar.set_postfix_str(f"{name} {metric.name}")
            start = time.perf_counter()
            scores = metric(model, explainer, x, maps, targets, masks, seed=args.seed, batch_size=args.batch_size)
            progress.add_pair(name, metric.name, scores, time.perf_counter() - start, metric.cost(explainer))
            bar.update()
    bar.close()
    return skipped


# ---------------------------------------------------------------- writing
def summary_rows(methods: Sequence[str], metrics: list, progress) -> List[dict]:
    """One row per (method, metric column): mean, 95% CI, n_images, forward passes per image, seconds."""
    from cams.metrics.catalog import mean_ci95

    rows = []
    for name in methods:
        made = progress.maps[name]
        for metric in metrics:
            done = progress.pair(name, metric.name)
            for column in metric.columns:
                mean, low, high, n = mean_ci95(done["scores"][column])
                rows.append({"method": name, "metric": column, "mean": mean, "ci95_low": low, "ci95_high": high,
                             "n_images": n, "forward_passes": made["forward_passes"] + done["forward_passes"],
                             "seconds": made["seconds"] + done["seconds"], "metric_name": metric.name,
                             "higher_is_better": metric.higher_is_better})
    return rows


def _number(v) -> str:
    return f"{float(v):.9g}"


def _cell(row, digits: int) -> str:
    mean, half = row["mean"], (row["ci95_high"] - row["ci95_low"]) / 2
    return f"{mean:.{digits}f} ± {half:.{digits}f}" if half == half else f"{mean:.{digits}f} ± n/a"


def _digits(rows) -> int:
    """Decimals for a column: 1 when its largest |mean| is >= 10 (percentages), else 3."""
    return 1 if max((abs(r["mean"]) for r in rows if r["mean"] == r["mean"]), default=0) >= 10 else 3


def markdown(rows: List[dict], metrics: list, title: str) -> str:
    """evaluation.md: the scores table (methods x metric columns) and the costs table (methods x metrics)."""
    from cams.methods import registry

    methods = list(dict.fromkeys(r["method"] for r in rows))
    columns = list(dict.fromkeys(r["metric"] for r in rows))
    found = {(r["method"], r["metric"]): r for r in rows}
    arrow = {r["metric"]: "↑" if r["higher_is_better"] else "↓" for r in rows}
    lines = [f"# {title}", "", "Mean ± half-width of the 95% confidence interval over images (Student t); "
             "↑ higher is better, ↓ lower is better.", "",
             "| method | " + " | ".join(f"{c} {arrow[c]}" for c in columns) + " |",
             "|---|" + "---|" * len(columns)]
    digits = {c: _digits([r for r in rows if r["metric"] == c]) for c in columns}
    lines += [f"| {registry.title(m)} | " + " | ".join(_cell(found[m, c], digits[c]) for c in columns) + " |"
              for m in methods]
    lines += ["", "Cost: classifier forward passes per image (method + metric) / seconds for all images "
              "(the method's maps + the metric).", "",
              "| method | " + " | ".join(m.name for m in metrics) + " |", "|---|" + "---|" * len(metrics)]
    first = {(r["method"], r["metric_name"]): r for r in reversed(rows)}
    lines += [f"| {registry.title(m)} | " + " | ".join(
        f"{first[m, k.name]['forward_passes']:g} / {first[m, k.name]['seconds']:.2f} s" for k in metrics) + " |"
        for m in methods]
    return "\n".join(lines) + "\n"


def _versions() -> dict:
    import importlib.metadata as metadata
    import platform

    found = {"python": platform.python_version()}
    for package in ("keras-cams", "tensorflow", "keras", "numpy", "scipy"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def per_image_rows(methods, metrics, progress, kept, targets, names) -> Tuple[list, list]:
    """per_image.csv's header and rows: file, class, name, method, then each metric column."""
    from cams.core.labels import describe

    columns = [c for metric in metrics for c in metric.columns]
    rows = []
    for name in methods:
        scores = {c: v for metric in metrics for c, v in progress.pair(name, metric.name)["scores"].items()}
        for i, path in enumerate(kept):
            label = describe(targets[i], names) if names else ""
            rows.append([str(path), int(targets[i]), label, name, *(_number(scores[c][i]) for c in columns)])
    return ["file", "class", "name", "method", *columns], rows


def write_outputs(folder, args, rows, metrics, skipped_metrics, progress, kept, targets, names) -> dict:
    """Write evaluation.csv / .md / .json / .png and per_image.csv, each recorded; {what: path}."""
    from cams.core import files
    from cams.methods import registry
    from cams.viz.evaluation import save_evaluation_figure

    methods = list(dict.fromkeys(r["method"] for r in rows))
    title = f"Evaluation of {Path(args.model).name} on {len(kept)} images"
    written = {"csv": files.write_csv(folder.path("evaluation.csv"), CSV_HEADER, [
        [r["method"], r["metric"], *(_number(r[k]) for k in CSV_HEADER[2:5]), r["n_images"],
         _number(r["forward_passes"]), _number(r["seconds"])] for r in rows])}
    written["md"] = files.write_text(folder.path("evaluation.md"), markdown(rows, metrics, title))
    written["json"] = files.write_json(folder.path("evaluation.json"), {
        "command": COMMAND, "title": title, "confidence": "95% interval of the mean over images, Student t",
        "settings": folder.settings, "methods": methods, "metrics": [m.name for m in metrics],
        "skipped_metrics": skipped_metrics, "files": [str(p) for p in kept], "versions": _versions(),
        "rows": [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in rows]})
    written["png"] = save_evaluation_figure(
        [{**r, "method": registry.title(r["method"]), "column": r["metric"]} for r in rows],
        folder.path("evaluation.png"), {r["metric"]: r["higher_is_better"] for r in rows}, title=title)
    header, table = per_image_rows(methods, metrics, progress, kept, targets, names)
    written["per_image"] = files.write_csv(folder.path("per_image.csv"), header, table)
    folder.record("evaluation.csv", "evaluation.md", "evaluation.json", "evaluation.png", "per_image.csv")
    return written


# ---------------------------------------------------------------- the command
def cmd_evaluate(args) -> int:
    import keras

    from cams.metrics import probabilities

    metrics, skipped_metrics = chosen_metrics(args)
    names_to_claim = check_out(args, method_names(args))
    check_report_option(args)
    model = load_model(args.model, unsafe=args.unsafe)
    names = class_names(model, args)
    x, kept = images_for(model, args)
    masks = load_masks(args.masks, kept, x.shape[1:3]) if args.masks else None
    keras.utils.set_random_seed(args.seed)
    explainers = explainers_for(model, args)
    folder = open_folder(args, job_settings(args, model, x, kept, masks), names_to_claim)
    if skipped_metrics:
        print(f"note: --metrics all without --masks: skipped {', '.join(skipped_metrics)} (they need ground-truth masks)")
    targets = probabilities(model, x, args.batch_size).argmax(axis=1).astype("int32")
    progress = Progress(folder)
    run_pairs(model, explainers, metrics, x, targets, masks, folder, progress, args)
    rows = summary_rows(list(explainers), metrics, progress)
    written = write_outputs(folder, args, rows, metrics, skipped_metrics, progress, kept, targets, names)
    print(written["md"].read_text(encoding="utf-8"))
    for what, path in written.items():
        print(f"{what + ':':11}{path}")
    write_report_option(args, names)
    return 0


EXAMPLES = """examples:
  cams evaluate --model m.keras --images photos/ --methods gradcam,gradcam++,scorecam --metrics ad,ic,insertion,deletion --out eval/
  cams evaluate --model m.keras --images photos/ --masks masks/ --methods all --metrics all --limit 100 --out eval_all/
"""


def add_commands(sub) -> None:
    """Add `evaluate` to the `cams` command line."""
    import argparse

    from cams.metrics import catalog

    p = sub.add_parser(
        "evaluate", help="methods x metrics table with 95%% confidence intervals: evaluation.csv/.md/.json/.png",
        description="Explains --images with each of --methods (targets: the top-1 class) and scores the maps\n"
        "with each of --metrics, image by image. Writes evaluation.csv, evaluation.md, evaluation.json and\n"
        "evaluation.png (mean and 95% confidence interval over images, Student t; forward passes per image;\n"
        "seconds) and per_image.csv. --methods all: every method that needs no trained file (with --lcam,\n"
        "L-CAM too). Finished (method, metric) pairs are kept, so rerunning the same command resumes;\n"
        "other settings are refused unless --restart.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_image_options(p)
    add_methods_option(p, default="gradcam,gradcam++")
    add_labels_option(p)
    p.add_argument("--metrics", default="all",
                   help=f"comma list of: {', '.join(catalog.metric_names())}, or all (default; those needing masks "
                        "are skipped without --masks)")
    p.add_argument("--masks", default=None, metavar="DIR",
                   help="ground-truth masks for the localisation metrics: one image per input image with the same "
                        "file stem (photos/cat.jpg <- DIR/cat.png), its size, pixels > 0 inside")
    p.add_argument("--out", required=True,
                   help="output folder, outside the inputs: evaluation.csv/.md/.json/.png, per_image.csv, maps/")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the stochastic methods and metrics (default 0)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="images per forward pass (default 32)")
    p.add_argument("--restart", action="store_true",
                   help="delete this job's earlier outputs in --out (never other files) and start over; needed to "
                        "rerun into the same --out with other settings")
    add_report_option(p)
    p.set_defaults(func=cmd_evaluate)
