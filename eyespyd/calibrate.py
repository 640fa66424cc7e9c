"""calibrate: the threshold that the photographer's corrections support.

Evidence: every routed frame whose truth is known. A corrected frame's truth is the folder the
photographer last put it in (see eyespyd.corrections); an uncorrected one confirms its verdict (a
frame left in, or deleted from, blink/ is a blink; one left in keep/ a keeper). A review frame
nobody sorted, a frame moved to review/, a tagged frame and an unreadable one give no label.

Each candidate threshold (0.05 to 0.95 by 0.01, with the configured review_margin and the other
verdict settings unchanged) is judged by `verdict.decide` itself, re-run on the eye probabilities
the ledger kept, so group photos, one visible eye and hidden eyes count exactly as the daemon
treats them. Its cost:

    5 x false blinks + 1 x missed blinks + 0.25 x reviews   (of the labelled frames)

A false blink costs five missed blinks because it is a keeper sent where photographers delete
unseen: a lost photo, where a missed blink is one more frame to reject by hand. A review costs a
quarter: one look. The proposal is the cheapest threshold (fewer false blinks breaking a tie); the
current one when it is among the cheapest, else the middle of the stretch of cheapest thresholds
nearest to it, not its edge. Under MIN_CORRECTIONS corrections nothing is proposed.

`apply` writes the threshold into the configuration file by editing the one line (comments, key
order and the rest of the text stay byte for byte), validates the result as `config` would load
it, and replaces the file atomically.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import functools
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from eyespyd import config, paths
from eyespyd.config import VerdictSettings
from eyespyd.errors import ConfigError
from eyespyd.record import ROUTED, Correction, Frame, Ledger
from eyespyd.route import TAG
from eyespyd.types import Face
from eyespyd.verdict import BLINK, KEEP, REVIEW, decide

FALSE_BLINK_COST = 5.0
MISSED_BLINK_COST = 1.0
REVIEW_COST = 0.25
MIN_CORRECTIONS = 10
GRID = tuple(round(0.05 + step / 100, 2) for step in range(91))  # 0.05, 0.06, ..., 0.95
SHOWN_CHANGES = 100  # format_proposal lists this many changed frames, then counts the rest


@dataclass(frozen=True, slots=True)
class Tally:
    """What a threshold does to the labelled frames."""

    threshold: float
    false_blinks: int  # keepers sent to blink
    missed_blinks: int  # blinks sent to keep
    reviews: int  # labelled frames sent to review
    right: int  # labelled frames sent where the photographer wants them

    @property
    def cost(self) -> float:
        return (
            FALSE_BLINK_COST * self.false_blinks
            + MISSED_BLINK_COST * self.missed_blinks
            + REVIEW_COST * self.reviews
        )


@dataclass(frozen=True, slots=True)
class Change:
    """A frame whose verdict would change."""

    frame: int
    path: Path  # where it is now, as far as the ledger knows
    score: float
    truth: str | None  # keep or blink as the photographer says; None when unknown
    before: str  # the verdict at the current threshold
    after: str


@dataclass(frozen=True, slots=True)
class Proposal:
    current: Tally
    best: Tally  # the cheapest threshold on this evidence (current's when it is among them)
    proposed: float | None  # best.threshold, or None: not enough evidence
    review_margin: float
    labelled: int  # frames with a known truth
    corrections: dict[str, int]  # corrections that disagree with eyespyd, by what they say
    changes: tuple[Change, ...]  # going from the current threshold to the best

    @property
    def evidence(self) -> int:
        return sum(self.corrections.values())

    @property
    def to_write(self) -> float | None:
        """The threshold `--write` should write: the proposal when it changes the current one."""
        if self.proposed is None or self.proposed == self.current.threshold:
            return None
        return self.proposed


# --- the evidence -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Eye:
    closed: float
    hidden: float


@dataclass(frozen=True, slots=True)
class _Reading:
    right: _Eye
    left: _Eye
    is_face: bool  # False: the face mesh saw no face in the detection (record.faces_json)


@dataclass(frozen=True, slots=True)
class _Sample:
    frame: int
    path: Path
    score: float
    verdict: str  # eyespyd's, as recorded
    truth: str | None
    now: str  # decide() at the current threshold
    runs: tuple[tuple[int, str], ...]  # (first GRID index, verdict from there on)

    def at(self, index: int) -> str:
        """The verdict at GRID[index]."""
        starts = [start for start, _ in self.runs]
        return self.runs[bisect.bisect_right(starts, index) - 1][1]


def _faces(frame: Frame) -> tuple[list[Face], list[_Reading]]:
    """The faces and eye readings the ledger kept, in the shapes decide() reads."""
    faces, readings = [], []
    for f in frame.faces:
        x0, y0, x1, y1 = (float(v) for v in f["box"])
        eyes: dict[str, Any] = f["eyes"]
        faces.append(Face((x0, y0, x1, y1), float(f["score"]), ((0.0, 0.0),) * 6))
        readings.append(
            _Reading(
                right=_Eye(float(eyes["right"]), float(eyes.get("right_hidden", 0.0))),
                left=_Eye(float(eyes["left"]), float(eyes.get("left_hidden", 0.0))),
                is_face=bool(f.get("is_face", True)),
            )
        )
    return faces, readings


def _runs(
    faces: list[Face], readings: list[_Reading], settings: VerdictSettings, score: float
) -> tuple[tuple[int, str], ...]:
    """decide() over the whole GRID, as (first index, verdict) runs. A higher threshold never
    makes a frame more of a blink: as it rises the verdict goes blink, then review, then keep
    (some of them possibly absent), so two searches find where it changes, whatever decide's
    rules inside (a test checks it against every threshold). Each search first tries where the
    frame's `score` (at the current threshold) says the change should be: two calls of decide
    when right, a binary search (about seven) when not."""

    @functools.cache
    def at(index: int) -> str:
        return decide(faces, readings, dataclasses.replace(settings, threshold=GRID[index])).verdict

    not_blink = _first(lambda i: at(i) != BLINK, bisect.bisect_right(GRID, score), 0)
    kept = _first(
        lambda i: at(i) == KEEP, bisect.bisect_left(GRID, score + settings.review_margin), not_blink
    )
    runs = [(0, BLINK), (not_blink, REVIEW), (kept, KEEP)]
    ends = [not_blink, kept, len(GRID)]
    return tuple(
        (start, verdict) for (start, verdict), end in zip(runs, ends, strict=True) if start < end
    )


def _first(holds: Callable[[int], bool], guess: int, low: int) -> int:
    """The first GRID index from `low` on where `holds` (false, then true) is true, or
    len(GRID) when it never is; `guess` is checked first."""
    n = len(GRID)
    if (
        low <= guess <= n
        and (guess == low or not holds(guess - 1))
        and (guess == n or holds(guess))
    ):
        return guess
    return bisect.bisect_left(range(n), True, lo=low, key=holds)


def _truth(frame: Frame, last: Correction | None) -> str | None:
    folder = last.to_verdict if last is not None else frame.verdict
    return folder if folder in (KEEP, BLINK) else None


def _where(frame: Frame, last: Correction | None) -> Path:
    if last is not None:
        return last.path
    for source, target in zip(frame.sources, frame.targets, strict=True):
        if source == frame.path:
            return target
    return frame.targets[0] if frame.targets else frame.path


def _samples(
    frames: Iterable[Frame], last: dict[int, Correction], settings: VerdictSettings
) -> Iterator[_Sample]:
    for frame in frames:
        if frame.status != ROUTED or frame.action == TAG or frame.decode_error is not None:
            continue  # put nowhere, or kept because unreadable: no evidence about eyes
        faces, readings = _faces(frame)
        now = decide(faces, readings, settings)
        yield _Sample(
            frame=frame.id,
            path=_where(frame, last.get(frame.id)),
            score=frame.score,
            verdict=frame.verdict,
            truth=_truth(frame, last.get(frame.id)),
            now=now.verdict,
            runs=_runs(faces, readings, settings, now.score),
        )


def _outcome(verdict: str, truth: str) -> int:
    """0 false blink, 1 missed blink, 2 review, 3 right."""
    if verdict == REVIEW:
        return 2
    if verdict == truth:
        return 3
    return 0 if verdict == BLINK else 1


def _tally(threshold: float, counts: Sequence[int]) -> Tally:
    return Tally(threshold, counts[0], counts[1], counts[2], counts[3])


# --- the proposal -------------------------------------------------------------------------------


def propose(ledger: Ledger, settings: VerdictSettings) -> Proposal:
    """The threshold the ledger's corrections support, with `settings` as configured now.
    Reads the frames one session at a time."""

    def frames() -> Iterator[Frame]:
        for session in ledger.sessions():
            yield from ledger.frames(session.id, ROUTED)

    return propose_from(frames(), ledger.corrections(), settings)


def propose_from(
    frames: Iterable[Frame], corrections: Iterable[Correction], settings: VerdictSettings
) -> Proposal:
    """`propose` over frames and corrections as the ledger returns them (no I/O)."""
    last: dict[int, Correction] = {}
    for correction in corrections:  # in the order noticed: the last one counts
        last[correction.frame] = correction
    samples = list(_samples(frames, last, settings))
    labelled = [(s, s.truth) for s in samples if s.truth is not None]

    # Per grid threshold, how many labelled frames end up in each outcome: add each run's span.
    spans = [[0] * (len(GRID) + 1) for _ in range(4)]
    now = [0, 0, 0, 0]
    for sample, truth in labelled:
        now[_outcome(sample.now, truth)] += 1
        ends = [start for start, _ in sample.runs[1:]] + [len(GRID)]
        for (start, verdict), end in zip(sample.runs, ends, strict=True):
            outcome = _outcome(verdict, truth)
            spans[outcome][start] += 1
            spans[outcome][end] -= 1
    per_index = []
    totals = [0, 0, 0, 0]
    for i, threshold in enumerate(GRID):
        totals = [totals[k] + spans[k][i] for k in range(4)]
        per_index.append(_tally(threshold, totals))

    current = _tally(settings.threshold, now)
    best_index = _choose(per_index, current)
    best = current if best_index is None else per_index[best_index]

    def verdict_at_best(sample: _Sample) -> str:
        return sample.now if best_index is None else sample.at(best_index)

    changes = tuple(
        sorted(
            (
                Change(s.frame, s.path, s.score, s.truth, s.now, verdict_at_best(s))
                for s in samples
                if verdict_at_best(s) != s.now
            ),
            key=lambda c: (c.truth is None, c.score, c.frame),
        )
    )
    said: dict[str, int] = {}
    for sample, truth in labelled:
        if truth != sample.verdict and sample.frame in last:
            what = "review labels" if sample.verdict == REVIEW else _says(sample.verdict)
            said[what] = said.get(what, 0) + 1
    enough = sum(said.values()) >= MIN_CORRECTIONS
    return Proposal(
        current=current,
        best=best,
        proposed=best.threshold if enough else None,
        review_margin=settings.review_margin,
        labelled=len(labelled),
        corrections=said,
        changes=changes,
    )


def _says(verdict: str) -> str:
    return "false blinks" if verdict == BLINK else "missed blinks"


def _key(tally: Tally) -> tuple[float, int]:
    return tally.cost, tally.false_blinks


def _choose(per_index: Sequence[Tally], current: Tally) -> int | None:
    """The GRID index to propose, or None to keep the current threshold (among the cheapest)."""
    best = min(_key(t) for t in per_index)
    if _key(current) <= best:
        return None
    cheapest = [i for i, t in enumerate(per_index) if _key(t) == best]
    stretches: list[list[int]] = []
    for i in cheapest:
        if stretches and stretches[-1][-1] == i - 1:
            stretches[-1].append(i)
        else:
            stretches.append([i])
    here = current.threshold

    def distance(stretch: list[int]) -> float:
        low, high = GRID[stretch[0]], GRID[stretch[-1]]
        return max(low - here, here - high, 0.0)

    stretch = min(stretches, key=distance)  # min keeps the first (lower) of equally near ones
    middle = (stretch[0] + stretch[-1]) / 2
    if middle == int(middle):
        return int(middle)
    lower, upper = int(middle), int(middle) + 1
    return lower if here < GRID[upper] else upper  # an even stretch: the middle nearer current


# --- showing it ---------------------------------------------------------------------------------


def format_proposal(proposal: Proposal) -> str:
    """The proposal as text for a terminal: the evidence, the table, the frames that change."""
    p = proposal
    kinds = ", ".join(f"{n} {what}" for what, n in sorted(p.corrections.items())) or "none"
    lines = [
        f"Evidence: {_plural(p.labelled, 'frame')} whose truth is known;"
        f" {_plural(p.evidence, 'correction')} ({kinds}); the other {p.labelled - p.evidence}"
        " were left where eyespyd put them.",
        f"Costs: a false blink {FALSE_BLINK_COST:g}, a missed blink {MISSED_BLINK_COST:g},"
        f" a review {REVIEW_COST:g} (a false blink is a keeper sent where photos get deleted"
        " unseen).",
        "",
    ]
    if p.proposed is None:
        lines += [
            f"Not enough evidence: {_plural(p.evidence, 'correction')}, calibrate needs at least"
            f" {MIN_CORRECTIONS}. Nothing is proposed.",
            "Move frames eyespyd sorted wrongly where they belong, then run it again. The best"
            " threshold on this evidence so far:",
            "",
        ]
        other = "best so far"
    else:
        other = "proposed"
    lines += _table(p.current, p.best, other, p.review_margin)
    if p.changes:
        lines += ["", f"Frames whose verdict would change ({len(p.changes)}):"]
        lines.append(f"  {'score':>6}  {'now':7} {'then':7} {'truth':7} file")
        for c in p.changes[:SHOWN_CHANGES]:
            truth = c.truth or "?"
            lines.append(f"  {c.score:6.3f}  {c.before:7} {c.after:7} {truth:7} {c.path}")
        if len(p.changes) > SHOWN_CHANGES:
            lines.append(f"  ... and {len(p.changes) - SHOWN_CHANGES} more")
    lines.append("")
    if p.proposed is not None and p.to_write is None:
        lines.append(
            f"The corrections support the current threshold {p.current.threshold:.2f}:"
            " nothing to change."
        )
    elif p.proposed is not None:
        lines.append(
            f"Proposed: verdict.threshold {p.proposed:.2f} (now {p.current.threshold:.2f},"
            f" review_margin {p.review_margin:.2f} unchanged). --write puts it in the"
            " configuration."
        )
    return "\n".join(lines).rstrip("\n") + "\n"


def _table(current: Tally, best: Tally, other: str, margin: float) -> list[str]:
    header = f"  {'':12} {'threshold':>9} {'false blinks':>13} {'missed blinks':>14}"
    header += f" {'reviews':>8} {'cost':>8}"
    rows = [header]
    for name, t in (("current", current), (other, best)):
        rows.append(
            f"  {name:12} {t.threshold:9.2f} {t.false_blinks:13d} {t.missed_blinks:14d}"
            f" {t.reviews:8d} {t.cost:8.2f}"
        )
    rows.append(f"  (review_margin {margin:.2f} in both, as configured)")
    return rows


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --- writing it ---------------------------------------------------------------------------------

_VERDICT = re.compile(r"^verdict[ \t]*:[ \t]*(?P<rest>[^\r\n]*)$")
_THRESHOLD = re.compile(
    r"^(?P<indent>[ ]+)threshold[ \t]*:(?P<space>[ \t]*)(?P<value>[^#\r\n]*?)"
    r"(?P<comment>[ \t]+#[^\r\n]*)?(?P<eol>\r?\n)?$"
)


def apply(config_file: Path | None, threshold: float) -> bool:
    """Write `verdict.threshold` into `config_file`, changing that line only (or adding the key),
    and validate the result as the daemon would load it before replacing the file atomically.
    Whether the file changed. None (the embedded default configuration) is refused: there is no
    file to write."""
    if config_file is None:
        raise ConfigError(
            config.EMBEDDED,
            [
                "there is no configuration file to write the threshold to: create one with"
                f" `eyespyd example-config > {paths.config_dir() / 'eyespyd.yaml'}` (the file"
                " eyespyd reads by default), or pass --config FILE"
            ],
        )
    path = Path(config_file)
    real = path.resolve()  # a symlinked file (a dotfiles repository) is written where it lives
    text = _read(path)
    new = set_threshold(text, threshold, source=str(path))
    by_hand = f"set verdict.threshold to {round(threshold, 2):g} by hand"
    try:
        document = yaml.safe_load(new)
    except yaml.YAMLError:
        raise ConfigError(str(path), [f"calibrate cannot edit this file: {by_hand}"]) from None
    settings = config.from_mapping(document, str(path), path.parent)  # every problem, or none
    if settings.verdict.threshold != round(threshold, 2):
        raise ConfigError(str(path), [f"calibrate cannot edit this file: {by_hand}"])
    if new == text:
        return False
    _replace(real, new)
    return True


def set_threshold(text: str, threshold: float, *, source: str = "the configuration") -> str:
    """`text` with verdict.threshold set: the value on its line replaced (its comment kept), or
    the key added under `verdict:`, or a `verdict:` section added at the end."""
    value = f"{round(threshold, 2):g}"
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    start = next((i for i, line in enumerate(lines) if _VERDICT.match(line.rstrip("\r\n"))), None)
    if start is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += newline
        gap = [newline] if lines and lines[-1].strip() else []
        return "".join([*lines, *gap, f"verdict:{newline}", f"  threshold: {value}{newline}"])
    rest = _VERDICT.match(lines[start].rstrip("\r\n"))
    assert rest is not None
    if rest["rest"].strip() and not rest["rest"].lstrip().startswith("#"):
        raise ConfigError(
            source,
            [
                f"At 'verdict': written on one line ({rest['rest'].strip()}); calibrate edits"
                f" only a block of keys: set threshold to {value} by hand"
            ],
        )
    end = start + 1
    indent: str | None = None
    while end < len(lines):
        stripped = lines[end].strip()
        if stripped and not stripped.startswith("#"):
            if not lines[end][0].isspace():
                break  # the next top-level key ends the section
            if indent is None:
                indent = lines[end][: len(lines[end]) - len(lines[end].lstrip())]
        end += 1
    for i in range(start + 1, end):
        match = _THRESHOLD.match(lines[i])
        if match is None or match["indent"] != indent:
            continue
        if not match["value"].strip():
            raise ConfigError(
                source, [f"At 'verdict.threshold': not on one line; set it to {value} by hand"]
            )
        space = match["space"] or " "
        eol = match["eol"] or ""
        lines[i] = f"{indent}threshold:{space}{value}{match['comment'] or ''}{eol}"
        return "".join(lines)
    if not lines[start].endswith("\n"):
        lines[start] += newline
    lines.insert(start + 1, f"{indent or '  '}threshold: {value}{newline}")
    return "".join(lines)


def _read(path: Path) -> str:
    """The file's text, line endings as they are (read_text would turn CRLF into LF)."""
    config.read_yaml(path)  # the same errors as loading: missing, a folder, not UTF-8, not YAML
    return path.read_bytes().decode("utf-8")


def _replace(path: Path, text: str) -> None:
    """Write a new file beside `path` and rename it over `path`: a reader sees the old file or
    the new one, never half of one. The mode is kept."""
    mode = path.stat().st_mode & 0o7777
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with temp.open("x", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        temp.chmod(mode)
        temp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise ConfigError(str(path), [f"cannot be written: {exc.strerror or exc}"]) from exc
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
