"""How one synthetic frame is drawn: the random look of a physical sign and its frames, and the pipeline.

:func:`draw_sign` draws what all frames of a track share (design variant, paint, pose, backdrop, light, how far
away the sign is), :func:`draw_frame` what changes from frame to frame (exact place, size, exposure, blur, noise,
JPEG); then :func:`compose_frame` makes the image file GTSRB would hold (the posed template on its backdrop, at
the camera's resolution, with the release's border), :func:`finish_frames` lights, noises and compresses a batch
of files at once, and :func:`crop_like_loader` cuts each sign out of its file the way the GTSRB loader does
(GTSRB's capture chain, measured in :mod:`klugerhans.data.synthetic.capture`).
:mod:`klugerhans.data.synthetic.loader` turns this into datasets.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from klugerhans.data.images import resize_square
from klugerhans.data.synthetic.capture import LOADER_MARGIN, capture_table, file_width
from klugerhans.data.synthetic.pictograms import NUM_ROLES, STYLES
from klugerhans.data.synthetic.scenes import (
    Lighting,
    Pose,
    blur,
    draw_surroundings,
    fit_box,
    jpeg_roundtrip,
    relight,
    warp_template,
)
from klugerhans.data.synthetic.signs import sign_support, sign_template
from klugerhans.errors import KlugerhansError

BASE_PALETTE = np.array(
    [
        (235, 235, 230),  # transparent (never shown; set to white so resampling never darkens edges)
        (235, 235, 230),  # white
        (190, 25, 35),  # red
        (25, 80, 180),  # blue
        (240, 180, 20),  # yellow
        (25, 25, 25),  # black
        (120, 120, 120),  # grey
        (20, 160, 80),  # green
    ],
    dtype=np.float32,
)
"""Colour of each palette role (see :mod:`klugerhans.data.synthetic.pictograms`) on a new sign in daylight."""


@dataclass(frozen=True)
class SyntheticConfig:
    """How many synthetic signs to render and how much they vary."""

    train_per_class: int = 150
    """Training images per class."""
    test_per_class: int = 50
    """Test images per class."""
    frames_per_track: int = 5
    """Training frames per physical sign (GTSRB has ~30); test signs are one frame each, all different."""
    supersample: int = 3
    """Render at this multiple of the final size, then average down (anti-aliasing)."""
    margin: float = 0.14
    """Context around the sign on each side, as a share of the sign's size; the sign fills 1 / (1 + 2 margin)
    of the image whatever its shape, as in GTSRB crops (the loader adds 10% around each box, and GTSRB's
    boxes are themselves a little larger than the signs: 0.14 matches their mean images)."""
    box_jitter: float = 0.02
    """Standard deviation of each sign edge, as a share of the sign's size (GTSRB's hand-drawn boxes, around
    which the crops are cut, are off by a pixel or two)."""
    rotation: float = 10.0
    """Largest in-plane rotation in degrees."""
    perspective: float = 0.4
    """Largest turn of the sign away from the camera (yaw and pitch, radians), as affine foreshortening; as
    in GTSRB the crop stretches the sign back to its box, so mainly its mix with rotation and shear shows."""
    lighting: float = 1.0
    """Strength of exposure, tone, contrast and colour-cast variation (0: all frames in daylight)."""
    blur: float = 1.0
    """Strength of defocus blur and of low camera resolution (0: sharp)."""
    noise: float = 0.025
    """Largest standard deviation of sensor noise on the 0..1 scale."""
    clutter: float = 1.0
    """Amount of background texture and shapes (0: smooth gradients, no posts or neighbouring signs)."""
    jpeg: float = 0.25
    """Probability that a frame is JPEG-compressed."""

    def __post_init__(self) -> None:
        for name in ("train_per_class", "test_per_class", "frames_per_track", "supersample"):
            if int(getattr(self, name)) < 1:
                raise KlugerhansError(f"synthetic {name} must be at least 1, got {getattr(self, name)}")
        if self.supersample > 8:
            raise KlugerhansError(f"synthetic supersample must be at most 8 (slow beyond), got {self.supersample}")
        if not 0.0 <= self.margin <= 0.5:
            raise KlugerhansError(f"synthetic margin must be in [0, 0.5] (a share of the sign box), got {self.margin}")
        if not 0.0 <= self.box_jitter <= 0.1:
            raise KlugerhansError(f"synthetic box_jitter must be in [0, 0.1], got {self.box_jitter}")
        if not 0.0 <= self.jpeg <= 1.0:
            raise KlugerhansError(f"synthetic jpeg probability must be in [0, 1], got {self.jpeg}")
        for name in ("rotation", "perspective", "lighting", "blur", "noise", "clutter"):
            if getattr(self, name) < 0:
                raise KlugerhansError(f"synthetic {name} must not be negative, got {getattr(self, name)}")
        if self.perspective > 1.2:
            raise KlugerhansError(f"synthetic perspective must be at most 1.2 radians, got {self.perspective}")


@dataclass(frozen=True)
class PhysicalSign:
    """The random choices shared by all frames of one physical sign (a track)."""

    variant: int
    palette: bytes  # NUM_ROLES RGBA entries for Image.putpalette; role 0 is transparent
    pose: Pose
    background_seed: int
    light: Lighting
    distance: float  # the track's first frame in the real distribution of sign sizes (a probability, 0..1)
    approach: float  # share of the remaining way to the largest size gained per frame as the car approaches
    surroundings: np.ndarray  # (8,) uniforms choosing the post and neighbouring signs


@dataclass(frozen=True)
class Frame:
    """One frame's small changes to its sign's pose and light, and the camera's degradations."""

    pose: Pose
    box: tuple[float, float, float, float]  # where the sign lands in the loader's crop, in crop units
    window: tuple[float, float, float, float]  # the loader's crop (sign box + margin) in file units
    light: Lighting
    resolution: float  # camera pixels across the file (inf: no resolution loss)
    blur: float  # blur radius in pixels of the loader's crop at S = 32
    noise: float
    jpeg_quality: int  # 0: no JPEG


def _clamp(v: float, lo: float, hi: float) -> float:
    return lo if v < lo else hi if v > hi else v


def _draw_palette(rng: np.random.Generator, config: SyntheticConfig) -> bytes:
    """Faded, dirty, unevenly lit sign colours, as RGBA palette bytes (one palette per physical sign)."""
    k = min(config.lighting, 2.0)
    u = rng.random(3)
    pal = BASE_PALETTE * rng.uniform(1 - 0.08 * k, 1 + 0.08 * k, (NUM_ROLES, 3))
    fade = (0.35 * k * u[0]) ** 2  # sun-bleached paint drifts towards white
    pal = pal * (1 - fade) + 235.0 * fade
    # Dirt, and light: a retro-reflecting sign in shade glows, one against a bright sky is a silhouette.
    pal = pal * (1 - 0.15 * k * u[1]) * math.exp(k * (0.4 * rng.standard_normal() - 0.1))
    rgba = np.concatenate([np.clip(pal, 0, 255), np.full((NUM_ROLES, 1), 255.0)], axis=1).astype(np.uint8)
    rgba[0] = (*rgba[1, :3], 0)  # outside: transparent, white so that averaging never darkens the rim
    return rgba.tobytes()


def draw_sign(rng: np.random.Generator, config: SyntheticConfig) -> PhysicalSign:
    """Draw the design, paint, pose, scene and illumination of one physical sign."""
    c, k = config, config.lighting
    z = rng.standard_normal(12)
    u = rng.random(5)
    pose = Pose(
        angle=_clamp(c.rotation / 2.5 * z[3], -c.rotation, c.rotation),
        yaw=_clamp(c.perspective / 2 * z[4], -c.perspective, c.perspective),
        pitch=_clamp(c.perspective / 3 * z[5], -c.perspective, c.perspective),
        shear=0.04 * c.perspective * z[6],
    )
    light = Lighting(
        exposure=min(math.exp(k * (-0.3 + 0.6 * z[7])), 1.8),
        gamma=math.exp(k * (0.25 + 0.25 * z[8])),
        contrast=_clamp(1.0 + k * (0.25 + 0.2 * z[9]), 0.3, 1.5),
        saturation=_clamp(1.0 + k * (-0.45 + 0.1 * z[10]), 0.1, 1.3),
        cast=(math.exp(0.07 * k * z[0]), math.exp(0.07 * k * z[1]), math.exp(0.07 * k * z[2])),
        # Lens flare lifts every frame's blacks a little: it is what keeps real dark frames' colours dull.
        haze=(0.3 * k * u[1] if u[0] < 0.15 else 0.0) + 0.1 * k * u[4],
        haze_level=0.4 + 0.6 * u[2],
    )
    return PhysicalSign(
        variant=int(rng.integers(len(STYLES))),
        palette=_draw_palette(rng, c),
        pose=pose,
        background_seed=int(rng.integers(2**63)),
        light=light,
        distance=float(rng.random()),
        approach=0.1 * u[3],
        surroundings=rng.random(8),
    )


def draw_frame(sign: PhysicalSign, rng: np.random.Generator, step: int, config: SyntheticConfig) -> Frame:
    """Draw one frame of ``sign``; ``step`` is its position in the track (later frames are closer, sharper)."""
    c, k = config, config.lighting
    z = rng.standard_normal(8)
    u = rng.random(3)
    # The sign box in crop units: centred with the configured margin, each edge off by annotation noise.
    inset = c.margin / (1 + 2 * c.margin)
    jitter = c.box_jitter * (1 - 2 * inset)
    box = (inset + jitter * z[0], inset + jitter * z[1], 1 - inset + jitter * z[2], 1 - inset + jitter * z[3])
    # The camera's sign box (ROI) in pixels, from GTSRB's size distribution; later frames come closer.
    quantile = 1.0 - (1.0 - sign.distance) * (1.0 - sign.approach) ** step
    roi = capture_table().roi_width(quantile)
    # Without blur the file is the crop (no second resampling, so nothing softens the sign).
    half = (0.5 + LOADER_MARGIN) * roi / file_width(roi) if c.blur > 0 else 0.5
    return Frame(
        pose=replace(sign.pose, angle=sign.pose.angle + 0.05 * c.rotation * z[7]),
        box=box,
        window=(0.5 - half, 0.5 - half, 0.5 + half, 0.5 + half),
        light=replace(
            sign.light,
            exposure=sign.light.exposure * math.exp(0.08 * k * z[4]),
            gradient=(0.25 * k * z[5], 0.25 * k * z[6]),
        ),
        resolution=file_width(roi) if c.blur > 0 else math.inf,
        blur=c.blur * (0.1 + abs(0.4 * rng.standard_normal())),
        noise=c.noise * u[0],
        jpeg_quality=int(30 + 60 * u[2]) if u[1] < c.jpeg else 0,
    )


@functools.lru_cache(maxsize=4096)
def _template_image(class_id: int, resolution: int, variant: int) -> Image.Image:
    return Image.fromarray(sign_template(class_id, resolution, variant))


def compose_frame(
    class_id: int, size: int, sign: PhysicalSign, frame: Frame, background: Image.Image, config: SyntheticConfig
) -> tuple[Image.Image, np.ndarray]:
    """The S x S image file of one frame: the sign on (a copy of) its background, blurred like the camera.

    Returns:
        ``(file, box)``: the (S, S) RGB file, which :func:`crop_like_loader` turns into the model's crop, and the
        (4,) sign box in pixels of that crop.
    """
    k = config.supersample
    canvas = size * k
    x0, y0, x1, y1 = frame.window
    wx, wy = x1 - x0, y1 - y0
    b = frame.box
    in_file = (x0 + b[0] * wx, y0 + b[1] * wy, x0 + b[2] * wx, y0 + b[3] * wy)
    affine = fit_box(frame.pose, sign_support(class_id), in_file)
    warped = warp_template(_template_image(class_id, canvas, sign.variant), affine, canvas)
    box = np.clip(np.array(frame.box, dtype=np.float32) * size, 0, size)
    warped.putpalette(sign.palette, rawmode="RGBA")
    img = background.copy()
    if config.clutter > 0:
        fx0, fy0, fx1, fy1 = in_file
        draw_surroundings(img, (fx0 * size, fy0 * size, fx1 * size, fy1 * size), sign.surroundings)
    # Paste the hard-edged sign onto the backdrop at the supersampled size, then box-average: anti-aliased
    # edges without a separate coverage pass. The backdrop has no fine detail worth supersampling.
    layer = warped.convert("RGBA")
    img = img.resize((canvas, canvas), Image.Resampling.NEAREST)
    img.paste(layer, (0, 0), layer)
    img = img.reduce(k) if k > 1 else img
    res = round(frame.resolution) if math.isfinite(frame.resolution) else size
    if res < size:
        img = img.resize((res, res), Image.Resampling.BILINEAR).resize((size, size), Image.Resampling.BILINEAR)
    # The loader's crop magnifies the file by 1 / wx; the blur is meant in pixels of that crop.
    return blur(img, frame.blur * size / 32 * wx), box


def crop_like_loader(file: np.ndarray, frame: Frame) -> np.ndarray:
    """Cut the sign box plus the loader's margin out of an (S, S, 3) uint8 file and resample it to S x S.

    The same call as the GTSRB loader's (:func:`klugerhans.data.images.resize_square`), so synthetic crops go
    through the second resampling that softens every real one.
    """
    size = file.shape[0]
    if frame.window == (0.0, 0.0, 1.0, 1.0):
        return file
    x0, y0, x1, y1 = frame.window
    window = (x0 * size, y0 * size, x1 * size, y1 * size)
    return resize_square(Image.fromarray(file), size, window)


def finish_frames(raw: np.ndarray, frames: list[Frame], noise: np.ndarray | None) -> np.ndarray:
    """Light, noise, quantise and JPEG-compress a batch: (N, S, S, 3) uint8 -> (N, S, S, 3) uint8.

    Args:
        raw: composed frames.
        frames: their random choices (lighting, noise level, JPEG quality).
        noise: (N, S, S, 4) uniform numbers in [0, 1) from each frame's own stream (used up in place), or
            None for no noise.
    """
    x = relight(raw, [f.light for f in frames])
    if noise is not None:
        # Uniform noise of the given standard deviation (sqrt(12) * (u - 1/2) has unit variance): as much
        # per-channel (chroma) noise as luminance noise, as from a Bayer sensor; the chroma noise is what keeps
        # GTSRB's grey signs from being grey (its saturation statistic never falls near 0).
        sigma = np.array([f.noise for f in frames], dtype=np.float32)[:, None, None, None] * np.float32(math.sqrt(12))
        noise -= np.float32(0.5)
        x += (noise[..., :1] + noise[..., 1:]) * sigma
    np.clip(x, 0.0, 1.0, out=x)
    x *= 255.0
    x += 0.5
    out = x.astype(np.uint8)
    for j, f in enumerate(frames):
        if f.jpeg_quality:
            out[j] = np.asarray(jpeg_roundtrip(Image.fromarray(out[j]), f.jpeg_quality))
    return out
