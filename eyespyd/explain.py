"""`eyespyd explain`: the photo with what eyespyd saw drawn on it.

Each face box, each eye's crop square coloured from green (open) to red (closed) with its closed
probability, and a banner with the verdict and the reason, so a photographer sees at a glance why a
frame went where it went.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from eyespyd.decode import decode
from eyespyd.errors import DecodeError
from eyespyd.pipeline import Pipeline
from eyespyd.types import Photo
from eyespyd.verdict import BLINK, REVIEW, decide

COLOURS = {"keep": (46, 160, 67), BLINK: (215, 38, 61), REVIEW: (230, 160, 0)}
# The picture is drawn at least this long when the file has the pixels: the pipeline judges a
# smaller decode (a 24 MP frame at 750 px), too small to read the labels on.
DISPLAY_SIDE = 1600


def draw(pipeline: Pipeline, path: Path) -> Image.Image:
    photo = decode(path, pipeline.decode_settings)
    faces, readings, photo = pipeline.read_faces(photo)
    decision = decide(faces, readings, pipeline.verdict_settings)

    shown = _for_display(pipeline, photo)
    k = shown.scale / photo.scale if photo.scale else 1.0  # analysed pixels -> drawn pixels
    image = Image.fromarray(shown.pixels)
    canvas = ImageDraw.Draw(image)
    unit = max(2, round(max(image.size) / 400))  # line width and text size follow the image
    font = _font(8 * unit)
    for number, (face, eyes) in enumerate(zip(faces, readings, strict=True), start=1):
        box = tuple(v * k for v in face.box)
        if not eyes.is_face:
            # The detector's guess that the face mesh rejected: shown, greyed, with no eye crops.
            canvas.rectangle(box, outline=(150, 150, 150), width=max(1, unit // 2))
            label = f"face {number}: not a face"
            canvas.text((box[0], box[1] - 9 * unit), label, fill=(150, 150, 150), font=font)
            continue
        canvas.rectangle(box, outline=(255, 255, 255), width=unit)
        canvas.text((box[0], box[1] - 9 * unit), f"face {number}", fill=(255, 255, 255), font=font)
        for eye in (eyes.right, eyes.left):
            colour = _closed_colour(eye.closed) if eye.hidden < 0.5 else (120, 120, 255)
            corners = [(float(x) * k, float(y) * k) for x, y in eye.crop_box]
            canvas.polygon(corners, outline=colour, width=unit)
            label = f"{eye.closed:.2f}" if eye.hidden < 0.5 else "hidden"
            low = max(y for _, y in corners)
            left = min(x for x, _ in corners)
            canvas.text((left, low + unit), label, fill=colour, font=font)

    banner = f"{decision.verdict.upper()} {decision.score:.2f}: {decision.reasons[0]}"
    height = 12 * unit
    canvas.rectangle((0, 0, image.size[0], height), fill=COLOURS[decision.verdict])
    canvas.text((2 * unit, 2 * unit), banner, fill=(255, 255, 255), font=font)
    return image


def _for_display(pipeline: Pipeline, photo: Photo) -> Photo:
    """The file decoded at DISPLAY_SIDE or more, when it has that many pixels; else `photo`."""
    if max(photo.size) >= DISPLAY_SIDE or max(photo.original_size) <= max(photo.size):
        return photo
    settings = replace(pipeline.decode_settings, long_side=DISPLAY_SIDE)
    try:
        larger = decode(photo.path, settings)
    except DecodeError:
        return photo  # the file changed since; what was analysed is still worth drawing
    return larger if larger.size[0] > photo.size[0] else photo


def _closed_colour(closed: float) -> tuple[int, int, int]:
    closed = min(max(closed, 0.0), 1.0)
    return (round(255 * closed), round(200 * (1 - closed)), 40)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()
