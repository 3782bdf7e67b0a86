"""Token sequences (N, T, D) of vision transformers as feature grids (N, h, w, D).

A ViT-family layer outputs T = p + h w tokens: p leading tokens that are no image patch (the class
token; DeiT's distillation token; DINOv2's register tokens) followed by the h x w patch tokens in
row-major order. The grid keeps the patch tokens: A = reshape(tokens[:, p:], (N, h, w, D)), with
h = H / patch and w = W / patch for an H x W input. Swin's stage outputs (N, H' W', C) are the case
p = 0; a 4-D (N, H, W, C) output needs nothing.

`TokenGrid` is that map R (a selection and a reshape, so linear) with its adjoint R^T (the grid put
back in the token positions, zeros for the p leading tokens), which lets the model run on
`tokens + R^T(new_grid - grid)`: the value is unchanged when new_grid = grid, and the derivative of
the score with respect to the grid is R(dS/dtokens), pytorch-grad-cam's `reshape_transform`
applied to the gradient.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import tensorflow as tf

#: the most leading non-patch tokens searched for (class + distillation + registers)
MAX_PREFIX = 16


@dataclass(frozen=True)
class TokenGrid:
    """R: (N, p + h w, D) tokens -> (N, h, w, D) grid, and its adjoint."""

    prefix: int
    h: int
    w: int

    def to_grid(self, tokens: tf.Tensor) -> tf.Tensor:
        """The patch tokens as a grid (N, h, w, D)."""
        return tf.reshape(tokens[:, self.prefix:], (-1, self.h, self.w, tokens.shape[-1]))

    def adjoint(self, grid: tf.Tensor, tokens: tf.Tensor) -> tf.Tensor:
        """R^T: the grid back in the patch positions of a token tensor shaped like `tokens`, zeros elsewhere."""
        flat = tf.reshape(grid, (-1, self.h * self.w, grid.shape[-1]))
        return tf.pad(flat, [[0, 0], [self.prefix, 0], [0, 0]])


class CustomGrid:
    """A user's `reshape` callable (tokens -> (N, h, w, D)) as R; the adjoint comes from autodiff.

    R must be linear in the tokens (a selection, a reshape, a transpose), as token reshapes are; its
    adjoint is then the vector-Jacobian product R^T v = d<R(u), v>/du.
    """

    def __init__(self, reshape: Callable):
        self.reshape = reshape

    def to_grid(self, tokens: tf.Tensor) -> tf.Tensor:
        return self.reshape(tokens)

    def adjoint(self, grid: tf.Tensor, tokens: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(tokens)
            image = self.reshape(tokens)
        return tape.gradient(image, tokens, output_gradients=tf.cast(grid, image.dtype))


def _config_prefix(model) -> Optional[int]:
    """Leading non-patch tokens the model's (backbone's) config declares, or None when it declares none."""
    backbone = getattr(model, "backbone", None) or model
    config = {}
    try:
        config = backbone.get_config()
    except (NotImplementedError, TypeError, AttributeError):
        pass
    if "num_register_tokens" in config:  # DINOv2: class token + registers
        return 1 + int(config["num_register_tokens"] or 0)
    if "use_class_token" in config:  # ViT
        return int(bool(config["use_class_token"]))
    if type(backbone).__name__.startswith("DeiT"):  # class + distillation tokens
        return 2
    return None


def _grid_of(n: int, size: Tuple[int, int]) -> Optional[Tuple[int, int]]:
    """(h, w) with h w = n, h / w = H / W and H, W multiples of h, w; None when there is none."""
    height, width = size
    for h in range(1, math.isqrt(n * max(height, 1)) + 2):
        if n % h:
            continue
        w = n // h
        if h * width == w * height and height % h == 0 and width % w == 0:
            return h, w
    return None


def token_grid(n_tokens: int, size: Sequence[int], model=None, layer_name: str = "layer") -> TokenGrid:
    """The TokenGrid of a layer with `n_tokens` tokens for an input of `size` = (H, W).

    The leading-token count p comes from the model's config when it declares one (ViT's class token,
    DINOv2's `num_register_tokens`, DeiT's two) and leaves an h x w grid; otherwise the smallest
    p <= MAX_PREFIX that leaves a grid with the input's aspect ratio and a whole patch size.

    Raises:
        ValueError: one line naming the token count and the input size when no p gives a grid.
    """
    size = (int(size[0]), int(size[1]))
    declared = _config_prefix(model) if model is not None else None
    order = ([declared] if declared is not None else []) + list(range(0, min(MAX_PREFIX, n_tokens - 1) + 1))
    for prefix in order:
        if 0 <= prefix < n_tokens:
            found = _grid_of(n_tokens - prefix, size)
            if found is not None:
                return TokenGrid(prefix, *found)
    raise ValueError(
        f"layer {layer_name!r} outputs {n_tokens} tokens for a {size[0]}x{size[1]} input: no count of leading "
        f"class/register tokens (0-{MAX_PREFIX}) leaves an h x w patch grid of that aspect ratio; give "
        "reshape=callable (tokens (N, T, D) -> grid (N, h, w, D))")
