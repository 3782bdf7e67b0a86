"""L-CAM training through keras `fit` (AttentionTrainer + keras SGD + schedule) equals the
authors' training loop, written here from the paper's equations (Gkartzonika et al., ECCV-W 2022,
Eq. 3-8) and the official optimiser (torch.optim.SGD, momentum 0.9, Nesterov, coupled weight decay
5e-4, biases at 2x the learning rate, LR x0.75 per epoch)."""
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import cams
from cams.core.model_graph import forward, resolve_layer
from cams.methods import lcam as L
from cams_models import conv_gap_dense, images

STEPS, BATCH, LR = 4, 6, 0.5


def reference_masks_and_logits(model, layer, mode, x, labels, kernel, bias):
    """Paper Eq. 3-5: a = sigmoid(F W + b); Fm: head(a_c * F); Img: model(x * up(a_c))."""
    def mask(A):
        a = tf.sigmoid(tf.einsum("nhwk,kc->nhwc", A, kernel) + bias)
        return tf.gather(tf.transpose(a, [0, 3, 1, 2]), labels, axis=1, batch_dims=1)

    if mode == "fm":
        out = []

        def replace(A):
            out.append(mask(A))
            return A * out[0][..., None]

        _, logits = forward(model, x, layer, replace=replace)
        return out[0], logits
    A, _ = forward(model, x, layer)
    m = mask(A)
    _, logits = forward(model, x * tf.image.resize(m[..., None], x.shape[1:3], method="bilinear"))
    return m, logits


def reference_training(model, layer, mode, batches, kernel, bias, epochs, wd=5e-4, momentum=0.9):
    """The hand-written loop the Keras training replaced: torch SGD(nesterov, weight_decay) per step
    d = g + wd p;  buf = momentum buf + d;  p -= lr (d + momentum buf); bias LR x2; LR x0.75 per epoch."""
    params = [tf.Variable(kernel), tf.Variable(bias)]
    bufs = [np.zeros_like(kernel), np.zeros_like(bias)]
    for epoch in range(epochs):
        lr = LR * 0.75 ** epoch
        for x in batches:
            x = tf.constant(x)
            labels = tf.argmax(forward(model, x)[1], -1, output_type=tf.int32)  # model-truth labels
            with tf.GradientTape() as tape:
                m, logits = reference_masks_and_logits(model, layer, mode, x, labels, *params)
                loss = L.lcam_loss(logits, labels, m)["loss"]
            grads = tape.gradient(loss, params)
            for i, (p, g, mult) in enumerate(zip(params, grads, (1.0, 2.0))):
                d = g.numpy() + wd * p.numpy()
                bufs[i] = momentum * bufs[i] + d
                p.assign(p.numpy() - lr * mult * (d + momentum * bufs[i]))
    return [p.numpy() for p in params]


@pytest.mark.parametrize("mode,steps_per_execution", [("img", 1), ("fm", 2)])
def test_keras_fit_equals_the_reference_loop_within_an_epoch(mode, steps_per_execution):
    keras.utils.set_random_seed(0)
    model = conv_gap_dense(size=16, softmax=True)
    x = images(STEPS * BATCH, size=16, seed=2)
    lc = cams.LCAM.train(model, x, mode=mode, epochs=1, batch_size=BATCH, learning_rate=LR, seed=3, verbose=0,
                         steps_per_execution=steps_per_execution)
    k0, b0 = L.initial_weights(lc.channels, lc.n_classes, seed=3)
    layer = resolve_layer(model, None)
    k, b = reference_training(model, layer, mode, np.split(x, STEPS), k0, b0, epochs=1)
    assert np.abs(lc.kernel.numpy() - k0).max() > 1e-2  # the weights moved
    np.testing.assert_allclose(lc.kernel.numpy(), k, rtol=0, atol=2e-5)
    np.testing.assert_allclose(lc.bias.numpy(), b, rtol=0, atol=2e-5)


@pytest.mark.parametrize("mode", ["img", "fm"])
def test_keras_fit_follows_the_reference_loop_across_epochs(mode):
    """At an epoch boundary Keras' momentum (buffer of LR-scaled steps) and torch's (buffer of
    gradients, scaled by the new LR) differ by momentum * (LR change) * buffer. With 2 steps per
    epoch and LR 0.5 (boundary effects at their largest) the drift after 3 epochs was 13% of the
    distance the weights moved; with ImageNet's thousands of steps per epoch it is one step in
    thousands."""
    keras.utils.set_random_seed(0)
    model = conv_gap_dense(size=16, softmax=True)
    x = images(2 * BATCH, size=16, seed=4)
    lc = cams.LCAM.train(model, x, mode=mode, epochs=3, batch_size=BATCH, learning_rate=LR, seed=5, verbose=0)
    k0, b0 = L.initial_weights(lc.channels, lc.n_classes, seed=5)
    k, b = reference_training(model, resolve_layer(model, None), mode, np.split(x, 2), k0, b0, epochs=3)
    moved = np.abs(k - k0).max()
    assert np.abs(lc.kernel.numpy() - k).max() < 0.2 * moved
    assert lc.history["lr"] == pytest.approx([LR, LR * 0.75, LR * 0.75 ** 2])


# ---------------------------------------------------------------- steps_per_execution: "auto" and ints
def _train(x, spe, **kw):
    keras.utils.set_random_seed(0)
    model = conv_gap_dense(size=16, softmax=True)
    args = dict(mode="fm", epochs=2, batch_size=BATCH, learning_rate=LR, seed=3, verbose=0)
    return cams.LCAM.train(model, x, steps_per_execution=spe, **{**args, **kw})


def test_the_auto_rule():
    rule = L.explainer.auto_steps_per_execution
    assert rule(0.060, 100) == 1 and rule(0.050, 100) == 1  # a long step: one per call
    assert rule(0.040, 100) == 5  # ceil(200 ms / 40 ms), a divisor of 100
    assert rule(0.020, 100) == 10 and rule(0.008, 100) == 25 and rule(0.008, 24) == 24
    assert rule(0.001, 1000) == 25  # at most 32: the largest divisor of 1000 up to 32
    assert rule(0.001, 6) == 6  # at most the steps of an epoch
    assert rule(0.001, 37) == 1 and rule(0.001, 37, whole_epoch=True) == 32  # a prime: 1 on an endless stream
    assert rule(0.024, 10) == 5 and rule(0.024, 10, whole_epoch=True) == 9


def test_auto_runs_several_steps_per_call_and_trains_the_same_weights():
    x = images(STEPS * BATCH, size=16, seed=2)
    auto = _train(x, "auto")
    k = auto.settings["steps_per_execution"]
    assert k == STEPS  # a tiny model's step takes ~1 ms: as many as the epoch has (4)
    assert 0 < auto.settings["step_ms_estimate"] < 50
    given = _train(x, k)
    assert given.settings["steps_per_execution"] == k and given.settings["step_ms_estimate"] is None
    one = _train(x, 1)
    assert np.abs(auto.kernel.numpy() - L.initial_weights(auto.channels, auto.n_classes, seed=3)[0]).max() > 1e-2
    np.testing.assert_array_equal(auto.kernel.numpy(), given.kernel.numpy())
    np.testing.assert_array_equal(auto.bias.numpy(), given.bias.numpy())
    np.testing.assert_allclose(auto.kernel.numpy(), one.kernel.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(auto.history["loss"], one.history["loss"], rtol=1e-5)
    assert auto.history["images"] == one.history["images"] == [STEPS * BATCH] * 2
    three = _train(x, 3)  # a whole pass over finite data: the epoch's second call ends with the data
    assert three.history["images"] == [STEPS * BATCH] * 2
    np.testing.assert_allclose(three.kernel.numpy(), one.kernel.numpy(), rtol=0, atol=1e-6)


def test_auto_on_an_endless_stream_divides_the_epoch():
    """A repeated data set with steps_per_epoch=6: Keras would read past the epoch for a k that does
    not divide 6 (2 calls of 4 = 8 steps), so auto picks a divisor and runs the same 6 steps, and
    an int that does not divide 6 is refused."""
    x = images(3 * BATCH, size=16, seed=4)
    endless = tf.data.Dataset.from_tensor_slices(x).batch(BATCH).repeat()
    auto = _train(endless, "auto", steps_per_epoch=6)
    one = _train(endless, 1, steps_per_epoch=6)
    assert auto.settings["steps_per_execution"] == 6
    assert auto.history["images"] == one.history["images"] == [6 * BATCH] * 2
    np.testing.assert_allclose(auto.kernel.numpy(), one.kernel.numpy(), rtol=0, atol=1e-6)
    three = _train(endless, 3, steps_per_epoch=6)
    assert three.history["images"] == [6 * BATCH] * 2
    np.testing.assert_allclose(three.kernel.numpy(), one.kernel.numpy(), rtol=0, atol=1e-6)
    for k, hint in ((4, "would run 8\\); use a divisor of 6, e.g. 3, or 'auto'"),
                    (8, "would run 8\\); use a divisor of 6, e.g. 6")):
        with pytest.raises(ValueError, match=f"^steps_per_execution={k} does not divide the 6 steps per epoch of this "
                                             f"endless or longer data set \\(Keras {hint}"):
            _train(endless, k, steps_per_epoch=6)


class BatchesSeen(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(batch)


def test_a_callback_of_its_own_per_batch_keeps_one_step_per_call_under_auto():
    x = images(STEPS * BATCH, size=16, seed=2)
    cb = BatchesSeen()
    lc = _train(x, "auto", callbacks=[cb], epochs=1)
    assert lc.settings["steps_per_execution"] == 1 and cb.seen == [0, 1, 2, 3]
    cb = BatchesSeen()
    lc = _train(x, 2, callbacks=[cb], epochs=1)  # given explicitly: Keras calls it every 2nd batch
    assert lc.settings["steps_per_execution"] == 2 and cb.seen == [1, 3]
    assert L.explainer.acts_per_batch([keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: None)])
    assert not L.explainer.acts_per_batch([keras.callbacks.BackupAndRestore("b"), keras.callbacks.CSVLogger("l.csv"),
                                           L.NpzCheckpoint("l.npz"), keras.callbacks.TensorBoard("tb")])


class StopAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise RuntimeError("interrupted")


def test_auto_with_backup_and_restore_and_npz_checkpoints_resumes_like_a_straight_run(tmp_path):
    x = images(STEPS * BATCH, size=16, seed=2)
    cbs = lambda d: [keras.callbacks.BackupAndRestore(str(d / "backup")), L.NpzCheckpoint(d / "lcam.npz")]
    with pytest.raises(RuntimeError, match="interrupted"):
        _train(x, "auto", callbacks=[*cbs(tmp_path / "a"), StopAfterFirstEpoch()], epochs=3,
               history_path=tmp_path / "a" / "history.json")
    assert len(cams.LCAM.read_meta(tmp_path / "a" / "lcam.npz")["history"]["loss"]) == 1
    resumed = _train(x, "auto", callbacks=cbs(tmp_path / "a"), epochs=3, history_path=tmp_path / "a" / "history.json")
    straight = _train(x, "auto", callbacks=cbs(tmp_path / "b"), epochs=3)
    assert resumed.settings["steps_per_execution"] == straight.settings["steps_per_execution"] == STEPS
    saved = cams.LCAM.read_meta(tmp_path / "a" / "lcam.npz")
    np.testing.assert_array_equal(saved["_arrays"]["kernel"], resumed.kernel.numpy())
    assert saved["settings"]["steps_per_execution"] == STEPS
    np.testing.assert_allclose(resumed.kernel.numpy(), straight.kernel.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(resumed.history["loss"], straight.history["loss"], rtol=1e-5)
    assert len(resumed.history["loss"]) == 3 and not (tmp_path / "a" / "backup").exists()


CASES = [("api-lcam-spe-text", "fast"), ("api-lcam-spe-0", 0), ("api-lcam-spe-negative", -1),
         ("api-lcam-spe-fractional", 2.5), ("api-lcam-spe-bool", True), ("api-lcam-spe-none", None)]
CLI_CASES = [("cli-lcam-spe-text", "fast"), ("cli-lcam-spe-0", "0"), ("cli-lcam-spe-fractional", "2.5")]


@pytest.mark.parametrize("value", [v for _, v in CASES], ids=[case for case, _ in CASES])
def test_bad_steps_per_execution_is_one_clear_line(value):
    line = (f"steps_per_execution must be 'auto' or a whole number >= 1, got {value!r}; "
            "pass steps_per_execution='auto' (the default) or e.g. 8")
    with pytest.raises(ValueError, match="^" + re.escape(line) + "$"):
        _train(images(BATCH, size=16), value)


@pytest.mark.parametrize("value", [v for _, v in CLI_CASES], ids=[case for case, _ in CLI_CASES])
def test_cli_bad_steps_per_execution_exits_2(value, capsys):
    from cams.cli import main

    assert main(["lcam-train", "--model", "m.keras", "--images", "imgs", "--out", "l.npz", "--steps-per-execution",
                 value]) == 2
    assert f"--steps-per-execution: expected 'auto' or a whole number >= 1, got {value!r}" in capsys.readouterr().err


MIRRORED = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, {tests!r})
import cams
from cams_models import conv_gap_dense, images
model, x = conv_gap_dense(size=16, softmax=True), images(16, size=16)
lc = cams.LCAM.train(model, x, mode="fm", epochs=1, batch_size=8, strategy="mirrored", verbose=0)
print("AUTO", lc.settings["replicas"], lc.settings["steps_per_execution"])
try:
    cams.LCAM.train(model, x, mode="fm", epochs=1, batch_size=8, strategy="mirrored", verbose=0, steps_per_execution=2)
except ValueError as err:
    print("ERROR", err)
"""


def test_mirrored_on_two_replicas_auto_is_one_and_an_int_above_one_is_refused():
    """Keras 3 fails on a step inside its while loop under MirroredStrategy (keras-team/keras#19246)."""
    import subprocess
    import sys
    from pathlib import Path

    code = MIRRORED.format(tests=str(Path(__file__).parent))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "AUTO 2 1" in proc.stdout
    assert ("ERROR steps_per_execution=2 fails in Keras 3 under MirroredStrategy on 2 replicas "
            "(keras-team/keras#19246); use steps_per_execution=1 or 'auto'") in proc.stdout


def test_every_steps_per_execution_case_is_in_the_table():
    from pathlib import Path

    table = (Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md").read_text(encoding="utf-8")
    names = [c for c, _ in CASES + CLI_CASES] + ["api-lcam-spe-not-dividing", "api-lcam-spe-mirrored"]
    assert [c for c in names if f"`{c}`" not in table] == []
