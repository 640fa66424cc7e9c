"""Daemon benchmark: a real `eyespyd run` process, driven the way a session drives it.

    python -m bench.daemon [--tethered 60] [--import-frames 600] [--soak 5000]

Three runs, each against a fresh daemon (two workers, the default on two cores):
- tethered: one 24 MP JPEG every 0.5 s (2 frames a second); for each, the time from the file's
  close to its appearance in keep/ or blink/; prints median and p95 (target p95 <= 300 ms).
- import: 600 24 MP JPEGs copied in as fast as the disk allows; time until the inbox is empty and
  every frame routed (target <= 40 s on 2 cores).
- soak: 5,000 frames in batches; resident memory (VmRSS) of the daemon after each batch, and its
  trend over the second half (target < 400 MB and flat).

Frames are headshots composed at full size from the committed fixture faces: a face scaled to
about 35% of a 6000x4000 frame over a textured background, as a camera JPEG at quality 90. A few
distinct frames are written under many names (decoding is never cached, so copies cost the same).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
FACES = REPO / "tests" / "data" / "faces"


def headshot(face_file: Path, seed: int, size: tuple[int, int] = (6000, 4000)) -> bytes:
    rng = np.random.default_rng(seed)
    width, height = size
    small = rng.integers(60, 200, size=(height // 250 + 2, width // 250 + 2, 3), dtype=np.uint8)
    background = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    face = Image.open(face_file).convert("RGB")
    side = int(width * 0.35)
    face = face.resize((side, side * face.height // face.width), Image.Resampling.BICUBIC)
    background.paste(face, ((width - side) // 2, (height - face.height) // 3))
    pixels = np.asarray(background, dtype=np.int16)
    pixels = pixels + rng.normal(0, 2, size=(height, width, 1)).astype(np.int16)
    buffer = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


class Daemon:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.inbox = root / "inbox"
        self.inbox.mkdir(parents=True)
        self.config = root / "eyespyd.yaml"
        self.config.write_text(
            f"folders:\n  - inbox: {self.inbox}\n    keep: {root / 'keep'}\n"
            f"    blink: {root / 'blink'}\n    review: {root / 'review'}\n"
            "settle_seconds: 0.5\nworkers: 2\nlog_level: warning\n",
            encoding="utf-8",
        )
        env = dict(os.environ, STATE_DIRECTORY=str(root / "state"))
        self.log = (root / "daemon.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "eyespyd", "run", "--config", str(self.config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        time.sleep(3)  # models loaded, observer started

    def routed(self) -> int:
        return sum(
            sum(1 for _ in (self.root / d).iterdir())
            for d in ("keep", "blink", "review")
            if (self.root / d).is_dir()
        )

    def where(self, name: str) -> Path | None:
        for d in ("keep", "blink", "review"):
            if (self.root / d / name).exists():
                return self.root / d / name
        return None

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        self.log.close()


def tethered(frames: list[bytes], count: int, root: Path, names: list[str]) -> None:
    """`names[i]` says what frames[i] shows (its fixture face), for the latencies by frame."""
    daemon = Daemon(root)
    latencies = []
    by_frame: dict[str, list[float]] = {name: [] for name in names}
    try:
        for i in range(count):
            name = f"TETHER_{i:04d}.JPG"
            with (daemon.inbox / name).open("wb") as f:
                f.write(frames[i % len(frames)])
            closed = time.perf_counter()
            while daemon.where(name) is None:
                if time.perf_counter() - closed > 30:
                    raise SystemExit(f"{name} was not routed within 30 s")
                time.sleep(0.002)
            latencies.append((time.perf_counter() - closed) * 1000)
            by_frame[names[i % len(frames)]].append(latencies[-1])
            time.sleep(max(0.0, 0.5 - (time.perf_counter() - closed)))
    finally:
        daemon.stop()
    latencies.sort()
    p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
    print(
        f"tethered 2 fps, {count} frames of 24 MP: close -> routed median "
        f"{statistics.median(latencies):.0f} ms, p95 {p95:.0f} ms, max {latencies[-1]:.0f} ms"
    )
    # Frames without a face cost the most: the detector searches them down to 3% of the width.
    medians = (f"{name} {statistics.median(v):.0f}" for name, v in by_frame.items() if v)
    print("  median ms by frame: " + ", ".join(medians))


def burst(frames: list[bytes], count: int, root: Path) -> None:
    daemon = Daemon(root)
    try:
        start = time.perf_counter()
        for i in range(count):
            (daemon.inbox / f"IMPORT_{i:04d}.JPG").write_bytes(frames[i % len(frames)])
        written = time.perf_counter() - start
        while daemon.routed() < count:
            if time.perf_counter() - start > 600:
                raise SystemExit(f"only {daemon.routed()} of {count} routed in 600 s")
            time.sleep(0.05)
        total = time.perf_counter() - start
    finally:
        daemon.stop()
    print(
        f"import of {count} 24 MP JPEGs: all routed {total:.1f} s after the first write "
        f"(writing took {written:.1f} s), {count / total:.1f} frames/s"
    )


def soak(frames: list[bytes], count: int, root: Path, batch: int = 500) -> None:
    daemon = Daemon(root)
    readings = [daemon.rss_mb()]
    try:
        for start in range(0, count, batch):
            for i in range(start, min(count, start + batch)):
                (daemon.inbox / f"SOAK_{i:05d}.JPG").write_bytes(frames[i % len(frames)])
            while daemon.routed() < min(count, start + batch) - start:
                time.sleep(0.1)
            readings.append(daemon.rss_mb())
            # Empty the destinations so the disk does not fill during a long soak.
            for d in ("keep", "blink", "review"):
                shutil.rmtree(daemon.root / d, ignore_errors=True)
                (daemon.root / d).mkdir()
            count_done = min(count, start + batch)
            print(f"  after {count_done:5d} frames: RSS {readings[-1]:.0f} MB", flush=True)
    finally:
        daemon.stop()
    print(
        f"soak of {count} frames: RSS at start {readings[0]:.0f} MB, after the first batch "
        f"{readings[1]:.0f} MB, at the end {readings[-1]:.0f} MB, peak {max(readings):.0f} MB"
    )
    # Flat means no trend once caches are warm: the least-squares slope over the second half.
    half = readings[1:][len(readings[1:]) // 2 :]
    if len(half) >= 2:
        frames_at = np.arange(len(half), dtype=float) * batch
        slope = float(np.polyfit(frames_at, np.array(half), 1)[0]) * 1000
        print(
            f"second half: {min(half):.0f} to {max(half):.0f} MB, "
            f"trend {slope:+.1f} MB per 1,000 frames"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tethered", type=int, default=60, help="frames at 2 fps (0: skip)")
    parser.add_argument("--import-frames", type=int, default=600, help="burst size (0: skip)")
    parser.add_argument("--soak", type=int, default=5000, help="frames for memory (0: skip)")
    args = parser.parse_args()
    faces = sorted(FACES.glob("*_0[1-4].jpg"))
    print(f"making {len(faces)} distinct 24 MP headshots from {FACES} ...", flush=True)
    frames = [headshot(face, seed) for seed, face in enumerate(faces)]
    print(f"frames are {statistics.mean(len(f) for f in frames) / 1e6:.1f} MB on average")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.tethered:
            tethered(frames, args.tethered, root / "tethered", [f.stem for f in faces])
        if args.import_frames:
            burst(frames, args.import_frames, root / "import")
        if args.soak:
            soak(frames, args.soak, root / "soak")


if __name__ == "__main__":
    main()
