"""`cams sanity`: Adebayo et al.'s model-parameter randomisation test ("Sanity Checks for Saliency Maps",
NeurIPS 2018) on a saved model and a folder of images.

Writes into --out:
  sanity.csv          one row per method and randomisation step, from the top: method, step, layer,
                      spearman_abs, spearman, ssim, hog (means over the images; the original is no row)
  sanity_curves.png   the similarity of each method's maps to the original ones against the step
  sanity_grid.png     the first image's maps, original and after each step
  sanity_maps.npz     those maps (what a resumed run needs to redraw the grid)

The table and the maps are rewritten after every step, so an interrupted run resumes: a rerun with the
same settings skips the (method, step) rows sanity.csv already has and says so. A rerun with other
settings (model file, images, methods, layer, mode, seed, image options) is refused unless --restart,
which deletes that run's own files first. Files of yours named like the outputs are refused unless
--overwrite (the folder's manifest .cams-run.sanity.json says which files cams wrote).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
from pathlib import Path

from cams.cli.common import add_image_options, add_labels_option, add_methods_option, class_names, images_for, load_model

JOB, COMMAND = "sanity", "cams sanity"
TABLE, MAPS, CURVES, GRID = "sanity.csv", "sanity_maps.npz", "sanity_curves.png", "sanity_grid.png"
OUTPUTS = (TABLE, MAPS, CURVES, GRID)
MODES = ("cascading", "independent")


def _digest(path: str) -> str:
    """sha256 of a file's bytes (the model file: another file is another run)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _settings(args) -> dict:
    """What the outputs depend on (compared with the earlier run's for resuming)."""
    model = str(args.model)
    return {"model": model, "model_sha256": _digest(model) if Path(model).is_file() else None,
            "images": [str(p) for p in args.images], "methods": args.methods, "layer": args.layer,
            "mode": args.mode, "seed": args.seed, "scale": args.scale, "offset": args.offset,
            "size": args.size, "limit": args.limit}


def _check_methods(text: str) -> list:
    """The --methods names, refusing unknown ones and those trained on the original model."""
    from cams.methods import registry

    chosen = registry.parse_methods(text)
    for name in chosen:
        method = registry.get(name)
        if method.trained_file:
            raise ValueError(f"--methods {name}: its file ({method.trained_by}) is trained on the original model, "
                             "so it cannot follow a randomised copy; choose other methods")
    return chosen


def _outputs(args):
    """The output folder, checked before any work; returns (folder, rows done, maps done)."""
    from cams.core.outputs import OutputFolder, check_apart, describe_changes

    check_apart(args.out, {"--images": args.images, "--model": [args.model], "--labels": [args.labels]})
    out = OutputFolder(args.out, JOB, COMMAND, _settings(args), overwrite=args.overwrite,
                       overwrite_option="--overwrite")
    changed = out.changed_settings()
    if out.previous is not None and changed and not args.restart:
        raise ValueError(f"--out {out.folder} holds a {COMMAND} run with other settings "
                         f"({describe_changes(out.previous.get('settings', {}), out.settings, changed)}); choose "
                         "another --out, or add --restart to delete that run's outputs and start over")
    out.claim(OUTPUTS)
    if out.previous is not None and args.restart:
        for name in out.files:
            if name in OUTPUTS and out.path(name).is_file():
                out.path(name).unlink()
        out.files = []
        out.save()
        return out, [], {}
    if out.previous is None or not out.owns(TABLE) or not out.path(TABLE).is_file():
        return out, [], {}
    return out, _read_rows(out.path(TABLE)), _read_maps(out.path(MAPS)) if out.owns(MAPS) else {}


def _read_rows(path: Path) -> list:
    """The rows of an earlier sanity.csv (numbers as numbers)."""
    from cams.core.files import read_utf8
    from cams.sanity import COLUMNS

    reader = csv.DictReader(read_utf8(path).splitlines())
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise ValueError(f"{path} is not a {COMMAND} table (columns {', '.join(COLUMNS)}); add --restart to start over")
    return [{**r, "step": int(r["step"]), **{k: float(r[k]) for k in COLUMNS[3:]}} for r in reader]


def _read_maps(path: Path) -> dict:
    import numpy as np

    if not path.is_file():
        return {}
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _save(out, rows: list, maps: dict, methods: list) -> None:
    """Rewrite sanity.csv (ordered by method, then step from the top) and sanity_maps.npz."""
    from cams.core import files
    from cams.sanity import COLUMNS

    order = {m: i for i, m in enumerate(methods)}
    rows.sort(key=lambda r: (order.get(r["method"], len(order)), r["step"]))
    files.write_csv(out.path(TABLE), COLUMNS, [[r[c] if c in ("method", "step", "layer") else f"{r[c]:.6f}"
                                                for c in COLUMNS] for r in rows])
    files.save_npz(out.path(MAPS), **maps)
    out.record(TABLE, MAPS)


def _run_steps(check, x, rows: list, maps: dict, out, methods: list) -> int:
    """Run the steps not done yet, saving after each; returns how many rows were computed now."""
    from tqdm import tqdm

    done = {(r["method"], r["step"]) for r in rows}
    computed = 0
    with tqdm(total=check.n_steps + 1, desc=f"{check.mode} randomisation", unit="step") as bar:
        for step in check.run(x, skip=done):
            for method, m in step.maps.items():
                maps[f"{method}@{step.step}"] = m[0]
            if step.step:
                new = step.rows()
                rows.extend(new)
                computed += len(new)
                if new:
                    _save(out, rows, maps, methods)
            bar.update(1)
    return computed


def _figures(out, x, maps: dict, rows: list, methods: list, mode: str) -> None:
    """sanity_curves.png (all rows) and sanity_grid.png (the first image's maps)."""
    from cams.methods import registry
    from cams.viz.sanity import plot_similarity_curves, save_randomisation_grid

    titles = {m: registry.title(m) for m in methods}
    plot_similarity_curves(rows, out.path(CURVES), titles=titles, title=f"{mode} randomisation, {len(x)} images")
    out.record(CURVES)
    layer_of = {r["step"]: r["layer"] for r in rows}
    steps = sorted(layer_of)
    grid = {m: [maps[f"{m}@{s}"] for s in (0, *steps)] for m in methods}
    save_randomisation_grid(x[0], grid, ["original", *(layer_of[s] for s in steps)], out.path(GRID), titles=titles)
    out.record(GRID)


def cmd_sanity(args) -> int:
    from cams.core.labels import describe
    from cams.metrics import probabilities
    from cams.sanity import SanityCheck

    methods = _check_methods(args.methods)
    out, rows, maps = _outputs(args)
    model = load_model(args.model, unsafe=args.unsafe)
    x, kept = images_for(model, args)
    check = SanityCheck(model, methods, mode=args.mode, seed=args.seed, layer=args.layer)
    total = len(methods) * check.n_steps
    if rows:
        print(f"resuming: {len(rows)} of {total} (method, step) rows already in {out.path(TABLE)}; "
              f"computing the other {total - len(rows)}")
    computed = _run_steps(check, x, rows, maps, out, methods)
    names = class_names(model, args)
    top1 = int(probabilities(model, x[:1]).argmax())
    if computed or not all(out.owns(n) and out.path(n).is_file() for n in (CURVES, GRID)):
        _figures(out, x, maps, rows, methods, args.mode)
    print(f"{args.mode} randomisation of {check.n_steps} layers, {len(methods)} methods, {len(x)} images: "
          f"{computed} rows computed now, {len(rows) - computed} reused")
    print(f"table:   {out.path(TABLE)}")
    print(f"figures: {out.path(CURVES)}, {out.path(GRID)} ({kept[0].name}: {describe(top1, names)})")
    return 0


def add_commands(sub) -> None:
    """Add `sanity` to the `cams` command line."""
    from cams.cli.errors import nonnegative_int

    p = sub.add_parser("sanity", help="randomisation sanity checks (Adebayo et al. 2018): how much each method's maps "
                                      "change as the model's layers are re-initialised",
                       description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_image_options(p)
    add_methods_option(p, default="gradcam,saliency,guidedbackprop")
    add_labels_option(p)
    p.add_argument("--mode", choices=MODES, default="cascading",
                   help="cascading: re-initialise the layers from the logits down, cumulatively (default); "
                        "independent: one layer at a time, the others original")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the re-initialisation (default 0)")
    p.add_argument("--out", required=True, help=f"output folder: {', '.join(OUTPUTS)}")
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace files named {', '.join(OUTPUTS)} in --out that cams did not write")
    p.add_argument("--restart", action="store_true",
                   help="delete this command's earlier outputs in --out and start over (needed for other settings)")
    p.set_defaults(func=cmd_sanity)
