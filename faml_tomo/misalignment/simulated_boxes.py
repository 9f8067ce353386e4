"""Bead boxes of a simulated tilt series, cut as at inference.

The tilt series is first processed as the user reconstructs it
(:func:`preprocessed_series`); each bead then gets a local weighted
back-projection at the tomogram's pixel size (:func:`bead_box_volume`) and
a box from :func:`faml_tomo.misalignment.extract_boxes`, centred where a
fiducial detector would put it: the apparent bead centre in the
reconstruction plus a small random error (:func:`boxes_at_apparent_centres`,
:func:`series_boxes`).
"""

from dataclasses import replace

import numpy as np

from ..simulation import TiltSeries, reconstruct_local
from ..simulation.preprocess import preprocess_tilt_series
from .boxes import extract_boxes, target_sampling
from .specimens import Processing, apparent_centre, bead_errors

__all__ = ["bead_box_volume", "preprocessed_series", "boxes_at_apparent_centres", "series_boxes"]


def bead_box_volume(
    ts: TiltSeries,
    centre: np.ndarray,
    bead_diameter: float,
    thickness: int,
    extra: int = 0,
    processing: Processing | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Local reconstruction at the tomogram pixel size around ``centre``
    (rounded to a voxel), big enough for :func:`extract_boxes` plus
    ``extra`` voxels each side.  Returns ``(volume, origin_xyz)`` where
    ``origin_xyz`` is the tomogram coordinate of volume voxel ``(0, 0, 0)``.
    With ``processing`` (:class:`Processing`), ``ts.images`` are already
    preprocessed contrast images and its reconstruction filter is used.
    """
    px = ts.pixel_size
    scale = target_sampling(bead_diameter) / px
    half = int(np.ceil(16 * scale)) + 5 + int(extra)
    box = 2 * half + 1
    c = np.round(np.asarray(centre, float))
    if processing is None:
        vol = reconstruct_local(ts.images, ts.angles, c, box, thickness, scale=1.0)
    else:
        vol = reconstruct_local(
            ts.images,
            ts.angles,
            c,
            box,
            thickness,
            scale=1.0,
            filter=processing.recon_filter,
            lowpass=processing.recon_lowpass,
            normalize=False,
        )
    return vol, c - half


def preprocessed_series(ts: TiltSeries, processing: Processing | None) -> TiltSeries:
    """The tilt series as the user reconstructs it: contrast images,
    CTF-corrected and dose-weighted as ``processing`` says (None: as simulated)."""
    if processing is None:
        return ts
    pre = preprocess_tilt_series(
        ts.images,
        ts.pixel_size,
        ts.acquisition.ctf,
        processing.ctf_correction,
        pre_exposure=ts.pre_exposure if processing.dose_weighting else None,
        dose_per_image=ts.dose_per_image,
        wiener_snr=processing.wiener_snr,
    )
    return replace(ts, images=pre)


def boxes_at_apparent_centres(
    ts: TiltSeries,
    centres_guess: np.ndarray,
    bead_d: float,
    nz: int,
    rng: np.random.Generator,
    processing: Processing | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes ``(m, 32, 32, 32)`` float32 around the beads near
    ``centres_guess`` (tomogram voxels ``(x, y, z)``), each centred on the
    apparent bead centre in the reconstruction plus a random error (the
    ``coord_jitter`` of ``processing``, in bead diameters), and those
    centres ``(m, 3)``."""
    px = ts.pixel_size
    bead_px = bead_d / px
    search = max(bead_px / 2, 2.0)
    jitter = processing.coord_jitter if processing is not None else 0.08
    boxes, centres = [], []
    for g in centres_guess:
        vol, origin = bead_box_volume(
            ts, g, bead_d, nz, extra=int(np.ceil(search)) + 1, processing=processing
        )
        c = apparent_centre(vol, g - origin, bead_px, search) + origin
        c = c + rng.normal(0, jitter * bead_px, 3)
        vol2, origin2 = vol, origin
        if np.any(np.abs(np.round(c) - np.round(g)) > int(np.ceil(search)) + 1):
            vol2, origin2 = bead_box_volume(ts, c, bead_d, nz, processing=processing)
        bs = extract_boxes(vol2, [c - origin2], px, bead_d)
        boxes.append(bs.boxes[0])
        centres.append(c)
    return np.asarray(boxes, np.float32).reshape(-1, 32, 32, 32), np.asarray(centres)


def series_boxes(
    ts: TiltSeries, rng: np.random.Generator, keep: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes around the beads of a simulated tilt series, centred where a
    fiducial detector would put them (apparent centre + small error).

    Parameters
    ----------
    ts : TiltSeries
    rng : numpy.random.Generator
    keep : numpy.ndarray of bool, optional
        Beads to use (default all whose apparent centre is in the tomogram).

    Returns
    -------
    boxes : numpy.ndarray (m, 32, 32, 32) float32
    residual : numpy.ndarray (m,)
        Bead residual RMS in pixels.
    index : numpy.ndarray (m,)
        Indices of the beads used.
    """
    p = ts.slab.params
    disp, res = bead_errors(
        ts.slab.beads,
        ts.angles,
        ts.shift_x / p.pixel_size,
        ts.shift_y / p.pixel_size,
        ts.rotation,
        p.shape,
    )
    guess = ts.slab.beads + disp
    inside = np.all((guess >= 0) & (guess <= np.array(p.shape[::-1]) - 1), axis=1)
    keep = inside if keep is None else (np.asarray(keep, bool) & inside)
    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        return np.zeros((0, 32, 32, 32), np.float32), np.zeros(0), idx
    boxes, _ = boxes_at_apparent_centres(ts, guess[idx], p.bead_diameter, p.nz, rng)
    return boxes, res[idx], idx
