"""Scene and camera effects for synthetic sign crops: backgrounds, sign pose, lighting and degradation.

Real GTSRB crops (Stallkamp et al., "Man vs. computer", Neural Networks 2012) are small video frames of signs
by German roads: trees, sky and buildings behind, poles and neighbouring signs at the crop's edge, many
frames very dark or washed out, blurred by low resolution. These functions imitate that with Pillow and
NumPy; every random choice comes from the ``rng`` a caller passes, so a scene is reproducible.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

# Backdrop kinds: sky, foliage, building, darkness. Colours are a kind's hue (RGB, 0..1) times a brightness
# drawn from its range, with a little per-channel jitter: real backdrops are far less colourful than random RGB.
_KIND_P = np.array([0.25, 0.35, 0.2, 0.2])
_KIND_CDF = np.cumsum(_KIND_P) / _KIND_P.sum()
_HUE = np.array([(0.82, 0.88, 1.0), (0.7, 1.0, 0.55), (1.0, 0.93, 0.85), (1.0, 1.0, 1.0)])
_BRIGHTNESS = ((110.0, 250.0), (35.0, 150.0), (60.0, 220.0), (10.0, 60.0))
_TEXTURE = (6.0, 40.0, 15.0, 8.0)


def _colour(kind: int, u: np.ndarray, spread: float = 1.0) -> np.ndarray:
    """An RGB colour of backdrop ``kind`` from four uniforms: brightness, then per-channel jitter."""
    lo, hi = _BRIGHTNESS[kind]
    brightness = lo + (hi - lo) * (0.5 + spread * (u[0] - 0.5))
    return np.clip(_HUE[kind] * brightness * (0.92 + 0.16 * u[1:4]), 0, 255)


def draw_background(rng: np.random.Generator, size: int, clutter: float = 1.0) -> Image.Image:
    """A (size, size) RGB backdrop: sky, foliage, building or darkness, with blobs, texture and edges.

    Args:
        rng: source of every random choice.
        size: side in pixels.
        clutter: 0 gives smooth gradients; 1 the default amount of texture and shapes.
    """
    u = rng.random(11)
    kind = int(np.searchsorted(_KIND_CDF, u[0]))
    top, bottom = _colour(kind, u[1:5]), _colour(kind, u[5:9])
    # A coarse colour field (gradient plus blobs), upsampled from a few random cells.
    cells = 2 + int(4 * u[9])
    t = np.linspace(0.0, 1.0, cells)[:, None, None]
    # Blobs vary mostly in brightness; real backdrops are far less colourful than random RGB noise.
    blobs = rng.standard_normal((cells, cells, 4))
    field = top * (1 - t) + bottom * t + clutter * (25.0 * blobs[:, :, :1] + 8.0 * blobs[:, :, 1:])
    img = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8)).resize((size, size), Image.Resampling.BILINEAR)
    if clutter > 0:
        # Fine texture (leaves, bark, plaster) from a mid-resolution noise grid, added to all channels.
        grain = max(2, size // (2 + int(4 * u[10])))
        noise = np.clip(128.0 + _TEXTURE[kind] * clutter * rng.standard_normal((grain, grain)), 0, 255)
        noise_img = Image.fromarray(noise.astype(np.uint8)).resize((size, size), Image.Resampling.BILINEAR)
        img = ImageChops.add(img, Image.merge("RGB", (noise_img, noise_img, noise_img)), 1.0, -128)
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.poisson(2.0 * clutter))):
            v = rng.random(10)
            colour = tuple(int(c) for c in _colour(kind, v[:4], spread=1.6))
            x0, y0 = (v[4:6] * 1.3 - 0.3) * size
            w, h = (0.1 + 0.5 * v[6:8]) * size
            if v[8] < 1 / 3:
                draw.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
            elif v[8] < 2 / 3:
                draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
            else:
                end = (x0 + w, y0 + h * (1 if v[9] < 0.5 else -1))
                draw.line([(x0, y0), end], fill=colour, width=max(1, round(size * (0.02 + 0.04 * v[9]))))
    return img


def draw_surroundings(img: Image.Image, box: tuple[float, float, float, float], u: np.ndarray) -> None:
    """Paint a sign post below the sign and sometimes a neighbouring sign's edge, in place.

    Args:
        img: the background, modified.
        box: the sign's ``(x0, y0, x1, y1)`` in pixels of ``img``.
        u: (8,) uniform random numbers in [0, 1) that choose what is drawn (fixed per physical sign, so
            every frame of a track shows the same post).
    """
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = box
    w, cx = x1 - x0, (x0 + x1) / 2
    if u[0] < 0.55:
        half = w * (0.03 + 0.03 * u[1])
        grey = int(60 + 140 * u[2])
        draw.rectangle([cx - half, (y0 + y1) / 2, cx + half, img.height], fill=(grey, grey, grey + 5))
    if u[3] < 0.3:
        # Another sign just above or below this one, mostly outside the crop.
        colour = ((230, 230, 230), (190, 30, 40), (20, 70, 170))[int(3 * u[4])]
        gap = w * (0.04 + 0.08 * u[6])
        if u[5] < 0.5:
            draw.rectangle([x0 + w * 0.05, y1 + gap, x1 - w * 0.05, y1 + gap + w * 0.5], fill=colour)
        else:
            draw.ellipse([x0, y0 - gap - w, x1, y0 - gap], fill=colour)


@dataclass(frozen=True)
class Pose:
    """How the sign is turned relative to the camera (its size and place come from the crop, see :func:`fit_box`)."""

    angle: float = 0.0
    """In-plane rotation in degrees (counter-clockwise on screen)."""
    yaw: float = 0.0
    """Turn about the vertical axis in radians: the sign looks narrower by ``cos(yaw)`` before cropping."""
    pitch: float = 0.0
    """Tilt about the horizontal axis in radians: the sign looks lower by ``cos(pitch)`` before cropping."""
    shear: float = 0.0
    """Horizontal shear (a sign not quite square to the camera or its post)."""

    def matrix(self) -> tuple[float, float, float, float]:
        """Row-major 2x2 linear map of template offsets: rotation @ shear @ foreshortening."""
        sx, sy = math.cos(self.yaw), math.cos(self.pitch)
        c, s = math.cos(math.radians(self.angle)), math.sin(math.radians(self.angle))
        # [[c, s], [-s, c]] @ [[sx, shear * sy], [0, sy]]; y points down, so +angle turns counter-clockwise.
        return c * sx, c * self.shear * sy + s * sy, -s * sx, -s * self.shear * sy + c * sy


Affine = tuple[float, float, float, float, float, float]
"""``(a, b, c, d, ox, oy)``: template offset q (template units, centred) -> crop point ``(a qx + b qy + ox,
c qx + d qy + oy)`` (crop units, 0..1)."""


SUPPORT_ANGLES = 360
"""Angular resolution of :func:`support_function`."""


def support_function(mask: np.ndarray) -> np.ndarray:
    """Support function of a shape, for its exact bounding box after any linear map.

    ``h[k] = max over the shape's pixels q of (cos t, sin t) . q`` with ``t = 2 pi k / SUPPORT_ANGLES`` and
    ``q`` in units of the mask side, centred on the mask (pixel corners, so the extent is exact). After a map
    ``q -> M q`` the shape spans ``[-|m| h(t + pi), |m| h(t)]`` along x, where ``(|m|, t)`` is M's first row
    in polar form (likewise y with the second row); see :func:`fit_box`.

    Args:
        mask: (R, R) bool, True on the shape.

    Returns:
        Read-only (SUPPORT_ANGLES,) float64 array.
    """
    r = mask.shape[0]
    inner = np.zeros_like(mask)
    inner[1:-1, 1:-1] = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    ys, xs = np.nonzero(mask & ~inner)  # boundary pixels (the outermost ring counts as boundary)
    corners = np.concatenate([np.stack([xs + dx, ys + dy], axis=1) for dx in (0, 1) for dy in (0, 1)])
    q = corners / r - 0.5
    t = 2 * np.pi * np.arange(SUPPORT_ANGLES) / SUPPORT_ANGLES
    out = (np.cos(t)[:, None] * q[None, :, 0] + np.sin(t)[:, None] * q[None, :, 1]).max(axis=1)
    out.flags.writeable = False
    return out


def _extent(support: np.ndarray, u: float, v: float) -> tuple[float, float]:
    """(min, max) of ``u qx + v qy`` over a shape with support function ``support``."""
    n = len(support)
    r = math.hypot(u, v)
    k = round(math.atan2(v, u) / (2 * math.pi) * n) % n
    return -r * float(support[(k + n // 2) % n]), r * float(support[k])


def fit_box(pose: Pose, support: np.ndarray, box: tuple[float, float, float, float]) -> Affine:
    """Stretch a posed sign along x and y so that its bounding box is exactly ``box`` (crop units).

    This mirrors how GTSRB crops are made: the annotated sign box plus a margin is cut out and resized to a
    square, whatever the sign's aspect, so a narrow (turned) sign or a triangle fills the crop like a circle.

    Args:
        pose: rotation, shear and foreshortening.
        support: the shape's :func:`support_function`.
        box: ``(x0, y0, x1, y1)`` where the sign must land, as shares of the crop side.
    """
    a, b, c, d = pose.matrix()
    x_lo, x_hi = _extent(support, a, b)
    y_lo, y_hi = _extent(support, c, d)
    kx, ky = (box[2] - box[0]) / (x_hi - x_lo), (box[3] - box[1]) / (y_hi - y_lo)
    return a * kx, b * kx, c * ky, d * ky, box[0] - kx * x_lo, box[1] - ky * y_lo


def warp_template(template: Image.Image, affine: Affine, size: int) -> Image.Image:
    """Place a square palette template (P or L image, index 0 = outside) into a (size, size) crop.

    Nearest-neighbour sampling keeps palette indices intact; callers render at a multiple of the final size
    and average down.
    """
    r = template.width
    a, b, c, d, ox, oy = affine
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det  # inverse: crop offsets -> template offsets
    k = r / size
    # Template pixel = r * (M^-1 (p / size - o) + 1/2) for output pixel p.
    coeffs = (
        ia * k,
        ib * k,
        r * (0.5 - ia * ox - ib * oy),
        ic * k,
        id_ * k,
        r * (0.5 - ic * ox - id_ * oy),
    )
    return template.transform((size, size), Image.Transform.AFFINE, coeffs, Image.Resampling.NEAREST, fillcolor=0)


@dataclass(frozen=True)
class Lighting:
    """Illumination and camera response of one frame (on the 0..1 scale)."""

    exposure: float = 1.0
    """Overall gain; GTSRB has many frames far below 1."""
    gamma: float = 1.0
    """Tone curve exponent (> 1 darkens mid-tones)."""
    contrast: float = 1.0
    """Scale of deviations from the frame's mean (< 1 looks hazy)."""
    saturation: float = 1.0
    """0 is grey, 1 unchanged."""
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Per-channel gain (white balance)."""
    haze: float = 0.0
    """Share of a flat veil (fog, glare) mixed in."""
    haze_level: float = 0.8
    """Brightness of that veil."""
    gradient: tuple[float, float] = (0.0, 0.0)
    """Relative brightness change across the frame along x and y (shade on one side)."""


@functools.cache
def _levels() -> np.ndarray:
    levels = np.arange(256, dtype=np.float32)[None, :] / np.float32(255.0)
    levels.flags.writeable = False
    return levels


@functools.lru_cache(maxsize=8)
def _ramp(size: int) -> np.ndarray:
    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    ramp.flags.writeable = False
    return ramp


def relight(images: np.ndarray, lights: Sequence[Lighting]) -> np.ndarray:
    """Apply one :class:`Lighting` per image to (N, S, S, 3) uint8 images; returns float32 on the 0..1 scale.

    Exposure, colour cast and the tone curve form one lookup table per image and channel; shading,
    saturation, contrast and haze follow, all vectorised over the batch. Values may leave 0..1 slightly
    (callers add noise, then clip).
    """
    n = len(lights)
    if images.shape[0] != n:
        raise ValueError(f"{images.shape[0]} images but {n} lightings")
    f32 = np.float32
    exposure = np.array([light.exposure for light in lights], dtype=f32)
    cast = np.array([light.cast for light in lights], dtype=f32)
    gamma = np.array([light.gamma for light in lights], dtype=f32)
    lut = np.clip(_levels()[None] * (exposure[:, None] * cast)[:, :, None], 0.0, 1.0) ** gamma[:, None, None]
    # An 8-bit table (the camera quantises too) looked up at flat (image, channel, value) positions is far
    # faster than float fancy indexing.
    table = (lut * 255.0 + 0.5).astype(np.uint8).reshape(-1)
    offsets = (np.arange(n * 3, dtype=np.int32) * 256).reshape(n, 1, 1, 3)
    x = np.take(table, offsets + images).astype(f32)
    x *= f32(1 / 255)
    gradient = np.array([light.gradient for light in lights], dtype=f32)
    if gradient.any():
        ramp = _ramp(images.shape[2])
        shade = gradient[:, 1, None, None] * ramp[None, :, None] + 1.0
        shade = shade + gradient[:, 0, None, None] * ramp[None, None, :]
        x *= shade[:, :, :, None]
    saturation = np.array([light.saturation for light in lights], dtype=f32)[:, None, None, None]
    grey = x[..., 0:1] + x[..., 1:2]
    grey += x[..., 2:3]
    grey *= f32(1 / 3)
    x -= grey
    x *= saturation
    x += grey
    mean = x.mean(axis=(1, 2, 3))
    haze = np.array([light.haze for light in lights], dtype=f32)
    level = np.array([light.haze_level for light in lights], dtype=f32)
    scale = np.array([light.contrast for light in lights], dtype=f32) * (1.0 - haze)
    # Contrast around the mean, then a veil: (x - m) * c * (1 - h) + m * (1 - h) + h * level.
    x *= scale[:, None, None, None]
    x += (mean * (1.0 - haze) - mean * scale + haze * level)[:, None, None, None]
    return x


def blur(img: Image.Image, radius: float) -> Image.Image:
    """Blur (defocus, motion smear) of about ``radius`` pixels standard deviation; a no-op below 0.1.

    A single box pass: at sign-crop sizes it looks like a Gaussian and costs half of Pillow's GaussianBlur.
    """
    return img.filter(ImageFilter.BoxBlur(radius)) if radius >= 0.1 else img


def jpeg_roundtrip(img: Image.Image, quality: int) -> Image.Image:
    """Encode and decode as JPEG at ``quality`` (compression artefacts)."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")
