"""Loading and validating the YAML configuration into frozen settings.

Validation walks the schema and collects every problem at once, each with its key path
(`At 'folders[0].keep': ...`), so the photographer fixes the file in one pass.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from eyespyd import paths
from eyespyd.errors import ConfigError
from eyespyd.schema import SCHEMA, ListOf, Node, Option, defaults

EMBEDDED = "embedded default configuration"
MAX_CONFIG_BYTES = 1_000_000  # a configuration is a few KB; anything huge is a wrong file


@dataclass(frozen=True, slots=True)
class FolderSettings:
    inbox: Path
    keep: Path
    blink: Path
    review: Path
    recursive: bool
    polling: bool

    def destination(self, verdict: str) -> Path:
        return {"keep": self.keep, "blink": self.blink, "review": self.review}[verdict]


@dataclass(frozen=True, slots=True)
class DecodeSettings:
    long_side: int
    min_preview_side: int
    max_megapixels: int

    @property
    def max_pixels(self) -> int:
        return self.max_megapixels * 1_000_000


@dataclass(frozen=True, slots=True)
class VerdictSettings:
    threshold: float
    review_margin: float
    one_eye_is_enough: bool
    min_face_size: float
    no_face: str
    eyes_not_visible: str


@dataclass(frozen=True, slots=True)
class ModelSettings:
    path: Path | None  # None: the shipped eye-state model
    sha256: str | None


@dataclass(frozen=True, slots=True)
class XmpSettings:
    enabled: bool
    naming: str
    rating: dict[str, int | None]
    label: dict[str, str | None]


@dataclass(frozen=True, slots=True)
class Settings:
    folders: tuple[FolderSettings, ...]
    action: str
    decode: DecodeSettings
    verdict: VerdictSettings
    model: ModelSettings
    xmp: XmpSettings
    settle_seconds: float
    rescan_seconds: float
    workers: int
    log_level: str
    source: str  # the file these came from, or EMBEDDED

    @property
    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1


def load(file: Path | None = None, watch: Path | None = None) -> Settings:
    """The effective settings: `file`, else $EYESPYD_CONFIG, else the platform's config file,
    else the embedded default; then `watch` replaces the inbox, destinations beside it."""
    source = find_config_file(file)
    if source is None:
        raw: object = {}
        name = EMBEDDED
        base = Path.home()
    else:
        raw = read_yaml(source)
        name = str(source)
        base = source.parent
    settings = from_mapping(raw, name, base)
    return with_watch(settings, watch) if watch is not None else settings


def find_config_file(explicit: Path | None) -> Path | None:
    """Which file to read; an explicit or $EYESPYD_CONFIG file that is missing is an error."""
    if explicit is not None:
        return explicit
    env = os.environ.get("EYESPYD_CONFIG")
    if env:
        return Path(env).expanduser()
    platform_file = paths.config_dir() / "eyespyd.yaml"
    return platform_file if platform_file.is_file() else None


def read_yaml(file: Path) -> object:
    """The parsed document, or a ConfigError naming the file and what is wrong with it."""
    try:
        if file.is_dir():
            raise ConfigError(str(file), ["is a folder, not a configuration file"])
        if file.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(str(file), ["is too large to be a configuration file"])
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(file), ["file not found"]) from None
    except PermissionError:
        raise ConfigError(str(file), ["cannot be read: permission denied"]) from None
    except UnicodeDecodeError:
        raise ConfigError(str(file), ["is not UTF-8 text"]) from None
    except OSError as exc:
        raise ConfigError(str(file), [f"cannot be read: {exc.strerror or exc}"]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(file), [f"not valid YAML: {where}{problem}"]) from None


def from_mapping(raw: object, source: str, base: Path) -> Settings:
    """Validate a parsed document against the schema and build the settings, or raise ConfigError
    listing every problem."""
    if raw is None:
        raw = {}  # an empty file means "all defaults"
    problems: list[str] = []
    merged = _validate(SCHEMA, raw, "", problems)
    model = merged["model"]
    if (model["path"] is None) != (model["sha256"] is None):
        problems.append("At 'model': give both path and sha256, or neither")
    if not any(p.startswith("At 'folders") for p in problems):
        # Folder relations are checked even when other keys are wrong: every problem at once.
        problems += folder_problems(_build_folders(merged["folders"], base))
    if problems:
        raise ConfigError(source, problems)
    return _build(merged, source, base)


def with_watch(settings: Settings, inbox: Path) -> Settings:
    """`--watch DIR`: one folder, inbox DIR with keep/, blink/ and review/ beside it."""
    inbox = inbox.expanduser().absolute()
    first = settings.folders[0]
    folder = FolderSettings(
        inbox=inbox,
        keep=inbox.parent / "keep",
        blink=inbox.parent / "blink",
        review=inbox.parent / "review",
        recursive=first.recursive,
        polling=first.polling,
    )
    problems = folder_problems((folder,))
    if problems:
        raise ConfigError(f"--watch {inbox}", problems)
    return Settings(
        folders=(folder,),
        action=settings.action,
        decode=settings.decode,
        verdict=settings.verdict,
        model=settings.model,
        xmp=settings.xmp,
        settle_seconds=settings.settle_seconds,
        rescan_seconds=settings.rescan_seconds,
        workers=settings.workers,
        log_level=settings.log_level,
        source=settings.source,
    )


def folder_problems(folders: tuple[FolderSettings, ...]) -> list[str]:
    """Destinations inside their own inbox, or an inbox that is another folder's destination,
    would make eyespyd process its own output."""
    problems = []
    inboxes = [f.inbox for f in folders]
    for i, folder in enumerate(folders):
        for key in ("keep", "blink", "review"):
            dest: Path = getattr(folder, key)
            if _inside(dest, folder.inbox):
                problems.append(f"At 'folders[{i}].{key}': {dest} is inside its own inbox")
            for j, other in enumerate(inboxes):
                if j != i and _inside(other, dest):
                    problems.append(
                        f"At 'folders[{i}].{key}': {dest} is (or contains) the inbox of"
                        f" folders[{j}]"
                    )
        for j, other in enumerate(inboxes[:i]):
            if other == folder.inbox:
                problems.append(f"At 'folders[{i}].inbox': {other} is also folders[{j}].inbox")
    return problems


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _validate(node: Node, value: object, where: str, problems: list[str]) -> Any:
    """The value with defaults filled in; problems are appended with their key path."""
    if isinstance(node, Option):
        problem = node.check(value)
        if problem:
            problems.append(f"At '{where}': {problem}")
        return value
    if isinstance(node, ListOf):
        if not isinstance(value, list):
            problems.append(f"At '{where}': must be a list (got {type(value).__name__})")
            return []
        if len(value) < node.min_items:
            problems.append(f"At '{where}': needs at least {node.min_items} entry")
        return [
            _validate(node.item, item, f"{where}[{i}]", problems) for i, item in enumerate(value)
        ]
    if not isinstance(value, dict):
        what = "the top level" if not where else f"'{where}'"
        problems.append(f"At {what}: must be a mapping of keys (got {type(value).__name__})")
        return defaults(node)
    out: dict[str, Any] = {}
    for key in value:
        if key not in node.keys:
            hint = difflib.get_close_matches(str(key), list(node.keys), n=1)
            also = f"; did you mean '{hint[0]}'?" if hint else ""
            problems.append(f"At '{_join(where, str(key))}': unknown key{also}")
    for name, child in node.keys.items():
        if name in value:
            out[name] = _validate(child, value[name], _join(where, name), problems)
        else:
            out[name] = defaults(child)
    return out


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _build_folders(folders: list[dict[str, Any]], base: Path) -> tuple[FolderSettings, ...]:
    def folder_path(text: str) -> Path:
        path = Path(text).expanduser()
        return path if path.is_absolute() else (base / path).absolute()

    return tuple(
        FolderSettings(
            inbox=folder_path(f["inbox"]),
            keep=folder_path(f["keep"]),
            blink=folder_path(f["blink"]),
            review=folder_path(f["review"]),
            recursive=f["recursive"],
            polling=f["polling"],
        )
        for f in folders
    )


def _build(data: dict[str, Any], source: str, base: Path) -> Settings:
    folders = _build_folders(data["folders"], base)
    d, v, x, m = data["decode"], data["verdict"], data["xmp"], data["model"]
    model_path = None
    if m["path"] is not None:
        model_path = Path(m["path"]).expanduser()
        model_path = model_path if model_path.is_absolute() else (base / model_path).absolute()
    return Settings(
        folders=folders,
        action=data["action"],
        decode=DecodeSettings(d["long_side"], d["min_preview_side"], d["max_megapixels"]),
        verdict=VerdictSettings(
            threshold=float(v["threshold"]),
            review_margin=float(v["review_margin"]),
            one_eye_is_enough=v["one_eye_is_enough"],
            min_face_size=float(v["min_face_size"]),
            no_face=v["no_face"],
            eyes_not_visible=v["eyes_not_visible"],
        ),
        model=ModelSettings(model_path, m["sha256"].lower() if m["sha256"] else None),
        xmp=XmpSettings(x["enabled"], x["naming"], dict(x["rating"]), dict(x["label"])),
        settle_seconds=float(data["settle_seconds"]),
        rescan_seconds=float(data["rescan_seconds"]),
        workers=data["workers"],
        log_level=data["log_level"],
        source=source,
    )


def to_mapping(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data in the schema's shape, for `check-config`."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    data = plain(dataclasses.asdict(settings))
    del data["source"]
    return dict(data)
