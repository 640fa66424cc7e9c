"""Augmentation of eye context crops: what the camera, the light and the face may do to an eye.

Every change is applied to open and closed eyes alike, so nothing but the eye's state tells the
classes apart. Two matter most for this data: the open faces (UTKFace) are clean, aligned
200 px faces while the closed ones (CEW) are web crops of any resolution, so `degrade` brings
both down to the same range of detail; and glasses frames (`clear_glasses`) are drawn across
both, so a dark rim is never evidence of a lid. Dark glasses and occluders make the third class,
HIDDEN.

The crop is the last step and uses `eyespyd.eyes.sample_square` and `normalise`, as at run time.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter

from eyespyd.eyes import normalise, sample_square
from eyespyd.train.data import CONTEXT, HIDDEN, crop_geometry

Rng = np.random.Generator
Gray = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class AugmentConfig:
    """Probabilities and ranges; the defaults are what trained the committed model."""

    p_degrade: float = 0.8
    native_px: tuple[float, float] = (12.0, 56.0)  # simulated native crop side, log-uniform
    p_jpeg: float = 0.5
    jpeg_quality: tuple[int, int] = (25, 90)
    p_blur: float = 0.25
    p_noise: float = 0.5
    noise_sigma: tuple[float, float] = (1.0, 9.0)
    p_glasses: float = 0.25
    p_sunglasses: float = 0.10
    p_occluder: float = 0.05
    shift: float = 0.10  # of the crop side, each axis
    rotate_deg: float = 10.0
    scale: tuple[float, float] = (0.85, 1.2)


def light(ctx: Gray, rng: Rng) -> Gray:
    """Exposure, contrast, gamma and a light falling off across the face."""
    x = ctx.astype(np.float32) / 255.0
    x = np.clip(x, 0.0, 1.0) ** np.float32(math.exp(rng.uniform(-0.6, 0.6)))
    x = (x - 0.5) * np.float32(rng.uniform(0.5, 1.4)) + 0.5 + np.float32(rng.uniform(-0.2, 0.2))
    if rng.random() < 0.3:
        c = ctx.shape[0]
        angle = rng.uniform(0, 2 * math.pi)
        ramp = np.cos(angle) * np.arange(c)[None, :] + np.sin(angle) * np.arange(c)[:, None]
        ramp = (ramp - ramp.mean()) / c
        x = x * (1 + np.float32(rng.uniform(0.3, 1.0)) * ramp.astype(np.float32))
    out: Gray = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
    return out


def _lens_box(rng: Rng, size: int) -> tuple[float, float, float, float]:
    c = size * CONTEXT / 2
    w = size * rng.uniform(0.9, 1.35)
    h = size * rng.uniform(0.5, 0.85)
    cx = c + size * rng.uniform(-0.08, 0.08)
    cy = c + size * rng.uniform(-0.05, 0.12)
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def _draw_lens(
    draw: ImageDraw.ImageDraw,
    box: tuple[float, float, float, float],
    rng: Rng,
    fill: int | None,
    outline: int,
    width: int,
) -> None:
    if rng.random() < 0.5:
        draw.ellipse(box, fill=fill, outline=outline, width=width)
    else:
        radius = int((box[3] - box[1]) * rng.uniform(0.15, 0.5))
        draw.rounded_rectangle(box, radius=radius, fill=fill, outline=outline, width=width)


def _frame(
    draw: ImageDraw.ImageDraw,
    box: tuple[float, float, float, float],
    rng: Rng,
    colour: int,
    width: int,
    c: int,
) -> None:
    """The bridge (towards the nose: the crop's right, both eyes) and the temple arm."""
    y = box[1] + (box[3] - box[1]) * rng.uniform(0.15, 0.4)
    draw.line([(box[2] - width, y), (c, y + rng.uniform(-3, 3))], fill=colour, width=width)
    y = box[1] + (box[3] - box[1]) * rng.uniform(0.1, 0.4)
    draw.line([(0, y + rng.uniform(-4, 4)), (box[0] + width, y)], fill=colour, width=width)


def _reflection(
    img: Image.Image, box: tuple[float, float, float, float], rng: Rng, strength: float
) -> Image.Image:
    """A bright slanted band across the lens, as a window or a flash reflects in glass."""
    mask = Image.new("L", img.size, 0)
    draw = ImageDraw.Draw(mask)
    x0, y0, x1, y1 = box
    t = rng.uniform(0.1, 0.7)
    w = (x1 - x0) * rng.uniform(0.08, 0.3)
    x = x0 + (x1 - x0) * t
    slant = (y1 - y0) * rng.uniform(-0.6, 0.6)
    draw.polygon([(x, y0), (x + w, y0), (x + w + slant, y1), (x + slant, y1)], fill=255)
    lens = Image.new("L", img.size, 0)
    ImageDraw.Draw(lens).ellipse(box, fill=255)
    alpha = np.minimum(np.asarray(mask), np.asarray(lens)).astype(np.float32) / 255 * strength
    alpha = (
        np.asarray(
            Image.fromarray((alpha * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.5)),
            np.float32,
        )
        / 255
    )
    base = np.asarray(img, np.float32)
    return Image.fromarray(np.rint(base * (1 - alpha) + 255 * alpha).astype(np.uint8))


def clear_glasses(ctx: Gray, rng: Rng, size: int) -> Gray:
    """A thin dark or metallic rim around the eye, bridge and arm, sometimes a reflection."""
    img = Image.fromarray(ctx)
    draw = ImageDraw.Draw(img)
    box = _lens_box(rng, size)
    colour = int(rng.uniform(0, 70)) if rng.random() < 0.65 else int(rng.uniform(150, 235))
    width = max(1, round(rng.uniform(0.02, 0.09) * size))
    _draw_lens(draw, box, rng, None, colour, width)
    _frame(draw, box, rng, colour, width, ctx.shape[1])
    if rng.random() < 0.5:
        img = _reflection(img, box, rng, rng.uniform(0.1, 0.45))
    return np.asarray(img)


def sunglasses(ctx: Gray, rng: Rng, size: int) -> Gray:
    """A dark lens over the eye (only a trace of it shows through), its frame and a highlight."""
    box = _lens_box(rng, size)
    box = (box[0] - 0.1 * size, box[1] - 0.05 * size, box[2] + 0.1 * size, box[3] + 0.05 * size)
    mask_img = Image.new("L", (ctx.shape[1], ctx.shape[0]), 0)
    _draw_lens(ImageDraw.Draw(mask_img), box, rng, 255, 255, 1)
    mask = np.asarray(mask_img, np.float32) / 255
    tint = rng.uniform(0.85, 1.0)
    dark = rng.uniform(0, 60)
    # Lenses are often graded, darker at the top.
    grade = np.linspace(1.0, rng.uniform(0.7, 1.0), ctx.shape[0], dtype=np.float32)[:, None]
    cover = (mask * np.float32(tint) * grade).astype(np.float32)
    x = ctx.astype(np.float32) * (1 - cover) + np.float32(dark) * cover
    img = Image.fromarray(np.clip(np.rint(x), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    colour = int(rng.uniform(0, 60)) if rng.random() < 0.7 else int(rng.uniform(150, 230))
    width = max(1, round(rng.uniform(0.03, 0.1) * size))
    if rng.random() < 0.5:
        draw.ellipse(box, outline=colour, width=width)
    _frame(draw, box, rng, colour, width, ctx.shape[1])
    if rng.random() < 0.7:
        img = _reflection(img, box, rng, rng.uniform(0.2, 0.7))
    return np.asarray(img)


def occluder(ctx: Gray, rng: Rng, size: int) -> Gray:
    """A hand or fingers (flat skin-toned blob) or hair strands across the eye."""
    c = ctx.shape[0]
    img = Image.fromarray(ctx)
    draw = ImageDraw.Draw(img)
    mid = c / 2
    if rng.random() < 0.6:
        tone = int(rng.uniform(60, 230))
        # A blob that covers the eye centre and most of the eye, entering from one side.
        angle = rng.uniform(0, 2 * math.pi)
        r = size * rng.uniform(0.6, 1.0)
        ox, oy = mid + math.cos(angle) * r * 0.6, mid + math.sin(angle) * r * 0.6
        draw.ellipse((ox - r, oy - r * 0.8, ox + r, oy + r * 0.8), fill=tone)
        if rng.random() < 0.5:  # finger gaps
            for _ in range(int(rng.integers(1, 4))):
                x = mid + size * rng.uniform(-0.5, 0.5)
                draw.line([(x, 0), (x + size * rng.uniform(-0.3, 0.3), c)], fill=tone - 25, width=1)
    else:
        tone = int(rng.uniform(0, 90))
        for _ in range(int(rng.integers(10, 30))):
            x0 = mid + size * rng.uniform(-0.8, 0.8)
            pts = [(x0 + size * rng.uniform(-0.2, 0.2) * k, c * k / 4) for k in range(5)]
            draw.line(pts, fill=int(tone + rng.uniform(-20, 40)), width=int(rng.integers(1, 4)))
    out = np.asarray(img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2))))
    return out


def degrade(ctx: Gray, rng: Rng, size: int, cfg: AugmentConfig) -> Gray:
    """Down and up again to a simulated native crop side, with JPEG at the small size."""
    c = ctx.shape[0]
    img = Image.fromarray(ctx)
    if rng.random() < cfg.p_degrade:
        lo, hi = cfg.native_px
        native = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        small = max(8, round(c * native / size))
        if small < c:
            img = img.resize((small, small), Image.Resampling.BILINEAR)
            if rng.random() < cfg.p_jpeg:
                img = jpeg(img, rng, cfg)
            img = img.resize((c, c), Image.Resampling.BILINEAR)
    elif rng.random() < cfg.p_jpeg:
        img = jpeg(img, rng, cfg)
    if rng.random() < cfg.p_blur:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5) * c / (size * CONTEXT)))
    out = np.asarray(img)
    if rng.random() < cfg.p_noise:
        sigma = rng.uniform(*cfg.noise_sigma)
        out = np.clip(np.rint(out + rng.normal(0, sigma, out.shape)), 0, 255).astype(np.uint8)
    return out


def jpeg(img: Image.Image, rng: Rng, cfg: AugmentConfig) -> Image.Image:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=int(rng.integers(*cfg.jpeg_quality)))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        gray: Image.Image = decoded.convert("L")
    return gray


def jittered_crop(ctx: Gray, rng: Rng | None, size: int, cfg: AugmentConfig) -> Gray:
    """The crop square, moved, turned and scaled as keypoint errors would; then normalised."""
    geometry = crop_geometry(size)
    if rng is not None:
        cx, cy = geometry.centre
        geometry = replace(
            geometry,
            centre=(
                cx + rng.uniform(-cfg.shift, cfg.shift) * size,
                cy + rng.uniform(-cfg.shift, cfg.shift) * size,
            ),
            angle=math.radians(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg)),
            side=size * rng.uniform(*cfg.scale),
        )
    return normalise(sample_square(ctx, geometry, size))


def augment(ctx: Gray, label: int, rng: Rng, size: int, cfg: AugmentConfig) -> tuple[Gray, int]:
    """One training sample from one context crop: the patch and its (possibly new) label."""
    ctx = light(ctx, rng)
    roll = rng.random()
    if roll < cfg.p_sunglasses:
        ctx, label = sunglasses(ctx, rng, size), HIDDEN
    elif roll < cfg.p_sunglasses + cfg.p_occluder:
        ctx, label = occluder(ctx, rng, size), HIDDEN
    elif rng.random() < cfg.p_glasses:
        ctx = clear_glasses(ctx, rng, size)
    ctx = degrade(ctx, rng, size, cfg)
    return jittered_crop(ctx, rng, size, cfg), label


def centre_crop(ctx: Gray, size: int) -> Gray:
    """The crop run time would make: no jitter."""
    return jittered_crop(ctx, None, size, AugmentConfig())
