"""Font-rendered digits with seeded jitter: the offline stand-in for SynNumbers / SVHN-style data.

Each image: pick a font and a digit, draw it white on black at a random size and stroke width on an
84x84 canvas, apply a random affine map (rotation, isotropic scale, translation), downsample to
28x28 with a box filter, add Gaussian pixel noise. All randomness comes from one
``numpy.random.default_rng(seed)``, drawn in a fixed order, so a seed gives the same bytes for the
same pillow/matplotlib versions.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

CANVAS = 84  # pixels (3 x 28); rendering large then box-filtering gives anti-aliased strokes
OUT = 28

# Jitter ranges (uniform unless stated): chosen so digits stay inside the 28x28 frame.
ROTATION_DEG = 15.0
SCALE = (0.85, 1.15)
SHIFT_PX = 3.0  # at output resolution
FONT_PX = (58, 74)
STROKE = (0, 1, 2, 3)  # extra stroke width in canvas pixels
NOISE_STD = (0.0, 0.08)  # of full scale


def font_dir() -> Path:
    """The TrueType folder that matplotlib ships (located, not imported for its API)."""
    import importlib.resources

    return Path(str(importlib.resources.files("matplotlib").joinpath("mpl-data/fonts/ttf")))


def render(n: int, seed: int, fonts: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n`` digits, balanced over classes (label = i % 10, then shuffled).

    Returns images uint8 (n, 1, 28, 28) and labels int64 (n,).
    """
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) % 10
    labels = labels[rng.permutation(n)]
    root = font_dir()
    cache: dict[tuple[str, int], ImageFont.FreeTypeFont] = {}
    images = np.empty((n, 1, OUT, OUT), dtype=np.uint8)
    for i, label in enumerate(labels):
        font_name = fonts[int(rng.integers(len(fonts)))]
        size = int(rng.integers(FONT_PX[0], FONT_PX[1] + 1))
        stroke = STROKE[int(rng.integers(len(STROKE)))]
        angle = float(rng.uniform(-ROTATION_DEG, ROTATION_DEG))
        scale = float(rng.uniform(*SCALE))
        dx, dy = (float(v) for v in rng.uniform(-SHIFT_PX, SHIFT_PX, size=2))
        noise_std = float(rng.uniform(*NOISE_STD))
        noise = rng.standard_normal((OUT, OUT))

        key = (font_name, size)
        if key not in cache:
            cache[key] = ImageFont.truetype(str(root / font_name), size)
        canvas = Image.new("L", (CANVAS, CANVAS), 0)
        draw = ImageDraw.Draw(canvas)
        text = str(int(label))
        left, top, right, bottom = draw.textbbox((0, 0), text, font=cache[key], stroke_width=stroke)
        origin = ((CANVAS - (right - left)) / 2 - left, (CANVAS - (bottom - top)) / 2 - top)
        draw.text(origin, text, fill=255, font=cache[key], stroke_width=stroke, stroke_fill=255)

        # Inverse affine map (output pixel -> input pixel) about the canvas centre, as PIL expects.
        theta = math.radians(angle)
        cos, sin = math.cos(theta) / scale, math.sin(theta) / scale
        c = CANVAS / 2
        sx, sy = dx * CANVAS / OUT, dy * CANVAS / OUT
        coeffs = (
            cos,
            sin,
            c - cos * (c + sx) - sin * (c + sy),
            -sin,
            cos,
            c + sin * (c + sx) - cos * (c + sy),
        )
        warped = canvas.transform((CANVAS, CANVAS), Image.Transform.AFFINE, coeffs, Image.BILINEAR)
        small = np.asarray(warped.resize((OUT, OUT), Image.Resampling.BOX), dtype=np.float64)
        small = small / 255.0 + noise_std * noise
        images[i, 0] = np.clip(np.rint(small * 255.0), 0, 255).astype(np.uint8)
    return images, labels
