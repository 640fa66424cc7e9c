"""The model registry: vendored files match their sha256, and every failure names the path."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
from pathlib import Path

import pytest

from eyespyd import models
from eyespyd.errors import ModelError
from eyespyd.models import FACE_SHORT_RANGE, REGISTRY, ModelInfo, load_interpreter

REPO_MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.mark.parametrize("info", REGISTRY.values(), ids=REGISTRY.keys())
def test_every_registered_model_is_vendored_with_its_sha256(info: ModelInfo) -> None:
    content = (REPO_MODELS / info.filename).read_bytes()
    assert hashlib.sha256(content).hexdigest() == info.sha256


@pytest.mark.parametrize("info", REGISTRY.values(), ids=REGISTRY.keys())
def test_every_registered_model_is_listed_in_the_models_readme(info: ModelInfo) -> None:
    readme = (REPO_MODELS / "README.md").read_text(encoding="utf-8")
    assert info.filename in readme
    assert info.sha256 in readme


def test_checked_model_loads_with_its_tensors_allocated() -> None:
    interpreter = load_interpreter(FACE_SHORT_RANGE, models_dir=REPO_MODELS)
    assert list(interpreter.get_input_details()[0]["shape"]) == [1, 128, 128, 3]


def test_installed_package_folder_is_searched_before_the_checkout() -> None:
    package = Path(models.__file__).resolve().parent
    assert models.candidate_paths(FACE_SHORT_RANGE) == (
        package / "_models" / FACE_SHORT_RANGE.filename,
        package.parent / "models" / FACE_SHORT_RANGE.filename,
    )


def test_model_with_one_flipped_byte_is_refused(tmp_path: Path) -> None:
    content = bytearray((REPO_MODELS / FACE_SHORT_RANGE.filename).read_bytes())
    content[len(content) // 2] ^= 0x01
    altered = tmp_path / FACE_SHORT_RANGE.filename
    altered.write_bytes(bytes(content))

    with pytest.raises(ModelError) as caught:
        load_interpreter(FACE_SHORT_RANGE, models_dir=tmp_path)

    message = str(caught.value)
    assert str(altered) in message
    assert f"sha256 mismatch, expected {FACE_SHORT_RANGE.sha256} got " in message
    assert hashlib.sha256(content).hexdigest() in message
    assert message.endswith("the file was altered or corrupted")


def test_missing_model_names_the_path_searched(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as caught:
        load_interpreter(FACE_SHORT_RANGE, models_dir=tmp_path)

    assert str(caught.value) == (
        f"model face_detection_short_range not found at "
        f"{tmp_path / 'face_detection_short_range.tflite'}; reinstall eyespyd"
    )


def test_missing_model_names_every_default_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "MODEL_DIRS", (Path("/nowhere/a"), Path("/nowhere/b")))
    missing = dataclasses.replace(FACE_SHORT_RANGE, filename="absent.tflite")

    with pytest.raises(ModelError, match=re.escape("/nowhere/a/absent.tflite or /nowhere/b/")):
        load_interpreter(missing)


def test_user_trained_model_loads_from_its_absolute_path(tmp_path: Path) -> None:
    mine = tmp_path / "my_eyes.tflite"
    shutil.copyfile(REPO_MODELS / FACE_SHORT_RANGE.filename, mine)
    info = ModelInfo(name="my_eyes", filename=str(mine), sha256=FACE_SHORT_RANGE.sha256)

    assert load_interpreter(info).get_input_details()[0]["shape"][1] == 128


def test_missing_user_model_does_not_suggest_reinstalling(tmp_path: Path) -> None:
    info = ModelInfo(name="my_eyes", filename=str(tmp_path / "gone.tflite"), sha256="0" * 64)

    with pytest.raises(ModelError, match=r"not found at .*gone\.tflite; check the model path$"):
        load_interpreter(info)


def test_file_that_is_not_a_model_is_refused_with_its_path(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer" * 64)
    info = ModelInfo(
        name="junk", filename=str(junk), sha256=hashlib.sha256(junk.read_bytes()).hexdigest()
    )

    with pytest.raises(ModelError, match=f"cannot load model junk from {re.escape(str(junk))}: "):
        load_interpreter(info)


def test_model_info_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        FACE_SHORT_RANGE.sha256 = "0" * 64  # type: ignore[misc]
