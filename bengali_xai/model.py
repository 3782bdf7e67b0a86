"""The Bengali digit paper's CNN (two convolutions, max-pooling, dropout, two dense layers) as a Keras Sequential model."""
from __future__ import annotations

import keras

from .digits import IMAGE_SHAPE, NUM_CLASSES

OUTPUT_LAYER = "visualized_layer"
LAST_CONV = "conv2"


def build_cnn(input_shape: tuple[int, int, int] = IMAGE_SHAPE, num_classes: int = NUM_CLASSES) -> keras.Model:
    """Conv(32,3) -> Conv(64,3) -> MaxPool(2) -> Dropout(.25) -> Flatten -> Dense(256) -> Dense(10, softmax).

    Compiled with Adam and categorical cross-entropy. The output layer is named
    "visualized_layer" (as in the paper) and kept in float32 under mixed precision.
    """
    model = keras.Sequential(
        [
            keras.Input(shape=input_shape, name="image"),
            keras.layers.Conv2D(32, 3, activation="relu", name="conv1"),
            keras.layers.Conv2D(64, 3, activation="relu", name=LAST_CONV),
            keras.layers.MaxPooling2D(2, name="pool"),
            keras.layers.Dropout(0.25, name="dropout"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(256, activation="relu", name="dense"),
            keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name=OUTPUT_LAYER),
        ],
        name="bengali_digits_cnn",
    )
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model
