"""train: the split, the cache and the augmentation without TensorFlow; a tiny run with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from eyespyd.train import data
from eyespyd.train.augment import AugmentConfig, augment, centre_crop
from eyespyd.train.metrics import photo_row

SIZE = 24


def drawn_eye(closed: bool, rng: np.random.Generator) -> np.ndarray:
    """A context crop with a lid line (closed) or an iris in an almond (open), on skin-ish gray."""
    c = SIZE * data.CONTEXT
    image = Image.new("L", (c, c), int(rng.integers(140, 200)))
    draw = ImageDraw.Draw(image)
    m = c / 2
    if closed:
        draw.arc((m - 10, m - 8, m + 10, m + 4), 20, 160, fill=30, width=2)
    else:
        draw.ellipse((m - 10, m - 5, m + 10, m + 5), fill=235)
        draw.ellipse((m - 4, m - 4, m + 4, m + 4), fill=20)
    noisy = np.asarray(image, np.float32) + rng.normal(0, 4, (c, c))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def drawn_eyes(n: int, seed: int = 0) -> data.EyeSet:
    rng = np.random.default_rng(seed)
    labels = np.array([i % 2 for i in range(n)], np.int64)
    return data.EyeSet(
        np.stack([drawn_eye(bool(label), rng) for label in labels]),
        labels,
        np.zeros(n, np.int64),
        np.full(n, 30.0, np.float32),
        np.array([f"pic{i // 2}" for i in range(n)]),
        np.array([f"faces/x/pic{i // 2}.jpg" for i in range(n)]),
        np.array(["R" if i % 2 else "L" for i in range(n)]),
    )


def test_split_is_by_picture_and_does_not_depend_on_order() -> None:
    keys = [f"closed_eye_{i:04d}.jpg_face_1" for i in range(2000)]
    val = {k for k in keys if data.is_validation(k, 0.15, 0)}
    assert 0.12 < len(val) / len(keys) < 0.18
    assert val == {k for k in reversed(keys) if data.is_validation(k, 0.15, 0)}
    assert val != {k for k in keys if data.is_validation(k, 0.15, 1)}


def test_a_face_and_its_eye_patches_share_one_picture_key() -> None:
    face = Path("faces/closed/closed_eye_0001.jpg_face_1.jpg")
    patch = Path("eyes/closed/closed_eye_0001.jpg_face_1_L.jpg")
    assert data.picture_key(face, data.SOURCE_FACE) == data.picture_key(patch, data.SOURCE_PATCH)
    lfw = Path("eyes/open/Adam_Rich_0001_R.jpg")
    assert data.picture_key(lfw, data.SOURCE_PATCH) == "Adam_Rich"


def test_cache_round_trip(tmp_path: Path) -> None:
    eyes = drawn_eyes(6)
    data.save_cache(tmp_path / "c.npz", eyes, SIZE, ["faces/open/lost.jpg"])
    loaded = data.load_cache(tmp_path / "c.npz", SIZE)
    assert loaded is not None
    again, missed = loaded
    np.testing.assert_array_equal(again.context, eyes.context)
    assert list(again.path) == list(eyes.path) and missed == ["faces/open/lost.jpg"]
    assert data.load_cache(tmp_path / "c.npz", SIZE + 1) is None


def test_augmentation_keeps_shape_and_turns_only_occlusions_hidden() -> None:
    rng = np.random.default_rng(0)
    ctx = drawn_eye(False, rng)
    labels = set()
    for _ in range(200):
        patch, label = augment(ctx, data.OPEN, rng, SIZE, AugmentConfig())
        assert patch.shape == (SIZE, SIZE) and patch.dtype == np.uint8
        labels.add(label)
    assert labels == {data.OPEN, data.HIDDEN}
    assert centre_crop(ctx, SIZE).shape == (SIZE, SIZE)


def test_photo_rule_both_needs_both_eyes() -> None:
    pairs = np.array([[0.9, 0.9], [0.9, 0.1], [0.1, 0.1]], np.float32)
    closed = np.array([True, False, False])
    assert photo_row(pairs, closed, "both", 0.5).false_blinks == 0
    assert photo_row(pairs, closed, "either", 0.5).false_blinks == 1
    assert photo_row(pairs, closed, "mean", 0.4).false_blinks == 1


@pytest.mark.slow
def test_tiny_model_trains_and_exports_int8(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    from ai_edge_litert.interpreter import Interpreter

    from eyespyd.train import fit

    eyes = drawn_eyes(48)
    val_x = fit.centre_crops(eyes, SIZE)
    model = fit.train(
        eyes,
        val_x,
        eyes.label,
        size=SIZE,
        epochs=1,
        per_class=32,
        seed=0,
        cfg=AugmentConfig(),
        width=4,
    )
    out = tmp_path / "eye.tflite"
    content = fit.export_int8(model, val_x, out)
    assert out.read_bytes() == content
    interpreter = Interpreter(model_path=str(out))
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    outp = interpreter.get_output_details()[0]
    assert inp["dtype"] == np.int8 and outp["dtype"] == np.int8
    assert list(inp["shape"]) == [1, SIZE, SIZE, 1]
    assert list(outp["shape"]) == [1, 3]
    probs = fit.tflite_predict(content)(val_x[:4])
    assert probs.shape == (4, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.03)
