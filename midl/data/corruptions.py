"""The 15 CIFAR-10-C corruptions (Hendrycks & Dietterich 2019, "Benchmarking Neural Network
Robustness to Common Corruptions and Perturbations", ICLR), vectorised over batches.

Severity parameters are the CIFAR-specific values of the released generator
(``hendrycks/robustness``, ``ImageNet-C/create_c/make_cifar_c.py``). This is an independent
re-implementation with NumPy, SciPy, PyTorch, Matplotlib and Pillow of the arithmetic that made
the released files, including the final truncating ``np.uint8`` cast. Compared with that
generator run on current libraries (scikit-image 0.26, OpenCV 5.0, ImageMagick 6.9 Q16 through
Wand) and fed the same random draws:

* equal pixel for pixel: ``gaussian_noise``, ``shot_noise``, ``impulse_noise``,
  ``defocus_blur``, ``glass_blur``, ``motion_blur``, ``zoom_blur``, ``frost``, ``fog``,
  ``brightness``, ``contrast``, ``elastic_transform``, ``pixelate``, ``jpeg_compression``;
  ``glass_blur``, ``motion_blur`` and ``frost`` checked on 200 CIFAR-10 test images at all
  five severities;
* within one grey level: ``snow`` (equal at severities 1-4; at severity 5 about 0.01% of the
  pixels are one level apart);
* every corruption draws from a seeded ``numpy.random.Generator`` (the release uses the
  unseeded global NumPy state, one draw at a time), so images are deterministic for a seed and
  follow the released distribution, but they are not the released images themselves.

Where the arithmetic is rebuilt rather than called:

* ``glass_blur`` reproduces what the release *does*, not what its comment says: its "swap"
  ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` acts on NumPy views, so the right-hand side's
  second item already sees the new ``x[h, w]``; it copies pixel ``(h', w')`` into ``(h, w)``
  and leaves ``(h', w')`` unchanged (the behaviour of numpy issue 14428). The released data
  was made that way, so pixels here are copied, not swapped.
* ``frost`` blends a random 32x32 crop of one of the release's frost photographs
  (``frost1.png`` ... ``frost5.jpg``: the CIFAR generator draws ``randint(5)``, so
  ``frost6.jpg`` is never used), read as RGB (alpha dropped, as OpenCV's ``imread`` does),
  shrunk by 0.2 with OpenCV's bilinear rule (half-pixel centres; at that factor each output
  pixel is exactly source pixel ``(5 i + 2, 5 j + 2)``), blended as
  ``clip(c0 * x + c1 * crop, 0, 255)`` with the released ``(c0, c1)``. The photographs are
  read from ``<data root>/frost/`` (:func:`find_frost_photographs`; with ``download=True``
  from the ``imagecorruptions`` package if installed, else fetched from the repository and
  checked by MD5); without them ``frost`` fails with an error naming the folder.
* ``motion_blur`` and ``snow`` (whose snow layer is motion-blurred) use ImageMagick's
  ``MotionBlurImage`` through Wand in the release; here the same kernel is rebuilt in NumPy: a
  one-sided Gaussian of ``2*ceil(radius)+1`` taps (weights ``exp(-i^2 / (2 sigma^2))``,
  normalised) along the angle, offsets rounded to whole pixels, edge pixels repeated; the
  result is stored as ImageMagick Q16 does it (``q = round(257 v)``, written to the 8-bit PNG
  as ``q // 257``, which truncates). Equal to ImageMagick 6.9 Q16 on CIFAR test images.
* ``defocus_blur`` (OpenCV ``filter2D``/``GaussianBlur``), ``glass_blur``, ``gaussian`` steps
  (scikit-image) and ``elastic_transform`` (OpenCV ``warpAffine`` + SciPy
  ``map_coordinates``) use the same kernels and border modes (OpenCV's
  ``BORDER_REFLECT_101`` as reflect-without-edge, scikit-image's ``nearest``), with float
  bilinear interpolation where OpenCV uses fixed point (the comparison found no pixel apart);
* ``brightness`` uses Matplotlib's RGB<->HSV conversion instead of scikit-image's (same
  formulas);
* the release converts each clean image with ``ToTensor()`` + ``ToPILImage()`` first; with
  current torch/torchvision all 256 grey levels survive that round trip unchanged, so the clean
  uint8 pixels are used directly.

:data:`GENERATOR_VERSION` changes whenever the output of this module changes, so caches of
generated images made by an older version are never reused.

:func:`corrupt` takes and returns uint8 arrays of shape (N, 32, 32, 3) (HWC, the released
``.npy`` layout); the 15 corruption functions it dispatches to take float arrays of shape
(B, H, W, 3) in grey levels [0, 255] and return float arrays of that shape and scale, which
:func:`corrupt` truncates to uint8. Images of other square sizes work for the size-independent
corruptions.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import logging
import os
import tempfile
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

log = logging.getLogger(__name__)

# Bump whenever the output of any corruption changes (caches of generated images key on it).
# 1: procedural frost texture, glass blur swapping pixels, motion blur rounding.
# 2: the release's frost photographs, glass blur copying pixels, ImageMagick's Q16 truncation.
GENERATOR_VERSION = 2

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


# -- the frost photographs ----------------------------------------------------------------
# The six photographs of the release (hendrycks/robustness, ImageNet-C/create_c/, Apache-2.0;
# the same files ship in the imagecorruptions package). The CIFAR generator draws randint(5):
# frost1..frost5; frost6 is listed for completeness and never used.
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")
FROST_USED = FROST_FILES[:5]
FROST_MD5 = {
    "frost1.png": "6ead634ace1f366d77e87078b465863c",
    "frost2.png": "98f0d2b1d74a048d3bc9c7ecfd886939",
    "frost3.png": "b3ed8eb147824261888e730f916c0d8b",
    "frost4.jpg": "d70b9d6aa0b1fe7bd8133b113787e078",
    "frost5.jpg": "50984ae2c871b7df2c28f1d71ca460a0",
    "frost6.jpg": "bd01b8fc7c34a4ff3265c6fb476cff7b",
}
FROST_URL = ("https://raw.githubusercontent.com/hendrycks/robustness/master/ImageNet-C/"
             "create_c/{name}")
FROST_SCALE = 0.2  # the release shrinks each photograph by 0.2 before cropping


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _packaged_frost_dir() -> Path | None:
    """The ``frost/`` folder of the installed ``imagecorruptions`` package (located, not
    imported), if it holds the photographs the generator uses; else None."""
    try:
        spec = importlib.util.find_spec("imagecorruptions")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "frost"
        if all((folder / name).is_file() for name in FROST_USED):
            return folder
    return None


def _download_frost(folder: Path, names: Sequence[str], url: str = FROST_URL,
                    timeout: float = 60) -> None:
    """Fetch ``names`` into ``folder``, each checked against :data:`FROST_MD5` and written
    atomically (a failed or mismatching download leaves nothing behind)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot create {folder} for the frost photographs ({err}); copy them "
                      "there by hand or use a writable data root") from err
    for name in names:
        source = url.format(name=name)
        try:
            with urllib.request.urlopen(source, timeout=timeout) as response:  # noqa: S310
                data = response.read()
        except OSError as err:
            raise RuntimeError(f"could not fetch {source} ({err}); put {', '.join(FROST_USED)} "
                               f"into {folder} by hand (or pip install imagecorruptions, whose "
                               "frost/ folder holds the same files)") from err
        got = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if got != FROST_MD5[name]:
            raise RuntimeError(f"{source}: MD5 {got} is not the released {FROST_MD5[name]}; "
                               "not saved")
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, folder / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        log.info("fetched %s into %s", source, folder)


def find_frost_photographs(folder: str | os.PathLike, download: bool = False) -> Path:
    """The folder holding the frost photographs the generator uses (``frost1.png`` ...
    ``frost5.jpg``).

    Args:
        folder: where they are expected: ``<data root>/frost/``.
        download: if files are missing there, use the installed ``imagecorruptions``
            package's copies, else fetch them from the repository into ``folder`` (each
            checked by MD5).

    Returns:
        ``folder``, or the package's ``frost/`` folder.

    Raises:
        FileNotFoundError: files missing and ``download`` false (the message names the folder,
            the files and how to get them).
        RuntimeError / OSError: a download failed.
    """
    folder = Path(folder)
    missing = [name for name in FROST_USED if not (folder / name).is_file()]
    if not missing:
        return folder
    if download:
        packaged = _packaged_frost_dir()
        if packaged is not None:
            log.info("frost photographs from the imagecorruptions package: %s", packaged)
            return packaged
        _download_frost(folder, missing)
        return folder
    raise FileNotFoundError(
        f"the frost corruption needs the frost photographs of the released CIFAR-10-C "
        f"generator in {folder} (missing: {', '.join(missing)}). They are "
        f"{', '.join(FROST_USED)} from hendrycks/robustness, ImageNet-C/create_c/ (Apache-2.0), "
        "also shipped in the imagecorruptions package's frost/ folder. Copy them there, pass "
        "data.download=true to fetch them, or point the data root (MIDL_DATA_DIR or "
        "paths.data_dir) at a folder whose frost/ has them.")


def frost_digests(folder: str | os.PathLike) -> dict[str, str]:
    """MD5 of each photograph the generator uses in ``folder``; warns if one is not the
    released file (e.g. a test fixture)."""
    folder = Path(folder)
    digests = {name: _md5(folder / name) for name in FROST_USED}
    differing = [name for name, md5 in digests.items() if md5 != FROST_MD5[name]]
    if differing:
        log.warning("frost photographs in %s are not the released files (MD5 differs: %s); "
                    "frost images will not be CIFAR-10-C's", folder, ", ".join(differing))
    return digests


def _resize_linear(img: np.ndarray, factor: float) -> np.ndarray:
    """OpenCV ``resize(img, (0, 0), fx=factor, fy=factor)`` (``INTER_LINEAR``) of a uint8
    (H, W, C) image: output size ``round(n * factor)``, output index ``i`` samples source
    coordinate ``(i + 0.5) / factor - 0.5`` (half-pixel centres) bilinearly, clamped at the
    borders, rounded to uint8. At the release's 0.2 every coordinate is a whole number
    (``5 i + 2``), so the result is exactly a subsampling of the photograph."""
    scale = 1.0 / factor

    def axis(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m = int(np.rint(n * factor))
        pos = ((np.arange(m) + 0.5) * scale - 0.5).astype(np.float32).astype(np.float64)
        lo = np.floor(pos)
        frac = pos - lo
        lo = lo.astype(np.int64)
        frac = np.where((lo < 0) | (lo >= n - 1), 0.0, frac)
        lo = np.clip(lo, 0, n - 1)
        return lo, np.minimum(lo + 1, n - 1), frac

    r0, r1, fr = axis(img.shape[0])
    c0, c1, fc = axis(img.shape[1])
    x = img.astype(np.float64)
    rows = x[r0] * (1 - fr)[:, None, None] + x[r1] * fr[:, None, None]
    out = rows[:, c0] * (1 - fc)[None, :, None] + rows[:, c1] * fc[None, :, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _load_frost(folder: str, stamp: tuple) -> tuple[np.ndarray, ...]:
    textures = []
    for name in FROST_USED:
        with Image.open(Path(folder) / name) as im:
            rgb = np.asarray(im.convert("RGB"))  # alpha dropped, not composited (imread)
        textures.append(_resize_linear(rgb, FROST_SCALE))
    return tuple(textures)


def load_frost_textures(folder: str | os.PathLike, size: int = 32) -> tuple[np.ndarray, ...]:
    """The photographs the generator uses, RGB uint8, each shrunk by :data:`FROST_SCALE`.

    Raises:
        FileNotFoundError: a file is missing (see :func:`find_frost_photographs`).
        ValueError: a shrunk photograph is not larger than ``size`` in both directions (no
            ``size`` x ``size`` crop fits), naming the file.
    """
    folder = find_frost_photographs(Path(folder).resolve())  # raises if a file is missing
    paths = [folder / name for name in FROST_USED]
    stamp = tuple((p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    textures = _load_frost(str(folder), stamp)
    for name, tex in zip(FROST_USED, textures, strict=True):
        if tex.shape[0] <= size or tex.shape[1] <= size:
            raise ValueError(f"{folder / name}: {tex.shape[1]}x{tex.shape[0]} after shrinking "
                             f"by {FROST_SCALE}; a {size}x{size} crop needs more")
    return textures


# -- the 15 corruptions: float (B, H, W, 3) in [0, 255] -> float (B, H, W, 3) in [0, 255] --
# (c: the severity's entry of PARAMS, in the units each docstring names; rng: the seeded
# stream that corrupt() passes)
def gaussian_noise(x: np.ndarray, c, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise on [0, 1] pixels; ``c``: its standard deviation."""
    x = x / 255.0
    return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1) * 255


def shot_noise(x: np.ndarray, c, rng: np.random.Generator) -> np.ndarray:
    """Poisson (shot) noise: ``poisson(x c) / c`` on [0, 1] pixels; ``c``: photons per unit
    intensity (fewer: noisier)."""
    x = x / 255.0
    return np.clip(rng.poisson(x * c) / c, 0, 1) * 255


def impulse_noise(x: np.ndarray, c, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper noise; ``c``: the fraction of values replaced."""
    # scikit-image random_noise(mode="s&p", amount=c): each value independently replaced with
    # probability c, by 1 (salt) or 0 (pepper) with equal odds.
    x = x / 255.0
    flipped = rng.random(x.shape) < c
    salted = rng.random(x.shape) < 0.5
    x = np.where(flipped & salted, 1.0, np.where(flipped & ~salted, 0.0, x))
    return np.clip(x, 0, 1) * 255


def defocus_blur(x: np.ndarray, c, rng: np.random.Generator) -> np.ndarray:
    """Convolution with an anti-aliased disk; ``c``: (disk radius in pixels, the disk's
    Gaussian alias blur)."""
    return np.clip(_conv_reflect101(x / 255.0, disk(c[0], c[1])), 0, 1) * 255


def glass_blur(x: np.ndarray, c, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur, local pixel shuffling, Gaussian blur; ``c``: (sigma in pixels, maximum
    shift in pixels, shuffling passes)."""
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
                # the release's "swap" on NumPy views copies (h', w') into (h, w) and leaves
                # (h', w') as it was (see the module docstring); so does this
                x[bi, r, col] = x[bi, rp, cp]
    return np.clip(_gaussian_hw(x / 255.0, sigma), 0, 1) * 255


def _magick_q16_to_uint8(v: np.ndarray) -> np.ndarray:
    """ImageMagick Q16 stores a result as the 16-bit ``q = round(257 v)`` and its 8-bit PNG
    writer keeps ``q // 257``: a truncation (one grey level below rounding on about half of
    the pixels)."""
    return np.round(257.0 * v) // 257


def motion_blur(x: np.ndarray, c, rng: np.random.Generator) -> np.ndarray:
    """ImageMagick-style motion blur at a random angle in [-45, 45) degrees; ``c``: (radius,
    sigma) in pixels."""
    angles = rng.uniform(-45, 45, len(x))
    return np.clip(_magick_q16_to_uint8(motion_blur_batch(x, c[0], c[1], angles)), 0, 255)


def zoom_blur(x: np.ndarray, c, rng: np.random.Generator) -> np.ndarray:
    """The mean of the image and its centre zooms; ``c``: the zoom factors (array)."""
    x = (x / 255.0).astype(np.float32)
    out = np.zeros_like(x)
    for factor in c:
        out += clipped_zoom(x, factor)
    return np.clip((x + out) / (len(c) + 1), 0, 1) * 255


def snow(x: np.ndarray, c, rng: np.random.Generator) -> np.ndarray:
    """A motion-blurred snow layer added to a whitened image; ``c``: (layer mean, layer std,
    layer zoom, threshold below which the layer is cleared, blur radius, blur sigma, weight of
    the original image)."""
    x = x.astype(np.float32) / 255.0
    b, h = x.shape[:2]
    layer = rng.normal(size=x.shape[:3], loc=c[0], scale=c[1])
    layer = clipped_zoom(layer, c[2])
    layer[layer < c[3]] = 0
    layer = (np.clip(layer, 0, 1) * 255).astype(np.uint8).astype(np.float64)
    layer = _magick_q16_to_uint8(motion_blur_batch(layer, c[4], c[5],
                                                   rng.uniform(-135, -45, b))) / 255.0
    layer = layer[..., None]
    grey = (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])[..., None]
    x = c[6] * x + (1 - c[6]) * np.maximum(x, grey * 1.5 + 0.5)
    return np.clip(x + layer + np.rot90(layer, k=2, axes=(1, 2)), 0, 1) * 255


def frost(x: np.ndarray, c, rng: np.random.Generator,
          textures: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """A random crop of a frost photograph blended in; ``c``: (weight of the image, weight of the
    frost); ``textures``: the photographs frost1..frost5 (:func:`load_frost_textures`; corrupt()
    passes them). Raises ValueError without them."""
    if textures is None:
        raise ValueError("frost needs the frost photographs: call corrupt(..., frost_dir=...) "
                         "or pass textures=load_frost_textures(folder)")
    b, h, w = x.shape[:3]
    idx = rng.integers(len(textures), size=b)  # the release: randint(5), frost1..frost5
    heights = np.array([t.shape[0] for t in textures])[idx]
    widths = np.array([t.shape[1] for t in textures])[idx]
    top = rng.integers(0, heights - h)  # the release: randint(0, H - 32), randint(0, W - 32)
    left = rng.integers(0, widths - w)
    crops = np.stack([textures[i][t:t + h, s:s + w]
                      for i, t, s in zip(idx, top, left, strict=True)])
    return np.clip(c[0] * x + c[1] * crops, 0, 255)


def fog(x: np.ndarray, c, rng: np.random.Generator) -> np.ndarray:
    """Plasma-fractal fog added, then rescaled to the image's maximum; ``c``: (fog strength,
    the fractal's wibble decay)."""
    x = x / 255.0
    max_val = x.max(axis=(1, 2, 3), keepdims=True)
    h = x.shape[1]
    x = x + c[0] * plasma_fractal(len(x), rng, mapsize=32, wibbledecay=c[1])[:, :h, :h, None]
    return np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255


def brightness(x: np.ndarray, c, rng: np.random.Generator) -> np.ndarray:
    """HSV value raised; ``c``: the amount added to V (on [0, 1])."""
    from matplotlib.colors import hsv_to_rgb, rgb_to_hsv

    hsv = rgb_to_hsv(x / 255.0)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return np.clip(hsv_to_rgb(hsv), 0, 1) * 255


def contrast(x: np.ndarray, c, rng: np.random.Generator) -> np.ndarray:
    """Pixels pulled towards each image's mean per channel; ``c``: the kept contrast
    fraction."""
    x = x / 255.0
    means = x.mean(axis=(1, 2), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def elastic_transform(x: np.ndarray, c, rng: np.random.Generator) -> np.ndarray:
    """A random affine warp, then a Gaussian-smoothed random displacement field;
    ``c``: (displacement scale, smoothing sigma, affine jitter), each as a fraction of the image
    size."""
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


def pixelate(x: np.ndarray, c, rng: np.random.Generator) -> np.ndarray:
    """Box-downscaled and box-upscaled back (Pillow); ``c``: the downscale factor."""
    h, w = x.shape[1:3]
    small = (int(w * c), int(h * c))
    out = np.empty(x.shape, dtype=np.uint8)
    for i, img in enumerate(x.astype(np.uint8)):
        im = Image.fromarray(img).resize(small, Image.BOX).resize((w, h), Image.BOX)
        out[i] = np.asarray(im)
    return out.astype(np.float64)


def jpeg_compression(x: np.ndarray, c, rng: np.random.Generator) -> np.ndarray:
    """A JPEG round trip through Pillow; ``c``: the JPEG quality (1-100)."""
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
            chunk: int = 1000, frost_dir: str | os.PathLike | None = None,
            download: bool = False) -> np.ndarray:
    """Apply one CIFAR-10-C corruption to a batch of images.

    Args:
        images: uint8 (N, H, W, 3) clean images (HWC, the released ``.npy`` layout).
        name: one of :data:`CORRUPTIONS`.
        severity: 1..5.
        seed: seed; the random stream is ``numpy.random.default_rng([seed, index of name,
            severity])``, consumed in chunks of ``chunk`` images, so the result is
            deterministic for (images, name, severity, seed, chunk).
        chunk: images per vectorised step (memory bound).
        frost_dir: folder of the frost photographs (``frost`` only; default
            ``<data root>/frost`` with the data root of :func:`midl.data.base.default_data_dir`).
        download: ``frost`` only: fetch missing photographs (:func:`find_frost_photographs`).

    Returns:
        uint8 (N, H, W, 3) corrupted images (float results truncated as ``np.uint8`` does in
        the release).

    Raises:
        ValueError: for an unknown name, a severity outside 1..5 or images that are not
            uint8 (N, H, W, 3).
        FileNotFoundError: ``frost`` without its photographs (the message names the folder).
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
    if name == "frost":
        if frost_dir is None:
            from midl.data.base import default_data_dir

            frost_dir = Path(default_data_dir()) / "frost"
        textures = load_frost_textures(find_frost_photographs(frost_dir, download),
                                       size=images.shape[1])
        fn = functools.partial(frost, textures=textures)
    out = np.empty_like(images)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].astype(np.float64)
        y = fn(x, param, rng)
        out[start:start + chunk] = np.clip(y, 0, 255).astype(np.uint8)
    return out
