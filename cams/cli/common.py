"""Options and helpers shared by the `cams` subcommands: the model, the images, the methods."""
from __future__ import annotations

import sys

from cams.cli.errors import finite_float, nonnegative_int, positive_int


def add_image_options(p, limit: bool = True) -> None:
    """The options `images_for` reads: --model, --images, --scale, --offset, --size (and --limit)."""
    p.add_argument("--model", required=True, help="the classifier: a .keras file (saved with model.save)")
    p.add_argument("--images", required=True, nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--scale", type=finite_float, default=1 / 255.0,
                   help="pixel values (0..255) are multiplied by this (default 1/255; use 1 for models that take 0..255)")
    p.add_argument("--offset", type=finite_float, default=0.0,
                   help="then this is added (default 0; for models that take [-1, 1]: --scale 0.00784313725 --offset -1)")
    p.add_argument("--size", type=positive_int, nargs=2, metavar=("H", "W"), default=None,
                   help="resize images to H W (needed only if the model accepts any size)")
    add_unsafe_option(p)
    if limit:
        p.add_argument("--limit", type=positive_int, default=None, help="use at most this many images (the first, in sorted order)")


def images_for(model, args):
    """Load --images for `model` with --scale/--offset/--size/--limit; report skipped files."""
    from cams.core.images import load_for_model

    x, kept, skipped = load_for_model(model, args.images, scale=args.scale, offset=args.offset,
                                      size=tuple(args.size) if args.size else None, limit=getattr(args, "limit", None))
    for p, why in skipped:
        print(f"skipped {p}: {why}", file=sys.stderr)
    return x, kept


def add_device_options(p, batch_option: str = "--batch-size", strategies=("default", "mirrored", "tpu")) -> None:
    """--mixed-precision and --strategy for a command that trains a Keras model with `fit`."""
    p.add_argument("--mixed-precision", action="store_true",
                   help="compute in float16 on a GPU / bfloat16 on CPU or TPU (the output layer stays float32)")
    p.add_argument("--strategy", choices=tuple(strategies), default="default",
                   help="tf.distribute strategy: default (one device), mirrored (all GPUs, or all logical CPUs), "
                        f"tpu (TPUStrategy on a TPU runtime); {batch_option} stays the global batch size")


def add_unsafe_option(p) -> None:
    """--unsafe: let Keras load Lambda layers (Python code in the model file)."""
    p.add_argument("--unsafe", action="store_true",
                   help="load models with Lambda layers (their Python code runs: only for files you trust)")


def load_model(path: str, unsafe: bool = False):
    """The Keras model at `path` (a ValueError naming the file and the fix if it cannot be read);
    `unsafe` lets Keras deserialise Lambda layers (safe_mode=False)."""
    from cams.core.model_io import load_keras_model

    return load_keras_model(path, unsafe=unsafe)


def add_labels_option(p) -> None:
    """--labels FILE: class names for figures and tables."""
    p.add_argument("--labels", default=None, metavar="FILE",
                   help="class names for figures: one per line (line i = class i), a JSON list, or Keras' "
                        "imagenet_class_index.json; default: ImageNet names for 1000-class models, else numbers")


def class_names(model, args):
    """The class names for --labels (or ImageNet's for 1000-class models), or None."""
    from cams.core import model_graph
    from cams.core.labels import class_names_for

    return class_names_for(model_graph.num_classes(model), getattr(args, "labels", None))


def add_methods_option(p, default: str) -> None:
    """--methods (comma list of registered methods), --layer and --lcam."""
    from cams.methods import registry

    p.add_argument("--methods", default=default,
                   help=f"comma list of: {registry.help_text()} (default: {default}; `cams methods` lists papers and costs)")
    p.add_argument("--layer", default=None,
                   help="feature layer name (default: the last layer with a 4-D output; see `cams layers`)")
    p.add_argument("--lcam", default=None, metavar="FILE",
                   help="the trained L-CAM file (from `cams lcam-train`) used by --methods lcam")


def explainers_for(model, args) -> dict:
    """{method name: explainer} for --methods, built from the registry with --layer / --lcam."""
    from cams.methods import registry

    chosen = registry.parse_methods(args.methods)
    for name in chosen:
        method = registry.get(name)
        if method.trained_file and not args.lcam:
            raise ValueError(f"--methods {name} needs --lcam FILE (train one with `{method.trained_by}`)")
    return registry.build_explainers(model, chosen, layer=args.layer, trained_file=args.lcam)




def add_target_options(p) -> None:
    """--target CLASS and --target-mask FILE: what to explain instead of the top-1 class."""
    p.add_argument("--target", type=nonnegative_int, default=None, metavar="CLASS",
                   help="explain this class instead of the top-1 prediction; for a segmentation model (output "
                        "N x h x w x categories) the category whose pre-softmax scores are summed over --target-mask "
                        "(default: over the pixels predicted as it)")
    p.add_argument("--target-mask", default=None, metavar="FILE",
                   help="with --target on a segmentation model: the pixels to explain, an image (nonzero = inside, "
                        "any size) or a .npy (H, W) array")


def read_target_mask(path: str):
    """The (H, W) float32 mask in FILE (.npy array, or an image whose nonzero pixels are inside)."""
    import numpy as np

    try:
        if str(path).lower().endswith(".npy"):
            mask = np.load(path, allow_pickle=False)
        else:
            import imageio.v3 as iio

            mask = iio.imread(path)
    except Exception as err:  # noqa: BLE001 - image decoders raise many kinds (struct.error, OSError, ...)
        raise ValueError(f"--target-mask {path}: cannot read it as an image or a .npy array "
                         f"({type(err).__name__}: {err})") from None
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask[..., :3].max(axis=-1)
    if mask.ndim != 2 or not np.issubdtype(mask.dtype, np.number) or not (mask != 0).any():
        raise ValueError(f"--target-mask {path}: need a non-empty (H, W) mask (nonzero = inside), got shape {mask.shape}")
    return (mask != 0).astype(np.float32)


def target_for(model, args):
    """The `targets=` for --target / --target-mask: None (the top-1 class), a class index, or a
    `cams.targets.Segmentation` for a model whose output is a segmentation map (N, h, w, categories)."""
    from cams.core.dense_targets import Segmentation
    from cams.core.targets import output_info

    target, mask_path = getattr(args, "target", None), getattr(args, "target_mask", None)
    info = output_info(model)
    dense = len(info.shapes) == 1 and len(info.shapes[0]) == 4
    if mask_path is not None and target is None:
        raise ValueError("--target-mask needs --target CLASS, the category to explain over the mask")
    if len(info.shapes) != 1:
        raise ValueError(f"--model has {len(info.shapes)} outputs ({info.describe()}); the command line explains "
                         "one-output models: use the Python API with cams.targets.Output(name, target)")
    if dense:
        if target is None:
            raise ValueError(f"--model outputs a segmentation map {info.shapes[0]}: give --target CATEGORY "
                             "(and optionally --target-mask FILE)")
        return Segmentation(target, read_target_mask(mask_path) if mask_path else None)
    if mask_path is not None:
        raise ValueError(f"--target-mask applies to segmentation models; --model outputs {info.shapes[0]}, "
                         "so give --target CLASS alone")
    if target is not None and info.shapes[0][-1] is not None and target >= info.shapes[0][-1]:
        raise ValueError(f"--target {target} is out of range: the model has {info.shapes[0][-1]} classes "
                         f"(0..{info.shapes[0][-1] - 1})")
    return target
