"""Service files: rendered for the configuration, checked by systemd-analyze, installed, removed."""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from eyespyd import config, schema, service
from eyespyd.config import Settings
from eyespyd.service import ServiceError

REPO = Path(__file__).resolve().parents[1]
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads or writes the developer's own configuration or units."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.delenv("EYESPYD_CONFIG", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    return home


def settings_in(folder: Path, *, config_name: str = "eyespyd.yaml") -> Settings:
    """Settings loaded from a configuration file whose folders are under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / config_name
    entries = {k: str(folder / "session" / k) for k in ("inbox", "keep", "blink", "review")}
    file.write_text(yaml.safe_dump({"folders": [entries]}), encoding="utf-8")
    return config.load(file)


def directives(unit: str) -> dict[str, list[str]]:
    """Each directive's values in order of appearance."""
    found: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


HARDENING = {
    "ProtectSystem": "strict",
    "ProtectHome": "read-only",
    "PrivateTmp": "yes",
    "PrivateNetwork": "yes",
    "RestrictAddressFamilies": "AF_UNIX",
    "CapabilityBoundingSet": "",
    "SystemCallFilter": "@system-service",
    "SystemCallArchitectures": "native",
    "MemoryDenyWriteExecute": "yes",
    "NoNewPrivileges": "yes",
    "ProtectKernelTunables": "yes",
    "LockPersonality": "yes",
    "RestrictRealtime": "yes",
    "RestrictNamespaces": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "UMask": "0022",
}


def test_system_unit_runs_the_daemon_as_its_user_with_the_design_hardening(tmp_path: Path) -> None:
    settings = settings_in(tmp_path / "photos")
    unit = directives(service.render_unit(settings, "system", "/opt/eyespyd/bin/python", "anna"))
    config_file = tmp_path / "photos" / "eyespyd.yaml"
    assert unit["ExecStart"] == [f"/opt/eyespyd/bin/python -m eyespyd run --config {config_file}"]
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["WatchdogSec"] == ["60"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["User"] == ["anna"]
    assert unit["StateDirectory"] == ["eyespyd"]
    assert unit["WantedBy"] == ["multi-user.target"]
    assert "RemoveIPC" not in unit  # would delete the photographer's own shared memory
    for key, value in HARDENING.items():
        assert unit[key] == [value], key
    assert unit["ProtectControlGroups"] == ["yes"]


def test_read_write_paths_are_every_folder_and_nothing_else(tmp_path: Path) -> None:
    settings = settings_in(tmp_path / "photos")
    session = tmp_path / "photos" / "session"
    expected = [str(session / k) for k in ("inbox", "keep", "blink", "review")]
    system = directives(service.render_unit(settings, "system", sys.executable, "anna"))
    assert system["ReadWritePaths"] == expected
    user = directives(service.render_unit(settings, "user", sys.executable, state_dir=Path("/s")))
    assert user["ReadWritePaths"] == [*expected, "/s"]  # the ledger, where the CLI looks too


def test_user_unit_has_no_user_and_starts_with_the_session(tmp_path: Path, home: Path) -> None:
    settings = settings_in(tmp_path / "photos")
    unit = directives(service.render_unit(settings, "user", sys.executable))
    assert "User" not in unit
    assert unit["WantedBy"] == ["default.target"]
    assert unit["PrivateUsers"] == ["yes"]  # what lets a user manager build the sandbox
    assert str(home / ".local" / "state" / "eyespyd") in unit["ReadWritePaths"]
    for key, value in HARDENING.items():
        assert unit[key] == [value], key
    with pytest.raises(ServiceError, match="runs as you"):
        service.render_unit(settings, "user", sys.executable, "anna")


def test_without_user_namespaces_a_user_unit_keeps_only_system_call_protections(
    tmp_path: Path,
) -> None:
    settings = settings_in(tmp_path / "photos")
    unit = directives(service.render_unit(settings, "user", sys.executable, user_namespaces=False))
    for absent in ("PrivateUsers", "ProtectSystem", "ReadWritePaths", "CapabilityBoundingSet"):
        assert absent not in unit  # they would fail or be ignored without a user namespace
    for key in ("SystemCallFilter", "MemoryDenyWriteExecute", "NoNewPrivileges"):
        assert unit[key] == [HARDENING[key]]


def test_paths_with_spaces_quotes_percent_and_dollar_are_escaped(tmp_path: Path) -> None:
    folder = tmp_path / 'My "Best" 100% $HOME shots'
    settings = settings_in(folder)
    unit = service.render_unit(settings, "system", "/opt/py env/bin/python", "anna")
    escaped = str(folder).replace('"', '\\"').replace("%", "%%")
    assert f'ReadWritePaths="{escaped}/session/inbox"' in unit
    config_word = '"' + escaped.replace("$", "$$") + '/eyespyd.yaml"'
    assert f'ExecStart="/opt/py env/bin/python" -m eyespyd run --config {config_word}' in unit


def test_a_folder_with_a_newline_is_refused(tmp_path: Path) -> None:
    settings = settings_in(tmp_path / "two\nlines")
    with pytest.raises(ServiceError, match="control characters"):
        service.render_unit(settings, "system", sys.executable, "anna")


@pytest.mark.parametrize(("user", "problem"), [(None, "needs the user"), ("root", "not run as")])
def test_the_system_unit_needs_a_user_other_than_root(
    tmp_path: Path, user: str | None, problem: str
) -> None:
    with pytest.raises(ServiceError, match=problem):
        service.render_unit(settings_in(tmp_path), "system", sys.executable, user)


def test_the_embedded_default_cannot_be_rendered_without_a_file() -> None:
    with pytest.raises(ServiceError, match="needs a configuration file"):
        service.render_unit(config.load(), "user", sys.executable)


def test_plist_is_a_launchd_agent_that_restarts_on_failure(tmp_path: Path) -> None:
    settings = settings_in(tmp_path / "Photo Library")
    rendered = service.render_plist(settings, "/opt/py/bin/python", home=Path("/Users/a"))
    agent = plistlib.loads(rendered)
    assert agent["Label"] == "org.eyespyd.agent"
    config_file = str(tmp_path / "Photo Library" / "eyespyd.yaml")  # one argument, spaces and all
    assert agent["ProgramArguments"] == [
        "/opt/py/bin/python",
        "-m",
        "eyespyd",
        "run",
        "--config",
        config_file,
    ]
    assert agent["RunAtLoad"] is True
    assert agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["ProcessType"] == "Background"
    assert agent["StandardErrorPath"] == "/Users/a/Library/Logs/eyespyd.log"
    assert "WatchPaths" not in agent


def test_install_and_uninstall_a_user_unit(tmp_path: Path, home: Path) -> None:
    settings = settings_in(tmp_path / "photos")
    written = service.install(settings, "user", python=sys.executable, platform="linux")
    unit_file = home / ".config" / "systemd" / "user" / "eyespyd.service"
    session = tmp_path / "photos" / "session"
    state = home / ".local" / "state" / "eyespyd"
    folders = [session / k for k in ("inbox", "keep", "blink", "review")]
    assert written == [*folders, state, unit_file]
    assert all(p.is_dir() for p in written[:-1])  # ReadWritePaths= must exist when it starts
    expected = service.render_unit(
        settings, "user", sys.executable, user_namespaces=service.user_namespaces_available()
    )
    assert unit_file.read_text() == expected
    assert unit_file.stat().st_mode & 0o777 == 0o644
    # Again after a change: the unit is replaced, nothing new is created.
    assert service.install(settings, "user", python=sys.executable, platform="linux") == [unit_file]
    assert service.uninstall("user", platform="linux") == [unit_file]
    assert not unit_file.exists()
    assert session.is_dir() and (tmp_path / "photos" / "eyespyd.yaml").is_file()  # kept
    assert service.uninstall("user", platform="linux") == []


def test_install_on_the_embedded_default_writes_the_config_the_cli_then_reads(home: Path) -> None:
    settings = config.load()
    assert settings.source == config.EMBEDDED
    written = service.install(settings, "user", python=sys.executable, platform="linux")
    config_file = home / ".config" / "eyespyd" / "eyespyd.yaml"
    assert config_file in written
    assert config_file.read_text() == schema.example_yaml()
    again = config.load()  # what the command line now finds
    assert again.source == str(config_file)
    assert config.to_mapping(again) == config.to_mapping(settings)
    unit = (home / ".config" / "systemd" / "user" / "eyespyd.service").read_text()
    assert f"--config {config_file}\n" in unit


def test_install_with_watch_on_the_default_writes_those_folders(tmp_path: Path, home: Path) -> None:
    settings = config.with_watch(config.load(), tmp_path / "card" / "inbox")
    service.install(settings, "user", python=sys.executable, platform="linux")
    written = config.load()
    assert written.folders[0].inbox == tmp_path / "card" / "inbox"
    assert config.to_mapping(written) == config.to_mapping(settings)


def test_install_refuses_settings_that_differ_from_their_file(tmp_path: Path) -> None:
    settings = config.with_watch(settings_in(tmp_path / "photos"), tmp_path / "elsewhere")
    with pytest.raises(ServiceError, match="differ"):
        service.install(settings, "user", python=sys.executable, platform="linux")


def test_install_a_system_unit_under_a_destination_root(tmp_path: Path) -> None:
    settings = settings_in(tmp_path / "photos")
    root = tmp_path / "root"
    written = service.install(
        settings, "system", python=sys.executable, dest_root=root, user="nobody", platform="linux"
    )
    unit_file = root / "etc" / "systemd" / "system" / "eyespyd.service"
    assert written[-1] == unit_file
    inbox = tmp_path / "photos" / "session" / "inbox"
    assert service.reroot(inbox, root).is_dir()  # nothing outside the root
    assert not inbox.exists()
    assert "User=nobody\n" in unit_file.read_text()
    assert service.uninstall("system", root, platform="linux") == [unit_file]


def test_install_never_overwrites_a_configuration(home: Path) -> None:
    (home / ".config" / "eyespyd" / "eyespyd.yaml").mkdir(parents=True)  # not a file: not read
    with pytest.raises(ServiceError, match="exists, and is not overwritten"):
        service.install(config.load(), "user", python=sys.executable, platform="linux")
    assert not (home / ".config" / "systemd").exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_root_installs_folders_for_an_existing_user_only(tmp_path: Path) -> None:
    settings = settings_in(tmp_path / "photos")
    with pytest.raises(ServiceError, match="no user 'no-such-photographer'"):
        service.install(
            settings,
            "system",
            dest_root=tmp_path / "r",
            user="no-such-photographer",
            platform="linux",
        )
    assert not (tmp_path / "r").exists()


def test_a_system_unit_needs_a_configuration_file(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="needs a configuration file"):
        service.install(config.load(), "system", dest_root=tmp_path, user="anna", platform="linux")


def test_install_a_launch_agent_on_macos(tmp_path: Path, home: Path) -> None:
    settings = settings_in(tmp_path / "photos")
    written = service.install(settings, "user", python=sys.executable, platform="darwin")
    plist = home / "Library" / "LaunchAgents" / "org.eyespyd.agent.plist"
    assert written[-1] == plist
    assert plistlib.loads(plist.read_bytes())["Label"] == "org.eyespyd.agent"
    assert service.uninstall("user", platform="darwin") == [plist]
    with pytest.raises(ServiceError, match="LaunchAgent"):
        service.install(settings, "system", user="anna", platform="darwin")


def test_instructions_say_how_to_start_follow_and_keep_running() -> None:
    user = service.instructions("user", platform="linux")
    assert "systemctl --user enable --now eyespyd.service" in user
    assert "loginctl enable-linger" in user
    assert "journalctl --user -u eyespyd" in user
    assert "sudo systemctl enable --now eyespyd.service" in service.instructions("system")
    mac = service.instructions("user", platform="darwin", python=sys.executable)
    assert "launchctl bootstrap gui/$(id -u)" in mac
    assert "Full Disk Access" in mac
    assert os.path.realpath(sys.executable) in mac  # the real binary, not a venv's symlink
    assert "launchctl bootout" in service.uninstall_instructions("user", platform="darwin")
    assert "disable --now" in service.uninstall_instructions("user", platform="linux")


def test_folders_the_private_tmp_hides_are_flagged() -> None:
    folder = {k: f"/tmp/shoot/{k}" for k in ("inbox", "keep", "blink", "review")}
    settings = config.from_mapping({"folders": [folder]}, "/etc/eyespyd.yaml", Path("/etc"))
    found = service.warnings(settings, "system", python="/usr/bin/python3")
    assert len(found) == 4
    assert found[0] == (
        "folder /tmp/shoot/inbox is in a temporary folder;"
        " the service has its own and cannot see it"
    )
    home = {k: f"/home/a/{k}" for k in ("inbox", "keep", "blink", "review")}
    fine = config.from_mapping({"folders": [home]}, "/etc/eyespyd.yaml", Path("/etc"))
    assert service.warnings(fine, "system", python="/usr/bin/python3") == []


def test_committed_examples_are_generated_by_the_renderer(tmp_path: Path) -> None:
    for made in service.write_examples(tmp_path):
        committed = REPO / "deploy" / made.name
        assert committed.read_bytes() == made.read_bytes(), (
            "run: python -c 'from pathlib import Path; from eyespyd import service;"
            ' service.write_examples(Path("deploy"))\''
        )


# --- systemd's own parser and security review --------------------------------------------------


def analyze(*args: str, runtime: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), SYSTEMD_LOG_COLOR="0")
    return subprocess.run(
        [ANALYZE, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def rendered_units(tmp_path: Path) -> dict[str, tuple[Path, list[str]]]:
    """Each unit flavour written for awkward paths, with systemd-analyze's scope option. The
    interpreter sits in a folder with a space: verify checks that ExecStart's program exists."""
    settings = settings_in(tmp_path / 'Photo Shoots "2026" 100%')
    python_dir = tmp_path / "py env" / "bin"
    python_dir.mkdir(parents=True)
    python = python_dir / "python"
    python.symlink_to(sys.executable)
    units = {
        "system": (service.render_unit(settings, "system", str(python), "photographer"), []),
        "user": (service.render_unit(settings, "user", str(python)), ["--user"]),
        "user-restricted": (
            service.render_unit(settings, "user", str(python), user_namespaces=False),
            ["--user"],
        ),
    }
    found = {}
    for name, (text, scope) in units.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "eyespyd.service").write_text(text, encoding="utf-8")
        found[name] = (folder / "eyespyd.service", scope)
    (tmp_path / "runtime").mkdir()
    return found


@needs_analyze
def test_systemd_analyze_verify_accepts_every_unit(tmp_path: Path) -> None:
    for name, (unit, scope) in rendered_units(tmp_path).items():
        result = analyze("verify", *scope, str(unit), runtime=tmp_path / "runtime")
        complaints = [line for line in result.stderr.splitlines() if str(unit) in line]
        assert result.returncode == 0 and not complaints, f"{name}: {result.stderr}"


@needs_analyze
def test_systemd_reads_quoted_paths_back_as_written(tmp_path: Path) -> None:
    # A relative path is ignored with a warning that shows how systemd parsed it.
    tricky = 'rel "quoted" 100% \\back $HOME'
    unit = tmp_path / "probe.service"
    unit.write_text(
        "[Service]\nExecStart=/bin/true\nReadWritePaths=" + service._path_word(Path(tricky)) + "\n"
    )
    (tmp_path / "runtime").mkdir()
    result = analyze("verify", str(unit), runtime=tmp_path / "runtime")
    assert f"ignoring: {tricky}" in result.stderr, result.stderr


@needs_analyze
@pytest.mark.parametrize("name", ["system", "user"])
def test_security_exposure_is_ok_or_better(tmp_path: Path, name: str) -> None:
    unit, scope = rendered_units(tmp_path)[name]
    result = analyze("security", "--offline=yes", *scope, str(unit), runtime=tmp_path / "runtime")
    if result.returncode != 0 and "offline" in result.stderr:
        pytest.skip(f"systemd-analyze cannot review unit files offline: {result.stderr.strip()}")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout
