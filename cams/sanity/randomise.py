"""Model-parameter randomisation (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, Sec. 3.1).

One copy of the user's model (`keras.models.clone_model` + its weights) is made once; its blocks
are re-initialised in place, each weight with the initialiser its own layer declares
(`kernel_initializer`, `bias_initializer`, BatchNormalization's `gamma_initializer`, ...), seeded
per weight from (seed, layer path, weight name). In place means the explainers built once on the
copy keep their compiled graphs (they read the variables), so a step costs its re-initialisation
and the maps it recomputes, nothing more. The user's model is never touched.

    r = Randomiser(model, seed=0)
    for step, block in r.cascading():      # top (logits) block first; blocks 1..step random
        ...explain r.model...
    for step, block in r.independent():    # block `step` alone random, the rest original
        ...

A block is, by default, each layer with weights (nested models' layers included), numbered from
the top: step 1 is the logits layer. `group_by_prefix` groups layers by a name prefix instead
(Xception's "block13_sepconv1" and "block13_sepconv2" -> "block13").
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import keras
from cams.core import model_graph

#: weight name -> the layer attributes that may hold its initialiser, tried in order
INITIALISER_ATTRIBUTES = {
    "kernel": ("kernel_initializer", "depthwise_initializer"),
    "depthwise_kernel": ("depthwise_initializer",),
    "pointwise_kernel": ("pointwise_initializer",),
    "recurrent_kernel": ("recurrent_initializer",),
}


@dataclass(frozen=True)
class Block:
    """Layers randomised together: `name` for tables, `layers` their qualified names (bottom first)."""

    name: str
    layers: Tuple[str, ...]


def weighted_layers(model) -> List[Tuple[str, keras.layers.Layer]]:
    """(qualified name, layer) of every layer holding weights, bottom first; nested models are
    entered (their own layers are listed, not the model)."""
    return [(name, layer) for name, layer, _ in model_graph.iter_layers(model)
            if not isinstance(layer, keras.Model) and layer.weights]


def layer_blocks(model) -> List[Block]:
    """One block per layer with weights, bottom first."""
    return [Block(name, (name,)) for name, _ in weighted_layers(model)]


def group_by_prefix(model, separator: str = "_") -> List[Block]:
    """Blocks of consecutive weighted layers sharing the part of their (last) name before `separator`,
    bottom first: block1_conv1, block1_conv2 -> "block1"; a name without the separator is its own block."""
    if not separator:
        raise ValueError("separator must be a non-empty string, e.g. '_'")
    blocks: List[Tuple[str, List[str]]] = []
    for name, _ in weighted_layers(model):
        leaf = name.rsplit("/", 1)[-1]
        key = leaf.split(separator, 1)[0] if separator in leaf else leaf
        if blocks and blocks[-1][0] == key:
            blocks[-1][1].append(name)
        else:
            blocks.append((key, [name]))
    return [Block(key, tuple(names)) for key, names in blocks]


def copy_model(model) -> keras.Model:
    """A separate model of the same architecture and weights (`clone_model` + `set_weights`)."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")
    try:
        clone = keras.models.clone_model(model)
    except Exception as err:  # noqa: BLE001 - subclassed or unserialisable layers
        raise ValueError(f"model {model.name!r} cannot be copied with keras.models.clone_model ({err}); the "
                         "randomisation tests need a Sequential or functional model of serialisable layers") from None
    clone.set_weights(model.get_weights())
    return clone


def _initialiser(layer, variable):
    """The initialiser `layer` declares for `variable` (by the weight's name), or None."""
    name = variable.name.rsplit("/", 1)[-1]
    for attr in INITIALISER_ATTRIBUTES.get(name, (f"{name}_initializer",)):
        init = getattr(layer, attr, None)
        if init is not None:
            return keras.initializers.get(init)
    return None


def _seeded(init, seed: int):
    """`init` rebuilt with `seed` when it takes one (random initialisers), else `init` itself."""
    config = init.get_config()
    if "seed" not in config:
        return init
    return type(init).from_config({**config, "seed": seed})


def weight_seed(seed: int, layer_path: str, weight: str) -> int:
    """A 31-bit seed from (seed, layer path, weight name): stable across runs and processes."""
    digest = hashlib.sha256(f"{seed}|{layer_path}|{weight}".encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def reinitialise(layer, layer_path: str, seed: int) -> None:
    """Assign fresh values to every weight of `layer` from its own seeded initialiser.

    Raises:
        ValueError: a weight with no initialiser the layer declares (e.g. a custom layer's).
    """
    for variable in layer.weights:
        init = _initialiser(layer, variable)
        if init is None:
            raise ValueError(f"layer {layer_path!r} ({type(layer).__name__}) declares no initialiser for its weight "
                             f"{variable.name!r}; the randomisation tests re-initialise each weight with its layer's own")
        value = _seeded(init, weight_seed(seed, layer_path, variable.name))(tuple(variable.shape), dtype=variable.dtype)
        variable.assign(value)


class Randomiser:
    """A private copy of `model` whose blocks are re-initialised step by step, in place.

    Args:
        model: the user's Keras model (Sequential or functional); never changed.
        seed: seed of the re-initialisation (the same seed gives the same random weights).
        blocks: the blocks, bottom first (default: `layer_blocks`: one per layer with weights); or a
            callable model -> blocks such as `group_by_prefix`.

    Attributes:
        model: the copy to explain (its weights change as the iterators advance).
        blocks: the blocks, bottom first, with qualified layer names in the copy.
    """

    def __init__(self, model, seed: int = 0, blocks: Optional[Sequence[Block] | Callable] = None):
        self.model = copy_model(model)
        self.seed = int(seed)
        blocks = blocks(self.model) if callable(blocks) else blocks
        self.blocks = list(blocks) if blocks is not None else layer_blocks(self.model)
        if not self.blocks:
            raise ValueError(f"model {model.name!r} has no layer with weights; there is nothing to randomise")
        self._layers: Dict[str, keras.layers.Layer] = dict(weighted_layers(self.model))
        unknown = [n for b in self.blocks for n in b.layers if n not in self._layers]
        if unknown:
            raise ValueError(f"no layer with weights named {unknown[0]!r} in model {model.name!r}; "
                             f"choose from {', '.join(self._layers)}")
        self._original = {n: [v.numpy() for v in lyr.weights] for n, lyr in self._layers.items()}

    def randomise(self, block: Block) -> None:
        """Re-initialise every layer of `block` in the copy."""
        for name in block.layers:
            reinitialise(self._layers[name], name, self.seed)

    def restore(self, block: Optional[Block] = None) -> None:
        """Put the original weights back into `block`'s layers (None: every layer)."""
        names = block.layers if block is not None else list(self._layers)
        for name in names:
            for variable, value in zip(self._layers[name].weights, self._original[name]):
                variable.assign(value)

    def top_down(self) -> List[Block]:
        """The blocks from the logits down (the order of the steps)."""
        return self.blocks[::-1]

    def cascading(self) -> Iterator[Tuple[int, Block]]:
        """Yield (step, block) for step = 1..B: the top `step` blocks of the copy are random."""
        self.restore()
        for step, block in enumerate(self.top_down(), start=1):
            self.randomise(block)
            yield step, block

    def independent(self) -> Iterator[Tuple[int, Block]]:
        """Yield (step, block) for step = 1..B: only `block` (the step-th from the top) is random."""
        self.restore()
        previous = None
        for step, block in enumerate(self.top_down(), start=1):
            if previous is not None:
                self.restore(previous)
            self.randomise(block)
            previous = block
            yield step, block

    def steps(self, mode: str) -> Iterator[Tuple[int, Block]]:
        """`cascading()` or `independent()` by name."""
        if mode not in MODES:
            raise ValueError(f"unknown randomisation mode {mode!r}; choose from {', '.join(MODES)}")
        return self.cascading() if mode == "cascading" else self.independent()


MODES = ("cascading", "independent")
