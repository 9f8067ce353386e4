"""Point-group symmetry of averages: the rotation groups, their names in
Scipion and RELION, and symmetrisation of band spectra.

A symmetric average ``A = g A`` for every ``g`` of its group ``G``: the
transforms ``(R, t)`` and ``(R g, t)`` map it onto a particle alike, so the
candidate search works modulo ``G`` (:func:`.so3.find_peaks`), the Voronoi
cells of the candidates live on ``SO(3) / G`` (:func:`.voronoi.voronoi_weights`)
and the M-step averages the back-rotated data and their wedge weights over
``G`` (RELION's way: numerator and weights separately, so that each copy
fills the others' missing wedges).

Names (case-insensitive), matrices acting on ``(x, y, z)``:

* ``Cn``: ``n``-fold axis along Z.
* ``Dn`` (Scipion ``Dxn``): ``Cn`` plus a 2-fold axis along X; ``Dyn``: along Y.
* ``T`` (Scipion ``T222``): 2-fold axes along X, Y and Z; ``Tz3``: a 3-fold
  axis along Z, another in the YZ plane with ``sign(y) != sign(z)``;
  ``Tz3r``: with ``sign(y) == sign(z)``.
* ``O``: 4-fold axes along X, Y and Z.
* ``I``: RELION's default ``I2`` (Crowther's 222: 2-folds along X, Y, Z,
  front 5-folds in the XZ plane; Scipion ``I222r``); ``I1`` (Scipion
  ``I222``, Heymann et al. 2005: front 5-folds in the YZ plane); ``I3``
  (Scipion ``In25``: 2-fold along Y, 5-fold along Z); ``I4`` (``In25r``);
  Scipion's ``I2n3``, ``I2n3r``, ``I2n5``, ``I2n5r`` too.

Every group equals, as a set, the one ``pwem.convert.symmetry`` gives for
the same Scipion name (checked by the tests).
"""

import functools
import logging
import re
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage
from scipy.spatial.transform import Rotation

from ..errors import InputError
from .fourier import PaddedSpectrum, volume_from_spectrum

if TYPE_CHECKING:
    from .alignsetup import BandGeometry

logger = logging.getLogger(__name__)

__all__ = [
    "symmetry_group",
    "check_symmetry",
    "symmetrize_band",
    "symmetrize_weights",
    "turn_weights",
    "symmetrize_observed",
    "SYMMETRY_HELP",
]

SYMMETRY_HELP = (
    "point group of the particle: C1 (none), Cn (n-fold axis along Z), "
    "Dn (plus a 2-fold along X; Dyn: along Y), T, Tz3, Tz3r, O, "
    "I (= I2, Crowther), I1, I3, I4, or a Scipion name (I222, I222r, "
    "In25, In25r, I2n3, I2n3r, I2n5, I2n5r)"
)

_PHI = (1 + 5**0.5) / 2


def _axis_rotation(axis, fold):
    axis = np.asarray(axis, float)
    return Rotation.from_rotvec(axis / np.linalg.norm(axis) * 2 * np.pi / fold).as_matrix()


def _closure(generators):
    """All products of the generators (a finite rotation group)."""
    group = [np.eye(3)]
    frontier = [np.eye(3)]
    while frontier:
        new = []
        for a in frontier:
            for g in generators:
                m = g @ a
                if not any(np.abs(m - b).max() < 1e-6 for b in group):
                    group.append(m)
                    new.append(m)
        frontier = new
        if len(group) > 120:
            raise AssertionError("generators do not make a finite point group")
    return np.array(group)


def _conjugate(group, q):
    return np.einsum("ij,gjk,lk->gil", q, group, q)


def _icosahedral_222():
    # Vertices (0, +-1, +-phi) and their cyclic permutations: 2-folds on the
    # axes, 3-folds along (+-1, +-1, +-1), front 5-folds in the YZ plane.
    return _closure(
        [
            _axis_rotation((0, 0, 1), 2),
            _axis_rotation((1, 0, 0), 2),
            _axis_rotation((1, 1, 1), 3),
            _axis_rotation((0, 1, _PHI), 5),
        ]
    )


def _rx(deg):
    return Rotation.from_euler("x", deg, degrees=True).as_matrix()


def _ry(deg):
    return Rotation.from_euler("y", deg, degrees=True).as_matrix()


def _rz(deg):
    return Rotation.from_euler("z", deg, degrees=True).as_matrix()


# Icosahedral settings as rotations of I222 (checked against pwem).
_BETA5 = np.degrees(np.arctan2(1.0, _PHI))  # 5-fold (0, 1, phi) onto Z
_BETA3 = np.degrees(np.arctan2(_PHI, 1.0 / _PHI))  # 3-fold (0, phi, 1/phi) onto Z
_ICOSAHEDRAL = {
    "i222": np.eye(3),
    "i222r": _rz(90),
    "i2n5": _rx(-_BETA5),
    "i2n5r": _rx(_BETA5),
    "in25": _rz(90) @ _rx(-_BETA5),
    "in25r": _rz(90) @ _rx(_BETA5),
    "i2n3": _rx(-_BETA3),
    "i2n3r": _rx(_BETA3),
}
_ALIASES = {
    "i": "i222r",
    "i1": "i222",
    "i2": "i222r",
    "i3": "in25",
    "i4": "in25r",
    "t": "t222",
    "dx": "d",
}


def check_symmetry(symbol: str) -> str:
    """Normalised symmetry name, or :class:`InputError` naming the problem.

    Parameters
    ----------
    symbol : str

    Returns
    -------
    str
        Upper-case canonical name (``"C1"``, ``"D7"``, ``"I222R"``...).
    """
    name = str(symbol).strip().lower()
    name = _ALIASES.get(name, name)
    m = re.fullmatch(r"(c|dx|dy|d)(\d+)", name)
    if m:
        n = int(m.group(2))
        if n < 1 or (m.group(1) != "c" and n < 2):
            raise InputError(f"symmetry {symbol!r}: the order must be >= 1 for C and >= 2 for D")
        if n > 100:
            raise InputError(f"symmetry {symbol!r}: order {n} is larger than 100")
        kind = {"dx": "d"}.get(m.group(1), m.group(1))
        return f"{kind.upper()}{n}" if kind != "dy" else f"Dy{n}"
    if name in ("t222", "tz3", "tz3r", "o") or name in _ICOSAHEDRAL:
        return name.upper() if name != "tz3r" else "Tz3r"
    raise InputError(f"unknown symmetry {symbol!r}: expected {SYMMETRY_HELP}")


@functools.lru_cache(maxsize=32)
def _group(name):
    key = name.lower()
    m = re.fullmatch(r"(c|d|dy)(\d+)", key)
    if m:
        gens = [_axis_rotation((0, 0, 1), int(m.group(2)))]
        if m.group(1) == "d":
            gens.append(_axis_rotation((1, 0, 0), 2))
        elif m.group(1) == "dy":
            gens.append(_axis_rotation((0, 1, 0), 2))
        return _closure(gens)
    if key == "t222":
        return _closure(
            [
                _axis_rotation((0, 0, 1), 2),
                _axis_rotation((1, 0, 0), 2),
                _axis_rotation((1, 1, 1), 3),
            ]
        )
    if key in ("tz3", "tz3r"):
        c = -1.0 / 3.0  # cos of the 3-fold angle
        s = np.sqrt(1 - c * c)
        other = (0.0, s if key == "tz3" else -s, c)
        return _closure([_axis_rotation((0, 0, 1), 3), _axis_rotation(other, 3)])
    if key == "o":
        return _closure([_axis_rotation((0, 0, 1), 4), _axis_rotation((1, 0, 0), 4)])
    return _conjugate(_icosahedral_222(), _ICOSAHEDRAL[key])


def symmetry_group(symbol: str) -> np.ndarray:
    """Rotation matrices of a point group.

    Parameters
    ----------
    symbol : str
        See the module docstring (``"C1"``, ``"C7"``, ``"D7"``, ``"O"``, ``"I"``...).

    Returns
    -------
    numpy.ndarray, shape (G, 3, 3)
        Active rotations acting on ``(x, y, z)``; the identity first.

    Raises
    ------
    InputError
        Unknown name or order.
    """
    g = _group(check_symmetry(symbol))
    g.setflags(write=False)
    return g


def symmetrize_band(
    values: ArrayLike, geom: "BandGeometry", group: np.ndarray, pad: int = 2
) -> np.ndarray:
    """Average of band spectra over a point group.

    ``S(k) = (1/G) sum_g F(g k)``: the spectrum of the average of the volume
    rotated by every ``g`` (the group is closed under inversion).  Off-grid
    values by trilinear interpolation in the spectrum oversampled ``pad``
    times (:class:`.fourier.PaddedSpectrum`), as for the alignment.

    Parameters
    ----------
    values : numpy.ndarray, complex, shape (M,) or (K, M)
        Values at the band points of ``geom`` (spectra of real volumes).
    geom : BandGeometry
    group : numpy.ndarray, shape (G, 3, 3)
    pad : int

    Returns
    -------
    numpy.ndarray, same shape as ``values``
    """
    vals = np.asarray(values)
    if len(group) == 1:
        return vals.copy()
    flat = vals.reshape(-1, vals.shape[-1])
    n = geom.n
    out = np.empty_like(flat, dtype=complex)
    for i, v in enumerate(flat):
        half = np.zeros(n * n * (n // 2 + 1), dtype=complex)
        half[geom.index] = v
        padded = PaddedSpectrum(volume_from_spectrum(half.reshape(n, n, n // 2 + 1), n), pad)
        acc = np.zeros(len(geom.index), dtype=complex)
        for g in group:
            acc += padded.sample(geom.freq @ g.T)
        out[i] = acc / len(group)
    return out.reshape(vals.shape)


def _full_grid(values, geom):
    """Real, even band values on the full centred Fourier cube ``[z, y, x]``."""
    n = geom.n
    c = n // 2
    cube = np.zeros((n, n, n))
    f = np.rint(geom.freq).astype(int)  # (kx, ky, kz)
    cube[f[:, 2] + c, f[:, 1] + c, f[:, 0] + c] = values
    cube[c - f[:, 2], c - f[:, 1], c - f[:, 0]] = values  # W(-k) = W(k)
    return cube


def _sample_weights(flat, geom, rotations):
    """Sum over ``rotations`` of each row of ``flat`` sampled at ``g k`` (trilinear
    on the full grid), normalised by the interpolated band indicator."""
    c = geom.n // 2
    coords = []
    for g in rotations:
        q = geom.freq @ np.asarray(g, float).T + c
        coords.append([q[:, 2], q[:, 1], q[:, 0]])
    support = np.zeros(len(geom.index))
    inside = _full_grid(np.ones(len(geom.index)), geom)
    for xyz in coords:
        support += ndimage.map_coordinates(
            inside, xyz, order=1, mode="constant", cval=0.0, prefilter=False
        )
    out = np.empty_like(flat)
    for i, v in enumerate(flat):
        cube = _full_grid(v, geom)
        acc = np.zeros(len(geom.index))
        for xyz in coords:
            acc += ndimage.map_coordinates(
                cube, xyz, order=1, mode="constant", cval=0.0, prefilter=False
            )
        out[i] = np.divide(acc, support, out=np.zeros_like(acc), where=support > 1e-9)
    return out


def symmetrize_weights(weights: ArrayLike, geom: "BandGeometry", group: np.ndarray) -> np.ndarray:
    """Average over a point group of a real, even function of frequency
    (wedge weights: ``W(k) = W(-k)``), by trilinear interpolation on the
    Fourier grid (the weights are counts, smooth at the grid spacing).

    A rotated band point near the band's edge falls between band points and
    points outside the band, where the weights are unknown: the interpolation
    is normalised by the interpolated band indicator, so that the edge shell
    keeps its level (unnormalised, it gets near-zero counts that blow up the
    averages they divide).

    Parameters
    ----------
    weights : numpy.ndarray, float, shape (M,) or (K, M)
    geom : BandGeometry
    group : numpy.ndarray, shape (G, 3, 3)

    Returns
    -------
    numpy.ndarray, same shape as ``weights``
    """
    w = np.asarray(weights, dtype=float)
    if len(group) == 1:
        return w.copy()
    return _sample_weights(w.reshape(-1, w.shape[-1]), geom, group).reshape(w.shape)


def turn_weights(weights: ArrayLike, geom: "BandGeometry", rotation: ArrayLike) -> np.ndarray:
    """A real, even function of frequency turned: ``W'(k) = W(F k)`` (the
    weights that go with band values turned the same way), trilinear.

    Parameters
    ----------
    weights : numpy.ndarray, float, shape (M,) or (K, M)
    geom : BandGeometry
    rotation : numpy.ndarray, shape (3, 3)
        ``F``.
    """
    w = np.asarray(weights, dtype=float)
    return _sample_weights(w.reshape(-1, w.shape[-1]), geom, [np.asarray(rotation, float)]).reshape(
        w.shape
    )


def symmetrize_observed(
    weighted: ArrayLike,
    weights: ArrayLike,
    values: ArrayLike,
    geom: "BandGeometry",
    group: np.ndarray,
    pad: int = 2,
    floor: float = 1e-3,
) -> np.ndarray:
    """Average over a point group of an average seen unevenly: each copy
    counts where it was observed.

    ``S(k) = sum_g (w A)(g k) / sum_g w(g k)`` with ``w`` the fraction of the
    subtomograms that observed each component (its coverage), so that the
    parts of ``A`` no subtomogram observed (a missing wedge the poses left
    open, holding the start's values) do not dilute the copies observed
    there; where no copy was observed (``sum_g w / G`` below ``floor``), the
    plain group average of ``A``.  ``w A`` and ``w`` are given separately
    (both turned the same way before, each by its own interpolation), so
    that nothing of ``A`` leaks in from the unobserved part.

    Parameters
    ----------
    weighted : numpy.ndarray, complex, shape (M,) or (K, M)
        ``w A`` at the band points.
    weights : numpy.ndarray, float, same shape
        ``w``, in ``[0, 1]``.
    values : numpy.ndarray, complex, same shape
        ``A`` (for the plain average where nothing was observed).
    geom : BandGeometry
    group : numpy.ndarray, shape (G, 3, 3)
    pad : int
    floor : float

    Returns
    -------
    numpy.ndarray, complex, same shape as ``values``
    """
    vals = np.asarray(values)
    if len(group) == 1:
        return vals.copy()
    num = symmetrize_band(np.asarray(weighted).reshape(vals.shape), geom, group, pad)
    den = symmetrize_weights(np.asarray(weights, float).reshape(vals.shape), geom, group)
    plain = symmetrize_band(vals, geom, group, pad)
    ok = den > floor
    return np.where(ok, num / np.where(ok, den, 1.0), plain)
