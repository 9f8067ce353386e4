"""Specimens of the misalignment training data (:mod:`.dataset`): the class
residual ranges, a random specimen (slab, beads, acquisition, processing),
alignment-error shapes scaled to a residual target, and the apparent bead
centres a user's fiducial coordinates would give."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..simulation import AcquisitionParams, CTFParams, make_slab, MisalignmentModel, SlabParams
from .boxes import BEAD_SPAN_PX


logger = logging.getLogger(__name__)

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
PIXEL_RANGE = (4.0, 20.0)  # Å/px
BEAD_RANGE = (50.0, 200.0)  # Å
MIN_BEAD_PX = 2.5
IMAGE_SIZE = 256
N_BEADS = 20
COORD_JITTER = (0.03, 0.2)  # of the bead diameter, per axis (SD), per tomogram
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


def draw_specimen(
    rng: np.random.Generator,
    pixel_size: float | None = None,
    bead_diameter: float | None = None,
    image_size: int = IMAGE_SIZE,
    n_beads: int = N_BEADS,
    symmetric: bool | None = None,
    fine: bool = False,
) -> "SpecimenSpec":
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
    slab = SlabParams(
        nx=image_size,
        ny=image_size,
        nz=nz,
        pixel_size=px,
        slab_thickness=thickness,
        bead_diameter=bead,
        n_beads=n_beads,
        bead_min_distance=2.5 * bead,
        bead_layout="surfaces" if rng.random() < 0.3 else "uniform",
        bead_margin=None,
        protein_fraction=float(rng.uniform(0.05, 0.25)),
        n_vesicles=int(rng.integers(0, 5)),
        bead_pair_fraction=float(rng.choice([0.0, 0.0, 0.15, 0.3])),
        carbon_edge=(float(rng.uniform(0.2, 0.8) * image_size) if rng.random() < 0.2 else None),
        carbon_thickness=float(rng.uniform(100, 300)),
        thickness_gradient=float(rng.uniform(-0.4, 0.4)),
    )
    dqe = float(rng.uniform(0.4, 1.0))
    acq = AcquisitionParams(
        tilt_min=lo,
        tilt_max=hi,
        tilt_step=step,
        dose=float(rng.uniform(60, 180)) * dqe,
        order=str(rng.choice(["dose-symmetric", "sequential", "bidirectional"])),
        ctf=CTFParams(
            voltage=float(rng.choice([300.0, 300.0, 300.0, 200.0])),
            defocus=-float(np.exp(rng.uniform(np.log(1.0), np.log(8.0)))),
        ),
        mtf=bool(rng.random() < 0.8),
        exposure_filter=bool(rng.random() < 0.8),
        b_factor=float(rng.uniform(0, 150)),
        binning=str(rng.choice(["mean", "fourier"])),
    )
    proc = Processing(
        ctf_correction=str(rng.choice(["none", "phase-flip", "wiener"])),
        wiener_snr=float(np.exp(rng.uniform(np.log(0.03), np.log(1.0)))),
        dose_weighting=bool(rng.random() < 0.5),
        recon_filter=str(rng.choice(RECON_FILTERS)),
        recon_lowpass=float(rng.choice([0.0, 0.0, rng.uniform(0.5, 2.5)])),
        coord_jitter=float(rng.uniform(*COORD_JITTER)),
    )
    return SpecimenSpec(slab, acq, int(rng.integers(0, 2**62)), proc)


def _make_slab_fitting(spec, rng):
    """The slab, with fewer beads when they do not all fit."""
    p = spec.slab
    n = p.n_beads
    while True:
        try:
            p.n_beads = n
            return make_slab(
                p, rng, max_tilt=max(abs(spec.acquisition.tilt_min), abs(spec.acquisition.tilt_max))
            )
        except InputError:
            if n <= 4:
                raise
            n = max(4, int(n * 0.75))


def bead_errors(
    beads: np.ndarray,
    angles: np.ndarray,
    shift_x_px: np.ndarray,
    shift_y_px: np.ndarray,
    rotation_deg: np.ndarray,
    shape: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
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
    u = (beads[:, :1] - cx) * c + (beads[:, 2:] - cz) * s + cx  # (n, S)
    v = np.broadcast_to(beads[:, 1:2], u.shape)
    a = np.radians(np.asarray(rotation_deg, float))
    ca, sa = np.cos(a), np.sin(a)
    du_rel, dv_rel = u - cx, v - cy
    u2 = cx + ca * du_rel - sa * dv_rel + shift_x_px
    v2 = cy + sa * du_rel + ca * dv_rel + shift_y_px
    eu, ev = u2 - u, v2 - v
    design = np.column_stack([c, s])  # (S, 2)
    coef, *_ = np.linalg.lstsq(design, eu.T, rcond=None)  # (2, n)
    ru = eu - (design @ coef).T
    ay = ev.mean(axis=1)
    rv = ev - ay[:, None]
    residual = np.sqrt(np.mean(ru**2 + rv**2, axis=1))
    disp = np.column_stack([coef[0], ay, coef[1]])
    return disp, residual


def draw_error_shape(
    kind: str, rng: np.random.Generator, n_images: int, pixel_size: float, field_px: float
) -> MisalignmentModel:
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
        return MisalignmentModel(
            x=(px * (const - ramp), 2 * px * ramp / (n_images - 1), 0, 0, 0, 0, 0),
            y=zero,
            angle=zero,
            kind=kind,
            magnitude=px,
        )
    if kind == "birds":
        return MisalignmentModel(
            x=zero,
            y=(-px, 2 * px / (n_images - 1), 0, 0, 0, 0, 0),
            angle=zero,
            kind=kind,
            magnitude=px,
        )
    if kind == "twisters":
        alpha = 1.0 * rng.choice([-1, 1])  # degrees
        off = rng.uniform(-2.5, 2.5, 2) * field_px * (rng.random() < 0.7)
        ar = np.radians(alpha)
        rot = np.array([[np.cos(ar), -np.sin(ar)], [np.sin(ar), np.cos(ar)]])
        # rotation about P = rotation about the centre + (I - R)(c - P), c - P = -off
        t = (np.eye(2) - rot) @ (-off) * px  # Å
        return MisalignmentModel(
            x=(t[0], 0, 0, 0, 0, 0, 0),
            y=(t[1], 0, 0, 0, 0, 0, 0),
            angle=(alpha, 0, 0, 0, 0, 0, 0),
            kind=kind,
            magnitude=alpha,
        )
    if kind == "general":

        def terms(scale):
            on = rng.random(5) < 0.5
            if not on.any():
                on[rng.integers(5)] = True
            p = [
                rng.normal(0, 1) * on[0],  # offset
                rng.normal(0, 2.0 / n_images) * on[1],  # drift per image
                rng.normal(0, 1) * on[2],
                rng.uniform(0, n_images),
                rng.normal(0, 1) * on[3],
                rng.uniform(0, n_images),
                abs(rng.normal(0, 0.5)) * on[4],
            ]  # noise
            return tuple(float(scale * q) if i not in (3, 5) else float(q) for i, q in enumerate(p))

        ang = terms(0.3) if rng.random() < 0.4 else zero
        return MisalignmentModel(x=terms(px), y=terms(px), angle=ang, kind=kind, magnitude=1.0)
    if kind == "none":
        # jitter of a good alignment: per-image noise
        return MisalignmentModel(
            x=(0, 0, 0, 0, 0, 0, px),
            y=(0, 0, 0, 0, 0, 0, px),
            angle=zero,
            kind="none",
            magnitude=0.0,
        )
    raise InputError(f"unknown misalignment kind {kind!r}")


def _scale_model(model, k):
    def sc(p):
        return tuple(float(q * k) if i not in (3, 5) else float(q) for i, q in enumerate(p))

    return MisalignmentModel(
        x=sc(model.x),
        y=sc(model.y),
        angle=sc(model.angle),
        kind=model.kind,
        magnitude=float(model.magnitude * k),
    )


def _model_errors(model, beads, angles, shape, pixel_size, misalign_seed):
    dx, dy, da = model.evaluate(len(angles), np.random.default_rng(misalign_seed))
    return bead_errors(beads, angles, dx / pixel_size, dy / pixel_size, da, shape)


def scaled_model(
    kind: str,
    target_residual: float,
    rng: np.random.Generator,
    beads: np.ndarray,
    angles: np.ndarray,
    shape: Sequence[int],
    pixel_size: float,
    misalign_seed: int,
) -> MisalignmentModel:
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
    return np.random.default_rng(spec_seed).integers(0, 2**63, size=3)[1]


def apparent_centre(
    vol: np.ndarray, guess: np.ndarray, bead_px: float, search: float
) -> np.ndarray:
    """Centre of the dark bead blob near ``guess`` (voxel ``(x, y, z)`` in
    ``vol``), as a fiducial detector would report it: low-pass at the bead
    scale, darkest voxel within ``search`` voxels, then the centroid of the
    dark part within a bead radius."""
    sm = ndimage.gaussian_filter(vol, max(bead_px / 4, 0.7), mode="nearest")
    g = np.indices(vol.shape).astype(float)  # z, y, x
    d2 = (g[2] - guess[0]) ** 2 + (g[1] - guess[1]) ** 2 + (g[0] - guess[2]) ** 2
    cand = np.where(d2 <= search**2, sm, np.inf)
    iz, iy, ix = np.unravel_index(np.argmin(cand), vol.shape)
    r2 = (g[2] - ix) ** 2 + (g[1] - iy) ** 2 + (g[0] - iz) ** 2
    near = r2 <= max(bead_px / 2, 1.5) ** 2
    w = np.where(near, np.maximum(np.median(sm) - sm, 0), 0)
    if w.sum() <= 0:
        return np.array([ix, iy, iz], float)
    return np.array([(w * g[2]).sum(), (w * g[1]).sum(), (w * g[0]).sum()]) / w.sum()
