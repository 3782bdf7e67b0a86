"""keras_hub models built from tiny configs with random weights (offline): transformers (ViT with its
preprocessor, DeiT, DINOv2 with registers, Swin) and CNNs (ResNet, EfficientNet, VGG). Every
method that applies gives valid maps; the ViT classifier is saved as .keras and explained by
`cams explain`, as a user would."""
import subprocess
import sys

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")
import keras  # noqa: E402

import cams  # noqa: E402
from cams.core import model_graph  # noqa: E402
from cams.methods import registry  # noqa: E402

SIZE = 32
kh = keras_hub.models


def vit(preprocessor=True):
    keras.utils.set_random_seed(1)  # random weights whose top-1 Grad-CAM is not ReLU-clipped to zero
    backbone = kh.ViTBackbone(image_shape=(SIZE, SIZE, 3), patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
                              mlp_dim=32)
    converter = keras_hub.layers.ViTImageConverter(image_size=(SIZE, SIZE), scale=1 / 255.0)
    pre = kh.ViTImageClassifierPreprocessor(image_converter=converter) if preprocessor else None
    return kh.ViTImageClassifier(backbone=backbone, num_classes=3, preprocessor=pre)


def deit():
    backbone = kh.DeiTBackbone(image_shape=(SIZE, SIZE, 3), patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
                               intermediate_dim=32)
    return kh.DeiTImageClassifier(backbone=backbone, num_classes=3)


def dinov2():
    """The DINOv2 backbone alone (2 register tokens) with a linear head on its class token."""
    backbone = kh.DINOV2Backbone(patch_size=8, num_layers=2, hidden_dim=16, num_heads=2, intermediate_dim=32,
                                 num_register_tokens=2, image_shape=(SIZE, SIZE, 3),
                                 position_embedding_shape=(SIZE, SIZE, 3))
    inp = keras.Input((SIZE, SIZE, 3))
    tokens = backbone({"images": inp})
    return keras.Model(inp, keras.layers.Dense(3, name="head")(tokens[:, 0]), name="dinov2_head")


def swin():
    backbone = kh.SwinTransformerBackbone(image_shape=(SIZE, SIZE, 3), embed_dim=8, depths=[1, 1], num_heads=[1, 2],
                                          window_size=4, patch_size=4)
    return kh.SwinTransformerImageClassifier(backbone=backbone, num_classes=3)


def resnet():
    backbone = kh.ResNetBackbone(input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64],
                                 stackwise_num_blocks=[1], stackwise_num_strides=[1], block_type="basic_block",
                                 image_shape=(SIZE, SIZE, 3))
    return kh.ResNetImageClassifier(backbone=backbone, num_classes=3)


def efficientnet():
    backbone = kh.EfficientNetBackbone(
        stackwise_width_coefficients=[1.0, 1.0], stackwise_depth_coefficients=[1.0, 1.0],
        stackwise_kernel_sizes=[3, 3], stackwise_num_repeats=[1, 1], stackwise_input_filters=[8, 8],
        stackwise_output_filters=[8, 16], stackwise_expansion_ratios=[1, 2],
        stackwise_squeeze_and_excite_ratios=[0.0, 0.25], stackwise_strides=[1, 2],
        stackwise_block_types=["fused", "unfused"], stackwise_force_input_filters=[0, 0],
        stackwise_nores_option=[False, False], input_shape=(SIZE, SIZE, 3), num_features=32, dropout=0.0)
    return kh.EfficientNetImageClassifier(backbone=backbone, num_classes=3)


def vgg():
    backbone = kh.VGGBackbone(stackwise_num_repeats=[1, 1], stackwise_num_filters=[8, 16], image_shape=(SIZE, SIZE, 3))
    return kh.VGGImageClassifier(backbone=backbone, num_classes=3, pooling="avg")


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")


def check(maps, n=2):
    assert maps.shape == (n, SIZE, SIZE) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() == 1.0


QUICK = {"scorecam": {"max_channels": 4}, "sscam": {"max_channels": 2, "n_samples": 1},
         "iscam": {"max_channels": 2, "n_steps": 1}, "rise": {"n_masks": 16}, "ablationcam": {"batch_size": 16},
         "integratedgradients": {"steps": 2}}


#: one method per code path (the others of a family share it and are checked on CNNs by the contract tests)
ON_VIT = ("gradcam", "gradcam++", "layercam", "eigencam", "saliency", "guidedbackprop", "scorecam", "rise",
          "ablationcam", "rollout", "gradattention")


def test_methods_on_a_vit_classifier_with_its_preprocessor(x):
    model = vit()
    assert model_graph.resolve_layer(model).name == "ln_1"  # the last block's first norm (patch tokens get gradient)
    for name in ON_VIT:
        options = {"seed": 0, **registry.get(name).quick, **QUICK.get(name, {})}
        check(registry.make_explainer(name, model, **options)(x[:1]), 1)
    with pytest.raises(ValueError, match="GlobalAveragePooling2D"):
        cams.make_explainer("cam", model)


@pytest.mark.parametrize("build,layer,attention,seed", [  # seeds of random weights whose maps are not all ReLU-clipped
    (deit, None, True, 1), (dinov2, None, True, 1), (swin, None, False, 2),
    (resnet, None, False, 1), (efficientnet, None, False, 1), (vgg, "block2_conv1", False, 1),
])
def test_transformers_and_cnns_of_keras_hub(build, layer, attention, seed, x):
    keras.utils.set_random_seed(seed)
    model = build()
    check(cams.GradCAM(model, layer=layer)(x, [0, 2]))
    check(cams.ScoreCAM(model, layer=layer, max_channels=4)(x))
    if attention:
        check(cams.AttentionRollout(model)(x))
        check(cams.GradientAttention(model)(x, [0, 2]))
    else:
        with pytest.raises(ValueError, match="no keras MultiHeadAttention"):
            cams.AttentionRollout(model)


def test_a_block_inside_the_encoder_by_path_and_the_preprocessor_respected(x):
    model = vit()
    ex = cams.GradCAM(model, layer="vit_encoder/transformer_block_1/ln_1")
    assert ex.layer is model.backbone.get_layer("vit_encoder").encoder_layers[0].layer_norm_1
    check(ex(x))
    # scores are the model's own on preprocessed pixels, as predict gives them
    np.testing.assert_allclose(model_graph.logits_function(model)(x).numpy(), model.predict(x, verbose=0), atol=1e-4)


def test_cams_explain_on_a_saved_vit_classifier(tmp_path, x, capsys):
    from PIL import Image

    from cams.cli import main

    vit().save(tmp_path / "vit.keras")
    assert main(["layers", "--model", str(tmp_path / "vit.keras")]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert any(line.endswith("/vit_encoder/transformer_block_2/ln_1   (None, 17, 16)   <- default") for line in listed)
    assert any(line.endswith("/vit_patching_and_embedding/patch_embedding   (None, 4, 4, 16)") for line in listed)
    images = tmp_path / "images"
    images.mkdir()
    for i, image in enumerate(x):
        Image.fromarray(image.astype(np.uint8)).save(images / f"{i}.png")
    run = subprocess.run([sys.executable, "-m", "cams", "explain", "--model", str(tmp_path / "vit.keras"),
                          "--images", str(images), "--methods", "gradcam,layercam,scorecam,rollout", "--scale", "1",
                          "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    data = np.load(tmp_path / "out" / "maps.npz")
    for name in ("gradcam", "layercam", "scorecam", "rollout"):
        check(data[name])
    assert (tmp_path / "out" / "grid.png").stat().st_size > 0


def test_a_layer_whose_patch_tokens_get_no_gradient_is_refused_in_one_line():
    model = vit(preprocessor=False)
    with pytest.raises(ValueError) as err:
        cams.GradCAM(model, layer="vit_encoder/ln")  # after the last block: the head reads the class token only
    text = str(err.value)
    assert "\n" not in text and "zero gradient with respect to layer 'ln'" in text and "'ln_1'" in text
