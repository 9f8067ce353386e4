"""Simulated tilt series of a specimen slab with gold fiducials, with and
without misalignment (misalignment-detection paper, §2.1; methods notes).

The specimen
------------
A slab of vitreous ice (thickness ``slab_thickness``) holding

* gold beads: spheres of diameter ``bead_diameter``, at random positions at
  least ``bead_min_distance`` apart, inside the slab (or on its surfaces);
* protein-like background: isotropic Gaussian blobs of a few sizes (15 to
  60 Å standard deviation) filling a fraction of the slab, and vesicles
  (spherical lipid shells); it extends beyond the field of view so that
  high tilts see material coming in from the sides.

Every object is isotropic, so its projection is analytic and the same from
every direction: a tilt image is a sum of 2D profiles placed at the
projected centres.  This is exact (no interpolation of a rotated volume) and
costs little: the bead thickness is rendered per pixel with 4 x 4
supersampling (area-averaged, to avoid aliasing of the sharp sphere edge);
the background is splatted (bilinear) per size class and convolved with each
class's analytic 2D Fourier profile.

Image formation (per tilt, projection approximation)
----------------------------------------------------
Protein: phase ``phi_p = sigma V_protein P_protein`` and amplitude
``A / sqrt(1 - A^2) phi_p`` (``P`` the projected thickness in Å, ``sigma``
the interaction constant, ``A`` the amplitude contrast). Gold
(``SlabParams.gold``): by default the first-principles exit wave of an
atomic gold sphere (:mod:`.gold`: multislice table, band-limited to 4 Å and
to the image grid; its log multiplies the protein transmission), plus the
light it scatters beyond that band, which the defocus spreads into rings
(:func:`.gold.halo_spectrum`); or the older analytic sphere (phase
``sigma V_gold t``, absorption ``mu t``). The exit wave goes through the
objective ``exp(i chi(k))`` (CTF; underfocus makes protein dark), intensity
``|psi|^2``, detector MTF ``sinc(pi w / 2)`` on the intensity, attenuation
``exp(-T / (lambda_in cos theta))`` by inelastic scattering (zero-loss
imaging of a slab of thickness ``T``), Poisson noise for the dose of each
image. Pixels coarser than ``AcquisitionParams.render_sampling`` (7.5 Å) are
rendered ``m`` times finer and binned (mean or Fourier crop): a gold bead
scatters strongly above the Nyquist frequency of a coarse pixel, and a
detector counts that light (checked against multislice reference images,
``tests/test_gold.py``). Radiation damage attenuates the protein (not the
gold) with the exposure accumulated in the acquisition order (Grant &
Grigorieff 2015). The defocus gradient across tilted images is not
modelled.

Geometry
--------
Ground-truth coordinates are voxel indices ``(x, y, z)`` of the
full-resolution tomogram ``(nz, ny, nx)`` (z along the beam, centre
``n // 2``); see :mod:`.reconstruct` for the projection formula.

Misalignment
------------
Per image ``i`` of ``S`` (in tilt-angle order) an error is added to the
image's X shift, Y shift (Å) and in-plane rotation (degrees, about the image
centre, counter-clockwise in (x, y))::

    d_i = p0 + p1 i + p2 |sin((i + p3) / S pi)| + p4 sin((i + p5) / S 2 pi) + N(0, p6)

The image is transformed by it (the reconstruction assumes none).  Presets,
as the misalignment paper defines them (de Isidro-Gómez et al. 2024, §2.1):
``bananas`` a constant X offset of ``m`` Å in every image (the tilt axis is
off the rotation centre: beads become arcs); ``birds`` a Y shift growing
linearly from ``-m`` to ``+m`` Å across the series; ``twisters`` a constant
in-plane rotation of ``m`` degrees (tilt-axis angle error).  An X shift that
grows linearly across the series is, to first order, only a Z displacement
of every bead (its projections are those of a moved bead): use the general
model (``x=(-m, 2m/(S-1), 0, ...)``) for it.
"""

import logging
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy import special

from ..errors import InputError
from .gold import halo_spectrum, log_transmission_spectrum
from .optics import (
    aberration_phase,
    detector_mtf,
    exposure_filter,
    frequency_grid,
    interaction_constant,
)
from .slab import Slab, make_slab
from .tiltparams import (
    MISALIGNMENT_KINDS,
    AcquisitionParams,
    MisalignmentModel,
    SlabParams,
    acquisition_order,
    misalignment_preset,
    tilt_angles,
)

logger = logging.getLogger(__name__)

__all__ = [
    "SlabParams",
    "AcquisitionParams",
    "MisalignmentModel",
    "Slab",
    "TiltSeries",
    "MISALIGNMENT_KINDS",
    "misalignment_preset",
    "make_slab",
    "tilt_angles",
    "acquisition_order",
    "simulate_tilt_series",
    "project_slab",
]

_CARBON_POTENTIAL = 5.0  # V above ice (amorphous carbon)
_CARBON_MFP = 2000.0  # Å, inelastic mean free path
_SUPERSAMPLE = 4
# Images are rendered in single precision: twice as fast, and its rounding
# (1e-7) is far below the shot noise of any dose.
_REAL, _COMPLEX = np.float32, np.complex64


@dataclass
class TiltSeries:
    """A simulated tilt series and its ground truth.

    Attributes
    ----------
    images : numpy.ndarray, shape (n_tilts, ny, nx), float32
        Counts per pixel (electrons), tilt-angle order.
    angles : numpy.ndarray, shape (n_tilts,)
        Nominal tilt angles in degrees (ascending).
    rank : numpy.ndarray, shape (n_tilts,)
        Acquisition order (0 = first).
    pre_exposure : numpy.ndarray, shape (n_tilts,)
        Exposure before each image in e/Å².
    shift_x, shift_y : numpy.ndarray, shape (n_tilts,)
        Misalignment applied to each image, Å.
    rotation : numpy.ndarray, shape (n_tilts,)
        In-plane rotation error applied, degrees.
    slab : Slab
    acquisition : AcquisitionParams
    misalignment : MisalignmentModel
    """

    images: np.ndarray
    angles: np.ndarray
    rank: np.ndarray
    pre_exposure: np.ndarray
    shift_x: np.ndarray
    shift_y: np.ndarray
    rotation: np.ndarray
    slab: Slab
    acquisition: AcquisitionParams
    misalignment: MisalignmentModel

    @property
    def pixel_size(self):
        return self.slab.params.pixel_size

    @property
    def dose_per_image(self):
        return self.acquisition.dose / len(self.angles)

    @property
    def beads(self):
        """True bead centres ``(x, y, z)`` in full-resolution tomogram voxels."""
        return self.slab.beads


def _ball_ft(k, r):
    """3D Fourier transform of a unit-density ball of radius r (Å) at |k|."""
    x = 2 * np.pi * k * r
    small = x < 1e-3
    xs = np.where(small, 1.0, x)
    val = (np.sin(xs) - xs * np.cos(xs)) / xs**3
    return 4 * np.pi * r**3 * np.where(small, 1 / 3 - x * x / 30, val)


def _splat(shape, u, v, weight):
    """Bilinear splat of points (u = column, v = row) into an image."""
    ny, nx = shape
    j0 = np.floor(u).astype(np.intp)
    i0 = np.floor(v).astype(np.intp)
    fu, fv = u - j0, v - i0
    # the four corners in one bincount (one pass over the image)
    i = np.concatenate([i0, i0, i0 + 1, i0 + 1])
    j = np.concatenate([j0, j0 + 1, j0, j0 + 1])
    w = np.concatenate([(1 - fv) * (1 - fu), (1 - fv) * fu, fv * (1 - fu), fv * fu])
    w = w * np.tile(np.broadcast_to(weight, u.shape), 4)
    ok = (i >= 0) & (i < ny) & (j >= 0) & (j < nx)
    return np.bincount(i[ok] * nx + j[ok], weights=w[ok], minlength=ny * nx).reshape(ny, nx)


def _bead_thickness(shape, u, v, radius_px, pixel_size):
    """Projected gold thickness (Å) of spheres centred at (u, v), averaged
    over 4 x 4 sub-pixels (pixel integration)."""
    ny, nx = shape
    img = np.zeros(ny * nx)
    if len(u) == 0:
        return img.reshape(ny, nx)
    h = int(np.ceil(radius_px)) + 1
    off = np.arange(-h, h + 1)
    sub = (np.arange(_SUPERSAMPLE) + 0.5) / _SUPERSAMPLE - 0.5
    iu, iv = np.round(u).astype(np.intp), np.round(v).astype(np.intp)
    # (n, patch_y, patch_x, sub_y, sub_x) distances in pixels
    dx = (
        (iu - u)[:, None, None, None, None]
        + off[None, None, :, None, None]
        + sub[None, None, None, None, :]
    )
    dy = (
        (iv - v)[:, None, None, None, None]
        + off[None, :, None, None, None]
        + sub[None, None, None, :, None]
    )
    rho2 = dx * dx + dy * dy
    t = 2 * pixel_size * np.sqrt(np.maximum(radius_px**2 - rho2, 0))
    t = t.mean(axis=(3, 4))
    rows = iv[:, None, None] + off[None, :, None]
    cols = iu[:, None, None] + off[None, None, :]
    rows, cols = np.broadcast_to(rows, t.shape), np.broadcast_to(cols, t.shape)
    ok = (rows >= 0) & (rows < ny) & (cols >= 0) & (cols < nx)
    img += np.bincount((rows * nx + cols)[ok], weights=t[ok], minlength=ny * nx)
    return img.reshape(ny, nx)


def _project_points(xyz, theta, cx, cz):
    c, s = np.cos(np.radians(theta)), np.sin(np.radians(theta))
    return (xyz[:, 0] - cx) * c + (xyz[:, 2] - cz) * s + cx, xyz[:, 1]


def _misalign(u, v, dx, dy, alpha, cx, cy):
    c, s = np.cos(np.radians(alpha)), np.sin(np.radians(alpha))
    du, dv = u - cx, v - cy
    return cx + c * du - s * dv + dx, cy + s * du + c * dv + dy


class _Projector:
    """Per-specimen constants for rendering tilt images."""

    def __init__(self, slab, acq):
        p = slab.params
        self.slab, self.acq, self.p = slab, acq, p
        # render m times finer than the tomogram pixel (binned at the end)
        self.m = max(1, int(np.ceil(p.pixel_size / acq.render_sampling - 1e-9)))
        m = self.m
        self.pad = 32 * m
        self.canvas = (
            sfft.next_fast_len(p.ny * m + 2 * self.pad),
            sfft.next_fast_len(p.nx * m + 2 * self.pad),
        )
        px = p.pixel_size / m
        ky, kx = frequency_grid(self.canvas, px, rfft=True)
        self.k_r = np.sqrt(ky**2 + kx**2)  # rfft2 grid, 1/Å
        kyf, kxf = frequency_grid(self.canvas, px, rfft=False)
        self.k_full = np.sqrt(kyf**2 + kxf**2)  # fft2 grid
        # Analytic 2D profiles (projected density, Å per unit density) of each
        # background class, per splatted unit weight.
        self.classes = []
        for s in np.unique(slab.blob_sigma):
            sel = slab.blob_sigma == s
            kern = (2 * np.pi) ** 1.5 * s**3 * np.exp(-2 * (np.pi * s * self.k_r) ** 2)
            self.classes.append((slab.blobs[sel], (kern / px**2).astype(_REAL)))
        smooth = np.exp(-2 * (np.pi * 5.0 * self.k_r) ** 2)  # 5 Å membrane edge
        t = p.membrane_thickness
        radii = np.round(slab.vesicle_radius / 20) * 20  # 20 Å classes
        for r in np.unique(radii):
            sel = radii == r
            kern = _ball_ft(self.k_r, r + t / 2) - _ball_ft(self.k_r, max(r - t / 2, 0))
            self.classes.append((slab.vesicles[sel], (kern * smooth / px**2).astype(_REAL)))
        self.mtf = detector_mtf(self.k_r * px) if acq.mtf else None
        if acq.b_factor > 0:
            env = np.exp(-acq.b_factor * self.k_r**2 / 4)
            self.mtf = env if self.mtf is None else self.mtf * env
        if self.mtf is not None:
            self.mtf = self.mtf.astype(_REAL)
        voltage = acq.ctf.voltage if acq.ctf is not None else 300.0
        self.gold_spectra = None
        if p.gold == "multislice" and len(slab.beads):
            df, cs = (acq.ctf.defocus_angstrom, acq.ctf.cs) if acq.ctf is not None else (0.0, 0.0)
            orient = (
                np.full(len(slab.beads), -1)
                if slab.bead_orientation is None
                else np.asarray(slab.bead_orientation, int)
            )
            # one set of spectra per lattice orientation present
            self.gold_spectra = []
            for o in np.unique(orient):
                oo = None if o < 0 else int(o)
                amp, ph = log_transmission_spectrum(self.k_r, p.bead_diameter, voltage, oo)
                halo = halo_spectrum(self.k_r, p.bead_diameter, voltage, df, cs, oo)
                self.gold_spectra.append(
                    (orient == o, *((x / px**2).astype(_REAL) for x in (amp, ph, halo)))
                )
            kyr, kxr = frequency_grid(self.canvas, 1.0, rfft=True)  # cycles/px
            self.k_px = (kyr, kxr)
        if acq.ctf is not None:
            self.sigma = float(interaction_constant(acq.ctf.voltage))
            self.transfer = np.exp(1j * aberration_phase(self.k_full, acq.ctf)).astype(_COMPLEX)
            a = acq.ctf.amplitude_contrast
            self.amp_ratio = a / np.sqrt(1 - a * a)
        else:
            self.sigma = float(interaction_constant(300.0))
            self.transfer = None
            self.amp_ratio = 0.0

    def _gold_multislice(self, u, v, workers):
        """Log-amplitude, phase and scattered-light halo (intensity) of the
        beads centred at canvas (u, v): exact sub-pixel centres (a phase ramp
        per bead), each bead's first-principles spectra, band-limited to the
        grid."""
        ky, kx = self.k_px
        total = [np.zeros(self.k_r.shape, _COMPLEX) for _ in range(3)]
        for sel, amp, ph, halo in self.gold_spectra:
            if not np.any(sel):
                continue
            # sum over beads of exp(-2 pi i (ky v + kx u)) as one matrix product
            ey = np.exp(-2j * np.pi * ky * v[sel][None, :]).astype(_COMPLEX)  # (ny, n)
            ex = np.exp(-2j * np.pi * u[sel][:, None] * kx).astype(_COMPLEX)  # (n, nx_r)
            spec = ey @ ex
            for acc, kern in zip(total, (amp, ph, halo)):
                acc += spec * kern
        return tuple(sfft.irfft2(t, s=self.canvas, workers=workers) for t in total)

    def _canvas_points(self, pts, theta, dx_px, dy_px, alpha):
        """Projected, misaligned positions of points (tomogram voxels) in
        canvas pixels: tomogram pixel ``j`` covers canvas pixels
        ``pad + m j .. pad + m j + m - 1``."""
        p, m = self.p, self.m
        cx, cy, cz = p.nx // 2, p.ny // 2, p.nz // 2
        u, v = _project_points(pts, theta, cx, cz)
        u, v = _misalign(u, v, dx_px, dy_px, alpha, cx, cy)
        off = self.pad + (m - 1) / 2
        return u * m + off, v * m + off

    def _carbon(self, theta, dx_px, dy_px, alpha):
        """Projected carbon-film thickness (Å) on the canvas, or None."""
        p, m = self.p, self.m
        if p.carbon_edge is None:
            return None
        cx, cy, cz = p.nx // 2, p.ny // 2, p.nz // 2
        off = self.pad + (m - 1) / 2
        U = (np.arange(self.canvas[1]) - off) / m
        V = (np.arange(self.canvas[0]) - off) / m
        a = np.radians(alpha)
        # undo the misalignment: canvas -> correct image column u
        u = cx + np.cos(a) * (U[None, :] - cx - dx_px) + np.sin(a) * (V[:, None] - cy - dy_px)
        th = np.radians(theta)
        z_top = cz + 0.5 * p.slab_thickness / p.pixel_size
        u_edge = (p.carbon_edge - cx) * np.cos(th) + (z_top - cz) * np.sin(th) + cx
        inside = 0.5 * (1 + special.erf((u - u_edge) * m / np.sqrt(2)))
        return (inside * p.carbon_thickness / np.cos(th)).astype(_REAL)

    def _bin(self, inten):
        p, m, pad = self.p, self.m, self.pad
        fine = inten[pad : pad + p.ny * m, pad : pad + p.nx * m]
        if m == 1:
            return fine
        if self.acq.binning == "mean":
            return fine.reshape(p.ny, m, p.nx, m).mean(axis=(1, 3))
        f = sfft.fftshift(sfft.fft2(fine))
        cy0, cx0 = (p.ny * m) // 2 - p.ny // 2, (p.nx * m) // 2 - p.nx // 2
        crop = sfft.ifftshift(f[cy0 : cy0 + p.ny, cx0 : cx0 + p.nx])
        return sfft.ifft2(crop).real / (m * m)

    def render(self, theta, dx_px, dy_px, alpha, exposure, workers=None):
        """Noise-free relative intensity of one image, shape (ny, nx)."""
        p = self.p
        spec = np.zeros(self.k_r.shape, _COMPLEX)
        for pts, kern in self.classes:
            if len(pts) == 0:
                continue
            u, v = self._canvas_points(pts, theta, dx_px, dy_px, alpha)
            spec += sfft.rfft2(_splat(self.canvas, u, v, 1.0).astype(_REAL), workers=workers) * kern
        if self.acq.exposure_filter:
            spec *= exposure_filter(
                self.k_r, exposure, self.acq.ctf.voltage if self.acq.ctf else 300.0
            ).astype(_REAL)
        protein = sfft.irfft2(spec, s=self.canvas, workers=workers)  # Å
        u, v = self._canvas_points(self.slab.beads, theta, dx_px, dy_px, alpha)
        phi_p = self.sigma * p.protein_potential * protein
        halo = None
        if self.gold_spectra is not None:
            log_amp, phase, halo = self._gold_multislice(u, v, workers)
            phi = phi_p + phase
            alpha_amp = self.amp_ratio * phi_p - log_amp
        else:
            gold = _bead_thickness(
                self.canvas, u, v, self.slab.bead_radius_px * self.m, p.pixel_size / self.m
            )
            phi = phi_p + self.sigma * p.bead_potential * gold
            alpha_amp = self.amp_ratio * phi_p + p.bead_absorption * gold
        carbon = self._carbon(theta, dx_px, dy_px, alpha)
        if carbon is not None:
            phi_c = self.sigma * _CARBON_POTENTIAL * carbon
            phi = phi + phi_c
            alpha_amp = alpha_amp + self.amp_ratio * phi_c + carbon / (2 * _CARBON_MFP)
        if self.transfer is not None:
            wave = sfft.fft2(np.exp(1j * phi - alpha_amp), workers=workers)
            wave *= self.transfer
            inten = np.abs(sfft.ifft2(wave, workers=workers)) ** 2
        else:
            inten = np.exp(-2 * (phi + alpha_amp))
        if halo is not None:
            inten += halo
        if self.mtf is not None:
            inten = sfft.irfft2(
                sfft.rfft2(inten, workers=workers) * self.mtf, s=self.canvas, workers=workers
            )
        return self._bin(inten)


def project_slab(slab, acq, shift_x=None, shift_y=None, rotation=None, rng=None, workers=None):
    """Tilt images of a specimen.

    Parameters
    ----------
    slab : Slab
    acq : AcquisitionParams
    shift_x, shift_y : array_like, optional
        Per-image misalignment in Å (tilt-angle order).
    rotation : array_like, optional
        Per-image in-plane rotation error in degrees.
    rng : numpy.random.Generator or int, optional
        For the Poisson noise.
    workers : int, optional

    Returns
    -------
    images : numpy.ndarray, shape (n_tilts, ny, nx), float32
        Counts.
    rank, pre_exposure : numpy.ndarray
        Acquisition order and exposure before each image (e/Å²).
    """
    acq = acq.validate()
    rng = np.random.default_rng(rng)
    angles = acq.angles()
    n = angles.size
    zeros = np.zeros(n)
    sx = zeros if shift_x is None else np.asarray(shift_x, float)
    sy = zeros if shift_y is None else np.asarray(shift_y, float)
    rot = zeros if rotation is None else np.asarray(rotation, float)
    for name, arr in (("shift_x", sx), ("shift_y", sy), ("rotation", rot)):
        if arr.shape != (n,):
            raise InputError(f"{name} needs {n} values (one per image), got {arr.shape}")
    p = slab.params
    rank = acquisition_order(angles, acq.order)
    dose = acq.dose / n
    pre = rank * dose
    proj = _Projector(slab, acq)
    dose_px = dose * p.pixel_size**2
    # ice thickness per image column (a gradient across x)
    thickness = p.slab_thickness * (1 + p.thickness_gradient * (np.arange(p.nx) / p.nx - 0.5))
    images = np.empty((n, p.ny, p.nx), np.float32)
    for i, theta in enumerate(angles):
        inten = proj.render(
            theta, sx[i] / p.pixel_size, sy[i] / p.pixel_size, rot[i], pre[i] + dose / 2, workers
        )
        counts = dose_px * inten
        if acq.inelastic_mfp is not None:
            counts *= np.exp(-thickness / (acq.inelastic_mfp * np.cos(np.radians(theta))))
        np.maximum(counts, 0, out=counts)
        images[i] = rng.poisson(counts) if acq.noise else counts
    return images, rank, pre


def simulate_tilt_series(
    slab_params=None, acquisition=None, misalignment=None, rng=None, slab=None, workers=None
):
    """Simulate a tilt series (and its specimen) with optional misalignment.

    The random streams of the specimen, the misalignment noise and the image
    noise are independent children of ``rng``: with one seed, an aligned
    and a misaligned series share specimen and noise, and differ only by the
    misalignment.

    Parameters
    ----------
    slab_params : SlabParams, optional
    acquisition : AcquisitionParams, optional
    misalignment : MisalignmentModel, optional
        None for a perfectly aligned series.
    rng : numpy.random.Generator or int or None
    slab : Slab, optional
        Reuse a specimen (then ``slab_params`` is ignored).
    workers : int, optional
        Threads for scipy.fft.

    Returns
    -------
    TiltSeries
    """
    acq = (acquisition or AcquisitionParams()).validate()
    rng = np.random.default_rng(rng)
    seeds = rng.integers(0, 2**63, size=3)
    if slab is None:
        slab = make_slab(
            slab_params or SlabParams(),
            np.random.default_rng(seeds[0]),
            max_tilt=max(abs(acq.tilt_min), abs(acq.tilt_max)),
        )
    model = misalignment or MisalignmentModel(kind="none")
    angles = acq.angles()
    dx, dy, da = model.evaluate(angles.size, np.random.default_rng(seeds[1]))
    images, rank, pre = project_slab(
        slab, acq, dx, dy, da, np.random.default_rng(seeds[2]), workers
    )
    logger.info(
        "simulated %d tilts (%g..%g), %d beads, misalignment %s %g",
        angles.size,
        angles[0],
        angles[-1],
        len(slab.beads),
        model.kind,
        model.magnitude,
    )
    return TiltSeries(images, angles, rank, pre, dx, dy, da, slab, acq, model)
