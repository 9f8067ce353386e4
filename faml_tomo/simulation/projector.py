"""Image formation of the tilt-series simulator (:mod:`.tiltseries`): the
noise-free intensity of one tilt image of a specimen slab.

:class:`SlabProjector` holds what is the same for every image of a specimen
(render grid, analytic 2D profiles of the background classes, gold spectra,
CTF, MTF); :meth:`SlabProjector.render` projects the objects at one tilt,
applies the misalignment and forms the image (see :mod:`.tiltseries` for the
physics).
"""

import numpy as np
from scipy import fft as sfft
from scipy import special

from .gold import halo_spectrum, log_transmission_spectrum
from .optics import (
    aberration_phase,
    detector_mtf,
    exposure_filter,
    frequency_grid,
    interaction_constant,
)
from .slab import Slab
from .tiltparams import AcquisitionParams

__all__ = ["SlabProjector"]

_CARBON_POTENTIAL = 5.0  # V above ice (amorphous carbon)
_CARBON_MFP = 2000.0  # Å, inelastic mean free path
_SUPERSAMPLE = 4
# Images are rendered in single precision: twice as fast, and its rounding
# (1e-7) is far below the shot noise of any dose.
_REAL, _COMPLEX = np.float32, np.complex64


def _ball_ft(k: np.ndarray, r: float) -> np.ndarray:
    """3D Fourier transform of a unit-density ball of radius r (Å) at |k|."""
    x = 2 * np.pi * k * r
    small = x < 1e-3
    xs = np.where(small, 1.0, x)
    val = (np.sin(xs) - xs * np.cos(xs)) / xs**3
    return 4 * np.pi * r**3 * np.where(small, 1 / 3 - x * x / 30, val)


def _splat(shape: tuple[int, int], u: np.ndarray, v: np.ndarray, weight: float) -> np.ndarray:
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


def _bead_thickness(
    shape: tuple[int, int], u: np.ndarray, v: np.ndarray, radius_px: float, pixel_size: float
) -> np.ndarray:
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


def _project_points(
    xyz: np.ndarray, theta: float, cx: float, cz: float
) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(np.radians(theta)), np.sin(np.radians(theta))
    return (xyz[:, 0] - cx) * c + (xyz[:, 2] - cz) * s + cx, xyz[:, 1]


def _misalign(
    u: np.ndarray, v: np.ndarray, dx: float, dy: float, alpha: float, cx: float, cy: float
) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(np.radians(alpha)), np.sin(np.radians(alpha))
    du, dv = u - cx, v - cy
    return cx + c * du - s * dv + dx, cy + s * du + c * dv + dy


class SlabProjector:
    """Per-specimen constants for rendering tilt images.

    Parameters
    ----------
    slab : Slab
    acq : AcquisitionParams
        Validated acquisition settings (render sampling, binning, optics).
    """

    def __init__(self, slab: Slab, acq: AcquisitionParams) -> None:
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
        self.classes: list[tuple[np.ndarray, np.ndarray]] = []
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
        self.mtf: np.ndarray | None = detector_mtf(self.k_r * px) if acq.mtf else None
        if acq.b_factor > 0:
            env = np.exp(-acq.b_factor * self.k_r**2 / 4)
            self.mtf = env if self.mtf is None else self.mtf * env
        if self.mtf is not None:
            self.mtf = self.mtf.astype(_REAL)
        self.gold_spectra = self._gold_spectra(px)
        self.transfer: np.ndarray | None
        if acq.ctf is not None:
            self.sigma = float(interaction_constant(acq.ctf.voltage))
            self.transfer = np.exp(1j * aberration_phase(self.k_full, acq.ctf)).astype(_COMPLEX)
            a = acq.ctf.amplitude_contrast
            self.amp_ratio = a / np.sqrt(1 - a * a)
        else:
            self.sigma = float(interaction_constant(300.0))
            self.transfer = None
            self.amp_ratio = 0.0

    def _gold_spectra(self, px: float) -> list[tuple[np.ndarray, ...]] | None:
        """Multislice gold: per lattice orientation present, the beads that
        have it and their log-amplitude, phase and halo spectra (per unit
        weight on the canvas); None for analytic gold or no beads."""
        slab, acq, p = self.slab, self.acq, self.p
        if not (p.gold == "multislice" and len(slab.beads)):
            return None
        voltage = acq.ctf.voltage if acq.ctf is not None else 300.0
        df, cs = (acq.ctf.defocus_angstrom, acq.ctf.cs) if acq.ctf is not None else (0.0, 0.0)
        orient = (
            np.full(len(slab.beads), -1)
            if slab.bead_orientation is None
            else np.asarray(slab.bead_orientation, int)
        )
        # one set of spectra per lattice orientation present
        spectra = []
        for o in np.unique(orient):
            oo = None if o < 0 else int(o)
            amp, ph = log_transmission_spectrum(self.k_r, p.bead_diameter, voltage, oo)
            halo = halo_spectrum(self.k_r, p.bead_diameter, voltage, df, cs, oo)
            spectra.append((orient == o, *((x / px**2).astype(_REAL) for x in (amp, ph, halo))))
        kyr, kxr = frequency_grid(self.canvas, 1.0, rfft=True)  # cycles/px
        self.k_px = (kyr, kxr)
        return spectra

    def _gold_multislice(
        self, u: np.ndarray, v: np.ndarray, workers: int | None
    ) -> tuple[np.ndarray, ...]:
        """Log-amplitude, phase and scattered-light halo (intensity) of the
        beads centred at canvas (u, v): exact sub-pixel centres (a phase ramp
        per bead), each bead's first-principles spectra, band-limited to the
        grid."""
        assert self.gold_spectra is not None
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

    def _canvas_points(
        self, pts: np.ndarray, theta: float, dx_px: float, dy_px: float, alpha: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Projected, misaligned positions of points (tomogram voxels) in
        canvas pixels: tomogram pixel ``j`` covers canvas pixels
        ``pad + m j .. pad + m j + m - 1``."""
        p, m = self.p, self.m
        cx, cy, cz = p.nx // 2, p.ny // 2, p.nz // 2
        u, v = _project_points(pts, theta, cx, cz)
        u, v = _misalign(u, v, dx_px, dy_px, alpha, cx, cy)
        off = self.pad + (m - 1) / 2
        return u * m + off, v * m + off

    def _carbon(self, theta: float, dx_px: float, dy_px: float, alpha: float) -> np.ndarray | None:
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

    def _bin(self, inten: np.ndarray) -> np.ndarray:
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

    def render(
        self,
        theta: float,
        dx_px: float,
        dy_px: float,
        alpha: float,
        exposure: float,
        workers: int | None = None,
    ) -> np.ndarray:
        """Noise-free relative intensity of one image, shape (ny, nx).

        Parameters
        ----------
        theta : float
            Tilt angle, degrees.
        dx_px, dy_px : float
            Misalignment shift of the image, pixels.
        alpha : float
            In-plane rotation error, degrees.
        exposure : float
            Accumulated exposure (e/Å²) for the radiation damage.
        workers : int, optional
            Threads for scipy.fft.
        """
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
