"""Targets: what an explanation explains, as a function of the model's raw outputs -> (B,) scores.

`targets=` of every explainer and metric takes class indices (an int, N ints, -1 or None for the
top-1 class) or target objects, one for all images or one per image:

    Class(c)                 S = z_c, the pre-softmax logit (what an int target means)
    ClassProbability(c)      S = softmax(z)_c
    Binary(sign=+1)          S = sign * o for a 1-unit (sigmoid) head o
    Regression(index)        S = o_index, one unit of a regression head
    MultiLabel(classes)      S = sum_{c in classes} o_c for a multi-label (sigmoid) head
    Output(name, target)     `target` applied to one output of a multi-output model
    Segmentation(k, mask)    S = sum_{p in mask} z_k(p), pre-softmax scores of category k over the
                             mask's pixels (mask None: the pixels predicted as k)
    BoxScore(boxes, labels)  S = sum over given boxes j of the raw scores of class l_j of every raw
                             prediction whose decoded box overlaps box j with IoU >= iou
    any callable             S = fn(outputs), (B,) scores

z are pre-softmax scores: `cams.core.model_graph.forward` takes a final softmax off every output,
so `outputs` is the model's output (a tensor, or its dict / list of outputs) without it.
A target is pure TensorFlow: its per-image parameters (class, mask, boxes) are stacked into
tensors (`TargetBatch`), so one compiled function per target kind serves every image.
Perturbation methods and metrics use `Bound.probabilities`, the target's confidence in [0, 1]
where one exists (softmax of a class, mean softmax over a mask, mean sigmoid of matched boxes).

This module holds the base class and the targets of vector outputs; `cams.core.dense_targets` the
segmentation and box targets; `cams.core.target_batch` the batching into tensors. `cams.targets`
gathers them all.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class OutputInfo:
    """The model's outputs: names and static shapes, in the order of `keras.tree.flatten(outputs)`."""

    model_name: str
    names: Tuple[str, ...]
    shapes: Tuple[tuple, ...]

    def describe(self) -> str:
        return ", ".join(f"{n} {s}" for n, s in zip(self.names, self.shapes))

    def only(self, index: int) -> "OutputInfo":
        return OutputInfo(self.model_name, (self.names[index],), (self.shapes[index],))


def output_info(model) -> OutputInfo:
    """Names and shapes of `model`'s outputs (dict keys for a dict of outputs, else layer names)."""
    if hasattr(model, "outputs"):
        outputs = list(model.outputs)
    else:  # a subclassed model
        from cams.core.model_graph import subclassed_outputs
        outputs = subclassed_outputs(model)
    struct = getattr(model, "_outputs_struct", None)
    if isinstance(struct, dict):
        names = tuple(str(k) for k in sorted(struct))
    else:
        names = tuple(t._keras_history.operation.name if hasattr(t, "_keras_history") else f"output_{i}"
                      for i, t in enumerate(outputs))
    return OutputInfo(model.name, names, tuple(tuple(t.shape) for t in outputs))


def class_output_error(model) -> Optional[str]:
    """None when class indices apply to `model` (one (N, C) output); else the one-line reason."""
    info = output_info(model)
    if len(info.shapes) != 1:
        return (f"model {model.name!r} has {len(info.shapes)} outputs; CAMs need one for class-index targets "
                f"(outputs: {info.describe()}): pass target objects, e.g. "
                f"targets=cams.targets.Output({info.names[0]!r}, cams.targets.Class(c))")
    if len(info.shapes[0]) != 2:
        return (f"model {model.name!r} outputs shape {info.shapes[0]}, not (N, classes): class-index targets need "
                "a classifier; pass a target object, e.g. targets=cams.targets.Segmentation(category, mask) "
                "for a segmentation map or cams.targets.Regression(index)")
    return None


def _flat(outputs) -> list:
    return keras.tree.flatten(outputs)


class Target:
    """Base class of target objects. A subclass defines:

    - `key()`: the static settings (a tuple); targets with equal keys share one compiled function;
    - `params()`: its per-image parameters, numpy arrays without the batch axis;
    - `check(info, model)`: raise a one-line ValueError when it does not fit the outputs; return the
      target to use (itself, or a copy completed from the model, e.g. a box decoder);
    - `score(outputs, params, images)`: (B,) float32, params batched (B, ...);
    - `probability(...)`: the confidence used by perturbation methods and metrics (default: score).
    """

    def key(self) -> tuple:
        return (type(self).__name__,)

    def params(self) -> tuple:
        return ()

    def check(self, info: OutputInfo, model) -> "Target":
        return self

    def score(self, outputs, params, images) -> tf.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def probability(self, outputs, params, images) -> tf.Tensor:
        return self.score(outputs, params, images)

    def resolved(self) -> "Target":
        """The target with its defaults fixed (e.g. the top-1 class, the predicted mask); see `resolve_params`."""
        return self

    def resolve_params(self, outputs, params, images) -> tuple:
        """The parameters of `resolved()` on the clean outputs: a default that depends on the prediction
        (top-1 class, predicted pixels) is fixed there, so perturbed copies keep the clean image's."""
        return params

    @staticmethod
    def stack(rows: Sequence[tuple]) -> tuple:
        """Per-image params -> batched arrays (n, ...); BoxScore pads its box lists."""
        return tuple(np.stack([row[i] for row in rows]) for i in range(len(rows[0]))) if rows else ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self.key()[1:]}"


class _OneOutput(Target):
    """A target that reads one output tensor: refused (one line) on a multi-output model unless wrapped in Output."""

    #: allowed ranks of the output, e.g. (2,) for (N, C)
    ranks: tuple = (2,)
    what: str = "(N, C)"

    def check(self, info, model):
        if len(info.shapes) != 1:
            raise ValueError(f"{self!r} needs one output, model {info.model_name!r} has {len(info.shapes)} "
                             f"({info.describe()}): wrap it, e.g. cams.targets.Output({info.names[0]!r}, {self!r})")
        shape = info.shapes[0]
        if len(shape) not in self.ranks:
            raise ValueError(f"{self!r} needs an output of shape {self.what}; model {info.model_name!r} "
                             f"outputs {info.describe()}")
        self.check_shape(shape)
        return self

    def check_shape(self, shape) -> None:
        pass

    @staticmethod
    def tensor(outputs) -> tf.Tensor:
        return tf.cast(_flat(outputs)[0], tf.float32)


def _index(value, name: str, allow_top1: bool = False) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < 0 and not (allow_top1 and value == -1):
        raise ValueError(f"{name} must be >= 0{' (or -1 for the top-1 class)' if allow_top1 else ''}, got {value}")
    return int(value)


def _within(index: int, size, what: str, info_shape) -> None:
    if size is not None and index >= size:
        raise ValueError(f"{what} {index} is out of range: the output {info_shape} has {size} (0..{size - 1})")


class Class(_OneOutput):
    """S = z_c, the pre-softmax logit of class c (-1 or None: the top-1 class), as an int target.

    Args:
        c: the class index.
    """

    def __init__(self, c: Optional[int] = None):
        self.c = -1 if c is None else _index(c, "Class(c)", allow_top1=True)

    def key(self):
        return ("Class",)

    def params(self):
        return (np.int32(self.c),)

    def check_shape(self, shape):
        _within(self.c, shape[-1], "class", shape)

    def _resolved(self, z, params):
        c = params[0]
        return tf.where(c < 0, tf.argmax(z, axis=-1, output_type=tf.int32), c)

    def resolve_params(self, outputs, params, images):
        return (self._resolved(self.tensor(outputs), params),)

    def __repr__(self):
        return f"{type(self).__name__}({'None' if self.c < 0 else self.c})"

    def score(self, outputs, params, images):
        z = self.tensor(outputs)
        return tf.gather(z, self._resolved(z, params), axis=1, batch_dims=1)

    def probability(self, outputs, params, images):
        z = self.tensor(outputs)
        return tf.gather(tf.nn.softmax(z, axis=-1), self._resolved(z, params), axis=1, batch_dims=1)


class ClassProbability(Class):
    """S = softmax(z)_c, the class probability (softmax of the pre-softmax logits z)."""

    def key(self):
        return ("ClassProbability",)

    def score(self, outputs, params, images):
        return self.probability(outputs, params, images)


class Binary(_OneOutput):
    """S = sign * o for a head with one unit o (sigmoid or logit): sign +1 explains "positive", -1 "negative".

    Args:
        sign: +1 or -1.
        from_logits: o is a logit (the probability is sigmoid(sign * o)); False: o is already the
            sigmoid probability p (the probability is p, or 1 - p for sign -1).
    """

    what = "(N, 1)"

    def __init__(self, sign: int = 1, from_logits: bool = False):
        if sign not in (1, -1):
            raise ValueError(f"Binary(sign) must be +1 or -1, got {sign!r}")
        self.sign, self.from_logits = int(sign), bool(from_logits)

    def key(self):
        return ("Binary", self.from_logits)

    def params(self):
        return (np.float32(self.sign),)

    def check_shape(self, shape):
        if shape[-1] != 1:
            raise ValueError(f"Binary needs a 1-unit output (N, 1), the model outputs {shape}; for a softmax "
                             "over classes use cams.targets.Class(c)")

    def score(self, outputs, params, images):
        return params[0] * self.tensor(outputs)[:, 0]

    def __repr__(self):
        return f"Binary(sign={self.sign:+d})"

    def probability(self, outputs, params, images):
        o, sign = self.tensor(outputs)[:, 0], params[0]
        if self.from_logits:
            return tf.sigmoid(sign * o)
        return tf.where(sign > 0, o, 1.0 - o)


class Regression(_OneOutput):
    """S = o_index, one unit of a regression head (its value also serves as the 'probability').

    Args:
        index: the unit of the (N, D) output.
    """

    what = "(N, D)"

    def __init__(self, index: int = 0):
        self.index = _index(index, "Regression(index)")

    def key(self):
        return ("Regression",)

    def params(self):
        return (np.int32(self.index),)

    def check_shape(self, shape):
        _within(self.index, shape[-1], "unit", shape)

    def score(self, outputs, params, images):
        return tf.gather(self.tensor(outputs), params[0], axis=1, batch_dims=1)

    def __repr__(self):
        return f"Regression({self.index})"


class MultiLabel(_OneOutput):
    """S = sum_{c in classes} o_c for a multi-label head o (sigmoid units; not softmax-normalised).

    Args:
        classes: the labels explained together (a non-empty list of indices).
        from_logits: o are logits (probability = mean sigmoid(o_c)); False: o are probabilities
            (probability = mean o_c).
    """

    def __init__(self, classes: Sequence[int], from_logits: bool = False):
        classes = [classes] if isinstance(classes, (int, np.integer)) else list(classes)
        if not classes:
            raise ValueError("MultiLabel(classes) needs at least one class")
        self.classes = tuple(_index(c, "MultiLabel class") for c in classes)
        self.from_logits = bool(from_logits)
        self._n = None

    def key(self):
        return ("MultiLabel", self.from_logits)

    def check_shape(self, shape):
        for c in self.classes:
            _within(c, shape[-1], "label", shape)
        self._n = shape[-1]

    def params(self):
        hot = np.zeros((self._n or max(self.classes) + 1,), np.float32)
        hot[list(self.classes)] = 1.0
        return (hot,)

    def score(self, outputs, params, images):
        return tf.reduce_sum(self.tensor(outputs) * params[0], axis=-1)

    def __repr__(self):
        return f"MultiLabel({list(self.classes)})"

    def probability(self, outputs, params, images):
        o = self.tensor(outputs)
        p = tf.sigmoid(o) if self.from_logits else o
        return tf.reduce_sum(p * params[0], axis=-1) / tf.reduce_sum(params[0], axis=-1)


class Output(Target):
    """`target` applied to one output of a multi-output model, chosen by name or position.

    Args:
        output: the output's name (a dict key of the model's outputs, or its layer's name) or its index
            in `model.outputs`.
        target: any target object or callable for that output.
    """

    def __init__(self, output, target):
        if not isinstance(output, (str, int, np.integer)) or isinstance(output, bool):
            raise ValueError(f"Output(output, target): output must be a name or an index, got {output!r}")
        self.output, self.inner, self.index = output, as_target(target), None

    def key(self):
        return ("Output", self.index, self.inner.key())

    def params(self):
        return self.inner.params()

    def stack(self, rows):
        return self.inner.stack(rows)

    def check(self, info, model):
        if isinstance(self.output, str):
            if self.output not in info.names:
                raise ValueError(f"model {info.model_name!r} has no output named {self.output!r}; its outputs: "
                                 f"{info.describe()}")
            index = info.names.index(self.output)
        else:
            index = int(self.output)
            if not 0 <= index < len(info.names):
                raise ValueError(f"output index {index} is out of range: model {info.model_name!r} has "
                                 f"{len(info.names)} outputs ({info.describe()})")
        checked = Output(index, self.inner.check(info.only(index), model))
        checked.index = index
        return checked

    def _pick(self, outputs):
        return _flat(outputs)[self.index]

    def resolved(self):
        fixed = Output(self.index, self.inner.resolved())
        fixed.index = self.index
        return fixed

    def resolve_params(self, outputs, params, images):
        return self.inner.resolve_params(self._pick(outputs), params, images)

    def score(self, outputs, params, images):
        return self.inner.score(self._pick(outputs), params, images)

    def probability(self, outputs, params, images):
        return self.inner.probability(self._pick(outputs), params, images)

    def __repr__(self):
        return f"Output({self.output!r}, {self.inner!r})"


class Function(Target):
    """Any callable `fn(outputs) -> (B,)` scores, outputs as the model gives them (before a final softmax)."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def key(self):
        return ("Function", id(self.fn))

    def check(self, info, model):
        """Run `fn` once on zero outputs of the model's shapes (2 images), so a wrong shape is one line here."""
        zeros = [tf.zeros([2, *(1 if d is None else d for d in shape[1:])]) for shape in info.shapes]
        struct = getattr(model, "_outputs_struct", None)
        outputs = keras.tree.pack_sequence_as(struct, zeros) if len(zeros) > 1 and struct is not None else (
            zeros[0] if len(zeros) == 1 else zeros)
        shape = tuple(tf.convert_to_tensor(self.fn(outputs)).shape)
        if shape != (2,):
            raise ValueError(f"the target function {getattr(self.fn, '__name__', self.fn)!r} returned shape "
                             f"{(None, *shape[1:]) if shape else shape} for outputs {info.describe()}; it must "
                             "return one score per image, shape (B,)")
        return self

    def score(self, outputs, params, images):
        return tf.cast(self.fn(outputs), tf.float32)

    def __repr__(self):
        return f"Function({getattr(self.fn, '__name__', self.fn)!r})"


def as_target(value) -> Target:
    """`value` as a Target: a Target is kept, a callable becomes `Function(value)`."""
    if isinstance(value, Target):
        return value
    if callable(value) and not isinstance(value, (type, np.ndarray)):
        return Function(value)
    raise ValueError(f"a target must be a cams.targets object or a callable outputs -> (B,) scores, got {value!r}")


def is_target_objects(targets) -> bool:
    """True when `targets` are target objects (one, or a list of them) rather than class indices."""
    if isinstance(targets, Target) or (callable(targets) and not isinstance(targets, (type, np.ndarray))):
        return True
    if isinstance(targets, (list, tuple)) and targets:
        return any(isinstance(t, Target) or (callable(t) and not isinstance(t, type)) for t in targets)
    return False

