"""The platform's usual folders for eyespyd's configuration, state and user data.

Small enough to write here rather than depend on platformdirs: XDG on Linux, ~/Library on macOS,
and systemd's $STATE_DIRECTORY when the service manager hands one over.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP = "eyespyd"


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    # The XDG spec says relative values are invalid and must be ignored.
    if value and Path(value).is_absolute():
        return Path(value)
    return Path.home() / fallback


def config_dir() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP
    return _xdg("XDG_CONFIG_HOME", ".config") / APP


def state_dir() -> Path:
    # systemd's StateDirectory= sets this; it may list several folders separated by ':'.
    managed = os.environ.get("STATE_DIRECTORY")
    if managed:
        return Path(managed.split(":")[0])
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP / "state"
    return _xdg("XDG_STATE_HOME", ".local/state") / APP


def data_dir() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP
    return _xdg("XDG_DATA_HOME", ".local/share") / APP
