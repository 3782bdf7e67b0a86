"""Capture the output of any sublayer while a model runs: the Keras counterpart of a PyTorch forward hook.

A layer that is not a node of the model's functional graph (a block inside keras_hub's `ViTEncoder`,
a stage inside a Swin backbone, a layer of a subclassed model) cannot be reached by replaying the
graph. It is reached here instead: for the duration of one `with capturing({layer: probe}):` block,
the layer's `call` is routed through `probe`, which sees the layer's own output and returns what the
layers after it receive (the same tensor, or a replacement the explainer's tape watches).

How the model is left untouched:
  * the routing is an instance attribute `call` that shadows the class's method; it is set when
    the first capture of that layer starts and deleted (or the previous one put back) when the last
    one ends, in `finally`, so after the block the layer is exactly what it was;
  * the routing only acts for the thread that opened the block (a thread-local table of probes):
    another thread running the same model meanwhile goes straight to the layer's own `call`;
  * installs are reference-counted under a lock, so nested or concurrent captures of one layer are
    safe. Inside a `tf.function` the routing runs while the function is traced, so the compiled
    graph contains the probe's ops and nothing of the routing itself.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Callable, Dict

import tensorflow as tf

_LOCK = threading.Lock()
_LOCAL = threading.local()
#: id(layer) -> [layer, install count, the instance's own `call` before the install or _ABSENT]
_INSTALLED: Dict[int, list] = {}
_ABSENT = object()

#: probe(call, args, kwargs) -> output: runs `call(*args, **kwargs)` (the layer's own call) and
#: returns what the next layers see
Probe = Callable[[Callable, tuple, dict], object]


def _active() -> dict:
    table = getattr(_LOCAL, "probes", None)
    if table is None:
        table = _LOCAL.probes = {}
    return table


def _router(layer, original):
    key = id(layer)

    def call(*args, **kwargs):
        probes = _active().get(key)
        if not probes:
            return original(*args, **kwargs)
        return probes[-1](original, args, dict(kwargs or {}))

    # plain Python while a tf.function traces (AutoGraph would rewrite the probes' code)
    routed = tf.autograph.experimental.do_not_convert(call)
    routed.__wrapped__ = original
    return routed


def _install(layer) -> None:
    with _LOCK:
        entry = _INSTALLED.get(id(layer))
        if entry is not None:
            entry[1] += 1
            return
        previous = layer.__dict__.get("call", _ABSENT)
        object.__setattr__(layer, "call", _router(layer, layer.call))
        _INSTALLED[id(layer)] = [layer, 1, previous]


def _uninstall(layer) -> None:
    with _LOCK:
        entry = _INSTALLED[id(layer)]
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _INSTALLED[id(layer)]
        if entry[2] is _ABSENT:
            object.__delattr__(layer, "call")
        else:
            object.__setattr__(layer, "call", entry[2])


@contextlib.contextmanager
def capturing(probes: Dict[object, Probe]):
    """Route the `call` of each layer in `probes` through its probe while the block runs (this thread only).

    Args:
        probes: {layer: probe}; `probe(call, args, kwargs)` must run `call(*args, **kwargs)` (the
            layer's own computation) and return the output the rest of the model receives.

    Yields:
        None. On exit (normal or not) every layer is restored to exactly its previous state.
    """
    table = _active()
    done = []
    try:
        for layer, probe in probes.items():
            _install(layer)
            done.append(layer)
            table.setdefault(id(layer), []).append(probe)
        yield
    finally:
        for layer in reversed(done):
            stack = table.get(id(layer))
            if stack:
                stack.pop()
                if not stack:
                    del table[id(layer)]
            _uninstall(layer)


def installed() -> int:
    """How many layers currently have a capture route (0 when no capture is running anywhere)."""
    with _LOCK:
        return len(_INSTALLED)
