"""Training and validation boxes for the misalignment networks, simulated.

Each *specimen* (a slab with gold beads, drawn at random with its own seed)
is imaged three times with the same specimen and the same image noise: once
aligned, once weakly and once strongly misaligned.  Boxes around its beads
go through exactly the inference path: a local weighted back-projection at
the tomogram's pixel size (:func:`faml_tomo.simulation.reconstruct_local`,
``scale=1``), large enough to hold the box footprint, then
:func:`faml_tomo.misalignment.extract_boxes` (resampling so the bead spans
16 voxels, background z-score).

What makes a tomogram weakly or strongly misaligned
---------------------------------------------------
A per-image alignment error moves each bead's projections by ``(du_i, dv_i)``
(pixels).  Part of that is the projection of a rigid 3D displacement of the
bead, ``du_i = ax cos(theta_i) + az sin(theta_i)``, ``dv_i = ay``: the
reconstruction just shows the bead elsewhere, with no artefact (e.g. a
linear X ramp across the series, the ``bananas`` preset, is almost a pure Z
shift).  The rest, the **residual** after a least-squares fit of
``(ax, ay, az)``, is what smears the bead.  Its RMS over the images, in
tomogram pixels, defines the classes:

* aligned: residual RMS <= 0.35 px (jitter of a good alignment);
* weak: 0.6-1.3 px ("a few pixels" peak-to-peak);
* strong: 1.7-12 px.

The error shape is drawn from the four kinds (bananas: X ramp; birds: Y
ramp; twisters: in-plane rotation, about a centre that may lie off the
simulated field of view, as for beads far from the centre of a large
tomogram; general: random terms of the Scipion model) and scaled so the
median bead residual hits a target drawn in the class range.  Beads whose
own residual falls outside the class (a twister's beads near the rotation
centre) are left out of the class's boxes, so labels stay clean.

Box centres mimic fiducial coordinates as a user has them: the apparent
bead centre in the reconstruction (predicted from the fitted displacement,
refined on the darkest blob) plus a small random error.

Shards
------
One compressed ``.npz`` per specimen in ``<cache>/<set>/spec_<index>.npz``
(boxes as float16), written atomically; existing shards are reused, so an
interrupted generation resumes.  Specimen ``i`` of set ``s`` is seeded with
``(seed, SET_ID[s], i)``: training and validation never share a specimen.
"""
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..io.mrc import atomic_path
from ..simulation import (AcquisitionParams, CTFParams, MisalignmentModel, SlabParams,
                          make_slab, reconstruct_local, simulate_tilt_series)
from ..simulation.preprocess import preprocess_tilt_series
from .boxes import BEAD_SPAN_PX, extract_boxes, target_sampling

logger = logging.getLogger(__name__)

__all__ = ["CLASSES", "ALIGNED_ID", "WEAK_ID", "STRONG_ID", "KINDS", "RESIDUAL_RANGES",
           "SET_ID", "DATA_VERSION", "Processing", "preprocessed_series", "SpecimenSpec",
           "draw_specimen", "bead_errors", "draw_error_shape", "scaled_model",
           "bead_box_volume", "series_boxes", "simulate_specimen", "generate_shards",
           "load_shards", "BoxData"]

CLASSES = ("aligned", "weak", "strong")
ALIGNED_ID, WEAK_ID, STRONG_ID = 0, 1, 2
KINDS = ("none", "bananas", "twisters", "birds", "general")
# Tomogram-level residual RMS ranges (tomogram pixels) per class.
RESIDUAL_RANGES = {"aligned": (0.0, 0.35), "weak": (0.6, 1.3), "strong": (1.7, 12.0)}
# Per-bead ranges a box must fall in to keep its tomogram's label.
BEAD_RANGES = {"aligned": (0.0, 0.5), "weak": (0.45, 1.5), "strong": (1.45, np.inf)}
# "fine": extra training specimens at fine sampling (bead >= 16 px, box
# scale >= 1), where the log-uniform draw leaves few
SET_ID = {"train": 1, "val": 2, "test": 3, "fine": 4}
# Data version 2: first-principles gold, domain randomisation (cached shards
# of version 1 live elsewhere and are never mixed in).
DATA_VERSION = 2
PIXEL_RANGE = (4.0, 20.0)            # Å/px
BEAD_RANGE = (50.0, 200.0)           # Å
MIN_BEAD_PX = 2.5
IMAGE_SIZE = 256
N_BEADS = 20
COORD_JITTER = (0.03, 0.2)           # of the bead diameter, per axis (SD), per tomogram
RECON_FILTERS = ("ramp", "ramp", "shepp-logan", "cosine", "hamming", "hann")


@dataclass
class Processing:
    """How the user's tilt series became a tomogram (drawn per specimen).

    Attributes
    ----------
    ctf_correction : {"none", "phase-flip", "wiener"}
    wiener_snr : float
    dose_weighting : bool
    recon_filter : str
        Weighted back-projection apodisation (see
        :func:`faml_tomo.simulation.reconstruct.ramp_filter`).
    recon_lowpass : float
        Extra Gaussian low-pass of the filtered rows in pixels (0: none;
        1-3 makes SIRT-like, smooth reconstructions).
    coord_jitter : float
        SD of the box-centre error per axis, in bead diameters.
    """
    ctf_correction: str = "none"
    wiener_snr: float = 0.1
    dose_weighting: bool = False
    recon_filter: str = "ramp"
    recon_lowpass: float = 0.0
    coord_jitter: float = 0.08


@dataclass
class SpecimenSpec:
    """Everything random about one specimen (drawn by :func:`draw_specimen`)."""
    slab: SlabParams
    acquisition: AcquisitionParams
    seed: int
    processing: Processing | None = None


def _specimen_rng(seed, set_name, index):
    return np.random.default_rng([int(seed), SET_ID[set_name], int(index)])


def draw_specimen(rng, pixel_size=None, bead_diameter=None, image_size=IMAGE_SIZE,
                  n_beads=N_BEADS, symmetric=None, fine=False):
    """Draw slab, acquisition and processing parameters (domain
    randomisation over what real acquisitions vary).

    Pixel size 4-20 Å/px and bead diameter 5-20 nm (log-uniform; the bead
    spans at least 2.5 px), ice 80-250 nm with a thickness gradient, 41-61
    images over symmetric or asymmetric ranges (about half each), dose
    60-180 e/Å² times a detector DQE of 0.4-1, defocus 1-8 µm, 200 or
    300 kV, B-factor 0-150 Å², MTF on/off, images rendered finely and binned
    by mean or Fourier crop, protein 5-25 %, 0-4 vesicles, beads in the slab
    or on its surfaces, some touching pairs, a carbon-film edge in a fifth,
    any acquisition order;
    processing: CTF uncorrected / phase-flipped / Wiener, dose-weighted or
    not, WBP filter and SIRT-like low-pass, box-centre error.

    With ``fine``, the pixel size is drawn log-uniformly between 4 Å/px and
    bead diameter / 16 (the bead spans >= 16 px: box scale >= 1).
    """
    rng = np.random.default_rng(rng)
    while fine:
        bead = float(np.exp(rng.uniform(*np.log(BEAD_RANGE))))
        hi = bead / BEAD_SPAN_PX
        if hi > PIXEL_RANGE[0] * 1.05:
            px = float(np.exp(rng.uniform(np.log(PIXEL_RANGE[0]), np.log(hi))))
            break
    while not fine:
        px = float(pixel_size or np.exp(rng.uniform(*np.log(PIXEL_RANGE))))
        bead = float(bead_diameter or np.exp(rng.uniform(*np.log(BEAD_RANGE))))
        if bead / px >= MIN_BEAD_PX or (pixel_size and bead_diameter):
            break
    thickness = float(rng.uniform(800, 2500))
    thickness = max(thickness, 2.5 * bead)
    nz = int(np.ceil(thickness / px)) + 16
    n_img = int(rng.integers(41, 62))
    if symmetric is None:
        symmetric = rng.random() < 0.5
    if symmetric:
        hi = float(rng.choice([60.0, 60.0, 55.0, 65.0]))
        lo = -hi
    else:
        lo, hi = float(rng.uniform(-66, -40)), float(rng.uniform(40, 66))
    step = (hi - lo) / (n_img - 1)
    hi = lo + step * (n_img - 1) + 1e-4
    slab = SlabParams(nx=image_size, ny=image_size, nz=nz, pixel_size=px,
                      slab_thickness=thickness, bead_diameter=bead, n_beads=n_beads,
                      bead_min_distance=2.5 * bead,
                      bead_layout="surfaces" if rng.random() < 0.3 else "uniform",
                      bead_margin=None,
                      protein_fraction=float(rng.uniform(0.05, 0.25)),
                      n_vesicles=int(rng.integers(0, 5)),
                      bead_pair_fraction=float(rng.choice([0.0, 0.0, 0.15, 0.3])),
                      carbon_edge=(float(rng.uniform(0.2, 0.8) * image_size)
                                   if rng.random() < 0.2 else None),
                      carbon_thickness=float(rng.uniform(100, 300)),
                      thickness_gradient=float(rng.uniform(-0.4, 0.4)))
    dqe = float(rng.uniform(0.4, 1.0))
    acq = AcquisitionParams(
        tilt_min=lo, tilt_max=hi, tilt_step=step, dose=float(rng.uniform(60, 180)) * dqe,
        order=str(rng.choice(["dose-symmetric", "sequential", "bidirectional"])),
        ctf=CTFParams(voltage=float(rng.choice([300.0, 300.0, 300.0, 200.0])),
                      defocus=-float(np.exp(rng.uniform(np.log(1.0), np.log(8.0))))),
        mtf=bool(rng.random() < 0.8), exposure_filter=bool(rng.random() < 0.8),
        b_factor=float(rng.uniform(0, 150)),
        binning=str(rng.choice(["mean", "fourier"])))
    proc = Processing(
        ctf_correction=str(rng.choice(["none", "phase-flip", "wiener"])),
        wiener_snr=float(np.exp(rng.uniform(np.log(0.03), np.log(1.0)))),
        dose_weighting=bool(rng.random() < 0.5),
        recon_filter=str(rng.choice(RECON_FILTERS)),
        recon_lowpass=float(rng.choice([0.0, 0.0, rng.uniform(0.5, 2.5)])),
        coord_jitter=float(rng.uniform(*COORD_JITTER)))
    return SpecimenSpec(slab, acq, int(rng.integers(0, 2 ** 62)), proc)


def _make_slab_fitting(spec, rng):
    """The slab, with fewer beads when they do not all fit."""
    p = spec.slab
    n = p.n_beads
    while True:
        try:
            p.n_beads = n
            return make_slab(p, rng, max_tilt=max(abs(spec.acquisition.tilt_min),
                                                  abs(spec.acquisition.tilt_max)))
        except InputError:
            if n <= 4:
                raise
            n = max(4, int(n * 0.75))


def bead_errors(beads, angles, shift_x_px, shift_y_px, rotation_deg, shape):
    """Per-bead projection errors split into a rigid 3D displacement and a
    residual.

    Parameters
    ----------
    beads : numpy.ndarray, shape (n, 3)
        Bead centres ``(x, y, z)`` in tomogram voxels.
    angles : numpy.ndarray, shape (S,)
        Tilt angles (degrees).
    shift_x_px, shift_y_px, rotation_deg : numpy.ndarray, shape (S,)
        Per-image misalignment (pixels, pixels, degrees), as the simulator
        applies it (rotation about the image centre, then shift).
    shape : tuple
        Tomogram shape ``(nz, ny, nx)``.

    Returns
    -------
    displacement : numpy.ndarray, shape (n, 3)
        Least-squares 3D displacement ``(dx, dy, dz)`` in voxels (where the
        bead appears in the reconstruction).
    residual : numpy.ndarray, shape (n,)
        RMS over images of the error left after that displacement, pixels.
    """
    beads = np.asarray(beads, float).reshape(-1, 3)
    nz, ny, nx = shape
    cx, cy, cz = nx // 2, ny // 2, nz // 2
    th = np.radians(np.asarray(angles, float))
    c, s = np.cos(th), np.sin(th)
    u = (beads[:, :1] - cx) * c + (beads[:, 2:] - cz) * s + cx         # (n, S)
    v = np.broadcast_to(beads[:, 1:2], u.shape)
    a = np.radians(np.asarray(rotation_deg, float))
    ca, sa = np.cos(a), np.sin(a)
    du_rel, dv_rel = u - cx, v - cy
    u2 = cx + ca * du_rel - sa * dv_rel + shift_x_px
    v2 = cy + sa * du_rel + ca * dv_rel + shift_y_px
    eu, ev = u2 - u, v2 - v
    design = np.column_stack([c, s])                                    # (S, 2)
    coef, *_ = np.linalg.lstsq(design, eu.T, rcond=None)                # (2, n)
    ru = eu - (design @ coef).T
    ay = ev.mean(axis=1)
    rv = ev - ay[:, None]
    residual = np.sqrt(np.mean(ru ** 2 + rv ** 2, axis=1))
    disp = np.column_stack([coef[0], ay, coef[1]])
    return disp, residual


def draw_error_shape(kind, rng, n_images, pixel_size, field_px):
    """An unscaled misalignment model of a kind (magnitudes of order 1 px).

    Twisters rotate about a centre that may lie up to 2.5 fields of view
    away (beads far from the centre of a large tomogram): an off-centre
    rotation is the centred one plus a constant shift, which the model's
    ``p0`` terms carry.
    """
    zero = (0.0,) * 7
    px = float(pixel_size)
    if kind == "bananas":
        # the preset's X ramp (mostly a Z displacement), the paper's constant
        # X offset, or both
        ramp = float(rng.choice([0.0, 1.0, rng.uniform(-1, 1)]))
        const = float(rng.choice([1.0, 0.0, rng.uniform(-1, 1)]) if ramp else 1.0)
        return MisalignmentModel(x=(px * (const - ramp), 2 * px * ramp / (n_images - 1),
                                    0, 0, 0, 0, 0),
                                 y=zero, angle=zero, kind=kind, magnitude=px)
    if kind == "birds":
        return MisalignmentModel(x=zero, y=(-px, 2 * px / (n_images - 1), 0, 0, 0, 0, 0),
                                 angle=zero, kind=kind, magnitude=px)
    if kind == "twisters":
        alpha = 1.0 * rng.choice([-1, 1])                        # degrees
        off = rng.uniform(-2.5, 2.5, 2) * field_px * (rng.random() < 0.7)
        ar = np.radians(alpha)
        rot = np.array([[np.cos(ar), -np.sin(ar)], [np.sin(ar), np.cos(ar)]])
        # rotation about P = rotation about the centre + (I - R)(c - P), c - P = -off
        t = (np.eye(2) - rot) @ (-off) * px                       # Å
        return MisalignmentModel(x=(t[0], 0, 0, 0, 0, 0, 0), y=(t[1], 0, 0, 0, 0, 0, 0),
                                 angle=(alpha, 0, 0, 0, 0, 0, 0), kind=kind,
                                 magnitude=alpha)
    if kind == "general":
        def terms(scale):
            on = rng.random(5) < 0.5
            if not on.any():
                on[rng.integers(5)] = True
            p = [rng.normal(0, 1) * on[0],                       # offset
                 rng.normal(0, 2.0 / n_images) * on[1],          # drift per image
                 rng.normal(0, 1) * on[2], rng.uniform(0, n_images),
                 rng.normal(0, 1) * on[3], rng.uniform(0, n_images),
                 abs(rng.normal(0, 0.5)) * on[4]]                # noise
            return tuple(float(scale * q) if i not in (3, 5) else float(q)
                         for i, q in enumerate(p))
        ang = terms(0.3) if rng.random() < 0.4 else zero
        return MisalignmentModel(x=terms(px), y=terms(px), angle=ang, kind=kind,
                                 magnitude=1.0)
    if kind == "none":
        # jitter of a good alignment: per-image noise
        return MisalignmentModel(x=(0, 0, 0, 0, 0, 0, px), y=(0, 0, 0, 0, 0, 0, px),
                                 angle=zero, kind="none", magnitude=0.0)
    raise InputError(f"unknown misalignment kind {kind!r}")


def _scale_model(model, k):
    def sc(p):
        return tuple(float(q * k) if i not in (3, 5) else float(q) for i, q in enumerate(p))
    return MisalignmentModel(x=sc(model.x), y=sc(model.y), angle=sc(model.angle),
                             kind=model.kind, magnitude=float(model.magnitude * k))


def _model_errors(model, beads, angles, shape, pixel_size, misalign_seed):
    dx, dy, da = model.evaluate(len(angles), np.random.default_rng(misalign_seed))
    return bead_errors(beads, angles, dx / pixel_size, dy / pixel_size, da, shape)


def scaled_model(kind, target_residual, rng, beads, angles, shape, pixel_size,
                 misalign_seed):
    """A model of ``kind`` scaled so the median bead residual is
    ``target_residual`` pixels (linear in the shifts; the rotation is
    refined once more since it is only nearly linear)."""
    model = draw_error_shape(kind, rng, len(angles), pixel_size, shape[2])
    for _ in range(3):
        _, res = _model_errors(model, beads, angles, shape, pixel_size, misalign_seed)
        med = float(np.median(res))
        if med <= 1e-9:
            return model
        k = target_residual / med
        if abs(k - 1) < 1e-3:
            break
        model = _scale_model(model, k)
    return model


def _misalign_seed(spec_seed):
    # simulate_tilt_series draws 3 child seeds from rng; the 2nd drives the
    # misalignment noise.
    return np.random.default_rng(spec_seed).integers(0, 2 ** 63, size=3)[1]


def apparent_centre(vol, guess, bead_px, search):
    """Centre of the dark bead blob near ``guess`` (voxel ``(x, y, z)`` in
    ``vol``), as a fiducial detector would report it: low-pass at the bead
    scale, darkest voxel within ``search`` voxels, then the centroid of the
    dark part within a bead radius."""
    sm = ndimage.gaussian_filter(vol, max(bead_px / 4, 0.7), mode="nearest")
    g = np.indices(vol.shape).astype(float)                      # z, y, x
    d2 = ((g[2] - guess[0]) ** 2 + (g[1] - guess[1]) ** 2 + (g[0] - guess[2]) ** 2)
    cand = np.where(d2 <= search ** 2, sm, np.inf)
    iz, iy, ix = np.unravel_index(np.argmin(cand), vol.shape)
    r2 = (g[2] - ix) ** 2 + (g[1] - iy) ** 2 + (g[0] - iz) ** 2
    near = r2 <= max(bead_px / 2, 1.5) ** 2
    w = np.where(near, np.maximum(np.median(sm) - sm, 0), 0)
    if w.sum() <= 0:
        return np.array([ix, iy, iz], float)
    return np.array([(w * g[2]).sum(), (w * g[1]).sum(), (w * g[0]).sum()]) / w.sum()


def bead_box_volume(ts, centre, bead_diameter, thickness, extra=0, processing=None):
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
        vol = reconstruct_local(ts.images, ts.angles, c, box, thickness, scale=1.0,
                                filter=processing.recon_filter,
                                lowpass=processing.recon_lowpass, normalize=False)
    return vol, c - half


def preprocessed_series(ts, processing):
    """The tilt series as the user reconstructs it: contrast images,
    CTF-corrected and dose-weighted as ``processing`` says."""
    pre = preprocess_tilt_series(
        ts.images, ts.pixel_size, ts.acquisition.ctf, processing.ctf_correction,
        pre_exposure=ts.pre_exposure if processing.dose_weighting else None,
        dose_per_image=ts.dose_per_image, wiener_snr=processing.wiener_snr)
    return replace(ts, images=pre)


def _boxes_for_series(ts, centres_guess, bead_d, nz, rng, processing=None):
    px = ts.pixel_size
    bead_px = bead_d / px
    search = max(bead_px / 2, 2.0)
    jitter = processing.coord_jitter if processing is not None else 0.08
    boxes, centres = [], []
    for g in centres_guess:
        vol, origin = bead_box_volume(ts, g, bead_d, nz, extra=int(np.ceil(search)) + 1,
                                      processing=processing)
        c = apparent_centre(vol, g - origin, bead_px, search) + origin
        c = c + rng.normal(0, jitter * bead_px, 3)
        vol2, origin2 = vol, origin
        if np.any(np.abs(np.round(c) - np.round(g)) > int(np.ceil(search)) + 1):
            vol2, origin2 = bead_box_volume(ts, c, bead_d, nz, processing=processing)
        bs = extract_boxes(vol2, [c - origin2], px, bead_d)
        boxes.append(bs.boxes[0])
        centres.append(c)
    return np.asarray(boxes, np.float32).reshape(-1, 32, 32, 32), np.asarray(centres)


def series_boxes(ts, rng, keep=None):
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
    disp, res = bead_errors(ts.slab.beads, ts.angles, ts.shift_x / p.pixel_size,
                            ts.shift_y / p.pixel_size, ts.rotation, p.shape)
    guess = ts.slab.beads + disp
    inside = np.all((guess >= 0) & (guess <= np.array(p.shape[::-1]) - 1), axis=1)
    keep = inside if keep is None else (np.asarray(keep, bool) & inside)
    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        return np.zeros((0, 32, 32, 32), np.float32), np.zeros(0), idx
    boxes, _ = _boxes_for_series(ts, guess[idx], p.bead_diameter, p.nz, rng)
    return boxes, res[idx], idx


def simulate_specimen(seed, set_name, index, kinds=None, filter_beads=True,
                      image_size=IMAGE_SIZE, n_beads=N_BEADS, series_callback=None):
    """Simulate one specimen's aligned, weak and strong tilt series and their
    bead boxes.

    ``filter_beads=False`` keeps every bead of each tomogram (for
    tomogram-level tests) instead of only those whose own residual lies in
    the class range.  ``image_size`` and ``n_beads`` shrink the field of
    view for tests.  ``series_callback(class_id, kind, tilt_series)``, if
    given, sees each simulated tilt series (e.g. to reconstruct the whole
    tomogram); it must not use the generator.

    Returns
    -------
    dict of numpy arrays
        ``boxes`` (m, 32, 32, 32) float16, ``label`` (0 aligned, 1 weak,
        2 strong), ``kind`` (index into :data:`KINDS`), ``residual``
        (bead residual, px), ``tomo`` (0, 1, 2: which series), ``pixel_size``,
        ``bead_diameter``, ``specimen``, ``tomo_residual``, ``n_images``,
        ``tilt_min``, ``tilt_max``, ``seconds``.
    """
    t0 = time.perf_counter()
    rng = _specimen_rng(seed, set_name, index)
    spec = draw_specimen(rng, image_size=image_size, n_beads=n_beads,
                         fine=set_name == "fine")
    slab = _make_slab_fitting(spec, np.random.default_rng(spec.seed ^ 0x5EED))
    acq = spec.acquisition.validate()
    angles = acq.angles()
    p = slab.params
    shape = p.shape
    msd = _misalign_seed(spec.seed)
    out = {k: [] for k in ("boxes", "label", "kind", "residual", "tomo")}
    tomo_res = []
    mis_kinds = kinds or ("bananas", "twisters", "birds", "general")
    for cls_id, cls in enumerate(CLASSES):
        lo, hi = RESIDUAL_RANGES[cls]
        if cls == "aligned":
            kind = "none"
            target = rng.uniform(0.0, hi)
        else:
            kind = str(rng.choice(mis_kinds))
            target = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        model = scaled_model(kind, target, rng, slab.beads, angles, shape, p.pixel_size,
                             msd) if target > 0.01 else MisalignmentModel(kind="none")
        ts = simulate_tilt_series(acquisition=acq, misalignment=model, rng=spec.seed,
                                  slab=slab, workers=1)
        if series_callback is not None:
            series_callback(cls_id, kind, ts)
        ts = preprocessed_series(ts, spec.processing)
        disp, res = bead_errors(slab.beads, angles, ts.shift_x / p.pixel_size,
                                ts.shift_y / p.pixel_size, ts.rotation, shape)
        tomo_res.append(float(np.median(res)))
        blo, bhi = BEAD_RANGES[cls] if filter_beads else (-np.inf, np.inf)
        keep = (res >= blo) & (res <= bhi)
        # apparent centres stay inside the tomogram
        guess = slab.beads + disp
        keep &= np.all((guess >= 0) & (guess <= np.array(shape[::-1]) - 1), axis=1)
        if not keep.any():
            continue
        b, _ = _boxes_for_series(ts, guess[keep], p.bead_diameter, p.nz, rng,
                                 spec.processing)
        out["boxes"].append(b.astype(np.float16))
        n = len(b)
        out["label"].append(np.full(n, cls_id, np.int8))
        out["kind"].append(np.full(n, KINDS.index(kind), np.int8))
        out["residual"].append(res[keep].astype(np.float32))
        out["tomo"].append(np.full(n, cls_id, np.int8))
    res = {k: (np.concatenate(v) if v else np.zeros((0,) + ((32, 32, 32) if k == "boxes"
                                                          else ()), np.float16))
           for k, v in out.items()}
    res.update(pixel_size=np.float32(p.pixel_size), bead_diameter=np.float32(p.bead_diameter),
               specimen=np.int32(index), tomo_residual=np.asarray(tomo_res, np.float32),
               n_images=np.int16(len(angles)), tilt_min=np.float32(acq.tilt_min),
               tilt_max=np.float32(acq.tilt_max),
               seconds=np.float32(time.perf_counter() - t0))
    return res


def _shard_path(cache, set_name, index):
    # cache is already versioned by the caller (see train_misalignment)
    return Path(cache) / set_name / f"spec_{index:05d}.npz"


def _make_shard(job):
    cache, seed, set_name, index = job
    path = _shard_path(cache, set_name, index)
    if path.is_file():
        return index, 0.0
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    data = simulate_specimen(seed, set_name, index)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **data)
    return index, float(data["seconds"])


def generate_shards(cache, seed, set_name, count, workers=1, log=None):
    """Make (or reuse) the shards of specimens ``0 .. count - 1`` of a set.

    Parameters
    ----------
    cache : str or Path
    seed : int
    set_name : {"train", "val", "test"}
    count : int
    workers : int
        Processes (each single-threaded).
    log : callable, optional
        Called with progress lines.
    """
    if set_name not in SET_ID:
        raise InputError(f"set must be one of {', '.join(SET_ID)}, got {set_name!r}")
    (Path(cache) / set_name).mkdir(parents=True, exist_ok=True)
    todo = [(str(cache), int(seed), set_name, i) for i in range(int(count))
            if not _shard_path(cache, set_name, i).is_file()]
    log = log or logger.info
    log(f"{set_name}: {count - len(todo)} of {count} specimens cached, "
        f"{len(todo)} to simulate with {workers} worker(s)")
    t0 = time.perf_counter()
    done = 0
    if workers <= 1:
        results = map(_make_shard, todo)
    else:
        pool = ProcessPoolExecutor(max_workers=int(workers))
        results = pool.map(_make_shard, todo, chunksize=1)
    try:
        for _index, _sec in results:
            done += 1
            if done % 10 == 0 or done == len(todo):
                el = time.perf_counter() - t0
                log(f"{set_name}: {done}/{len(todo)} specimens in {el:.0f} s "
                    f"({el / done:.1f} s each)")
    finally:
        if workers > 1:
            pool.shutdown()
    return time.perf_counter() - t0


@dataclass
class BoxData:
    """Boxes of many specimens (see :func:`simulate_specimen`), with a
    ``tomogram`` id unique across specimens (specimen * 3 + series)."""
    boxes: np.ndarray
    label: np.ndarray
    kind: np.ndarray
    residual: np.ndarray
    tomogram: np.ndarray
    pixel_size: np.ndarray
    bead_diameter: np.ndarray

    def __len__(self):
        return len(self.label)

    @property
    def scale(self) -> np.ndarray:
        """Box voxel size in tomogram pixels, per box (bead diameter in
        pixels / 16, as :func:`extract_boxes` samples)."""
        return self.bead_diameter.astype(np.float64) / self.pixel_size / BEAD_SPAN_PX

    def select(self, mask):
        return BoxData(*(getattr(self, f)[mask] for f in _BOX_FIELDS))

    def extend(self, other: "BoxData") -> "BoxData":
        """Both sets in one; ``other``'s tomogram ids are shifted past ours."""
        shift = int(self.tomogram.max()) + 1 if len(self) else 0
        parts = {f: (getattr(self, f), getattr(other, f)) for f in _BOX_FIELDS}
        parts["tomogram"] = (self.tomogram, other.tomogram + shift)
        return BoxData(*(np.concatenate(parts[f]) for f in _BOX_FIELDS))


_BOX_FIELDS = ("boxes", "label", "kind", "residual", "tomogram", "pixel_size",
               "bead_diameter")


def load_shards(cache, set_name, count):
    """Concatenate the shards of specimens ``0 .. count - 1``."""
    parts = []
    for i in range(int(count)):
        path = _shard_path(cache, set_name, i)
        if not path.is_file():
            raise InputError(f"{path}: shard missing (generate it first)")
        with np.load(path) as z:
            n = len(z["label"])
            parts.append(dict(boxes=z["boxes"], label=z["label"], kind=z["kind"],
                              residual=z["residual"],
                              tomogram=i * 3 + z["tomo"].astype(np.int64),
                              pixel_size=np.full(n, z["pixel_size"], np.float32),
                              bead_diameter=np.full(n, z["bead_diameter"], np.float32)))
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return BoxData(**cat)
