"""Target objects (cams.targets): each score against numpy on the model's own outputs, the int path
unchanged, closed-form segmentation and box models whose maps must fall in the mask / the box,
perturbation methods and metrics with target objects, and one-line errors for targets that do not fit."""
from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import cams
from cams import targets as T

ROOT = Path(__file__).resolve().parents[1]
S = 12  # image side


def softmax(z, axis=-1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((3, S, S, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def classifier():
    """conv -> GAP -> Dense(4) -> Softmax, plus the same model without the softmax (the numpy reference)."""
    keras.utils.set_random_seed(1)
    inp = keras.Input((S, S, 3))
    h = keras.layers.Conv2D(6, 3, activation="relu", name="conv")(inp)
    z = keras.layers.Dense(4, name="logits")(keras.layers.GlobalAveragePooling2D()(h))
    return keras.Model(inp, keras.layers.Softmax()(z)), keras.Model(inp, z)


@pytest.fixture(scope="module")
def multi_head():
    """Two outputs: 'cls' (softmax over 3) and 'reg' (2 linear units), plus a 1-unit sigmoid model."""
    keras.utils.set_random_seed(2)
    inp = keras.Input((S, S, 3))
    h = keras.layers.Conv2D(5, 3, activation="relu", name="conv")(inp)
    g = keras.layers.GlobalAveragePooling2D()(h)
    z = keras.layers.Dense(3, name="cls_z")(g)
    model = keras.Model(inp, {"cls": keras.layers.Softmax(name="cls")(z), "reg": keras.layers.Dense(2, name="reg")(g)})
    binary = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid", name="p")(g))
    return model, keras.Model(inp, z), keras.Model(inp, model.get_layer("reg").output), binary


def seg_model():
    """Closed form: feature A = (x_0, x_1) (1x1 conv, identity kernel); pre-softmax scores
    z = (A_0, A_1, -A_0 - A_1) (1x1 conv, fixed kernel), then a softmax. So for category k < 2 and a
    mask M, S = sum_M A_k, dS/dA_k = M and HiResCAM's map is ReLU(M * x_k): zero outside the mask."""
    inp = keras.Input((S, S, 3))
    a = keras.layers.Conv2D(2, 1, use_bias=False, name="feat")(inp)
    z = keras.layers.Conv2D(3, 1, use_bias=False, name="scores")(a)
    model = keras.Model(inp, keras.layers.Softmax(name="probs")(z))
    model.get_layer("feat").set_weights([np.eye(3, 2, dtype=np.float32)[None, None]])
    model.get_layer("scores").set_weights([np.array([[1, 0, -1], [0, 1, -1]], np.float32)[None, None]])
    return model


GRID = 4  # box model: anchors are the cells of a GRID x GRID grid


def anchor_boxes():
    cell = S // GRID
    return np.array([[c * cell, r * cell, (c + 1) * cell, (r + 1) * cell] for r in range(GRID) for c in range(GRID)],
                    np.float32)  # xyxy, row-major like the Reshape below


def box_model():
    """Closed form detector: feature A = (x_0, x_1); class scores of anchor (r, c) = mean of A over
    that cell (2 classes), box deltas = 0. `decode` adds the deltas to the fixed cell anchors, so the
    box of cell (r, c) matches only anchor (r, c) (IoU 1, others 0): S = mean of A_l over the cell and
    HiResCAM's map is ReLU(x_l / cell^2) inside the cell, 0 elsewhere."""
    inp = keras.Input((S, S, 3))
    a = keras.layers.Conv2D(2, 1, use_bias=False, name="feat")(inp)
    pooled = keras.layers.AveragePooling2D(S // GRID, name="cells")(a)
    scores = keras.layers.Reshape((GRID * GRID, 2), name="scores")(pooled)
    deltas = keras.layers.Reshape((GRID * GRID, 4), name="deltas")(
        keras.layers.Conv2D(4, 1, kernel_initializer="zeros", use_bias=False, name="delta_conv")(pooled))
    model = keras.Model(inp, {"deltas": deltas, "scores": scores})
    model.get_layer("feat").set_weights([np.eye(3, 2, dtype=np.float32)[None, None]])
    anchors = anchor_boxes()

    def decode(outputs, images):
        return anchors[None] + outputs["deltas"], outputs["scores"]

    return model, decode


def scores(model, x, targets, probabilities=False):
    return T.evaluate_targets(model, x, targets, probabilities=probabilities)


def test_class_targets_score_the_logits_and_their_softmax(classifier, images):
    model, logits_model = classifier
    z = logits_model.predict(images, verbose=0)
    np.testing.assert_allclose(scores(model, images, T.Class(2)), z[:, 2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores(model, images, [T.Class(0), T.Class(3), T.Class(None)]),
                               [z[0, 0], z[1, 3], z[2].max()], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores(model, images, T.ClassProbability(1)), softmax(z)[:, 1], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(scores(model, images, lambda out: out[:, 1] - out[:, 0]), z[:, 1] - z[:, 0],
                               rtol=1e-5, atol=1e-6)


def test_gradcam_with_class_objects_equals_int_targets(classifier, images):
    model, _ = classifier
    ex = cams.GradCAM(model, layer="conv")
    ints = ex(images, targets=[1, 3, 0])
    np.testing.assert_array_equal(ex(images, targets=[T.Class(1), T.Class(3), T.Class(0)]), ints)
    # the generic path (a callable target: one compiled function per kind) gives the same maps
    generic = ex(images, targets=T.Function(lambda out: out[:, 1]))
    np.testing.assert_allclose(generic, ex(images, targets=1), atol=1e-5)
    assert not np.allclose(ints[0], ex(images[:1], targets=2)[0])  # the target matters


def test_binary_regression_multilabel_and_output_against_numpy(multi_head, images):
    model, cls_z, reg, binary = multi_head
    z, r = cls_z.predict(images, verbose=0), reg.predict(images, verbose=0)
    np.testing.assert_allclose(scores(model, images, T.Output("cls", T.Class(2))), z[:, 2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores(model, images, T.Output("reg", T.Regression(1))), r[:, 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores(model, images, T.Output(1, T.Regression(0))), r[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores(model, images, T.Output("cls", T.MultiLabel([0, 2]))), z[:, 0] + z[:, 2],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores(model, images, T.Output("cls", T.ClassProbability(0)), probabilities=True),
                               softmax(z)[:, 0], rtol=1e-5, atol=1e-7)
    p = binary.predict(images, verbose=0)[:, 0]
    np.testing.assert_allclose(scores(binary, images, T.Binary(-1)), -p, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(scores(binary, images, T.Binary(-1), probabilities=True), 1 - p, rtol=1e-5, atol=1e-7)
    maps = cams.GradCAM(model, layer="conv")(images, targets=T.Output("reg", T.Regression(0)))
    assert maps.shape == (3, S, S) and np.isfinite(maps).all() and maps.max() == 1.0


def test_segmentation_score_against_numpy_and_predicted_mask(images):
    model = seg_model()
    z = keras.Model(model.input, model.get_layer("scores").output).predict(images, verbose=0)
    mask = np.zeros((S, S), np.float32)
    mask[2:6, 3:9] = 1
    np.testing.assert_allclose(scores(model, images, T.Segmentation(1, mask)), (z[..., 1] * mask).sum((1, 2)), rtol=1e-5)
    predicted = z.argmax(-1) == 0
    np.testing.assert_allclose(scores(model, images, T.Segmentation(0)), (z[..., 0] * predicted).sum((1, 2)), rtol=1e-5)
    prob = softmax(z)[..., 0]
    np.testing.assert_allclose(scores(model, images, T.Segmentation(0, mask), probabilities=True),
                               (prob * mask).sum((1, 2)) / mask.sum(), rtol=1e-5)


@pytest.mark.parametrize("method", ["hirescam", "layercam"])
def test_segmentation_map_lies_in_the_mask_closed_form(images, method):
    model = seg_model()
    mask = np.zeros((S, S), np.float32)
    mask[1:5, 6:11] = 1
    maps = cams.make_explainer(method, model, layer="feat")(images, targets=T.Segmentation(0, mask))
    expected = images[..., 0] * mask
    expected /= expected.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(maps, expected, atol=1e-5)
    inside = (maps * mask).sum() / maps.sum()
    assert inside > 0.99, inside


def test_box_score_against_numpy_and_map_in_the_box(images):
    model, decode = box_model()
    cell = S // GRID
    box = anchor_boxes()[GRID * 1 + 2] + np.array([0.4, -0.3, 0.2, 0.1], np.float32)  # IoU > 0.5 with one cell only
    target = T.BoxScore([box], [1], iou=0.5, decode=decode)
    pooled = images[..., :2].reshape(3, GRID, cell, GRID, cell, 2).mean(axis=(2, 4)).reshape(3, GRID * GRID, 2)
    iou = np.array([_iou(a, box) for a in anchor_boxes()])
    np.testing.assert_allclose(scores(model, images, target), (pooled[:, :, 1] * (iou >= 0.5)).sum(1), rtol=1e-5)
    maps = cams.HiResCAM(model, layer="feat")(images, targets=target)
    inside = np.zeros((S, S), np.float32)
    inside[cell : 2 * cell, 2 * cell : 3 * cell] = 1
    assert (maps * inside).sum() / maps.sum() > 0.99
    two = T.BoxScore([anchor_boxes()[0], anchor_boxes()[5]], [0, 1], decode=decode)  # padded batch with [target]
    np.testing.assert_allclose(scores(model, images[:2], [two, target]),
                               [pooled[0, 0, 0] + pooled[0, 5, 1], scores(model, images[1:2], target)[0]], rtol=1e-5)


def _iou(a, b):
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = np.prod(np.clip(hi - lo, 0, None))
    return inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter)


def test_perturbation_methods_use_target_objects(classifier, images):
    model, _ = classifier
    logit = T.Function(lambda out: out[:, 1])  # the generic path (not converted to class indices)
    for name, opts in (("scorecam", {}), ("rise", {"n_masks": 24, "seed": 0}), ("ablationcam", {}), ("saliency", {})):
        ex = cams.make_explainer(name, model, **opts)
        ints = ex(images[:2], targets=1)
        assert ints.shape == (2, S, S) and np.isfinite(ints).all() and ints.max() == 1.0
        # Score-CAM and RISE weigh by the softmax probability, Ablation-CAM and Saliency by the logit
        generic = ex(images[:2], targets=T.ClassProbability(1) if name in ("scorecam", "rise") else logit)
        np.testing.assert_allclose(generic, ints, atol=1e-5, err_msg=name)
    model = seg_model()
    mask = np.zeros((S, S), np.float32)
    mask[:6] = 1
    maps = cams.RISE(model, n_masks=32, seed=0)(images[:1], targets=T.Segmentation(0, mask))
    assert maps.shape == (1, S, S) and np.isfinite(maps).all() and maps.max() == 1.0


def test_metrics_take_target_objects(classifier, images):
    model, _ = classifier
    maps = cams.GradCAM(model, layer="conv")(images, targets=2)
    assert cams.metrics.ad_ic(model, images, maps, targets=T.Class(2)) == cams.metrics.ad_ic(model, images, maps, targets=2)
    np.testing.assert_allclose(cams.metrics.ad_ic(model, images, maps, targets=T.ClassProbability(2))["AD(50%)"],
                               cams.metrics.ad_ic(model, images, maps, targets=2)["AD(50%)"], rtol=1e-5)
    ins = cams.metrics.insertion_auc(model, images, maps, targets=T.ClassProbability(2), steps=4)
    assert ins == pytest.approx(cams.metrics.insertion_auc(model, images, maps, targets=2, steps=4), rel=1e-5)
    seg = seg_model()
    mask = np.zeros((S, S), np.float32)
    mask[3:8, 3:8] = 1
    smaps = cams.HiResCAM(seg, layer="feat")(images, targets=T.Segmentation(0, mask))
    out = cams.metrics.ad_ic(seg, images, smaps, targets=T.Segmentation(0, mask))
    assert set(out) == {"AD(100%)", "IC(100%)", "AD(50%)", "IC(50%)", "AD(15%)", "IC(15%)"}
    assert all(np.isfinite(v) for v in out.values())


CASES = {
    "api-target-not-a-target": (lambda m: cams.GradCAM(m["cls"])(m["x"], targets=[T.Class(0), "dog", T.Class(0)]),
                                r"a target must be a cams.targets object or a callable"),
    "api-target-ints-on-two-outputs": (lambda m: cams.GradCAM(m["multi"], layer="conv")(m["x"], targets=1),
                                       r"has 2 outputs; CAMs need one for class-index targets .*Output\('cls'"),
    "api-target-ints-on-segmentation": (lambda m: cams.GradCAM(m["seg"], layer="feat")(m["x"]),
                                        r"outputs shape \(None, 12, 12, 3\), not \(N, classes\).*Segmentation"),
    "api-target-needs-output": (lambda m: cams.GradCAM(m["multi"], layer="conv")(m["x"], targets=T.Class(1)),
                                r"Class\(1\) needs one output, model .* has 2 .*cls \(None, 3\).*Output\('cls', Class\(1\)\)"),
    "api-target-unknown-output": (lambda m: cams.GradCAM(m["multi"], layer="conv")(m["x"], targets=T.Output("box", T.Class(0))),
                                  r"no output named 'box'; its outputs: cls \(None, 3\), reg \(None, 2\)"),
    "api-target-wrong-kind": (lambda m: cams.GradCAM(m["cls"])(m["x"], targets=T.Segmentation(1)),
                              r"Segmentation\(1\) needs an output of shape \(N, h, w, categories\); .* outputs .*\(None, 4\)"),
    "api-target-class-range": (lambda m: cams.GradCAM(m["cls"])(m["x"], targets=T.ClassProbability(7)),
                               r"class 7 is out of range: the output \(None, 4\) has 4"),
    "api-target-mixed-kinds": (lambda m: cams.GradCAM(m["cls"])(m["x"], targets=[T.Class(0), T.ClassProbability(1), T.Class(0)]),
                               r"targets of one call must be of one kind: image 0 has Class\(0\), image 1 has ClassProbability\(1\)"),
    "api-target-count": (lambda m: cams.GradCAM(m["cls"])(m["x"], targets=[T.Class(0)] * 2),
                         r"one target for all images or one per image \(3\), got 2"),
    "api-target-empty-mask": (lambda m: T.Segmentation(0, np.zeros((4, 4))), r"mask is empty"),
    "api-target-box-shape": (lambda m: T.BoxScore([[1, 2, 3]], [0]), r"finite \(K, 4\) array"),
    "api-target-box-no-decoder": (lambda m: cams.GradCAM(m["multi"], layer="conv")(m["x"], targets=T.BoxScore([[0, 0, 4, 4]], [0])),
                                  r"BoxScore cannot decode the outputs of model .*: pass decode="),
    "api-target-binary-units": (lambda m: cams.GradCAM(m["cls"])(m["x"], targets=T.Binary(1)),
                                r"Binary needs a 1-unit output \(N, 1\), the model outputs \(None, 4\)"),
    "api-target-cam-class-only": (lambda m: cams.CAM(m["cls"])(m["x"], targets=T.ClassProbability(1)),
                                  r"CAM explains a class index only .* not ClassProbability\(1\)"),
    "api-target-function-shape": (lambda m: cams.GradCAM(m["cls"])(m["x"], targets=lambda out: out),
                                  r"returned shape \(None, 4\) for outputs .*; it must return one score per image, shape \(B,\)"),
}


@pytest.fixture(scope="module")
def bad_models(classifier, multi_head, images):
    return {"cls": classifier[0], "multi": multi_head[0], "seg": seg_model(), "x": images}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_targets_get_one_line(case, bad_models):
    call, pattern = CASES[case]
    with pytest.raises(ValueError) as err:
        call(bad_models)
    message = str(err.value)
    assert "\n" not in message and re.search(pattern, message), message


@pytest.fixture(scope="module")
def seg_ws(tmp_path_factory, images):
    """A saved closed-form segmentation model, a classifier, two PNG images and a mask PNG."""
    from cams_models import conv_gap_dense

    root = tmp_path_factory.mktemp("seg_cli")
    seg_model().save(root / "seg.keras")
    conv_gap_dense(size=S, softmax=True).save(root / "cls.keras")
    (root / "imgs").mkdir()
    pixels = (images[:2] * 255).astype(np.uint8)
    for i, img in enumerate(pixels):
        Image.fromarray(img).save(root / "imgs" / f"{i}.png")
    mask = np.zeros((S, S), np.uint8)
    mask[2:7, 4:10] = 255
    Image.fromarray(mask).save(root / "mask.png")
    (root / "not_a_mask.txt").write_text("x")
    return root, pixels.astype(np.float32) / 255.0, mask > 0


def test_cli_target_mask_explains_the_mask(seg_ws, tmp_path):
    root, x, mask = seg_ws
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "cams", "explain", "--model", str(root / "seg.keras"), "--images",
                          str(root / "imgs"), "--methods", "hirescam", "--layer", "feat", "--target", "1",
                          "--target-mask", str(root / "mask.png"), "--out", str(out)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    maps = np.load(out / "maps.npz")["hirescam"]
    expected = x[..., 1] * mask  # closed form: ReLU(M * x_1), normalised
    np.testing.assert_allclose(maps, expected / expected.max(axis=(1, 2), keepdims=True), atol=1e-5)
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == ["1", "1"] and all(0 < float(r["probability"]) < 1 for r in rows)


CLI_CASES = {
    "cli-target-mask-without-target": ("seg.keras", ["--target-mask", "{root}/mask.png"],
                                       r"--target-mask needs --target CLASS"),
    "cli-target-segmentation-needs-target": ("seg.keras", [], r"outputs a segmentation map \(None, 12, 12, 3\): give --target"),
    "cli-target-mask-unreadable": ("seg.keras", ["--target", "0", "--target-mask", "{root}/not_a_mask.txt"],
                                   r"--target-mask .*not_a_mask.txt: cannot read it as an image or a .npy array"),
    "cli-target-mask-on-classifier": ("cls.keras", ["--target", "1", "--target-mask", "{root}/mask.png"],
                                      r"--target-mask applies to segmentation models"),
    "cli-target-class-range": ("cls.keras", ["--target", "9"], r"--target 9 is out of range: the model has 4 classes"),
    "cli-target-negative": ("cls.keras", ["--target", "-1"], r"--target: expected a number >= 0, got -1"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_bad_targets_exit_2_with_one_line(case, seg_ws, tmp_path, capsys):
    from cams.cli import main

    root = seg_ws[0]
    model, extra, pattern = CLI_CASES[case]
    argv = ["explain", "--model", str(root / model), "--images", str(root / "imgs"), "--methods", "gradcam",
            "--out", str(tmp_path / "o"), *[a.format(root=root) for a in extra]]
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 2 and re.search(pattern, last), last


def test_every_case_is_in_the_table():
    table = (ROOT / "docs" / "bad_inputs.md").read_text(encoding="utf-8")
    missing = [case for case in [*CASES, *CLI_CASES] if f"`{case}`" not in table]
    assert not missing, f"add rows for {missing} to docs/bad_inputs.md"
