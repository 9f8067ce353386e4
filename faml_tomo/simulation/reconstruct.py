"""Weighted back-projection (WBP) of single-axis tilt series about Y.

Geometry (shared with :mod:`.tiltseries`; see :mod:`.optics`): a tilt series
is an array ``(n_tilts, ny, nx)``; the tomogram is ``(nz, ny, nx)`` indexed
``[z, y, x]`` with z along the beam.  A voxel at ``(x, y, z)`` (indices in
the full-resolution tomogram, centre ``c = n // 2`` on each axis) projects in
the image at tilt ``theta`` to::

    u = (x - cx) cos(theta) + (z - cz) sin(theta) + cx,    v = y

Binned tomograms: voxel ``j`` of a tomogram binned by ``b`` covers the
full-resolution voxels ``b j .. b j + b - 1``, so its centre is at
``b j + (b - 1) / 2``; :func:`binned_coordinates` converts positions.

The back-projection loops over tilts within chunks of z so that the chunk of
the output stays in cache; each tilt costs two row gathers (linear
interpolation along u), which makes a 512 x 512 x 128 tomogram from 41 tilts
take a few seconds on one core.
"""

import logging

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from ..errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "ramp_filter",
    "filter_projections",
    "reconstruct_wbp",
    "reconstruct_local",
    "binned_coordinates",
    "angular_weights",
    "normalize_tilt_series",
]

FILTERS = ("ramp", "shepp-logan", "cosine", "hamming", "hann")


def ramp_filter(n: int, kind: str = "ramp", sigma: float = 0.0) -> tuple[np.ndarray, int]:
    """Ramp filter for rows of ``n`` pixels, rfft layout of the padded length.

    The spatial Ram-Lak kernel is transformed (as in scikit-image's iradon)
    so that the zero frequency is weighted correctly.

    Parameters
    ----------
    n : int
        Row length in pixels.
    kind : {"ramp", "shepp-logan", "cosine", "hamming", "hann"}
        Apodisation.
    sigma : float
        Extra Gaussian low-pass of standard deviation ``sigma`` pixels
        (anti-aliasing before sampling at a coarser spacing); 0 for none.

    Returns
    -------
    filt : numpy.ndarray, shape (n_pad // 2 + 1,)
        ``|k|`` (cycles/px) times the window; the continuous FBP weight.
    n_pad : int
        Padded row length (zero padding avoids wrap-around).
    """
    if kind not in FILTERS:
        raise InputError(f"filter must be one of {', '.join(FILTERS)}, got {kind!r}")
    n_pad = sfft.next_fast_len(max(64, 2 * int(n)))
    m = np.arange(n_pad)
    m = np.minimum(m, n_pad - m)
    h = np.zeros(n_pad)
    h[0] = 0.25
    odd = m % 2 == 1
    h[odd] = -1.0 / (np.pi * m[odd]) ** 2
    filt = np.real(np.fft.rfft(h))  # ~ |k| in cycles/px (1/2 at Nyquist)
    k = np.fft.rfftfreq(n_pad)
    w = 2 * k  # fraction of Nyquist
    if kind == "shepp-logan":
        filt *= np.sinc(w / 2)
    elif kind == "cosine":
        filt *= np.cos(np.pi * w / 2)
    elif kind == "hamming":
        filt *= 0.54 + 0.46 * np.cos(np.pi * w)
    elif kind == "hann":
        filt *= 0.5 + 0.5 * np.cos(np.pi * w)
    if sigma > 0:
        filt *= np.exp(-2 * (np.pi * sigma * k) ** 2)
    return filt, n_pad


def angular_weights(angles: np.ndarray) -> np.ndarray:
    """Angular interval (radians) each tilt stands for: half the distance to
    its neighbours (one step at the ends)."""
    a = np.radians(np.asarray(angles, float))
    if a.size == 1:
        return np.ones(1)
    order = np.argsort(a)
    s = a[order]
    d = np.diff(s)
    w = np.empty_like(s)
    w[1:-1] = (d[:-1] + d[1:]) / 2
    w[0], w[-1] = d[0], d[-1]
    out = np.empty_like(w)
    out[order] = w
    return out


def normalize_tilt_series(images: np.ndarray) -> np.ndarray:
    """Images in counts -> contrast ``I / mean(I) - 1`` per image (float32)."""
    images = np.asarray(images, np.float32)
    mean = images.mean(axis=(1, 2), keepdims=True, dtype=np.float64)
    mean[mean == 0] = 1
    return (images / mean - 1).astype(np.float32)


def _check_series(images, angles):
    images = np.asarray(images)
    angles = np.asarray(angles, float)
    if images.ndim != 3:
        raise InputError(f"tilt series must be (n_tilts, ny, nx), got shape {images.shape}")
    if angles.shape != (images.shape[0],):
        raise InputError(f"{angles.size} tilt angles for {images.shape[0]} images")
    if np.any(np.abs(angles) > 90):
        raise InputError(
            f"tilt angles must lie in [-90, 90] degrees, got {angles.min():g}..{angles.max():g}"
        )
    return images, angles


def filter_projections(
    rows: np.ndarray, filter: str = "ramp", sigma: float = 0.0, workers: int | None = None
) -> np.ndarray:
    """Ramp-filter projection rows along their last axis (u).

    Parameters
    ----------
    rows : numpy.ndarray, shape (..., nu)
    filter : str
        See :func:`ramp_filter`.
    sigma : float
        Extra Gaussian low-pass in pixels.
    workers : int, optional

    Returns
    -------
    numpy.ndarray, float32, same shape
    """
    nu = rows.shape[-1]
    filt, n_pad = ramp_filter(nu, filter, sigma)
    spec = sfft.rfft(rows, n=n_pad, axis=-1, workers=workers)
    spec *= filt.astype(np.complex64 if spec.dtype == np.complex64 else spec.dtype)
    return sfft.irfft(spec, n=n_pad, axis=-1, workers=workers)[..., :nu].astype(np.float32)


def _backproject(filt_t, angles, weights, xs, zs, cx, cz, u_origin, u_step, chunk=4):
    """Core back-projection.

    filt_t : (n_tilts, nu, nrows) filtered projections, u along axis 1, rows
        contiguous.  xs, zs : output voxel positions in full-resolution pixels.
    Projection pixel m is at full-resolution u = u_origin + m * u_step.
    Returns (nz_out, nrows, nx_out).
    """
    n_t, nu, nrows = filt_t.shape
    pad = 2
    # Two zero columns each side; the difference array is zero there too, so
    # clipped indices read zeros.
    p = np.zeros((n_t, nu + 2 * pad, nrows), np.float32)
    p[:, pad : pad + nu] = filt_t
    d = np.zeros_like(p)
    d[:, :-1] = p[:, 1:] - p[:, :-1]
    nzo, nxo = zs.size, xs.size
    out = np.zeros((nzo, nxo, nrows), np.float32)
    cos, sin = np.cos(np.radians(angles)), np.sin(np.radians(angles))
    x_rel = (xs - cx)[None, :]
    chunk = max(1, int(chunk))
    buf = np.empty((chunk * nxo, nrows), np.float32)
    buf2 = np.empty_like(buf)
    hi = nu + 2 * pad - 1
    for z0 in range(0, nzo, chunk):
        z1 = min(z0 + chunk, nzo)
        n = (z1 - z0) * nxo
        o = out[z0:z1].reshape(n, nrows)
        z_rel = (zs[z0:z1] - cz)[:, None]
        b1, b2 = buf[:n], buf2[:n]
        for i in range(n_t):
            u = (x_rel * cos[i] + z_rel * sin[i] + cx - u_origin) / u_step + pad
            u = np.clip(u, 0, hi).ravel()
            i0 = u.astype(np.intp)  # u >= 0: truncation is floor
            w = (u - i0).astype(np.float32) * weights[i]
            np.take(p[i], i0, axis=0, out=b1, mode="clip")
            np.take(d[i], i0, axis=0, out=b2, mode="clip")
            b2 *= w[:, None]
            if weights[i] != 1:
                b1 *= weights[i]
            o += b1
            o += b2
    return out


def _bin_images(images, b):
    n_t, ny, nx = images.shape
    ny_b, nx_b = ny // b, nx // b
    v = images[:, : ny_b * b, : nx_b * b].reshape(n_t, ny_b, b, nx_b, b)
    return v.mean(axis=(2, 4), dtype=np.float64).astype(np.float32)


def reconstruct_wbp(
    images: np.ndarray,
    angles: np.ndarray,
    thickness: int,
    binning: int = 1,
    filter: str = "ramp",
    normalize: bool = True,
    workers: int | None = None,
) -> np.ndarray:
    """Weighted back-projection of a whole tomogram.

    Parameters
    ----------
    images : numpy.ndarray, shape (n_tilts, ny, nx)
        Aligned tilt series (counts or contrast).
    angles : array_like, shape (n_tilts,)
        Tilt angles in degrees about Y.
    thickness : int
        Tomogram thickness ``nz`` in full-resolution voxels.
    binning : int
        Integer binning: images are block-averaged by ``binning`` and the
        output is ``(nz // b, ny // b, nx // b)`` (see
        :func:`binned_coordinates`).
    filter : str
        Ramp apodisation (:func:`ramp_filter`).
    normalize : bool
        Convert counts to contrast ``I / mean - 1`` per image first.
    workers : int, optional
        Threads for scipy.fft.

    Returns
    -------
    numpy.ndarray, shape (nz // b, ny // b, nx // b), float32
        Density in image-contrast units per full-resolution pixel of path
        (dense matter negative for cryo-ET data).
    """
    images, angles = _check_series(images, angles)
    b = int(binning)
    if b != binning or b < 1:
        raise InputError(f"binning must be a positive integer, got {binning}")
    if int(thickness) != thickness or thickness < b:
        raise InputError(f"thickness must be an integer >= binning, got {thickness}")
    n_t, ny, nx = images.shape
    if nx // b < 2 or ny // b < 1:
        raise InputError(f"binning {b} is too large for images of {nx} x {ny} px")
    work = normalize_tilt_series(images) if normalize else images.astype(np.float32)
    if b > 1:
        work = _bin_images(work, b)
    filt = filter_projections(work, filter, workers=workers) / b
    filt_t = np.ascontiguousarray(filt.transpose(0, 2, 1))  # (n_t, u, rows)
    off = (b - 1) / 2
    xs = b * np.arange(nx // b) + off
    zs = b * np.arange(int(thickness) // b) + off
    out = _backproject(
        filt_t, angles, angular_weights(angles), xs, zs, nx // 2, int(thickness) // 2, off, b
    )
    return np.ascontiguousarray(out.transpose(0, 2, 1))


def reconstruct_local(
    images: np.ndarray,
    angles: np.ndarray,
    center: np.ndarray,
    box: int,
    thickness: int,
    scale: float = 1.0,
    filter: str = "ramp",
    normalize: bool = True,
    workers: int | None = None,
    lowpass: float = 0.0,
) -> np.ndarray:
    """Weighted back-projection of a small box only (fast path for training
    sets of subtomograms around fiducials).

    Parameters
    ----------
    images : numpy.ndarray, shape (n_tilts, ny, nx)
    angles : array_like, shape (n_tilts,)
        Degrees.
    center : array_like, shape (3,)
        ``(x, y, z)`` of the box centre in full-resolution tomogram voxels
        (tomogram ``(thickness, ny, nx)``).
    box : int
        Output box size (voxels per side).
    thickness : int
        Full-resolution tomogram thickness ``nz`` (fixes the z origin).
    scale : float
        Output voxel size in full-resolution pixels (e.g. bead diameter in
        px / 16 for misalignment networks); > 1 low-passes first (Gaussian,
        sigma = 0.4 scale) to avoid aliasing.
    filter, normalize, workers
        As :func:`reconstruct_wbp`.
    lowpass : float
        Extra Gaussian low-pass of the images in pixels (0: none), as
        SIRT-like reconstructions look.

    Returns
    -------
    numpy.ndarray, shape (box, box, box), float32
        Output voxel ``j`` (per axis) is at ``center + (j - box // 2) * scale``.
        Same density units as :func:`reconstruct_wbp` at binning 1.
    """
    images, angles = _check_series(images, angles)
    if int(box) != box or box < 2:
        raise InputError(f"box must be an integer >= 2, got {box}")
    if not np.isfinite(scale) or scale <= 0:
        raise InputError(f"scale must be > 0 pixels per voxel, got {scale}")
    center = np.asarray(center, float)
    if center.shape != (3,) or not np.all(np.isfinite(center)):
        raise InputError(f"center must be (x, y, z), got {center}")
    n_t, ny, nx = images.shape
    offs = (np.arange(int(box)) - int(box) // 2) * scale
    xs, ys, zs = center[0] + offs, center[1] + offs, center[2] + offs
    sigma = 0.4 * scale if scale > 1 else 0.0
    if lowpass < 0 or not np.isfinite(lowpass):
        raise InputError(f"lowpass must be >= 0 pixels, got {lowpass}")
    sigma = float(np.hypot(sigma, lowpass))
    # Rows needed (with the y low-pass support), then filtered along u.
    margin = int(np.ceil(3 * sigma)) + 2
    r0 = max(0, int(np.floor(ys.min())) - margin)
    r1 = min(ny, int(np.ceil(ys.max())) + margin + 1)
    if r0 >= r1:
        raise InputError(f"box around y = {center[1]:g} lies outside the images (0..{ny - 1})")
    rows = images[:, r0:r1].astype(np.float32)
    if normalize:
        mean = images.mean(axis=(1, 2), keepdims=True, dtype=np.float64)
        mean[mean == 0] = 1
        rows = (rows / mean - 1).astype(np.float32)
    if sigma > 0:
        rows = ndimage.gaussian_filter1d(rows, sigma, axis=1, mode="nearest")
    filt = filter_projections(rows, filter, sigma=sigma, workers=workers)
    # Resample rows at the output y positions (linear; zero outside the images).
    yy = ys - r0
    filt = ndimage.map_coordinates(
        filt,
        np.meshgrid(np.arange(n_t), yy, np.arange(nx), indexing="ij"),
        order=1,
        mode="constant",
        cval=0.0,
    ).astype(np.float32)
    filt_t = np.ascontiguousarray(filt.transpose(0, 2, 1))
    out = _backproject(
        filt_t, angles, angular_weights(angles), xs, zs, nx // 2, int(thickness) // 2, 0.0, 1.0
    )
    return np.ascontiguousarray(out.transpose(0, 2, 1))


def binned_coordinates(xyz: np.ndarray, binning: int) -> np.ndarray:
    """Full-resolution voxel coordinates -> coordinates in a tomogram binned
    by ``binning`` (``(xyz - (b - 1) / 2) / b``)."""
    b = float(binning)
    return (np.asarray(xyz, float) - (b - 1) / 2) / b
