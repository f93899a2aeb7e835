"""The 15 CIFAR-10-C corruptions (Hendrycks & Dietterich 2019, "Benchmarking Neural Network
Robustness to Common Corruptions and Perturbations", ICLR), vectorised over batches.

Severity parameters are the CIFAR-specific values of the released generator
(``hendrycks/robustness``, ``ImageNet-C/create_c/make_cifar_c.py``). This is an independent
re-implementation with NumPy, SciPy, PyTorch, Matplotlib and Pillow; it follows the released
arithmetic (including the final truncating ``np.uint8`` cast) except where stated:

* every corruption draws from a seeded ``numpy.random.Generator`` (the release uses the
  unseeded global NumPy state), so images are deterministic for a seed but are not the
  released images;
* ``motion_blur`` and ``snow`` (whose snow layer is motion-blurred) use ImageMagick's
  ``MotionBlurImage`` through Wand in the release; here the same kernel is rebuilt in NumPy: a
  one-sided Gaussian of ``2*ceil(radius)+1`` taps (weights ``exp(-i^2 / (2 sigma^2))``,
  normalised) along the angle, offsets rounded to whole pixels, edge pixels repeated. No PNG
  round trip or 16-bit quantum arithmetic, so values can differ by a grey level;
* ``frost`` blends the image with crops of six frost *photographs* in the release; those
  files are not available here, so a procedural frost texture is used instead (see
  :func:`frost_texture`): the blend weights are the released ones, but the texture's
  statistics are not those of the photographs, so frost accuracies are not comparable with
  published CIFAR-10-C frost numbers;
* ``defocus_blur`` (OpenCV ``filter2D``/``GaussianBlur``), ``glass_blur``, ``gaussian`` steps
  (scikit-image) and ``elastic_transform`` (OpenCV ``warpAffine`` + SciPy
  ``map_coordinates``) are re-implemented with the same kernels and border modes (OpenCV's
  ``BORDER_REFLECT_101`` as reflect-without-edge, scikit-image's ``nearest``), but with float
  bilinear interpolation (OpenCV uses fixed point), so values can differ by a grey level;
* ``brightness`` uses Matplotlib's RGB<->HSV conversion instead of scikit-image's (same
  formulas);
* the release converts each clean image with ``ToTensor()`` + ``ToPILImage()``, which can
  lower a pixel by one grey level through float rounding; here the clean uint8 pixels are used.

All functions take and return uint8 arrays of shape (B, 32, 32, 3) (HWC, the released ``.npy``
layout); images of other square sizes work for the size-independent corruptions.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
               "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
               "elastic_transform", "pixelate", "jpeg_compression")

# CIFAR-specific severity parameters of make_cifar_c.py, severities 1..5.
PARAMS: dict[str, list] = {
    "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],
    "shot_noise": [500, 250, 100, 75, 50],
    "impulse_noise": [0.01, 0.02, 0.03, 0.05, 0.07],
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
    "glass_blur": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
    "motion_blur": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
    "zoom_blur": [np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
                  np.arange(1, 1.21, 0.01), np.arange(1, 1.26, 0.01)],
    "snow": [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
             (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
             (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)],
    "frost": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
    "fog": [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
    "brightness": [0.05, 0.1, 0.15, 0.2, 0.3],
    "contrast": [0.75, 0.5, 0.4, 0.3, 0.15],
    "elastic_transform": [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06),
                          (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)],  # x image size
    "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],
    "jpeg_compression": [80, 65, 58, 50, 40],
}


# -- helpers -------------------------------------------------------------------------------
def _gaussian_hw(x: np.ndarray, sigma: float, mode: str = "nearest",
                 truncate: float = 4.0) -> np.ndarray:
    """Gaussian blur over the two image axes of (B, H, W[, C]) (scikit-image's ``gaussian``
    with ``multichannel=True``: default mode ``nearest``, truncate 4)."""
    sig = (0, sigma, sigma) + (0,) * (x.ndim - 3)
    return gaussian_filter(x, sigma=sig, mode=mode, truncate=truncate)


def _conv_reflect101(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate every channel of (B, H, W, C) float images with a 2-D kernel, border
    ``BORDER_REFLECT_101`` (OpenCV ``filter2D``'s default); via ``torch.conv2d``."""
    kh, kw = kernel.shape
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32))
    b, c, h, w = t.shape
    t = t.reshape(b * c, 1, h, w)
    t = torch.nn.functional.pad(t, (kw // 2, kw // 2, kh // 2, kh // 2), mode="reflect")
    out = torch.nn.functional.conv2d(t, torch.from_numpy(kernel.astype(np.float32))[None, None])
    return out.reshape(b, c, h, w).numpy().transpose(0, 2, 3, 1).astype(np.float64)


def disk(radius: float, alias_blur: float) -> np.ndarray:
    """The released anti-aliased disk kernel: a normalised disk on a 17x17 grid (radius <= 8),
    blurred by a 3x3 Gaussian of sigma ``alias_blur`` with reflect-101 borders (OpenCV
    ``GaussianBlur``)."""
    if radius <= 8:
        grid, k = np.arange(-8, 9), 3
    else:
        grid, k = np.arange(-radius, radius + 1), 5
    xx, yy = np.meshgrid(grid, grid)
    d = ((xx ** 2 + yy ** 2) <= radius ** 2).astype(np.float32)
    d /= d.sum()
    taps = np.arange(k) - k // 2
    g = np.exp(-taps ** 2 / (2 * alias_blur ** 2))
    g /= g.sum()
    pad = k // 2
    p = np.pad(d, pad, mode="reflect")  # numpy "reflect" = reflect-101
    rows = sum(g[i] * p[i:i + d.shape[0], :] for i in range(k))
    return sum(g[i] * rows[:, i:i + d.shape[1]] for i in range(k)).astype(np.float32)


def motion_kernel_offsets(radius: float, sigma: float, angle_deg: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ImageMagick ``MotionBlurImage`` kernel: weights (T,) and per-image integer offsets
    (B, T) in x (columns) and y (rows) for angles (B,) in degrees."""
    width = int(2 * np.ceil(radius) + 1)
    i = np.arange(width)
    weights = np.exp(-(i ** 2) / (2.0 * sigma ** 2))
    weights /= weights.sum()
    a = np.deg2rad(np.asarray(angle_deg, dtype=np.float64))[:, None]
    ox = np.ceil(i[None, :] * np.cos(a) - 0.5).astype(np.int64)
    oy = np.ceil(i[None, :] * np.sin(a) - 0.5).astype(np.int64)
    return weights, ox, oy


def motion_blur_batch(x: np.ndarray, radius: float, sigma: float,
                      angle_deg: np.ndarray) -> np.ndarray:
    """Motion-blur (B, H, W[, C]) images, each along its own angle (edge pixels repeated)."""
    weights, ox, oy = motion_kernel_offsets(radius, sigma, angle_deg)
    b, h, w = x.shape[:3]
    out = np.zeros(x.shape, dtype=np.float64)
    bi = np.arange(b)[:, None, None]
    for t, wt in enumerate(weights):
        rows = np.clip(np.arange(h)[None, :] + oy[:, t:t + 1], 0, h - 1)  # (B, H)
        cols = np.clip(np.arange(w)[None, :] + ox[:, t:t + 1], 0, w - 1)  # (B, W)
        out += wt * x[bi, rows[:, :, None], cols[:, None, :]]
    return out


def _linear_zoom_matrix(n_in: int, factor: float) -> np.ndarray:
    """(n_out, n_in) matrix of SciPy's ``zoom(order=1)`` along one axis (``grid_mode=False``:
    output i samples input i * (n_in - 1) / (n_out - 1), linear interpolation)."""
    n_out = round(n_in * factor)
    pos = np.arange(n_out) * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(1)
    lo = np.clip(np.floor(pos).astype(np.int64), 0, n_in - 1)
    hi = np.clip(lo + 1, 0, n_in - 1)
    frac = pos - lo
    mat = np.zeros((n_out, n_in))
    np.add.at(mat, (np.arange(n_out), lo), 1 - frac)
    np.add.at(mat, (np.arange(n_out), hi), frac)
    return mat


def clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """Zoom into the centre of (B, H, W[, C]) by ``factor`` (linear interpolation), cropped
    back to (H, W); the released ``clipped_zoom`` (``scipy.ndimage.zoom(order=1)`` of the
    central crop) applied to a whole batch as two matrix products."""
    h = x.shape[1]
    ch = int(np.ceil(h / factor))
    top = (h - ch) // 2
    crop = x[:, top:top + ch, top:top + ch]
    mat = _linear_zoom_matrix(ch, factor)
    trim = (mat.shape[0] - h) // 2
    mat = mat[trim:trim + h]
    return np.einsum("oi,bij...,pj->bop...", mat, crop, mat, optimize=True).astype(x.dtype)


def plasma_fractal(batch: int, rng: np.random.Generator, mapsize: int = 32,
                   wibbledecay: float = 3) -> np.ndarray:
    """Diamond-square height maps, (B, mapsize, mapsize) in [0, 1] (the released
    ``plasma_fractal``, including its ``wibble * uniform(-wibble, wibble)`` perturbation)."""
    m = np.zeros((batch, mapsize, mapsize), dtype=np.float64)
    step, wibble = mapsize, 100.0

    def wibbled(a: np.ndarray) -> np.ndarray:
        return a / 4 + wibble * rng.uniform(-wibble, wibble, a.shape)

    while step >= 2:
        half = step // 2
        corners = m[:, 0:mapsize:step, 0:mapsize:step]
        sq = corners + np.roll(corners, -1, axis=1)
        sq = sq + np.roll(sq, -1, axis=2)
        m[:, half:mapsize:step, half:mapsize:step] = wibbled(sq)
        dr = m[:, half:mapsize:step, half:mapsize:step]
        ul = m[:, 0:mapsize:step, 0:mapsize:step]
        lt = dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=2)
        m[:, 0:mapsize:step, half:mapsize:step] = wibbled(lt)
        tt = dr + np.roll(dr, 1, axis=2) + ul + np.roll(ul, -1, axis=1)
        m[:, half:mapsize:step, 0:mapsize:step] = wibbled(tt)
        step //= 2
        wibble /= wibbledecay
    m -= m.min(axis=(1, 2), keepdims=True)
    return m / m.max(axis=(1, 2), keepdims=True)


def _sample_bilinear(img: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                     mode: str) -> np.ndarray:
    """Bilinear sampling of (B, H, W, C) at float coordinates (B, H, W); out-of-range
    neighbours are reflected: ``mirror`` = reflect-101 (OpenCV), ``reflect`` = half-sample
    symmetric (SciPy's ``reflect``)."""
    b, h, w = img.shape[:3]

    def fold(i: np.ndarray, n: int) -> np.ndarray:
        if mode == "mirror":
            period = 2 * n - 2
            i = np.mod(i, period)
            return np.where(i >= n, period - i, i)
        period = 2 * n
        i = np.mod(i, period)
        return np.where(i >= n, period - 1 - i, i)

    r0, c0 = np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)
    fr, fc = (rows - r0)[..., None], (cols - c0)[..., None]
    bi = np.arange(b)[:, None, None]
    r0f, r1f, c0f, c1f = fold(r0, h), fold(r0 + 1, h), fold(c0, w), fold(c0 + 1, w)
    top = img[bi, r0f, c0f] * (1 - fc) + img[bi, r0f, c1f] * fc
    bottom = img[bi, r1f, c0f] * (1 - fc) + img[bi, r1f, c1f] * fc
    return top * (1 - fr) + bottom * fr


def frost_texture(batch: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Procedural stand-in for the release's frost photographs, (B, size, size, 3) in [0, 255].

    Ice needles: sparse bright seeds (density 6%) smeared by motion blur in three random
    directions per image and amplified; over a low-frequency plasma haze (weight 0.35); tinted
    pale blue (RGB gains 0.85, 0.93, 1.0). Mean grey level about 90-110. Not the photographs.
    """
    seeds = (rng.random((batch, size, size)) < 0.06).astype(np.float64)
    needles = np.zeros_like(seeds)
    for _ in range(3):
        needles += motion_blur_batch(seeds, 4, 2.0, rng.uniform(0, 360, batch))
    needles = np.clip(needles * 2.5, 0, 1)
    haze = plasma_fractal(batch, rng, mapsize=size, wibbledecay=2)
    base = np.clip(0.35 * haze + 0.65 * needles, 0, 1)
    tint = np.array([0.85, 0.93, 1.0])
    return base[..., None] * tint * 255


# -- the 15 corruptions: float (B, H, W, 3) in [0, 255] -> float in [0, 255] -------------
def gaussian_noise(x, c, rng):
    x = x / 255.0
    return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1) * 255


def shot_noise(x, c, rng):
    x = x / 255.0
    return np.clip(rng.poisson(x * c) / c, 0, 1) * 255


def impulse_noise(x, c, rng):
    # scikit-image random_noise(mode="s&p", amount=c): each value independently replaced with
    # probability c, by 1 (salt) or 0 (pepper) with equal odds.
    x = x / 255.0
    flipped = rng.random(x.shape) < c
    salted = rng.random(x.shape) < 0.5
    x = np.where(flipped & salted, 1.0, np.where(flipped & ~salted, 0.0, x))
    return np.clip(x, 0, 1) * 255


def defocus_blur(x, c, rng):
    return np.clip(_conv_reflect101(x / 255.0, disk(c[0], c[1])), 0, 1) * 255


def glass_blur(x, c, rng):
    sigma, delta, iterations = c
    x = (_gaussian_hw(x / 255.0, sigma) * 255).astype(np.uint8)
    b, h, w = x.shape[:3]
    bi = np.arange(b)
    for _ in range(iterations):
        for r in range(h - delta, delta, -1):
            for col in range(w - delta, delta, -1):
                # the release draws randint(-delta, delta): offsets in [-delta, delta - 1]
                d = rng.integers(-delta, delta, size=(b, 2))
                rp, cp = r + d[:, 1], col + d[:, 0]
                here = x[bi, r, col].copy()
                x[bi, r, col] = x[bi, rp, cp]
                x[bi, rp, cp] = here
    return np.clip(_gaussian_hw(x / 255.0, sigma), 0, 1) * 255


def motion_blur(x, c, rng):
    angles = rng.uniform(-45, 45, len(x))
    return np.clip(np.round(motion_blur_batch(x, c[0], c[1], angles)), 0, 255)


def zoom_blur(x, c, rng):
    x = (x / 255.0).astype(np.float32)
    out = np.zeros_like(x)
    for factor in c:
        out += clipped_zoom(x, factor)
    return np.clip((x + out) / (len(c) + 1), 0, 1) * 255


def snow(x, c, rng):
    x = x.astype(np.float32) / 255.0
    b, h = x.shape[:2]
    layer = rng.normal(size=x.shape[:3], loc=c[0], scale=c[1])
    layer = clipped_zoom(layer, c[2])
    layer[layer < c[3]] = 0
    layer = (np.clip(layer, 0, 1) * 255).astype(np.uint8).astype(np.float64)
    layer = np.round(motion_blur_batch(layer, c[4], c[5], rng.uniform(-135, -45, b))) / 255.0
    layer = layer[..., None]
    grey = (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])[..., None]
    x = c[6] * x + (1 - c[6]) * np.maximum(x, grey * 1.5 + 0.5)
    return np.clip(x + layer + np.rot90(layer, k=2, axes=(1, 2)), 0, 1) * 255


def frost(x, c, rng):
    return np.clip(c[0] * x + c[1] * frost_texture(len(x), x.shape[1], rng), 0, 255)


def fog(x, c, rng):
    x = x / 255.0
    max_val = x.max(axis=(1, 2, 3), keepdims=True)
    h = x.shape[1]
    x = x + c[0] * plasma_fractal(len(x), rng, mapsize=32, wibbledecay=c[1])[:, :h, :h, None]
    return np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255


def brightness(x, c, rng):
    from matplotlib.colors import hsv_to_rgb, rgb_to_hsv

    hsv = rgb_to_hsv(x / 255.0)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return np.clip(hsv_to_rgb(hsv), 0, 1) * 255


def contrast(x, c, rng):
    x = x / 255.0
    means = x.mean(axis=(1, 2), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def elastic_transform(x, c, rng):
    b, h, w = x.shape[:3]
    alpha, sigma, affine = (v * h for v in c)
    x = x.astype(np.float32) / 255.0
    centre, half = np.float32(h // 2), h // 3
    pts1 = np.float32([[centre + half, centre + half], [centre + half, centre - half],
                       [centre - half, centre - half]])  # (x, y) points as in the release
    pts2 = pts1[None] + rng.uniform(-affine, affine, size=(b, 3, 2)).astype(np.float32)
    # affine M (B, 2, 3) with pts2 = M @ [pts1, 1]; warpAffine samples src at M^-1 @ dst
    src = np.concatenate([pts1, np.ones((3, 1), np.float32)], axis=1)  # (3, 3)
    m = np.linalg.solve(src[None].astype(np.float64), pts2.astype(np.float64))  # (B, 3, 2)
    m = np.concatenate([m.transpose(0, 2, 1), np.tile([[[0, 0, 1]]], (b, 1, 1))], axis=1)
    inv = np.linalg.inv(m)  # (B, 3, 3)
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    grid = np.stack([xx, yy, np.ones_like(xx)], axis=0).reshape(3, -1).astype(np.float64)
    src_xy = inv[:, :2] @ grid  # (B, 2, H*W)
    warped = _sample_bilinear(x, src_xy[:, 1].reshape(b, h, w), src_xy[:, 0].reshape(b, h, w),
                              mode="mirror")
    dx = _gaussian_hw(rng.uniform(-1, 1, size=(b, h, w)), sigma, mode="reflect",
                      truncate=3) * alpha
    dy = _gaussian_hw(rng.uniform(-1, 1, size=(b, h, w)), sigma, mode="reflect",
                      truncate=3) * alpha
    out = _sample_bilinear(warped, yy[None] + dy, xx[None] + dx, mode="reflect")
    return np.clip(out, 0, 1) * 255


def pixelate(x, c, rng):
    h, w = x.shape[1:3]
    small = (int(w * c), int(h * c))
    out = np.empty(x.shape, dtype=np.uint8)
    for i, img in enumerate(x.astype(np.uint8)):
        im = Image.fromarray(img).resize(small, Image.BOX).resize((w, h), Image.BOX)
        out[i] = np.asarray(im)
    return out.astype(np.float64)


def jpeg_compression(x, c, rng):
    out = np.empty(x.shape, dtype=np.uint8)
    for i, img in enumerate(x.astype(np.uint8)):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=c)
        out[i] = np.asarray(Image.open(buf).convert("RGB"))
    return out.astype(np.float64)


FUNCTIONS: dict[str, Callable] = {name: globals()[name] for name in CORRUPTIONS}


def check_severity(severity: object, key: str = "data.severity") -> int:
    """Validate a severity: an int in 1..5 (raises ValueError naming ``key``)."""
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 5:
        raise ValueError(f"{key}={severity!r} is out of range: use an int in 1..5")
    return severity


def corrupt(images: np.ndarray, name: str, severity: int = 3, seed: int = 0,
            chunk: int = 1000) -> np.ndarray:
    """Apply one CIFAR-10-C corruption to a batch of images.

    Args:
        images: uint8 (N, H, W, 3) clean images (HWC, the released ``.npy`` layout).
        name: one of :data:`CORRUPTIONS`.
        severity: 1..5.
        seed: seed; the random stream is ``numpy.random.default_rng([seed, index of name,
            severity])``, consumed in chunks of ``chunk`` images, so the result is
            deterministic for (images, name, severity, seed, chunk).
        chunk: images per vectorised step (memory bound).

    Returns:
        uint8 (N, H, W, 3) corrupted images (float results truncated as ``np.uint8`` does in
        the release).

    Raises:
        ValueError: for an unknown name, a severity outside 1..5 or images that are not
            uint8 (N, H, W, 3).
    """
    if name not in FUNCTIONS:
        raise ValueError(f"unknown corruption {name!r}: choose from {', '.join(CORRUPTIONS)}")
    check_severity(severity)
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} "
                         f"{images.shape}")
    rng = np.random.default_rng([seed, CORRUPTIONS.index(name), severity])
    fn, param = FUNCTIONS[name], PARAMS[name][severity - 1]
    out = np.empty_like(images)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].astype(np.float64)
        y = fn(x, param, rng)
        out[start:start + chunk] = np.clip(y, 0, 255).astype(np.uint8)
    return out
