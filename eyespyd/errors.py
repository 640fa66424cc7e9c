"""The errors eyespyd reports: each names what was being done, to which file, and why."""

from __future__ import annotations

from pathlib import Path


class EyespydError(Exception):
    """Base of every error eyespyd reports to the photographer as one line."""


class DecodeError(EyespydError):
    """A file could not be turned into pixels; the frame is kept, never sent to blink/."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"cannot decode {path}: {reason}")
        self.path = Path(path)
        self.reason = reason


class ContainerError(EyespydError):
    """A RAW or JPEG container is malformed; decode turns it into a DecodeError with the path."""


class ConfigError(EyespydError):
    """The configuration is invalid; carries every problem found, each with its key path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        # One line per problem, each naming the file, so an editor or grep can jump to it.
        super().__init__("\n".join(f"{source}: {p}" for p in problems))
        self.source = source
        self.problems = list(problems)


class ModelError(EyespydError):
    """A model file is missing, altered (sha256 mismatch) or does not load."""
