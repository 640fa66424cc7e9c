"""The commands a photographer runs: classify, eval and explain on the committed fixture faces."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from eyespyd.cli import main
from tests.test_faces import background, paste

FACES = Path(__file__).resolve().parent / "data" / "faces"


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.delenv("EYESPYD_CONFIG", raising=False)


def classify_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict]]:  # type: ignore[type-arg]
    code = main(["classify", "--json", *args])
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines()]


def expected_verdict(name: str) -> str:
    kind = name.split("_")[0]
    return {"open": "keep", "closed": "blink", "sunglasses": "review", "noface": "keep"}[kind]


def test_classify_json_gives_the_expected_verdict_for_every_fixture(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, rows = classify_json(capsys, str(FACES))
    assert code == 0
    assert len(rows) == len(list(FACES.glob("*.jpg")))
    wrong = [
        (Path(r["path"]).name, r["verdict"], r["score"])
        for r in rows
        if r["verdict"] != expected_verdict(Path(r["path"]).name)
    ]
    assert wrong == []


def test_classify_json_rows_have_the_documented_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, (row,) = classify_json(capsys, str(FACES / "closed_01.jpg"))
    assert set(row) >= {"path", "verdict", "score", "faces", "ms", "error"}
    assert row["error"] is None
    (face,) = row["faces"]
    x0, y0, x1, y1 = face["box"]
    assert 0 <= x0 < x1 and 0 <= y0 < y1
    assert 0 < face["score"] <= 1
    assert face["eyes"]["left"] > 0.5 and face["eyes"]["right"] > 0.5
    assert face["is_face"] is True  # the face mesh saw this face
    assert row["ms"] > 0


def test_unreadable_files_are_kept_with_their_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "IMG.CR2").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    code, rows = classify_json(capsys, str(tmp_path / "empty.jpg"), str(tmp_path / "IMG.CR2"))
    assert code == 1  # the job ran, but some files could not be read
    assert [r["verdict"] for r in rows] == ["keep", "keep"]
    assert rows[0]["error"] == "empty file"
    assert rows[1]["error"].startswith("misnamed")


def test_classify_recursive_descends_into_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nested = tmp_path / "DCIM" / "100CANON"
    nested.mkdir(parents=True)
    shutil.copy(FACES / "open_01.jpg", nested / "IMG_0001.JPG")
    assert classify_json(capsys, str(tmp_path))[1] == []
    _, rows = classify_json(capsys, "--recursive", str(tmp_path))
    assert [Path(r["path"]).name for r in rows] == ["IMG_0001.JPG"]


def test_eval_reports_metrics_and_the_confusion_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blink, keep = tmp_path / "blink", tmp_path / "keep"
    blink.mkdir()
    keep.mkdir()
    for path in FACES.glob("closed_*.jpg"):
        shutil.copy(path, blink)
    for path in FACES.glob("open_*.jpg"):
        shutil.copy(path, keep)
    shutil.copy(FACES / "closed_01.jpg", keep / "mislabelled.jpg")  # a known mistake
    assert main(["eval", "--blink", str(blink), "--keep", str(keep), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["photos"] == 21
    assert report["confusion"]["blink"]["blink"] == 10
    assert report["confusion"]["keep"]["keep"] == 10
    assert report["recall"] == 1.0
    assert report["precision"] == pytest.approx(10 / 11, abs=1e-4)
    assert [Path(m["path"]).name for m in report["misclassified"]] == ["mislabelled.jpg"]


def test_explain_draws_the_verdict_on_the_photo(tmp_path: Path) -> None:
    out = tmp_path / "explained.png"
    assert main(["explain", str(FACES / "closed_02.jpg"), "-o", str(out)]) == 0
    with Image.open(FACES / "closed_02.jpg") as original, Image.open(out) as picture:
        size = original.size
        drawn = picture.convert("RGB")
    assert drawn.size == size
    # The banner across the top is blink red.
    r, g, b = drawn.getpixel((drawn.size[0] // 2, 2))  # type: ignore[misc]
    assert r > 180 and g < 80 and b < 100


def test_explain_draws_a_camera_frame_larger_than_it_was_judged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A 4000 px frame is judged at 500 px; the picture is drawn at 1600 px or more, with the face
    # box where the face is.
    frame = background(4000, 2667, seed=4)
    paste(frame, "closed_02.jpg", 1200, 1400, 600)
    photo = tmp_path / "frame.jpg"
    Image.fromarray(frame).save(photo, quality=92)
    _, (row,) = classify_json(capsys, str(photo))
    x0, y0, _, y1 = row["faces"][0]["box"]  # full-image pixels
    out = tmp_path / "explained.png"

    assert main(["explain", str(photo), "-o", str(out)]) == 0

    with Image.open(out) as picture:
        drawn = picture.convert("RGB")
    assert 1600 <= max(drawn.size) < 4000
    k = drawn.size[0] / 4000
    white = [drawn.getpixel((round(x0 * k), round((y0 + y1) / 2 * k + dy))) for dy in (-2, 0, 2)]
    assert any(min(pixel) > 240 for pixel in white)  # type: ignore[arg-type]
    r, g, b = drawn.getpixel((drawn.size[0] // 2, 2))  # type: ignore[misc]
    assert r > 180 and g < 80 and b < 100


def test_check_config_and_version_need_no_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config"]) == 0
    assert "effective settings" in capsys.readouterr().out


def test_an_own_eye_model_with_a_wrong_sha256_is_refused_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "mine.tflite"
    shutil.copy(FACES.parents[2] / "models" / "eye_state.tflite", model)
    config_file = tmp_path / "eyespyd.yaml"
    config_file.write_text(f"model: {{path: {model}, sha256: '{'0' * 64}'}}\n", encoding="utf-8")
    code = main(["classify", "--config", str(config_file), str(FACES / "open_01.jpg")])
    assert code == 1
    err = capsys.readouterr().err
    assert "sha256 mismatch" in err and str(model) in err


def test_eval_with_no_keepers_reports_instead_of_crashing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blink, keep = tmp_path / "blink", tmp_path / "keep"
    blink.mkdir()
    keep.mkdir()
    shutil.copy(FACES / "closed_01.jpg", blink)
    assert main(["eval", "--blink", str(blink), "--keep", str(keep), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["photos"], report["recall"], report["false_blink_rate"]) == (1, 1.0, 0.0)
