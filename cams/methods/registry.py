"""The method registry: every explainer is declared once, beside its class.

    @register("xgradcam", title="XGrad-CAM", family="gradient", cost="1 forward + head backward",
              paper="Fu et al., BMVC 2020", formula="w_k = sum_ij (A_ij^k / sum_ab A_ab^k) dS/dA_ij^k")
    class XGradCAM(GradientCAM): ...

Everything that names methods reads this table: `cams.make_explainer`, the `--methods` option of
every command line, the titles of figures and tables, the README's methods table, the contract
tests and the benchmark. Method modules are found by walking the `cams.methods` package, so a new
method is one new module under `cams/methods/` with one `@register` line.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

FAMILIES = ("gradient", "perturbation", "learned", "edge")
#: options that command lines pass to every method; a method that does not take one ignores it
SHARED_OPTIONS = ("layer", "batch_size", "seed")


@dataclass(frozen=True)
class Method:
    """One registered explainer.

    Attributes:
        name: command-line name (`--methods gradcam,xgradcam`), lower case.
        title: the name printed in figures and tables ("XGrad-CAM").
        family: "gradient", "perturbation", "learned" or "edge".
        cost: forward passes per image, in words ("K + 1 forwards").
        paper: authors, venue and year.
        formula: the map in one line.
        cls: the explainer class.
        build: (model, **options) -> explainer; default `cls(model, **options)`.
        quick: small options for fast runs (tests, demos, the benchmark on a CPU).
    """

    name: str
    title: str
    family: str
    cost: str
    paper: str
    formula: str
    cls: type
    build: Optional[Callable] = None
    quick: Dict = field(default_factory=dict)

    @property
    def options(self) -> set:
        """Names of the options the explainer takes (besides the model)."""
        return (_parameters(self.build) if self.build else _parameters(self.cls)) - {"model"}

    @property
    def uses_layer(self) -> bool:
        """True when the method reads the activations of a feature layer (`layer=` option)."""
        return "layer" in _parameters(self.cls)

    def make(self, model, **options):
        """Build this explainer for `model`; shared options it does not take are dropped."""
        for key in [k for k in options if k not in self.options]:
            if key not in SHARED_OPTIONS:
                raise ValueError(f"method {self.name!r} has no option {key!r}; it takes: {', '.join(sorted(self.options))}")
            del options[key]
        return (self.build or self.cls)(model, **options)


_METHODS: Dict[str, Method] = {}
_DISCOVERED = False


def _parameters(fn) -> set:
    return set(inspect.signature(fn).parameters) - {"self", "cls"}


def register(name: str, *, title: str, family: str, cost: str, paper: str, formula: str,
             build: Optional[Callable] = None, quick: Optional[Dict] = None):
    """Class decorator declaring an explainer under `name` (see the module docstring)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")

    def declare(cls):
        known = _METHODS.get(name)
        if known is not None and known.cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"method name {name!r} is already taken by {known.cls.__qualname__}")
        spec = Method(name, title, family, cost, paper, formula, cls, build, dict(quick or {}))
        _METHODS[name] = spec
        cls.method = spec
        return cls

    return declare


def _discover() -> None:
    """Import every module of the `cams.methods` package once, so their @register lines run."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    package = importlib.import_module("cams.methods")
    for info in pkgutil.walk_packages(package.__path__, prefix="cams.methods."):
        importlib.import_module(info.name)
    _DISCOVERED = True


def methods(family: Optional[str] = None) -> Dict[str, Method]:
    """All registered methods (by family, then in declaration order), optionally of one family."""
    _discover()
    ordered = sorted(_METHODS.values(), key=lambda m: FAMILIES.index(m.family))
    return {m.name: m for m in ordered if family is None or m.family == family}


def names(family: Optional[str] = None) -> List[str]:
    """Command-line names of the registered methods."""
    return list(methods(family))


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


def help_text(allowed: Optional[Sequence[str]] = None) -> str:
    """'gradcam (Grad-CAM), gradcam++ (Grad-CAM++), ...' for a command line's --help."""
    table = methods()
    return ", ".join(f"{n} ({table[n].title})" for n in (allowed or table))


def markdown_table() -> str:
    """The README's methods table: name, title, paper, formula and cost of every method."""
    lines = ["| `--methods` | class | method | paper | map | cost per image |", "|---|---|---|---|---|---|"]
    for m in methods().values():
        lines.append(f"| `{m.name}` | `cams.{m.cls.__name__}` | {m.title} | {m.paper} | {m.formula} | {m.cost} |")
    return "\n".join(lines) + "\n"
