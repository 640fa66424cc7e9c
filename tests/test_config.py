"""Configuration: one schema, every problem at once with its key path, defaults that work."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from eyespyd import config, schema
from eyespyd.cli import main
from eyespyd.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "eyespyd.yaml"
    file.write_text(text, encoding="utf-8")
    return file


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads the developer's own configuration."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.delenv("EYESPYD_CONFIG", raising=False)
    return home


def test_embedded_default_watches_pictures_eyespy_inbox(isolated_home: Path) -> None:
    settings = config.load()
    assert settings.source == config.EMBEDDED
    (folder,) = settings.folders
    base = isolated_home / "Pictures" / "eyespy"
    assert (folder.inbox, folder.keep, folder.blink, folder.review) == (
        base / "inbox",
        base / "keep",
        base / "blink",
        base / "review",
    )
    assert settings.action == "move"


def test_committed_example_is_generated_from_the_schema() -> None:
    committed = (REPO / "config" / "eyespyd.example.yaml").read_text(encoding="utf-8")
    assert committed == schema.example_yaml(), (
        "run: eyespyd example-config > config/eyespyd.example.yaml"
    )


def test_example_config_parses_to_the_defaults(tmp_path: Path) -> None:
    from_example = config.load(write(tmp_path, schema.example_yaml()))
    assert config.to_mapping(from_example) == config.to_mapping(config.load())


def test_every_schema_key_has_a_comment_in_the_example() -> None:
    text = schema.example_yaml().splitlines()
    for i, line in enumerate(text):
        stripped = line.strip().removeprefix("- ")
        if stripped and not stripped.startswith("#") and ":" in stripped:
            assert text[i - 1].strip().startswith("#"), f"no comment above {line!r}"


def test_every_problem_is_reported_at_once_with_its_key_path(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        "folders:\n"
        "  - inbox: /shoot/inbox\n"
        "    keep: /shoot/inbox/keep\n"
        "    recursive: maybe\n"
        "actoin: move\n"
        "verdict:\n"
        "  threshold: 2\n"
        "  no_face: blink\n",
    )
    with pytest.raises(ConfigError) as caught:
        config.load(file)
    problems = caught.value.problems
    assert "At 'folders[0].recursive': must be true or false" in problems
    assert "At 'actoin': unknown key; did you mean 'action'?" in problems
    assert any(p.startswith("At 'verdict.threshold': must be from") for p in problems)
    assert any(p.startswith("At 'verdict.no_face': must be one of keep, review") for p in problems)
    assert len(problems) == 4
    assert all(line.startswith(f"{file}: At '") for line in str(caught.value).splitlines())


def test_destination_inside_its_inbox_is_an_error(tmp_path: Path) -> None:
    file = write(tmp_path, "folders:\n  - inbox: /shoot/inbox\n    keep: /shoot/inbox/keep\n")
    with pytest.raises(ConfigError) as caught:
        config.load(file)
    assert caught.value.problems == [
        "At 'folders[0].keep': /shoot/inbox/keep is inside its own inbox"
    ]


def test_inbox_that_is_another_folders_destination_is_an_error(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        "folders:\n"
        "  - {inbox: /a/in, keep: /a/keep, blink: /a/blink, review: /a/review}\n"
        "  - {inbox: /a/keep, keep: /b/keep, blink: /b/blink, review: /b/review}\n",
    )
    with pytest.raises(ConfigError) as caught:
        config.load(file)
    assert caught.value.problems == [
        "At 'folders[0].keep': /a/keep is (or contains) the inbox of folders[1]"
    ]


def test_relative_paths_are_relative_to_the_config_file_and_tilde_expands(
    tmp_path: Path, isolated_home: Path
) -> None:
    file = write(tmp_path, "folders:\n  - inbox: shoot/in\n    keep: ~/keep\n")
    (folder,) = config.load(file).folders
    assert folder.inbox == tmp_path / "shoot" / "in"
    assert folder.keep == isolated_home / "keep"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("folders: [\n", "not valid YAML: line 2"),
        ("- just\n- a list\n", "At the top level: must be a mapping of keys"),
        ("folders: []\n", "At 'folders': needs at least 1 entry"),
        ("folders: /one/folder\n", "At 'folders': must be a list"),
        ("workers: true\n", "At 'workers': must be a whole number"),
        ("action: delete\n", "At 'action': must be one of move, copy, hardlink, tag"),
        ("xmp: {rating: {blink: 7}}\n", "At 'xmp.rating.blink': must be -1 (rejected), 0 to 5"),
    ],
)
def test_bad_files_give_a_located_reason(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(write(tmp_path, text))
    assert expected in str(caught.value)


def test_empty_file_means_all_defaults(tmp_path: Path) -> None:
    settings = config.load(write(tmp_path, ""))
    assert config.to_mapping(settings) == config.to_mapping(config.load())


def test_missing_and_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        config.load(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a folder"):
        config.load(tmp_path)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        config.load(binary)


def test_environment_variable_then_platform_file_are_found(
    tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform_file = isolated_home / ".config" / "eyespyd" / "eyespyd.yaml"
    platform_file.parent.mkdir(parents=True)
    platform_file.write_text("action: copy\n", encoding="utf-8")
    assert config.load().action == "copy"
    monkeypatch.setenv("EYESPYD_CONFIG", str(write(tmp_path, "action: tag\n")))
    assert config.load().action == "tag"
    assert config.load(write(tmp_path / "..", "action: hardlink\n")).action == "hardlink"


def test_watch_replaces_the_inbox_with_destinations_beside_it(tmp_path: Path) -> None:
    settings = config.load(write(tmp_path, "action: copy\n"), watch=tmp_path / "shoot" / "in")
    (folder,) = settings.folders
    assert folder.inbox == tmp_path / "shoot" / "in"
    assert folder.keep == tmp_path / "shoot" / "keep"
    assert folder.review == tmp_path / "shoot" / "review"
    assert settings.action == "copy"


def test_check_config_prints_effective_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", str(write(tmp_path, "verdict: {threshold: 0.7}\n"))]) == 0
    out = capsys.readouterr().out
    effective = yaml.safe_load(out)
    assert effective["verdict"]["threshold"] == 0.7
    assert effective["folders"][0]["inbox"].endswith("eyespy/inbox")


def test_check_config_exits_non_zero_with_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path, "action: delete\nworkers: -1\n")
    assert main(["check-config", str(file)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{file}: At 'action': must be one of move, copy, hardlink, tag (got 'delete')",
        f"{file}: At 'workers': must be from 0 to 64 (got -1)",
    ]


def test_an_own_eye_model_needs_path_and_sha256_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(write(tmp_path, "model: {path: my.tflite}\n"))
    assert caught.value.problems == ["At 'model': give both path and sha256, or neither"]
    with pytest.raises(ConfigError, match="must be the 64 hexadecimal digits"):
        config.load(write(tmp_path, "model: {path: my.tflite, sha256: abc}\n"))
    settings = config.load(write(tmp_path, f"model: {{path: my.tflite, sha256: '{'A' * 64}'}}\n"))
    assert settings.model.path == tmp_path / "my.tflite"
    assert settings.model.sha256 == "a" * 64
