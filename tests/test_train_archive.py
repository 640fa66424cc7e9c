"""eyespyd train --keep --blink: the label rule, the archive walk and the files it writes without
TensorFlow; with it, a whole run on a small archive made from the fixture faces."""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageOps

from eyespyd import config
from eyespyd.cli import main
from eyespyd.decode import decode
from eyespyd.eyes import EyeClassifier
from eyespyd.models import ModelInfo
from eyespyd.pipeline import Pipeline
from eyespyd.train import archive
from eyespyd.train.archive import EyePick, closed_picks, open_picks, prominent
from eyespyd.types import Face

FACES = Path(__file__).resolve().parent / "data" / "faces"


@dataclass(frozen=True)
class Eye:
    closed: float
    hidden: float = 0.0


@dataclass(frozen=True)
class Reading:
    right: Eye
    left: Eye


def reading(right: float, left: float, hidden: tuple[float, float] = (0.0, 0.0)) -> Reading:
    return Reading(Eye(right, hidden[0]), Eye(left, hidden[1]))


def face(width: float) -> Face:
    kps = ((10.0, 10.0), (20.0, 10.0), (15.0, 15.0), (15.0, 20.0), (5.0, 12.0), (25.0, 12.0))
    return Face((0.0, 0.0, width, width), 0.9, kps)


def picks(*pairs: tuple[int, str]) -> tuple[EyePick, ...]:
    return tuple(EyePick(i, side) for i, side in pairs)


# --- the label rule ---------------------------------------------------------------------------


def test_a_blink_photo_gives_both_eyes_of_its_one_face_as_closed() -> None:
    assert closed_picks([reading(0.9, 0.7)], [0]) == picks((0, "R"), (0, "L"))


def test_a_partner_eye_at_or_below_the_floor_is_left_out() -> None:
    assert closed_picks([reading(0.15, 0.9)], [0]) == picks((0, "L"))
    assert closed_picks([reading(0.9, archive.CLOSED_FLOOR)], [0]) == picks((0, "R"))


def test_a_single_face_in_a_blink_photo_gives_its_more_closed_eye_however_low() -> None:
    # The photographer filed it as a blink and there is nobody else: the model is what is wrong.
    assert closed_picks([reading(0.05, 0.12)], [0]) == picks((0, "L"))


def test_the_most_closed_face_gives_its_eyes_and_the_others_give_nothing() -> None:
    group = [reading(0.1, 0.3), reading(0.8, 0.95), reading(0.6, 0.2)]
    assert closed_picks(group, [0, 1, 2]) == picks((1, "R"), (1, "L"))


def test_faces_are_ranked_by_their_mean_as_the_verdict_scores_them() -> None:
    # A wink (0.9 / 0.1, mean 0.5) ranks below a blink (0.7 / 0.7).
    group = [reading(0.9, 0.1), reading(0.7, 0.7)]
    assert closed_picks(group, [0, 1]) == picks((1, "R"), (1, "L"))


def test_a_group_blink_that_the_model_cannot_place_gives_nothing() -> None:
    group = [reading(0.1, 0.15), reading(0.05, 0.2)]
    assert closed_picks(group, [0, 1]) == ()


def test_hidden_eyes_are_never_examples() -> None:
    sunglasses = reading(0.9, 0.9, hidden=(0.9, 0.9))
    assert closed_picks([sunglasses], [0]) == ()
    assert closed_picks([sunglasses, reading(0.6, 0.7)], [0, 1]) == picks((1, "R"), (1, "L"))
    one_hidden = reading(0.95, 0.8, hidden=(0.0, 0.7))
    assert closed_picks([one_hidden], [0]) == picks((0, "R"))
    assert open_picks([one_hidden, reading(0.0, 0.0)], [0, 1]) == picks(
        (0, "R"), (1, "R"), (1, "L")
    )


def test_only_the_prominent_faces_count() -> None:
    faces = [face(200), face(40), face(120)]
    assert prominent(faces, 0.5) == (0, 2)
    assert prominent([], 0.5) == ()
    readings = [reading(0.0, 0.0), reading(0.99, 0.99), reading(0.7, 0.6)]
    assert closed_picks(readings, prominent(faces, 0.5)) == picks((2, "R"), (2, "L"))
    assert open_picks(readings, prominent(faces, 0.5)) == picks(
        (0, "R"), (0, "L"), (2, "R"), (2, "L")
    )


# --- the archive and the files ----------------------------------------------------------------


def test_the_archive_walk_is_recursive_and_counts_a_raw_jpeg_twin_once(tmp_path: Path) -> None:
    keep, blink = tmp_path / "keep", tmp_path / "blink"
    (keep / "2024" / "wedding").mkdir(parents=True)
    (keep / ".thumbnails").mkdir()
    blink.mkdir()
    for name in ("2024/wedding/IMG_0001.CR3", "2024/wedding/IMG_0001.JPG", "IMG_0002.heic"):
        (keep / name).write_bytes(b"x")
    (keep / "2024" / "wedding" / "IMG_0001.xmp").write_text("sidecar")
    (keep / ".thumbnails" / "IMG_0003.jpg").write_bytes(b"x")
    (keep / "._IMG_0002.heic").write_bytes(b"x")
    (blink / "IMG_0004.NEF").write_bytes(b"x")
    files, twins = archive.list_archive(keep, blink)
    assert [(f.path.relative_to(tmp_path).as_posix(), f.label, f.key) for f in files] == [
        ("keep/2024/wedding/IMG_0001.JPG", "keep", "2024/wedding/IMG_0001"),
        ("keep/IMG_0002.heic", "keep", "IMG_0002"),
        ("blink/IMG_0004.NEF", "blink", "IMG_0004"),
    ]
    assert twins == 1


def test_a_new_model_never_overwrites_a_file(tmp_path: Path) -> None:
    first = archive.write_new(tmp_path, "eye_state-x", b"one")
    (tmp_path / "eye_state-x-2.md").write_text("a card whose model was deleted")
    second = archive.write_new(tmp_path, "eye_state-x", b"two")
    assert (first.name, second.name) == ("eye_state-x.tflite", "eye_state-x-3.tflite")
    assert first.read_bytes() == b"one" and second.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "eye_state-x-2.md",
        "eye_state-x-3.tflite",
        "eye_state-x.tflite",
    ]
    archive.write_card(first, "card")
    with pytest.raises(FileExistsError):
        archive.write_card(first, "another card")


def test_the_printed_configuration_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "a folder: with 'quotes'" / "eye_state-2025-01-01-abcdef12.tflite"
    snippet = archive.config_snippet(path, "ab" * 32)
    settings = config.from_mapping(yaml.safe_load(snippet), "printed", tmp_path)
    assert settings.model.path == path and settings.model.sha256 == "ab" * 32


class NoFaceMesh:
    """A face mesh that sees no face anywhere, for the branch where it rejects a detection."""

    def eyes(self, image: Image.Image, face: Face) -> None:
        return None


@pytest.mark.parametrize("mesh_sees_faces", [True, False])
def test_the_stored_eye_patches_read_as_classify_reads_the_photo(
    mesh_sees_faces: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Held-back photos are read again later with the new model, from what was stored: with the
    # shipped model that must give exactly what the pipeline gives, mesh and all.
    settings = config.from_mapping({}, "test", FACES)
    pipeline = Pipeline(settings.decode, settings.verdict)
    if not mesh_sees_faces:
        monkeypatch.setattr(pipeline, "mesh", NoFaceMesh())
    names = ("closed_03.jpg", "closed_07.jpg", "open_01.jpg", "open_06.jpg")
    files = [archive.ArchiveFile(FACES / n, "blink" if "closed" in n else "keep", n) for n in names]

    read = archive.read_archive(files, pipeline, 48, 1.0, 0)

    assert [p.file for p in read.photos] == files and all(p.held_back for p in read.photos)
    for stored in read.photos:
        faces, readings, _ = pipeline.read_faces(decode(stored.file.path, settings.decode))
        assert stored.faces == faces and stored.shipped == readings
        assert archive.read_patches(pipeline.eyes, stored) == readings
    closed = read.photos[0].shipped[0]
    assert (closed.right.hidden == 1.0) is not mesh_sees_faces  # both branches are taken


def test_photo_metrics_count_review_as_not_blink_and_survive_a_missing_class() -> None:
    calls = [
        (Path("b1"), "blink", "blink"),
        (Path("b2"), "blink", "review"),
        (Path("k1"), "keep", "blink"),
        (Path("k2"), "keep", "keep"),
        (Path("k3"), "keep", "review"),
    ]
    m = archive.photo_metrics(calls)
    assert (m.recall, m.false_blinks, m.precision, m.reviewed) == (0.5, 1, 0.5, 2)
    assert m.false_blink_rate == pytest.approx(1 / 3)
    assert [p.name for p, _, _ in m.wrong] == ["b2", "k1"]
    only_blinks = archive.photo_metrics([(Path("b"), "blink", "blink")])
    assert (only_blinks.false_blink_rate, only_blinks.f1) == (0.0, 1.0)
    assert archive.photo_metrics([]).f1 == 0.0


def test_mixed_in_research_eyes_never_outnumber_the_archive() -> None:
    from eyespyd.train.data import EyeSet

    def eyes(labels: list[int], name: str) -> EyeSet:
        n = len(labels)
        return EyeSet(
            np.zeros((n, 4, 4), np.uint8),
            np.array(labels, np.int64),
            np.zeros(n, np.int64),
            np.ones(n, np.float32),
            np.array([name] * n),
            np.array([name] * n),
            np.array(["R"] * n),
        )

    mine = eyes([0, 0, 1], "mine")
    theirs = eyes([0] * 9 + [1] * 5, "theirs")
    mixed = archive.mix(mine, theirs)
    for label in (0, 1):
        of_label = mixed.picture[mixed.label == label]
        assert (of_label == "mine").sum() >= (of_label == "theirs").sum()
    assert (mixed.picture == "theirs").sum() == 14


def test_reading_an_archive_labels_eyes_by_folder_and_skips_what_it_cannot_use(
    tmp_path: Path,
) -> None:
    keep, blink = make_archive(tmp_path)
    settings = config.from_mapping({}, "test", tmp_path)
    pipeline = Pipeline(settings.decode, settings.verdict)
    files, twins = archive.list_archive(keep, blink)
    assert twins == 0 and len(files) == 42
    read = archive.read_archive(files, pipeline, 24, held_back=0.2, seed=0)
    c = read.counts
    assert (c["keep no face"], c["blink no face"], c["unreadable"]) == (1, 0, 0)
    assert (c["keep faces"], c["blink faces"]) == (20, 22)
    assert c["blink faces not used"] == 1  # the open face beside the closed one
    assert c["held-back keep photos"] + c["train keep photos"] == 20
    (pair,) = [p for p in read.photos if p.file.key == "pair"]
    (closed_face,) = {pick.face for pick in pair.picks}
    assert pair.faces[closed_face].box[0] < 260  # the closed face is the one on the left
    assert read.train is not None and read.held_back is not None
    assert read.train.context.shape[1:] == (48, 48)  # context crops: twice the input side
    assert set(read.train.picture) & set(read.held_back.picture) == set()
    for photo in read.photos:
        assert (photo.patches is not None) == photo.held_back
    held = [p for p in read.photos if p.held_back]
    shipped = archive.score("shipped", held, [p.shipped for p in held], settings)
    assert shipped.photo.photos == len(held) and shipped.photo.recall == 1.0
    assert shipped.eye is not None and shipped.eye.accuracy == 1.0


def test_train_without_tensorflow_names_the_extra_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> object:
        return None if name == "tensorflow" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert main(["train", "--keep", str(tmp_path), "--blink", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "eyespyd: training needs TensorFlow: pip install 'eyespyd[train]'"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "eyespyd: no data folder ../shared/data: give --keep DIR --blink DIR"),
        (["--keep", "k"], "eyespyd: give both --keep DIR and --blink DIR"),
        (["--keep", "k", "--blink", "missing"], "eyespyd: --blink missing: not a folder"),
        (["--keep", "k", "--blink", "k", "--out", "m.tflite"], "eyespyd: --out and --report"),
    ],
)
def test_train_refuses_a_wrong_command_line_before_it_starts(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> object:
        return object() if name == "tensorflow" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "k").mkdir()
    assert main(["train", *args]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(message)


# --- a whole run, with TensorFlow -------------------------------------------------------------


def framed(path: Path, variant: int) -> Image.Image:
    """The fixture face on a larger, noisy canvas: a photo rather than a crop; variant 1 is
    mirrored, larger and darker, so the two copies differ."""
    rng = np.random.default_rng(variant * 100 + sum(path.name.encode()))
    with Image.open(path) as image:
        face_image = image.convert("RGB")
    if variant:
        face_image = ImageOps.mirror(face_image)
        side = round(face_image.width * 1.3)
        face_image = face_image.resize((side, side), Image.Resampling.BICUBIC)
        face_image = Image.eval(face_image, lambda v: int(v * 0.8))
    width, height = 480, 360
    background = rng.normal(120, 20, (height, width, 3)).clip(0, 255).astype(np.uint8)
    canvas = Image.fromarray(background)
    x = int(rng.integers(0, width - face_image.width))
    y = int(rng.integers(0, max(1, height - face_image.height)))
    canvas.paste(face_image, (x, y))
    return canvas


def make_archive(root: Path) -> tuple[Path, Path]:
    """keep/: the open faces twice and a photo with no face; blink/: the closed faces twice and
    a pair of a closed and an open face (only the closed one may become an example)."""
    keep, blink = root / "keep", root / "blink"
    (keep / "day1").mkdir(parents=True)
    (blink / "day1").mkdir(parents=True)
    for kind, folder in (("open", keep), ("closed", blink)):
        for path in sorted(FACES.glob(f"{kind}_*.jpg")):
            for variant in (0, 1):
                framed(path, variant).save(
                    folder / "day1" / f"{path.stem}_{variant}.jpg", quality=92
                )
    shutil.copy(FACES / "noface_01.jpg", keep / "landscape.jpg")
    pair = Image.new("RGB", (520, 300), (110, 120, 130))
    for n, name in enumerate(("closed_06.jpg", "open_09.jpg")):
        with Image.open(FACES / name) as image:
            pair.paste(image.convert("RGB").resize((220, 220)), (30 + n * 260, 40))
    pair.save(blink / "pair.jpg", quality=92)
    return keep, blink


@pytest.mark.slow
def test_training_on_an_archive_writes_a_model_its_card_and_a_working_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tensorflow")
    from ai_edge_litert.interpreter import Interpreter

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home" / ".local" / "share"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.delenv("EYESPYD_CONFIG", raising=False)
    keep, blink = make_archive(tmp_path / "archive")

    code = main(
        ["train", "--keep", str(keep), "--blink", str(blink), "--epochs", "2", "--per-class", "96"]
    )
    out = capsys.readouterr().out
    assert code == 0, out

    models = tmp_path / "home" / ".local" / "share" / "eyespyd" / "models"
    (model_path,) = models.glob("*.tflite")
    assert model_path.name.startswith("eye_state-")
    assert {p.name for p in models.iterdir()} == {model_path.name, model_path.stem + ".md"}

    # int8 in and out, three classes, loaded through the sha256-checked path.
    interpreter = Interpreter(model_path=str(model_path))
    interpreter.allocate_tensors()
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8

    snippet = out[out.index("model:") :]
    (tmp_path / "eyespyd.yaml").write_text(snippet)
    settings = config.load(tmp_path / "eyespyd.yaml")
    assert settings.model.path == model_path and settings.model.sha256 is not None
    assert model_path.name[len("eye_state-") + 11 :].startswith(settings.model.sha256[:8])
    own = EyeClassifier(ModelInfo("eye_state (own)", str(model_path), settings.model.sha256))
    probs = own.probabilities(np.zeros((2, own.size, own.size), np.uint8))
    assert probs.shape == (2, 3)

    pipeline = Pipeline(settings.decode, settings.verdict, model=settings.model)
    assert pipeline.model_version.endswith(settings.model.sha256[:12])
    result = pipeline.classify(FACES / "closed_01.jpg")
    assert result.verdict in ("keep", "blink", "review") and len(result.faces) == 1

    card = model_path.with_suffix(".md").read_text()
    assert settings.model.sha256 in card and str(model_path) in card
    for row in ("| new |", "| shipped |"):
        assert card.count(row) == 2, row  # eye level and photo level
    # 20 keep photos with a face, 21 blink photos; the landscape is skipped and counted.
    assert "| photos found | 21 | 21 |" in card
    assert "| no face found | 1 | 0 |" in card
    assert "1 faces of blink photos not used" in card
    assert "Trained only on the photos" in card
