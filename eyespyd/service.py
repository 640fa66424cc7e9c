"""Installing eyespyd as a background service: a systemd unit on Linux, a launchd agent on macOS.

Rendering is pure (`render_unit`, `render_plist`); `install` writes what they render for the current
configuration and `instructions` says how to start it. Nothing here runs systemctl or launchctl.

The service and the command line must read the same configuration, so the unit names its file with
`--config`. When eyespyd runs on the embedded default (no file yet), `install` writes the effective
settings to the platform's config file first, the file the command line then finds too. A system
unit runs as another user and cannot use the installing user's defaults: it needs a file.

The systemd unit is sandboxed: the file system is read-only except the configured folders (inbox,
keep, blink and review of every folder) and the state directory, with no network, no privileges
and a system-call filter. ReadWritePaths= must name folders that exist when the service starts, and
a sandboxed daemon cannot create them (their parents are read-only), so `install` creates them.
Changing the folders in the configuration therefore means running `install` again.
"""

from __future__ import annotations

import dataclasses
import os
import plistlib
import pwd
import re
import sys
import tempfile
from pathlib import Path
from typing import Literal

import yaml

from eyespyd import config, paths, schema
from eyespyd.config import Settings
from eyespyd.errors import EyespydError

Scope = Literal["user", "system"]

UNIT_NAME = "eyespyd.service"
LABEL = "org.eyespyd.agent"
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
WATCHDOG_SEC = 60

_USER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?")
_PRIVATE_TMP = (Path("/tmp"), Path("/var/tmp"))
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")  # needs no quotes in a unit file


class ServiceError(EyespydError):
    """The service cannot be installed as asked; says why and what to do instead."""


# --- rendering -----------------------------------------------------------------------------------


def render_unit(
    settings: Settings,
    scope: Scope,
    python: str = sys.executable,
    user: str | None = None,
    *,
    user_namespaces: bool = True,
    state_dir: Path | None = None,
) -> str:
    """The systemd unit for `settings`, whose `source` must be the configuration file.

    `user` is required for the system unit, which runs as that user. A user unit gets the full
    sandbox only where unprivileged user namespaces work (`user_namespaces`); elsewhere (Ubuntu
    23.10 and later restrict them) it keeps the system-call level protections, which need none.
    `state_dir` is the user unit's ledger folder (default: the one the command line uses)."""
    config_file = service_config_file(settings)
    if scope == "system":
        user = check_user(user)
    elif user is not None:
        raise ServiceError("a user service runs as you: User= is only for the system service")
    folders = folder_paths(settings)
    lines = [
        "# eyespyd: sorts the frames where someone blinked out of a photo session.",
        f"# Written by `eyespyd install` for {config_file}.",
        "# The sandbox lets eyespyd write only to the folders in ReadWritePaths=: after changing",
        "# the folders in the configuration, run `eyespyd install` again.",
        "",
        "[Unit]",
        "Description=eyespyd: sorts blinked frames out of a photo session",
    ]
    if scope == "system":
        lines.append("After=local-fs.target remote-fs.target")
    lines += [
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        "ExecStart=" + " ".join(_exec_word(w) for w in run_command(config_file, python)),
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        f"WatchdogSec={WATCHDOG_SEC}",
        "SyslogIdentifier=eyespyd",
        "UMask=0022",
    ]
    if scope == "system":
        lines.append(f"User={user}")
    sandbox = scope == "system" or user_namespaces
    if sandbox:
        lines += [
            "",
            "# Files: everything read-only but the photo folders and the state directory.",
            "ProtectSystem=strict",
            "ProtectHome=read-only",
            *(f"ReadWritePaths={_path_word(p)}" for p in folders),
        ]
        if scope == "system":
            lines.append("StateDirectory=eyespyd")
        else:
            # StateDirectory= of a user unit is ~/.config before systemd 254: name the folder the
            # command line uses instead, so both find the same ledger.
            state = paths.state_dir() if state_dir is None else state_dir
            lines.append(f"ReadWritePaths={_path_word(state)}")
        lines += [
            "PrivateTmp=yes",
            "PrivateDevices=yes",
            "PrivateMounts=yes",
            "PrivateIPC=yes",
            "PrivateUsers=yes",
            "",
            "# No network: AF_UNIX only, for the journal and the notify socket.",
            "PrivateNetwork=yes",
        ]
        if scope == "system":
            lines.append("IPAddressDeny=any")
        lines += [
            "RestrictAddressFamilies=AF_UNIX",
            "",
            "# No privileges, no kernel or clock changes.",
            "NoNewPrivileges=yes",
            "CapabilityBoundingSet=",
            "RestrictSUIDSGID=yes",
            "ProtectKernelTunables=yes",
            "ProtectKernelModules=yes",
            "ProtectKernelLogs=yes",
            "ProtectClock=yes",
            "ProtectHostname=yes",
        ]
        if scope == "system":
            lines += ["ProtectControlGroups=yes", "ProtectProc=invisible"]
    else:
        lines += [
            "",
            "# This system does not let services create user namespaces (Ubuntu restricts them),",
            "# so the file-system sandbox is left out: only the system-call filters remain.",
            "RestrictAddressFamilies=AF_UNIX",
            "NoNewPrivileges=yes",
            "RestrictSUIDSGID=yes",
        ]
    lines += [
        "",
        "# System calls: what a service needs, native ABI only; no W+X memory (LiteRT runs",
        "# without it), no personality, realtime or namespace changes.",
        "SystemCallFilter=@system-service",
        "SystemCallErrorNumber=EPERM",
        "SystemCallArchitectures=native",
        "MemoryDenyWriteExecute=yes",
        "LockPersonality=yes",
        "RestrictRealtime=yes",
        "RestrictNamespaces=yes",
        "KeyringMode=private",
        "",
        "[Install]",
        "WantedBy=" + ("multi-user.target" if scope == "system" else "default.target"),
    ]
    return "\n".join(lines) + "\n"


def render_plist(
    settings: Settings, python: str = sys.executable, *, home: Path | None = None
) -> bytes:
    """The launchd agent for `settings`, whose `source` must be the configuration file.

    Started at login and restarted when it fails (not after a clean exit); Background lowers its
    CPU and I/O priority below the photographer's foreground work."""
    config_file = service_config_file(settings)
    log_file = (Path.home() if home is None else home) / "Library" / "Logs" / "eyespyd.log"
    agent = {
        "Label": LABEL,
        "ProgramArguments": run_command(config_file, python),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ProcessType": "Background",
        "StandardOutPath": str(log_file),
        "StandardErrorPath": str(log_file),
    }
    return plistlib.dumps(agent, sort_keys=False)


def run_command(config_file: Path, python: str = sys.executable) -> list[str]:
    """The daemon's command line. The interpreter path is kept as given, not resolved: a
    virtualenv's python is a symlink, and resolving it would lose the environment."""
    return [str(Path(python).absolute()), "-m", "eyespyd", "run", "--config", str(config_file)]


def service_config_file(settings: Settings) -> Path:
    if settings.source == config.EMBEDDED:
        raise ServiceError(
            "the service needs a configuration file; eyespyd is running on the embedded"
            " default (install writes one first)"
        )
    return Path(settings.source).expanduser().absolute()


def folder_paths(settings: Settings) -> list[Path]:
    """Every folder the daemon writes: inbox, keep, blink and review of each folder, once each."""
    found: dict[Path, None] = {}
    for f in settings.folders:
        for folder in (f.inbox, f.keep, f.blink, f.review):
            found[folder] = None
    return list(found)


def check_user(user: str | None) -> str:
    if not user:
        raise ServiceError("the system service needs the user it runs as (the photographer)")
    if not _USER_NAME.fullmatch(user):
        raise ServiceError(f"{user!r} is not a valid user name")
    if user == "root":
        raise ServiceError("the service must not run as root: name the photographer's user")
    return user


def _value(text: str, what: str) -> str:
    """Escapes for a double-quoted word in a unit file: backslash and quote, and % (specifiers)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ServiceError(f"{what} {text!r} contains control characters a unit file cannot hold")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ServiceError(
            f"{what} {text!r} is not valid UTF-8, which unit files must be"
        ) from None
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")


def _path_word(path: Path) -> str:
    """A path for ReadWritePaths=, which takes space-separated, optionally quoted paths."""
    return _quoted(_value(str(path), "the path"))


def _exec_word(word: str) -> str:
    """An ExecStart= word; $ is doubled too, since systemd expands $VARIABLES there."""
    return _quoted(_value(word, "the argument").replace("$", "$$"))


def _quoted(escaped: str) -> str:
    return escaped if _PLAIN_WORD.fullmatch(escaped) else f'"{escaped}"'


# --- installing ----------------------------------------------------------------------------------


def unit_file(scope: Scope, *, platform: str = sys.platform) -> Path:
    """Where the service definition goes."""
    if platform == "darwin":
        return Path.home() / "Library" / "LaunchAgents" / f"{LABEL}.plist"
    if scope == "system":
        return SYSTEM_UNIT_DIR / UNIT_NAME
    return paths.config_dir().parent / "systemd" / "user" / UNIT_NAME


def install(
    settings: Settings,
    scope: Scope,
    *,
    python: str = sys.executable,
    dest_root: Path | None = None,
    user: str | None = None,
    platform: str = sys.platform,
) -> list[Path]:
    """Write the service for the current configuration; returns what was created, in order: a
    configuration file when there was none, folders that did not exist, and the unit or plist.

    `dest_root` puts every file and folder under that root instead of `/` (like make's DESTDIR),
    for tests and packaging. Running it again after a configuration change updates the unit."""
    launchd = platform == "darwin"
    if launchd and scope != "user":
        raise ServiceError("on macOS eyespyd runs as a LaunchAgent of your user: use user scope")
    new_config, config_text = _service_config(settings, scope)
    settings = dataclasses.replace(settings, source=str(new_config or settings.source))
    if launchd:
        rendered = render_plist(settings, python)
    else:
        namespaces = scope == "system" or user_namespaces_available()
        rendered = render_unit(settings, scope, python, user, user_namespaces=namespaces).encode()
    owner = _owner(user) if scope == "system" else None
    created: list[Path] = []
    if new_config is not None and config_text is not None:
        target = reroot(new_config, dest_root)
        created += _make_dirs(target.parent, owner)
        _write(target, config_text.encode(), replace=False)
        created.append(target)
    needed = folder_paths(settings)
    if not launchd and scope == "user":
        needed.append(paths.state_dir())
    for folder in needed:
        created += _make_dirs(reroot(folder, dest_root), owner)
    target = reroot(unit_file(scope, platform=platform), dest_root)
    _make_dirs(target.parent, None)
    _write(target, rendered, replace=True)
    created.append(target)
    return created


def _owner(user: str | None) -> tuple[int, int] | None:
    """The uid and gid new folders get when root installs a system unit for `user`."""
    user = check_user(user)
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ServiceError(f"there is no user {user!r} on this system") from None
    return entry.pw_uid, entry.pw_gid


def uninstall(
    scope: Scope, dest_root: Path | None = None, *, platform: str = sys.platform
) -> list[Path]:
    """Remove the unit or plist; returns what was removed. The configuration, the photo folders
    and the state stay. Stop the service first (`uninstall_instructions`)."""
    target = reroot(unit_file(scope, platform=platform), dest_root)
    try:
        target.unlink()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ServiceError(f"cannot remove {target}: {exc.strerror or exc}") from None
    return [target]


def instructions(
    scope: Scope, *, platform: str = sys.platform, python: str = sys.executable
) -> str:
    """How to start the installed service, follow its log and reload it."""
    if platform == "darwin":
        plist = unit_file("user", platform=platform)
        interpreter = os.path.realpath(python)
        return "\n".join(
            [
                "Start it now and at every login:",
                f'  launchctl bootstrap gui/$(id -u) "{plist}"',
                "Restart it, reload its configuration, follow its log:",
                f"  launchctl kickstart -k gui/$(id -u)/{LABEL}",
                f"  launchctl kill HUP gui/$(id -u)/{LABEL}",
                "  tail -f ~/Library/Logs/eyespyd.log",
                "macOS asks before a program reads ~/Pictures, ~/Desktop, ~/Documents or",
                "/Volumes, and a background agent cannot show that question. Open System",
                "Settings > Privacy & Security > Full Disk Access (or Files and Folders, Removable",
                "Volumes, Network Volumes) and add the Python interpreter eyespyd runs with:",
                f"  {interpreter}",
            ]
        )
    if scope == "system":
        return "\n".join(
            [
                "Start it now and at every boot:",
                "  sudo systemctl daemon-reload",
                f"  sudo systemctl enable --now {UNIT_NAME}",
                "Follow its log, reload its configuration:",
                "  journalctl -u eyespyd -f",
                "  journalctl -u eyespyd EYESPYD_VERDICT=blink    # every blink, with its fields",
                "  sudo systemctl reload eyespyd",
            ]
        )
    return "\n".join(
        [
            "Start it now and at every login:",
            "  systemctl --user daemon-reload",
            f"  systemctl --user enable --now {UNIT_NAME}",
            "Follow its log, reload its configuration:",
            "  journalctl --user -u eyespyd -f",
            "  journalctl --user -u eyespyd EYESPYD_VERDICT=blink   # every blink, with its fields",
            "  systemctl --user reload eyespyd",
            "A user service stops when you log out. To keep it running without a login session",
            "(a capture machine without a desktop):",
            "  sudo loginctl enable-linger $USER",
        ]
    )


def uninstall_instructions(scope: Scope, *, platform: str = sys.platform) -> str:
    """What to run before `uninstall` removes the file, so nothing keeps running."""
    if platform == "darwin":
        return f"  launchctl bootout gui/$(id -u)/{LABEL}"
    if scope == "system":
        return (
            f"  sudo systemctl disable --now {UNIT_NAME}\n"
            "  (afterwards) sudo systemctl daemon-reload"
        )
    return (
        f"  systemctl --user disable --now {UNIT_NAME}\n"
        "  (afterwards) systemctl --user daemon-reload"
    )


def warnings(
    settings: Settings,
    scope: Scope = "user",
    *,
    python: str = sys.executable,
    platform: str = sys.platform,
) -> list[str]:
    """What the service will not do or see the way the command line does, to tell before
    installing it."""
    found = []
    if scope == "user" and platform.startswith("linux") and not user_namespaces_available():
        found.append(
            "this system does not let services create user namespaces, so the user service"
            " runs without its file-system sandbox; the system service (--system) has it"
        )
    named = [(f"folder {p}", p) for p in folder_paths(settings)]
    named.append((f"the interpreter {python}", Path(python).absolute()))
    if settings.source != config.EMBEDDED:
        named.append((f"the configuration {settings.source}", Path(settings.source).absolute()))
    for what, path in named:
        if any(path == tmp or tmp in path.parents for tmp in _PRIVATE_TMP):
            found.append(
                f"{what} is in a temporary folder; the service has its own and cannot see it"
            )
    return found


def user_namespaces_available() -> bool:
    """Whether a user service can get a user namespace, which its file-system sandbox needs."""
    if not sys.platform.startswith("linux"):
        return False
    blocked = {
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns": "1",  # Ubuntu 23.10 and later
        "/proc/sys/kernel/unprivileged_userns_clone": "0",  # Debian's switch, off before Debian 11
        "/proc/sys/user/max_user_namespaces": "0",
    }
    for file, value in blocked.items():
        try:
            if Path(file).read_text(encoding="ascii").strip() == value:
                return False
        except OSError:
            continue
    return True


def reroot(path: Path, dest_root: Path | None) -> Path:
    """`path` under `dest_root` (DESTDIR-style), or `path` itself."""
    if dest_root is None:
        return path
    return dest_root / path.relative_to(path.anchor)


def _service_config(settings: Settings, scope: Scope) -> tuple[Path | None, str | None]:
    """The configuration file to write first (path and text), or (None, None) when the settings
    come from a file that says the same."""
    if settings.source == config.EMBEDDED:
        if scope == "system":
            raise ServiceError(
                "a system service runs as another user and needs a configuration file naming"
                " its folders: write one (eyespyd example-config > FILE), then install with"
                " --config FILE"
            )
        target = paths.config_dir() / "eyespyd.yaml"
        text = _config_text(settings)
        check = config.from_mapping(yaml.safe_load(text), str(target), target.parent)
        if config.to_mapping(check) != config.to_mapping(settings):
            raise ServiceError(f"could not write the effective configuration to {target}")
        return target, text
    file = service_config_file(settings)
    if config.to_mapping(config.load(file)) != config.to_mapping(settings):
        raise ServiceError(
            f"the service reads {file}, and these settings differ from it (--watch?): put the"
            " folders into the file and install again"
        )
    return None, None


def _config_text(settings: Settings) -> str:
    """The commented example when the settings are the defaults, else the settings as YAML."""
    defaults = config.from_mapping({}, config.EMBEDDED, Path.home())
    if config.to_mapping(settings) == config.to_mapping(defaults):
        return schema.example_yaml()
    header = (
        "# eyespyd configuration, written by `eyespyd install` from the settings it ran with.\n"
        "# Every key is explained by `eyespyd example-config`.\n"
    )
    return header + yaml.safe_dump(config.to_mapping(settings), sort_keys=False)


def _make_dirs(path: Path, owner: tuple[int, int] | None) -> list[Path]:
    """Create `path` and its missing parents, owned by `owner` (uid, gid) when given; returns
    `path` when it was created."""
    missing = [p for p in (path, *path.parents) if not p.exists()][::-1]
    try:
        path.mkdir(parents=True, exist_ok=True)
        if owner is not None:
            for p in missing:
                os.chown(p, *owner)
    except OSError as exc:
        raise ServiceError(f"cannot create the folder {path}: {exc.strerror or exc}") from None
    return missing[-1:]


def _write(target: Path, data: bytes, *, replace: bool) -> None:
    """Write atomically (a temporary file renamed over the target), mode 0644."""
    if not replace and target.exists():
        raise ServiceError(f"cannot write {target}: it exists, and is not overwritten")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as exc:
        raise ServiceError(f"cannot write {target}: {exc.strerror or exc}") from None
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        temp.chmod(0o644)
        if replace:
            temp.replace(target)
        else:
            target.hardlink_to(temp)  # fails rather than overwrite a file that appeared meanwhile
            temp.unlink()
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ServiceError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_examples(dest: Path) -> list[Path]:
    """The files in deploy/: each service definition rendered for a sample photographer."""
    home = Path("/home/photographer")
    mac_home = Path("/Users/photographer")
    written = []
    for name, data in (
        ("eyespyd.user.service", _sample_unit("user", home).encode()),
        ("eyespyd.system.service", _sample_unit("system", home).encode()),
        (f"{LABEL}.plist", _sample_plist(mac_home)),
    ):
        (dest / name).write_bytes(data)
        written.append(dest / name)
    return written


def _sample_settings(home: Path, config_file: Path) -> Settings:
    base = home / "Pictures" / "eyespy"
    folder = {k: str(base / k) for k in ("inbox", "keep", "blink", "review")}
    return config.from_mapping({"folders": [folder]}, str(config_file), config_file.parent)


def _sample_unit(scope: Scope, home: Path) -> str:
    settings = _sample_settings(home, home / ".config" / "eyespyd" / "eyespyd.yaml")
    python = str(home / ".local" / "share" / "eyespyd" / "venv" / "bin" / "python")
    user = "photographer" if scope == "system" else None
    state = home / ".local" / "state" / "eyespyd"
    return render_unit(settings, scope, python, user, state_dir=state)


def _sample_plist(home: Path) -> bytes:
    settings = _sample_settings(
        home, home / "Library" / "Application Support" / "eyespyd" / "eyespyd.yaml"
    )
    python = str(home / "Library" / "eyespyd" / "venv" / "bin" / "python")
    return render_plist(settings, python, home=home)
