"""The Keras model, its training and the full-integer TFLite export.

TensorFlow is imported inside the functions: the rest of eyespyd, and this package's imports,
work without it.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from eyespyd.train.augment import AugmentConfig, augment, centre_crop
from eyespyd.train.data import CLOSED, OPEN, EyeSet

log = logging.getLogger(__name__)

NUM_CLASSES = 3  # open, closed, hidden
FloatArray = npt.NDArray[np.float32]


def build_model(size: int, width: int = 16) -> Any:
    """A plain CNN: conv-BN-ReLU blocks, max pooling, global average, softmax over 3 classes.

    Plain 3x3 convolutions rather than depthwise ones: at this size both run well under a
    millisecond in LiteRT, and full convolutions quantize to int8 with less loss.
    """
    from tensorflow import keras

    inputs = keras.Input((size, size, 1), name="eye")
    x = inputs
    for i, filters in enumerate((width, 2 * width, 4 * width, 4 * width, 6 * width)):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
        if i in (0, 1, 3):  # 48 -> 24 -> 12 -> 6
            x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(0.3, name="drop")(x)
    outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax", name="state")(x)
    return keras.Model(inputs, outputs, name="eye_state")


def make_epoch(
    eyes: EyeSet, rng: np.random.Generator, size: int, per_class: int, cfg: AugmentConfig
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """`per_class` augmented open and as many closed samples, drawn with replacement.

    Balanced: open eyes outnumber closed five to one in the data, and a photographer cares
    about both errors.
    """
    xs = np.empty((2 * per_class, size, size, 1), np.float32)
    ys = np.empty(2 * per_class, np.int64)
    picks = np.concatenate(
        [
            rng.choice(np.flatnonzero(eyes.label == OPEN), per_class),
            rng.choice(np.flatnonzero(eyes.label == CLOSED), per_class),
        ]
    )
    rng.shuffle(picks)
    for n, i in enumerate(picks):
        patch, label = augment(eyes.context[i], int(eyes.label[i]), rng, size, cfg)
        xs[n, :, :, 0] = patch
        ys[n] = label
    xs /= 255.0
    return xs, ys


def centre_crops(eyes: EyeSet, size: int) -> FloatArray:
    """The run-time crops of every eye, as model input in [0, 1]."""
    out = np.stack([centre_crop(c, size) for c in eyes.context]).astype(np.float32) / 255.0
    return out[..., None]


def train(
    train_eyes: EyeSet,
    val_x: FloatArray,
    val_y: npt.NDArray[np.int64],
    *,
    size: int,
    epochs: int,
    per_class: int,
    seed: int,
    cfg: AugmentConfig,
    width: int = 16,
) -> Any:
    """Train from scratch with fresh augmentation every epoch; returns the Keras model."""
    import tensorflow as tf
    from tensorflow import keras

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(seed)
    model = build_model(size, width)
    steps = math.ceil(2 * per_class / 64) * epochs
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, steps, alpha=0.02)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.05),
        metrics=["accuracy"],
    )
    val_onehot = keras.utils.to_categorical(val_y, NUM_CLASSES)
    for epoch in range(epochs):
        start = time.monotonic()
        x, y = make_epoch(train_eyes, rng, size, per_class, cfg)
        made = time.monotonic() - start
        hist = model.fit(
            x,
            keras.utils.to_categorical(y, NUM_CLASSES),
            batch_size=64,
            epochs=1,
            verbose=0,
            validation_data=(val_x, val_onehot) if len(val_x) else None,
            shuffle=False,
        )
        h = {k: round(float(v[-1]), 4) for k, v in hist.history.items()}
        log.info(
            "epoch %d/%d %s (augment %.0fs, total %.0fs)",
            epoch + 1,
            epochs,
            h,
            made,
            time.monotonic() - start,
        )
    return model


def export_int8(model: Any, representative: FloatArray, path: Path) -> bytes:
    """Full-integer TFLite: int8 weights, activations, input and output; batch size left free.

    The representative set fixes the activation ranges; it must look like run-time input, so it
    is un-augmented and augmented crops alike.
    """
    import tensorflow as tf

    def samples() -> Iterator[list[FloatArray]]:
        for x in representative:
            yield [x[None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with warnings.catch_warnings():
        # The converter asks for input statistics it only needs for float-input graphs; ours
        # come from the representative data set.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        content: bytes = converter.convert()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(content)
    tmp.replace(path)
    return content


def keras_predict(model: Any) -> Callable[[FloatArray], FloatArray]:
    def predict(x: FloatArray) -> FloatArray:
        return np.asarray(model.predict(x, batch_size=256, verbose=0), np.float32)

    return predict


def tflite_predict(content: bytes) -> Callable[[FloatArray], FloatArray]:
    """Run the exported model as eyespyd does: LiteRT, one thread, quantized in and out."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, num_threads=1)

    def predict(x: FloatArray) -> FloatArray:
        inp = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(inp["index"], list(x.shape))
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]
        out = interpreter.get_output_details()[0]
        scale, zero = inp["quantization"]
        q = np.clip(np.rint(x / scale + zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], q)
        interpreter.invoke()
        o_scale, o_zero = out["quantization"]
        raw = np.asarray(interpreter.get_tensor(out["index"]), np.float32)
        probs: FloatArray = ((raw - o_zero) * o_scale).astype(np.float32)
        return probs

    return predict
