"""The model files eyespyd runs, each with the sha256 it must have, and the one way to load them.

Models ship inside the package and are never fetched at run time. An installed wheel has them at
`eyespyd/_models` (hatch force-include of the repository's `models/`); a source checkout has them at
`<repo>/models`. A user-trained model is a `ModelInfo` whose `filename` is an absolute path, with
the sha256 the user recorded when they trained it.

To add a model: vendor the file into `models/`, list it in `models/README.md` (tests check
both), and add a `ModelInfo` below, named in REGISTRY.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ai_edge_litert.interpreter import Interpreter

from eyespyd.errors import ModelError

_PACKAGE_DIR = Path(__file__).resolve().parent
MODEL_DIRS: tuple[Path, ...] = (_PACKAGE_DIR / "_models", _PACKAGE_DIR.parent / "models")


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A model file and the sha256 its bytes must have.

    `filename` is relative to the models folder, or an absolute path for a model the user trained.
    """

    name: str
    filename: str
    sha256: str


FACE_SHORT_RANGE = ModelInfo(
    name="face_detection_short_range",
    filename="face_detection_short_range.tflite",
    sha256="bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
)
FACE_FULL_RANGE = ModelInfo(
    name="face_detection_full_range_sparse",
    filename="face_detection_full_range_sparse.tflite",
    sha256="2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
)
FACE_LANDMARK = ModelInfo(
    name="face_landmark",
    filename="face_landmark.tflite",
    sha256="1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
)

EYE_STATE = ModelInfo(
    name="eye_state",
    filename="eye_state.tflite",
    sha256="95926a753022f60afb206db51af13f5cb94efc1ea302b8aac81982a107fde03a",
)

REGISTRY: dict[str, ModelInfo] = {
    info.name: info for info in (FACE_SHORT_RANGE, FACE_FULL_RANGE, FACE_LANDMARK, EYE_STATE)
}


def candidate_paths(info: ModelInfo, models_dir: Path | None = None) -> tuple[Path, ...]:
    """Where `info` may be, in the order searched."""
    if Path(info.filename).is_absolute():
        return (Path(info.filename),)
    dirs = (models_dir,) if models_dir is not None else MODEL_DIRS
    return tuple(d / info.filename for d in dirs)


def read_model(info: ModelInfo, *, models_dir: Path | None = None) -> tuple[Path, bytes]:
    """Return the path found and the model's bytes, after checking their sha256."""
    paths = candidate_paths(info, models_dir)
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        searched = " or ".join(str(p) for p in paths)
        # A user-trained model lives where the user put it; reinstalling would not bring it back.
        hint = "check the model path" if Path(info.filename).is_absolute() else "reinstall eyespyd"
        raise ModelError(f"model {info.name} not found at {searched}; {hint}")
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model {info.name} at {path}: {exc.strerror}") from exc
    digest = hashlib.sha256(content).hexdigest()
    if digest != info.sha256.lower():
        raise ModelError(
            f"model {info.name} at {path}: sha256 mismatch, expected {info.sha256} got {digest}: "
            "the file was altered or corrupted"
        )
    return path, content


def load_interpreter(
    info: ModelInfo, *, models_dir: Path | None = None, num_threads: int = 1
) -> Interpreter:
    """Load a checked model into a LiteRT interpreter with its tensors allocated.

    The bytes hashed are the bytes handed to LiteRT (`model_content=`), so a file swapped between
    the check and the load cannot slip through.
    """
    path, content = read_model(info, models_dir=models_dir)
    try:
        interpreter = Interpreter(model_content=content, num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load model {info.name} from {path}: {exc}") from exc
    return interpreter
