"""The method registry: every explainer is declared once, beside its class.

    @register("xgradcam", title="XGrad-CAM", family="gradient", cost="1 forward + head backward",
              paper="Fu et al., BMVC 2020", formula="w_k = sum_ij (A_ij^k / sum_ab A_ab^k) dS/dA_ij^k",
              gradient=True)
    class XGradCAM(GradientCAM): ...

Everything that names methods reads this table: `cams.make_explainer`, `build_explainers` (the
`--methods` option of every command line and the Beam workers), the titles of figures and tables,
the README's methods table, the contract tests and the benchmark. Code asks a method what it needs
and offers (`gradient`, `trained_file`, `gap_dense_head`, `second_network`, `uses_layer`,
`model_agnostic`, `exportable`, `cost`); `family` is only a label. The built-in methods live in
the modules of `METHOD_MODULES`, imported in that order, which is the order of the table; a method
declared in any other module (a user's) follows them.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

#: labels for tables and docs only; code asks a method's needs (below), never its family
FAMILIES = ("gradient", "activation", "attribution", "perturbation", "attention", "learned", "edge")
#: the modules that declare the built-in methods, in the order of the methods table
METHOD_MODULES = ("gradient", "cam", "eigen", "saliency", "attribution", "perturbation", "ablation", "score_variants",
                  "attention", "lcam", "feature_cam")
#: options that command lines pass to every method; a method that does not take one ignores it
SHARED_OPTIONS = ("layer", "batch_size", "seed")


@dataclass(frozen=True)
class Method:
    """One registered explainer: what it is, what it needs and what it offers.

    Attributes:
        name: command-line name (`--methods gradcam,xgradcam`), lower case.
        title: the name printed in figures and tables ("XGrad-CAM").
        family: a label for tables ("gradient", "activation", "attribution", "perturbation", "learned", "edge").
        cost: forward passes per image, in words ("K + 1 forwards").
        paper: authors, venue and year.
        formula: the map in one line.
        cls: the explainer class.
        gradient: True when the map needs backpropagation through the model.
        trained_file: the option naming the file a training command wrote (L-CAM's `path`), or None.
        trained_by: the command that writes that file ("cams lcam-train").
        gap_dense_head: True when the model must end in global average pooling + Dense after the layer.
        second_network: another network the method runs besides the model (Feature CAM's "HED"), or None.
        attention: True when the method reads the attention probabilities of the model's keras
            MultiHeadAttention layers (transformers only).
        build: (model, **options) -> explainer; default `cls(model, **options)`.
        quick: small options for fast runs (tests, demos, the benchmark on a CPU).
        order: position in the methods table (module in `METHOD_MODULES`, then declaration).
    """

    name: str
    title: str
    family: str
    cost: str
    paper: str
    formula: str
    cls: type
    gradient: bool
    trained_file: Optional[str] = None
    trained_by: Optional[str] = None
    gap_dense_head: bool = False
    second_network: Optional[str] = None
    build: Optional[Callable] = None
    quick: Dict = field(default_factory=dict)
    order: Tuple[int, int] = (0, 0)
    attention: bool = False

    @property
    def options(self) -> set:
        """Names of the options the explainer takes (besides the model)."""
        return set(_signature_of(self.build or self.cls)) - {"model"}

    @property
    def required_options(self) -> List[str]:
        """Options without a default value (besides the model), e.g. L-CAM's `path`."""
        params = _signature_of(self.build or self.cls)
        return [n for n, p in params.items() if n != "model" and p.default is inspect.Parameter.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    @property
    def uses_layer(self) -> bool:
        """True when the method reads the activations of a feature layer (`layer=` option)."""
        return "layer" in _signature_of(self.cls)

    @property
    def model_agnostic(self) -> bool:
        """True when the method needs only the model's outputs: no layer, no gradient, no file."""
        return not (self.uses_layer or self.gradient or self.trained_file or self.gap_dense_head or self.attention)

    @property
    def exportable(self) -> bool:
        """True when the whole map is one TensorFlow graph, so a SavedModel can serve it."""
        return bool(getattr(self.cls, "exportable", False))

    def make(self, model, **options):
        """Build this explainer for `model`; shared options it does not take are dropped."""
        for key in [k for k in options if k not in self.options]:
            if key not in SHARED_OPTIONS:
                raise ValueError(f"method {self.name!r} has no option {key!r}; it takes: {', '.join(sorted(self.options))}")
            del options[key]
        missing = [k for k in self.required_options if options.get(k) is None]
        if missing:
            raise ValueError(f"{self.name} needs {missing[0]}=: {self._describe(missing[0])}")
        return (self.build or self.cls)(model, **options)

    def _describe(self, option: str) -> str:
        if option == self.trained_file and self.trained_by:
            return f"the file written by `{self.trained_by}`"
        return f"see help(cams.{self.cls.__name__})"


_METHODS: Dict[str, Method] = {}
_DISCOVERED = False


def _signature_of(fn) -> Dict[str, inspect.Parameter]:
    return {n: p for n, p in inspect.signature(fn).parameters.items() if n not in ("self", "cls")}


def _order_of(cls) -> Tuple[int, int]:
    """(index of the declaring module in METHOD_MODULES, or after them all; declaration count)."""
    parts = cls.__module__.split(".")
    module = parts[2] if parts[:2] == ["cams", "methods"] and len(parts) > 2 else None
    rank = METHOD_MODULES.index(module) if module in METHOD_MODULES else len(METHOD_MODULES)
    return rank, len(_METHODS)


def register(name: str, *, title: str, family: str, cost: str, paper: str, formula: str, gradient: bool,
             trained_file: Optional[str] = None, trained_by: Optional[str] = None, gap_dense_head: bool = False,
             second_network: Optional[str] = None, build: Optional[Callable] = None, quick: Optional[Dict] = None,
             attention: bool = False):
    """Class decorator declaring an explainer under `name` (see the module docstring and `Method`)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")

    def declare(cls):
        known = _METHODS.get(name)
        if known is not None and known.cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"method name {name!r} is already taken by {known.cls.__qualname__}")
        order = known.order if known is not None else _order_of(cls)
        spec = Method(name, title, family, cost, paper, formula, cls, gradient, trained_file, trained_by,
                      gap_dense_head, second_network, build, dict(quick or {}), order, attention)
        _METHODS[name] = spec
        cls.method = spec
        return cls

    return declare


def _discover() -> None:
    """Import the modules of METHOD_MODULES once, so their @register lines run."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    for module in METHOD_MODULES:
        importlib.import_module(f"cams.methods.{module}")
    _DISCOVERED = True


def methods() -> Dict[str, Method]:
    """All registered methods, in table order (METHOD_MODULES, then declaration; others after)."""
    _discover()
    return {m.name: m for m in sorted(_METHODS.values(), key=lambda m: m.order)}


def names() -> List[str]:
    """Command-line names of the registered methods, in table order."""
    return list(methods())


def get(name: str) -> Method:
    """The method registered as `name` (case-insensitive); a ValueError lists the choices."""
    found = methods().get(str(name).strip().lower())
    if found is None:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(names())}")
    return found


def title(name: str) -> str:
    """The title of a registered method, or `name` itself for anything else (e.g. an L-CAM variant)."""
    found = methods().get(name)
    return found.title if found is not None else name


def parse_methods(text: str, allowed: Optional[Sequence[str]] = None) -> List[str]:
    """Validate a comma-separated `--methods` value; returns the names in order."""
    choices = list(allowed) if allowed is not None else names()
    chosen = [m.strip().lower() for m in str(text).split(",") if m.strip()]
    if not chosen:
        raise ValueError(f"no method given; choose from {', '.join(choices)}")
    unknown = [m for m in chosen if m not in choices]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; choose from {', '.join(choices)}")
    return chosen


def make_explainer(name: str, model, **options):
    """Build the explainer registered as `name` for `model`.

    Args:
        name: a command-line name, e.g. "gradcam", "scorecam", "layercam" (see `names()`).
        model: the Keras classifier.
        **options: the class's own options (`n_masks=1000`, ...); `layer`, `batch_size` and
            `seed` are dropped for methods that do not take them.

    Returns:
        The explainer: `explainer(images, targets=None) -> (N, H, W) float32 maps in [0, 1]`.
    """
    return get(name).make(model, **options)


def build_explainers(model, chosen, *, layer=None, trained_file: Optional[str] = None, **options) -> Dict[str, object]:
    """{name: explainer} for several methods on one model, as command lines and Beam workers build them.

    Args:
        model: the Keras model.
        chosen: a comma-separated `--methods` value or a sequence of registered names (repeats dropped).
        layer: the feature layer of the methods that read one (None: each method's default).
        trained_file: the file given to methods that need one (`Method.trained_file`, L-CAM's `path`).
        **options: further options for every method (shared ones are dropped where not taken).

    Returns:
        The explainers in the order given.
    """
    picked = parse_methods(chosen) if isinstance(chosen, str) else [get(n).name for n in chosen]
    explainers = {}
    for name in dict.fromkeys(picked):
        method = get(name)
        extra = {method.trained_file: trained_file} if method.trained_file and trained_file is not None else {}
        explainers[name] = method.make(model, layer=layer, **options, **extra)
    return explainers


def help_text(allowed: Optional[Sequence[str]] = None) -> str:
    """'gradcam (Grad-CAM), gradcam++ (Grad-CAM++), ...' for a command line's --help."""
    table = methods()
    return ", ".join(f"{n} ({table[n].title})" for n in (allowed or table))


def needs_text(method: Method) -> str:
    """What a method needs besides the model's outputs, in words ("layer, gradient")."""
    needs = [word for word, flag in (("layer", method.uses_layer), ("gradient", method.gradient),
                                     ("GAP + Dense head", method.gap_dense_head),
                                     ("attention layers", method.attention)) if flag]
    if method.trained_file:
        needs.append(f"file from `{method.trained_by}`" if method.trained_by else "trained file")
    if method.second_network:
        needs.append(method.second_network)
    return ", ".join(needs) or "outputs only"


def markdown_table() -> str:
    """The README's methods table: name, title, paper, formula and cost of every method."""
    lines = ["| `--methods` | class | method | paper | map | needs | cost per image |", "|---|---|---|---|---|---|---|"]
    for m in methods().values():
        lines.append(f"| `{m.name}` | `cams.{m.cls.__name__}` | {m.title} | {m.paper} | {m.formula} | {needs_text(m)} | {m.cost} |")
    return "\n".join(lines) + "\n"
