#!/usr/bin/env python
"""Developer check (not part of the test suite: torch is not a dependency of cams): our CAMs
against pytorch-grad-cam 1.5.7 and torchcam on the same tiny CNN with identical weights.

    pip install torch==2.13.0 (CPU) ; pip install --no-deps grad-cam==1.5.7 torchcam ttach
    python scripts/check_reference_pytorch.py

The CNN uses 'same' convolutions, so the feature maps have the input's resolution and no
resizing convention (cv2 vs TensorFlow bilinear) enters the comparison: the maps are compared
pixel for pixel at feature = input resolution. It prints, per method, the max absolute difference
and the correlation with the peer, and says where the peer departs from the paper (we follow the
paper). pytorch-grad-cam imports torchvision at import time for image helpers this check does not
use; when torchvision is not installed a stand-in module that raises on use is registered.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import cams  # noqa: E402
from cams.methods.eigen import principal_projection  # noqa: E402

SIZE, CLASSES = 16, 5


def _stub_torchvision() -> bool:
    """Register a torchvision stand-in (its names raise when used); True when one was needed."""
    if importlib.util.find_spec("torchvision") is not None:
        return False

    def unavailable(*_args, **_kwargs):
        raise RuntimeError("torchvision is not installed; this check does not use it")

    tv, transforms, functional, ops = (types.ModuleType(n) for n in
                                       ("torchvision", "torchvision.transforms", "torchvision.transforms.functional", "torchvision.ops"))
    transforms.Compose = transforms.Normalize = transforms.ToTensor = unavailable
    functional.resize = ops.box_iou = unavailable
    tv.transforms, tv.ops, transforms.functional = transforms, ops, functional
    sys.modules.update({m.__name__: m for m in (tv, transforms, functional, ops)})
    return True


def keras_cnn(head: str, seed: int) -> keras.Model:
    """conv1 -> feat ('same' 3x3 convs, ReLU) -> GAP -> Dense ("gap") or Flatten -> Dense(32, ReLU) -> Dense ("mlp")."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inp)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="feat")(x)
    if head == "gap":
        out = keras.layers.Dense(CLASSES, name="fc")(keras.layers.GlobalAveragePooling2D()(x))
    else:
        x = keras.layers.Dense(32, activation="relu", name="fc1")(keras.layers.Flatten()(x))
        out = keras.layers.Dense(CLASSES, name="fc")(x)
    return keras.Model(inp, out, name=f"cnn_{head}")


def torch_twin(model: keras.Model, head: str):
    """The same network in PyTorch (NCHW) with the Keras weights copied."""
    import torch
    from torch import nn

    class NHWCFlatten(nn.Module):  # Keras flattens (h, w, c); torch would flatten (c, h, w)
        def forward(self, x):
            return x.permute(0, 2, 3, 1).flatten(1)

    def conv(name, cin, cout):
        layer = nn.Conv2d(cin, cout, 3, padding=1)
        kernel, bias = model.get_layer(name).get_weights()
        layer.weight.data = torch.tensor(kernel.transpose(3, 2, 0, 1).copy())
        layer.bias.data = torch.tensor(bias)
        return layer

    def dense(name):
        kernel, bias = model.get_layer(name).get_weights()
        layer = nn.Linear(*kernel.shape)
        layer.weight.data, layer.bias.data = torch.tensor(kernel.T.copy()), torch.tensor(bias)
        return layer

    parts = [("conv1", conv("conv1", 3, 8)), ("relu1", nn.ReLU()), ("conv2", conv("feat", 8, 16)), ("feat", nn.ReLU())]
    if head == "gap":
        parts += [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", dense("fc"))]
    else:
        parts += [("flatten", NHWCFlatten()), ("fc1", dense("fc1")), ("relu3", nn.ReLU()), ("fc", dense("fc"))]
    from collections import OrderedDict

    return nn.Sequential(OrderedDict(parts)).eval()


def compare(name, ours, theirs, note=""):
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    diff = np.abs(ours - theirs).max()
    corr = np.mean([np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(ours, theirs)])
    print(f"| {name} | {diff:.2e} | {corr:.4f} | {note} |", flush=True)


def normalise(maps):
    maps = np.asarray(maps, np.float64)
    lo, hi = maps.min(axis=(1, 2), keepdims=True), maps.max(axis=(1, 2), keepdims=True)
    return np.where(hi > lo, (maps - lo) / np.where(hi > lo, hi - lo, 1), 0)


class GradCAMPlusPlusWithoutAlphaNorm(cams.GradCAMPlusPlus):
    """Grad-CAM++ with alpha = g^2 / (2 g^2 + sum_ab A_ab g^3) used as is (pytorch-grad-cam's variant)."""

    def weights(self, A, d):
        import tensorflow as tf

        denom = 2.0 * d.second + d.third * tf.reduce_sum(A, axis=[1, 2], keepdims=True)
        alpha = d.second / tf.where(denom != 0.0, denom, tf.ones_like(denom))
        return tf.reduce_sum(alpha * tf.nn.relu(d.first), axis=[1, 2])


def grad_cam_lib(x, targets, mlp, tmlp, gap, tgap):
    import torch
    from pytorch_grad_cam import AblationCAM, EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy())
    chosen = [ClassifierOutputTarget(int(t)) for t in targets]
    for ours_cls, peer_cls, model, tmodel, note in [
        (cams.GradCAM, GradCAM, mlp, tmlp, ""),
        (cams.GradCAMPlusPlus, GradCAMPlusPlus, mlp, tmlp, "we normalise alpha by its spatial sum, as the authors' code "
         "and tf-keras-vis; the peer does not (next row)"),
        (GradCAMPlusPlusWithoutAlphaNorm, GradCAMPlusPlus, mlp, tmlp, "our Grad-CAM++ without that normalisation"),
        (cams.HiResCAM, HiResCAM, mlp, tmlp, ""),
        (cams.XGradCAM, XGradCAM, mlp, tmlp, ""),
        (cams.LayerCAM, LayerCAM, mlp, tmlp, "one layer; the peer fuses several layers by their mean, the paper (and we) by max with tanh scaling"),
        (cams.AblationCAM, AblationCAM, mlp, tmlp, "peer runs the whole model per ablation, we only the head"),
        (cams.AblationCAM, AblationCAM, gap, tgap, "GAP head"),
    ]:
        with peer_cls(model=tmodel, target_layers=[tmodel.feat]) as peer:
            theirs = peer(input_tensor=xt, targets=chosen)
        compare(f"{ours_cls.__name__} vs pytorch-grad-cam ({model.name})", ours_cls(model, layer="feat")(x, targets), theirs, note)
    with EigenCAM(model=tmlp, target_layers=[tmlp.feat]) as peer:
        theirs = peer(input_tensor=xt, targets=None)
    A = keras.Model(mlp.input, mlp.get_layer("feat").output)(x)
    proj = principal_projection(A).numpy()
    # the peer's map is ReLU of the projection with the SVD's arbitrary sign: compare both signs with it
    candidates = [normalise(np.maximum(sign * proj, 0)) for sign in (1, -1)]
    best = np.stack([min((c[i] for c in candidates), key=lambda m: np.abs(m - theirs[i]).max()) for i in range(len(x))])
    compare("Eigen-CAM projection vs pytorch-grad-cam (sign matched, ReLU)", best, theirs,
            "same projection; peer keeps SVD's arbitrary sign and applies ReLU; the paper (and we) keep the whole projection, sign fixed by the mean activation")
    compare("Eigen-CAM (ours, as shipped) vs pytorch-grad-cam", cams.EigenCAM(mlp, layer="feat")(x), theirs, "see above")


def torchcam_lib(x, targets, gap, tgap):
    import torch
    from torchcam.methods import CAM, ISCAM, SSCAM, ScoreCAM

    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy())

    def peer_maps(cls, **options):
        maps = []
        for i, t in enumerate(targets):
            with cls(tgap, target_layer="feat", input_shape=(3, SIZE, SIZE), **options) as extractor:
                with torch.no_grad():
                    scores = tgap(xt[i : i + 1])
                maps.append(extractor(int(t), scores)[0][0].numpy())
        return np.stack(maps)

    compare("CAM vs torchcam", cams.CAM(gap)(x, targets), peer_maps(CAM, fc_layer="fc"),
            "identical formula (no ReLU, min-max)")
    conv = ("torchcam weights = softmax over channels of the mean logit increase over the clean input; "
            "the papers (and we, as Score-CAM) use the target's softmax probability")
    compare("Score-CAM vs torchcam", cams.ScoreCAM(gap)(x, targets), peer_maps(ScoreCAM, batch_size=64), conv)
    torch.manual_seed(0)
    compare("SS-CAM (35 x std 2) vs torchcam", cams.SSCAM(gap, seed=0)(x, targets), peer_maps(SSCAM, batch_size=64),
            conv + "; noise is random on both sides")
    compare("IS-CAM (10 steps) vs torchcam", cams.ISCAM(gap)(x, targets), peer_maps(ISCAM, batch_size=64),
            conv + "; torchcam scales mask i by the running sum sum_{j<=i} j/n (up to 5.5 for n = 10), "
                   "the paper (and we) by i/n")


def main() -> int:
    stubbed = _stub_torchvision()
    print(f"Keras {keras.__version__}" + (" (torchvision stand-in registered)" if stubbed else ""))
    x = np.random.default_rng(0).random((4, SIZE, SIZE, 3)).astype("float32")
    gap, mlp = keras_cnn("gap", 1), keras_cnn("mlp", 2)
    tgap, tmlp = torch_twin(gap, "gap"), torch_twin(mlp, "mlp")
    import torch

    with torch.no_grad():
        for model, tmodel in ((gap, tgap), (mlp, tmlp)):
            same = np.abs(model.predict(x, verbose=0) - tmodel(torch.tensor(x.transpose(0, 3, 1, 2).copy())).numpy()).max()
            print(f"{model.name}: max |Keras logits - PyTorch logits| = {same:.2e}")
    targets = np.array([0, 1, 2, 3])
    print("\n| method | max abs diff | correlation | note |\n|---|---:|---:|---|")
    grad_cam_lib(x, targets, mlp, tmlp, gap, tgap)
    torchcam_lib(x, targets, gap, tgap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
