"""Any layer, however deep: a layer inside a layer or inside a subclassed model is captured while the
model runs; maps through the capture equal those through the graph-node path on an equivalent model
and a Grad-CAM written by hand; the model is left exactly as it was, also for other threads."""
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

import cams
from cams.core import capture, model_graph, sublayers


class Block(keras.layers.Layer):
    """A layer owning two convolutions (no graph node of the model)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="inner")
        self.outer = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="outer")

    def call(self, x):
        return self.outer(self.inner(x))


@pytest.fixture(scope="module")
def models():
    """The same layers twice: `boxed` hides `inner` inside Block; `flat` has it as a graph node."""
    block = Block(name="block")
    inp = keras.Input((12, 12, 3))
    head = keras.layers.Dense(3, name="head")
    pool = keras.layers.GlobalAveragePooling2D()
    boxed = keras.Model(inp, head(pool(block(inp))), name="boxed")
    inp2 = keras.Input((12, 12, 3))
    flat = keras.Model(inp2, head(pool(block.outer(block.inner(inp2)))), name="flat")
    return boxed, flat, block


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).random((2, 12, 12, 3)).astype("float32")


def test_layer_by_path_suffix_object_and_callable(models):
    boxed, _, block = models
    assert model_graph.resolve_layer(boxed, "block/inner") is block.inner
    assert model_graph.resolve_layer(boxed, "inner") is block.inner
    assert model_graph.resolve_layer(boxed, block.inner) is block.inner
    assert model_graph.resolve_layer(boxed, lambda m: m.get_layer("block").inner) is block.inner
    assert model_graph.resolve_layer(boxed, lambda m: "block/outer") is block.outer
    nodes = {p: node for p, _, node in sublayers.iter_sublayers(boxed)}
    assert nodes["block"] and nodes["head"] and not nodes["block/inner"] and not nodes["block/outer"]


def test_captured_sublayer_gives_the_graph_node_maps(models, x):
    boxed, flat, block = models
    for name in ("gradcam", "scorecam"):
        through_capture = cams.make_explainer(name, boxed, layer="block/inner")(x, [0, 2])
        through_graph = cams.make_explainer(name, flat, layer=block.inner)(x, [0, 2])
        np.testing.assert_allclose(through_capture, through_graph, atol=1e-5, err_msg=name)
        assert through_capture.max() == 1.0


def test_model_is_left_untouched(models, x):
    boxed, _, block = models
    before = boxed.predict(x, verbose=0)
    cams.GradCAM(boxed, layer="block/inner")(x)
    assert "call" not in vars(block.inner) and capture.installed() == 0
    with pytest.raises(RuntimeError):
        with capture.capturing({block.inner: lambda call, a, k: call(*a, **k)}):
            raise RuntimeError("boom")
    assert "call" not in vars(block.inner) and capture.installed() == 0
    np.testing.assert_array_equal(boxed.predict(x, verbose=0), before)


def test_a_capture_acts_for_its_own_thread_only(models, x):
    _, _, block = models
    plain = block.inner(x).numpy()
    started, release, seen = threading.Event(), threading.Event(), {}

    def hold():
        with capture.capturing({block.inner: lambda call, a, k: call(*a, **k) + 100.0}):
            seen["inside"] = block.inner(x).numpy()
            started.set()
            release.wait(10)

    worker = threading.Thread(target=hold)
    worker.start()
    started.wait(10)
    try:
        other = block.inner(x).numpy()  # this thread: the layer's own output
    finally:
        release.set()
        worker.join()
    np.testing.assert_array_equal(other, plain)
    np.testing.assert_allclose(seen["inside"], plain + 100.0)
    assert capture.installed() == 0


class Sub(keras.Model):
    def __init__(self):
        super().__init__(name="sub")
        self.conv = keras.layers.Conv2D(4, 3, activation="relu", name="conv")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.dense = keras.layers.Dense(3, activation="softmax", name="dense")

    def call(self, x):
        return self.dense(self.pool(self.conv(x)))


def test_subclassed_model_gradcam_equals_a_hand_written_one(x):
    sub = Sub()
    sub(x)
    ex = cams.GradCAM(sub)
    assert ex.layer is sub.conv and ex.n_classes == 3
    maps = ex(x, [1, 1])
    with tf.GradientTape() as tape:
        A = sub.conv(x)
        tape.watch(A)
        logits = tf.matmul(sub.pool(A), sub.dense.kernel) + sub.dense.bias  # pre-softmax
        score = tf.reduce_sum(logits[:, 1])
    g = tape.gradient(score, A).numpy()
    raw = np.maximum((A.numpy() * g.mean(axis=(1, 2), keepdims=True)).sum(-1), 0)
    expected = tf.image.resize(raw[..., None], (12, 12), method="bilinear")[..., 0].numpy()
    lo, hi = expected.min(axis=(1, 2), keepdims=True), expected.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(maps, (expected - lo) / (hi - lo), atol=1e-4)
    assert "call" not in vars(sub.dense)


def test_an_ambiguous_or_unknown_name_is_one_line():
    inp = keras.Input((8, 8, 3))
    b1, b2 = Block(name="b1"), Block(name="b2")
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(b2(b1(inp)))))
    with pytest.raises(ValueError, match=r"2 layers of model .* match 'inner'; give one path: b1/inner, b2/inner"):
        cams.GradCAM(model, layer="inner")
    with pytest.raises(ValueError, match="no layer named 'nope'.*cams layers"):
        cams.GradCAM(model, layer="nope")


def test_an_unbuilt_subclassed_model_is_one_line():
    with pytest.raises(ValueError, match=r"subclassed model 'sub' has not been built; call it once") as err:
        cams.GradCAM(Sub())
    assert "\n" not in str(err.value)


#: the rows of docs/bad_inputs.md checked by this module and its neighbours (test_tokens.py,
#: test_attention_methods.py, test_hub_models.py), by case id
CASES = {
    "cap-ambiguous-layer-name": "test_an_ambiguous_or_unknown_name_is_one_line",
    "cap-unknown-layer-name": "test_an_ambiguous_or_unknown_name_is_one_line",
    "cap-subclassed-unbuilt": "test_an_unbuilt_subclassed_model_is_one_line",
    "tok-count-no-grid": "test_a_count_that_is_no_grid_is_one_line_naming_the_counts",
    "att-model-without-attention": "test_a_cnn_is_refused_in_one_line",
    "tok-layer-without-gradient": "test_a_layer_whose_patch_tokens_get_no_gradient_is_refused_in_one_line",
}


def test_every_case_is_in_the_table():
    from pathlib import Path

    tests = Path(__file__).parent
    table = (tests.parent / "docs" / "bad_inputs.md").read_text(encoding="utf-8")
    assert [c for c in CASES if f"`{c}`" not in table] == []
    sources = "".join(p.read_text(encoding="utf-8") for p in (tests / "test_capture.py", tests / "test_tokens.py",
                                                              tests / "test_attention_methods.py", tests / "test_hub_models.py"))
    assert [t for t in CASES.values() if f"def {t}(" not in sources] == []
