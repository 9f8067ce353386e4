"""Gold-bead exit waves from the first-principles table: lookup by bead
diameter and voltage, and the 2D spectra a simulator stamps beads with.

The table (``data/gold_table.npz``) is made by
:mod:`faml_tomo.simulation.gold_multislice` (abTEM multislice through atomic
gold spheres, averaged over lattice orientations). It holds, per diameter
(50-200 Å) and voltage (200, 300 kV), the exit wave ``psi(r)`` of one bead
band-limited to 4 Å and averaged over azimuth, and reference images of an
isolated bead (CTF, binning) that the simulators are tested against.

Between tabulated diameters and voltages the log of the exit wave is
interpolated at the same *relative* radius ``r / (d / 2)``, scaled with the
diameter and with the interaction constant (the projected potential of a
sphere grows with its diameter; the phase per volt with ``sigma``). Beyond
the table (down to 20 Å and up to 400 Å, other voltages) the nearest entry
is scaled the same way.
"""

import logging
from functools import lru_cache
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
from scipy import special

from ..errors import InputError
from .optics import electron_wavelength, interaction_constant

logger = logging.getLogger(__name__)

__all__ = [
    "TABLE_PATH",
    "load_table",
    "n_orientations",
    "exit_wave_profile",
    "log_transmission_profile",
    "log_transmission_spectrum",
    "halo_spectrum",
    "band_power",
    "DIAMETER_LIMITS",
]

TABLE_PATH = Path(__file__).with_name("data") / "gold_table.npz"
DIAMETER_LIMITS = (20.0, 400.0)  # Å, where the scaled table is used at all


@lru_cache(maxsize=2)
def load_table(path: Optional[str] = None) -> dict:
    """The gold table as a dict of arrays (see :mod:`.gold_multislice`)."""
    p = Path(path) if path else TABLE_PATH
    if not p.exists():
        raise InputError(
            f"gold table not found: {p} (make it with python -m "
            "faml_tomo.simulation.gold_multislice --out ...)"
        )
    with np.load(p) as z:
        return {k: z[k] for k in z.files}


def n_orientations() -> int:
    """Lattice orientations tabulated per bead (``orientation`` arguments
    take 0 .. n - 1; None is their geometric mean)."""
    return int(load_table()["wave_orient"].shape[2])


def _orientation(orientation: Optional[int]) -> Optional[int]:
    if orientation is None:
        return None
    n = n_orientations()
    if int(orientation) != orientation or not 0 <= orientation < n:
        raise InputError(f"gold lattice orientation must be 0-{n - 1} or None, got {orientation}")
    return int(orientation)


def _log_wave(psi: np.ndarray) -> np.ndarray:
    """log of a radial exit-wave profile with the phase unwrapped from the
    outside (vacuum, phase 0) inwards."""
    amp = np.log(np.maximum(np.abs(psi), 1e-6))
    ph = np.unwrap(np.angle(psi)[::-1])[::-1]
    return amp + 1j * (ph - ph[-1])


def _check(diameter: float, voltage: float) -> None:
    lo, hi = DIAMETER_LIMITS
    if not np.isfinite(diameter) or not lo <= diameter <= hi:
        raise InputError(f"gold bead diameter must be {lo:g}-{hi:g} Å, got {diameter}")
    if not np.isfinite(voltage) or voltage <= 0:
        raise InputError(f"voltage must be > 0 kV, got {voltage}")


def _bracket(values: np.ndarray, x: float) -> Tuple[int, int, float]:
    """Indices ``i0, i1`` of the entries around ``x`` and the weight of
    ``i1`` (``values`` ascending or descending)."""
    if values[0] > values[-1]:
        n = len(values) - 1
        i0, i1, f = _bracket(values[::-1], x)
        return n - i0, n - i1, f
    if x <= values[0]:
        return 0, 0, 0.0
    if x >= values[-1]:
        n = len(values) - 1
        return n, n, 0.0
    j = int(np.searchsorted(values, x))
    return j - 1, j, float((x - values[j - 1]) / (values[j] - values[j - 1]))


def log_transmission_profile(
    diameter: float,
    voltage: float = 300.0,
    r: Optional[np.ndarray] = None,
    orientation: Optional[int] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """``log psi(r)`` of one gold bead (complex: log-amplitude + i phase).

    Parameters
    ----------
    diameter : float
        Bead diameter in Å (20-400; 50-200 tabulated).
    voltage : float
        Acceleration voltage in kV.
    r : numpy.ndarray, optional
        Radii in Å (default: the table's 0.5 Å grid out to 1.5 radii + 30 Å).
    orientation : int, optional
        One of the tabulated lattice orientations (a bead in a given
        orientation); None for the geometric mean over them.

    Returns
    -------
    r : numpy.ndarray (n,)
    log_psi : numpy.ndarray (n,) complex
        0 in vacuum; the real part is negative (electrons scattered out of
        the 4 Å band), the imaginary part is the phase in radians.
    """
    _check(diameter, voltage)
    o = _orientation(orientation)
    t = load_table()
    ds, vs, wr = t["diameters"], t["voltages"], t["wave_r"]
    if r is None:
        r = np.arange(0.25, 0.75 * diameter + 30.0, 0.5)
    r = np.asarray(r, float)
    sig = interaction_constant(vs)
    s_target = float(interaction_constant(voltage))
    i0, i1, fd = _bracket(ds, diameter)
    j0, j1, fv = _bracket(sig, s_target)

    def entry(i, j):
        # at the same relative radius, scaled with diameter and sigma
        logw = _log_wave(t["wave"][i, j] if o is None else t["wave_orient"][i, j, o])
        rel = np.abs(r) / (diameter / 2) * (ds[i] / 2)
        val = np.interp(rel, wr, logw.real, right=0.0) + 1j * np.interp(
            rel, wr, logw.imag, right=0.0
        )
        return val * (diameter / ds[i])

    def at_diameter(i):
        a = entry(i, j0) * (s_target / sig[j0] if j0 == j1 else 1.0)
        if j0 == j1:
            return a
        return (1 - fv) * a + fv * entry(i, j1)

    out = at_diameter(i0) if i0 == i1 else (1 - fd) * at_diameter(i0) + fd * at_diameter(i1)
    return r, out


def exit_wave_profile(
    diameter: float,
    voltage: float = 300.0,
    r: Optional[np.ndarray] = None,
    orientation: Optional[int] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Exit wave ``psi(r)`` (complex, 1 in vacuum) of one gold bead, band-
    limited to 4 Å; see :func:`log_transmission_profile` for the arguments."""
    r, lp = log_transmission_profile(diameter, voltage, r, orientation)
    return r, np.exp(lp)


@lru_cache(maxsize=256)
def _spectrum_table(diameter: float, voltage: float, kmax: float, orientation):
    r, lp = log_transmission_profile(
        diameter, voltage, np.arange(0.125, 0.75 * diameter + 30.0, 0.25), orientation
    )
    dr = 0.25
    k = np.linspace(0.0, kmax, 2048)
    # 2D Fourier transform of a radial function: 2 pi int f(r) J0(2 pi k r) r dr
    kern = special.j0(2 * np.pi * k[:, None] * r[None, :]) * (2 * np.pi * r * dr)[None, :]
    return k, kern @ lp.real, kern @ lp.imag


def log_transmission_spectrum(
    k: np.ndarray, diameter: float, voltage: float = 300.0, orientation: Optional[int] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """2D Fourier transforms of a bead's log-amplitude and phase at ``|k|``.

    Both are real (radially symmetric functions), in Å² (per unit weight of
    a point at the bead centre): a simulator splats bead centres, multiplies
    the spectrum of the splat by these (divided by the pixel area) and gets
    the beads' log-amplitude and phase on its grid, band-limited to it.

    Parameters
    ----------
    k : numpy.ndarray
        Spatial frequency moduli in cycles/Å (any shape, < 0.5).
    diameter, voltage : float
        Å and kV.
    orientation : int, optional
        See :func:`log_transmission_profile`.

    Returns
    -------
    amplitude, phase : numpy.ndarray, shape of ``k``
    """
    k = np.asarray(k, float)
    kmax = max(float(k.max(initial=0.0)), 1e-3) * 1.0001
    kk, a, p = _spectrum_table(
        float(diameter), float(voltage), round(kmax, 6) + 1e-6, _orientation(orientation)
    )
    return np.interp(k, kk, a), np.interp(k, kk, p)


def band_power(
    diameter: float, voltage: float = 300.0, orientation: Optional[int] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """Power a bead scatters between the 4 Å band and the objective
    aperture, per ring of spatial frequency.

    Returns
    -------
    k : numpy.ndarray (n,)
        Ring centres in cycles/Å (0.25 to the aperture).
    power : numpy.ndarray (n,)
        Å² (intensity x area) per 0.01 / Å ring: mostly the 111 and 200
        Bragg reflections near 0.45 / Å. Interpolated linearly in diameter
        and interaction constant; beyond the table scaled with the volume.
        ``orientation``: one lattice orientation, or None for the mean.
    """
    _check(diameter, voltage)
    o = _orientation(orientation)
    t = load_table()
    table = t["band_power"] if o is None else t["band_power_orient"][:, :, o]
    ds, vs = t["diameters"], t["voltages"]
    sig = interaction_constant(vs)
    s_target = float(interaction_constant(voltage))
    i0, i1, fd = _bracket(ds, diameter)
    j0, j1, fv = _bracket(sig, s_target)

    def at(i):
        scale = (diameter / ds[i]) ** 3 if i0 == i1 else 1.0
        a = table[i, j0]
        if j0 == j1:
            return a * scale * (s_target / sig[j0]) ** 2
        return scale * ((1 - fv) * a + fv * table[i, j1])

    power = at(i0) if i0 == i1 else (1 - fd) * at(i0) + fd * at(i1)
    return t["band_k"], power


@lru_cache(maxsize=256)
def _halo_table(
    diameter: float, voltage: float, defocus: float, cs: float, kmax: float, orientation
):
    kb, pb = band_power(diameter, voltage, orientation)
    lam = float(electron_wavelength(voltage))
    # where a ray scattered to spatial frequency k lands (geometric optics):
    # (1 / 2 pi) d chi / dk = lambda df k - Cs lambda^3 k^3
    rho = np.abs(lam * defocus * kb - cs * 1e7 * lam**3 * kb**3)
    k = np.linspace(0.0, kmax, 2048)
    rings = special.j0(2 * np.pi * k[:, None] * rho[None, :]) @ pb
    x = 2 * np.pi * k * diameter / 2
    xs = np.where(x < 1e-3, 1.0, x)
    source = np.where(x < 1e-3, 1.0, 3 * (np.sin(xs) - xs * np.cos(xs)) / xs**3)
    return k, rings * source


def halo_spectrum(
    k: np.ndarray,
    diameter: float,
    voltage: float = 300.0,
    defocus: float = 0.0,
    cs: float = 2.7,
    orientation: Optional[int] = None,
) -> np.ndarray:
    """2D Fourier transform of the intensity a bead scatters outside the 4 Å
    band but inside the aperture, as the defocus spreads it on the detector.

    A wave scattered to spatial frequency ``k`` lands ``lambda df k - Cs
    lambda^3 k^3`` away from where it left (geometric optics), so each ring
    of :func:`band_power` becomes a ring of light (the Bragg rings around a
    bead at low defocus, a faint wide halo at high defocus), blurred by the
    bead's own projected shape. Add it to the image intensity of the
    band-limited wave: together they conserve the electrons.

    Parameters
    ----------
    k : numpy.ndarray
        Spatial frequency moduli, cycles/Å.
    diameter, voltage : float
        Å and kV.
    defocus : float
        Underfocus in Å (positive).
    cs : float
        Spherical aberration in mm.
    orientation : int, optional
        See :func:`log_transmission_profile`.

    Returns
    -------
    numpy.ndarray, shape of ``k``
        Å² per unit point weight (divide by the pixel area for counts
        relative to the vacuum intensity).
    """
    k = np.asarray(k, float)
    kmax = max(float(k.max(initial=0.0)), 1e-3) * 1.0001
    kk, h = _halo_table(
        float(diameter),
        float(voltage),
        float(abs(defocus)),
        float(cs),
        round(kmax, 6) + 1e-6,
        _orientation(orientation),
    )
    return np.interp(k, kk, h)
