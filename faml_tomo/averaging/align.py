"""Fast constrained alignment of a subtomogram to an average (paper §2.1).

The score of a rigid transform ``(R, t)`` (reference onto particle, the
convention of :mod:`faml_tomo.geometry`) is the Fourier-space correlation
restricted to the particle's observed components (eq. 1)::

    c(R, t) = Re sum_j w_j X_j conj((R A)_j) e^{2 pi i k_j.t / n}
              / sqrt(sum_j w_j |(R A)_j|^2  sum_j w_j |X_j|^2)

(``w`` the particle's wedge mask, sums over the full spectrum inside the shell
band ``r_min <= |k| <= r_max``, zero frequency excluded, i.e. a Pearson
correlation over the observed region).  Its translation-invariant upper bound
(eq. 2)::

    c~(R) = sum_k w |X| (R |A|) / sqrt(sum_k w (R |A|^2) sum_k w |X|^2)

is a ratio of two rotational correlations, evaluated for all rotations at
once on an Euler grid by :func:`.so3.so3_correlation` from shell expansions
computed once per particle (``w |X|``, ``w``) and once per average
(``|A|``, ``|A|^2``).  The distinct local maxima of ``c~`` (at most
``max_candidates``) are the candidate rotations; each gets the translation
maximising ``c(R, t)`` from a masked FFT cross-correlation (integer peak
within ``max_shift``, then a parabola per axis for sub-voxel precision) and its
exact score ``c(R, t)`` and squared distance
``sum_j w_j |X_j - (R_t A)_j|^2`` (the E-step needs it).  ``R A`` is sampled
by trilinear interpolation of the average's spectrum oversampled ``pad`` times.

Typical use::

    params = AlignParams()
    part = prepare_subtomogram(volume, tilt_range=(-60, 60), params=params)
    ref = prepare_reference(average, params=params)
    res = align(part, ref, params)       # res.rotations[0], res.shifts[0]: best
"""
import functools
import logging
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy.spatial.transform import Rotation

from ..errors import InputError
from .fourier import WORKERS, PaddedSpectrum, half_frequencies, hermitian_weights, spectrum
from .so3 import find_peaks, shell_inner_products, so3_correlation
from .sph import expand_shells, shell_layout
from .symmetry import symmetry_group
from .wedge import check_tilt_range, wedge_observed

logger = logging.getLogger(__name__)

__all__ = ["AlignParams", "BandGeometry", "band_geometry", "PreparedSubtomogram",
           "PreparedReference", "AlignmentResult", "prepare_subtomogram",
           "prepare_reference", "align", "fast_align", "check_volume", "check_volumes"]


@dataclass(frozen=True)
class AlignParams:
    """Settings of the fast alignment.

    Attributes
    ----------
    lmax : int
        Largest spherical-harmonic degree of the shell expansions (shell
        ``r`` uses ``min(lmax, ceil(pi r))``).
    n_euler : int, optional
        Euler grid size per angle (step ``360 / n_euler`` degrees); default
        ``2 lmax + 2`` (72, i.e. 5 degrees, for ``lmax = 35``).
    r_min, r_max : int, optional
        Band of Fourier shells used (cycles per box); ``r_max`` defaults to
        ``n // 2 - 1``.  Lowering ``r_max`` low-passes alignment and EM alike.
    max_candidates : int
        Cap on candidate rotations per pair (paper: typically < 50).
    min_separation_deg : float, optional
        Peaks closer than this to a better one are merged (default two
        Euler grid steps).
    max_shift : float, optional
        Largest translation searched, in voxels (default ``n / 4``).
    pad : int
        Oversampling of the average's spectrum for interpolation.
    shell_mean : bool
        Subtract the per-shell mean of the observed ``|X|`` in the
        rotational score, so that noise-dominated shells add no
        rotation-dependent bias (keeps the upper-bound form otherwise).
    refine : int
        Number of best candidates whose rotation is refined off the Euler
        grid by maximising the full score ``c(R, t)`` (0: none).  The
        magnitude-only bound locates peaks to a few degrees at low SNR; the
        phases bring the best candidate to about a degree.
    refine_rounds : int
        Rounds of the local refinement (each halves the stencil).
    symmetry : str
        Point group of the average (:mod:`.symmetry`; ``"C1"``: none):
        candidates are distinct modulo the group.
    """
    lmax: int = 35
    n_euler: int | None = None
    r_min: int = 1
    r_max: int | None = None
    max_candidates: int = 50
    min_separation_deg: float | None = None
    max_shift: float | None = None
    pad: int = 2
    shell_mean: bool = True
    refine: int = 1
    refine_rounds: int = 3
    symmetry: str = "C1"

    def euler_grid(self):
        """Euler grid size ``N``."""
        return int(self.n_euler) if self.n_euler else 2 * int(self.lmax) + 2

    def grid_step_deg(self):
        """Euler grid step in degrees."""
        return 360.0 / self.euler_grid()

    def band(self, n):
        """``(r_min, r_max)`` for a box of ``n`` voxels."""
        r_max = n // 2 - 1 if self.r_max is None else int(self.r_max)
        return int(self.r_min), r_max

    def shift_limit(self, n):
        """Largest shift searched for a box of ``n`` voxels."""
        return n / 4.0 if self.max_shift is None else float(self.max_shift)


@dataclass(frozen=True, eq=False)
class BandGeometry:
    """Half-spectrum points of a box inside the shell band (shared, cached).

    Attributes
    ----------
    n : int
        Box size.
    index : numpy.ndarray of int, shape (M,)
        Flat indices into a half spectrum ``(n, n, n//2 + 1)``.
    freq : numpy.ndarray, shape (M, 3)
        Their frequencies ``(kx, ky, kz)``.
    herm : numpy.ndarray, shape (M,)
        Full-spectrum multiplicity (1 or 2).
    n_full : float
        Number of full-spectrum components in the band (``J`` of the paper).
    """
    n: int
    r_min: int
    r_max: int
    index: np.ndarray
    freq: np.ndarray
    herm: np.ndarray
    n_full: float


@functools.lru_cache(maxsize=8)
def band_geometry(n, r_min, r_max):
    """:class:`BandGeometry` of a box (cached)."""
    kz, ky, kx = half_frequencies(n)
    r = np.sqrt(kx ** 2 + ky ** 2 + kz ** 2)
    sel = (r >= r_min - 0.5) & (r <= r_max + 0.5)
    sel &= r > 0
    index = np.flatnonzero(sel)
    shape = (n, n, n // 2 + 1)
    iz, iy, ix = np.unravel_index(index, shape)
    k = np.fft.fftfreq(n, 1.0 / n)
    freq = np.stack([ix.astype(float), k[iy], k[iz]], axis=1)
    herm = hermitian_weights(n)[ix]
    for a in (index, freq, herm):
        a.setflags(write=False)
    return BandGeometry(n=n, r_min=r_min, r_max=r_max, index=index, freq=freq, herm=herm,
                        n_full=float(herm.sum()))


def check_volume(vol, index, n=None, name="subtomogram"):
    """Check one volume: 3D, cubic, box ``n`` (if given), finite, not constant.

    Parameters
    ----------
    vol : array_like
    index : int
        Its position, for the error message.
    n : int, optional
        Required box size.
    name : str
        How the message calls it.

    Returns
    -------
    numpy.ndarray, float64

    Raises
    ------
    InputError
        Naming the volume and the problem.
    """
    v = np.asarray(vol)
    if v.ndim != 3:
        raise InputError(f"{name} {index}: expected a 3D volume, got shape {v.shape}")
    if len(set(v.shape)) != 1:
        raise InputError(f"{name} {index}: box {v.shape} is not cubic; FAML needs cubic "
                         f"boxes")
    if n is not None and v.shape[0] != n:
        raise InputError(f"{name} {index}: box {v.shape[0]}^3 differs from the first "
                         f"{name}'s {n}^3; all must have the same box size")
    if v.shape[0] < 8:
        raise InputError(f"{name} {index}: box {v.shape[0]} is too small (need >= 8)")
    v = np.asarray(v, dtype=float)
    if not np.all(np.isfinite(v)):
        raise InputError(f"{name} {index}: contains NaN or Inf values")
    if np.ptp(v) == 0:
        raise InputError(f"{name} {index}: is constant (no signal to align)")
    return v


def check_volumes(volumes, name="subtomogram"):
    """Check a stack of volumes (see :func:`check_volume`); returns the box
    size ``n``."""
    n = None
    for i, v in enumerate(volumes):
        n = check_volume(v, i, n, name).shape[0]
    if n is None:
        raise InputError(f"no {name}s given")
    return n


@dataclass(eq=False)
class PreparedSubtomogram:
    """A subtomogram expanded once for alignment and EM.

    Attributes
    ----------
    n : int
        Box size.
    tilt_range : tuple of float
        Its tilt range in degrees.
    observed : numpy.ndarray of int, shape (M,)
        Positions (into :attr:`BandGeometry.index`) of the observed
        band components.
    values : numpy.ndarray, complex, shape (M,)
        Spectrum ``X`` at those components.
    norm2 : float
        ``sum_j w_j |X_j|^2`` over the full spectrum.
    n_obs : float
        Number of observed full-spectrum components ``J_i^o``.
    coeffs : numpy.ndarray, complex64, shape (2, R, ncoef)
        Shell expansions of ``w |X|`` (shell mean removed if asked) and ``w``.
    index : int
        Position in its data set (seeds and ordering).
    """
    n: int
    tilt_range: tuple
    observed: np.ndarray
    values: np.ndarray
    norm2: float
    n_obs: float
    coeffs: np.ndarray
    index: int = 0

    def nbytes(self):
        """Memory held, in bytes."""
        return self.observed.nbytes + self.values.nbytes + self.coeffs.nbytes


@dataclass(eq=False)
class PreparedReference:
    """An average expanded once per iteration for alignment.

    Attributes
    ----------
    n : int
        Box size.
    band_values : numpy.ndarray, complex, shape (M_band,)
        Spectrum ``A`` at the band points of :func:`band_geometry`.
    padded : PaddedSpectrum
        Oversampled spectrum for interpolation.
    coeffs : numpy.ndarray, complex, shape (2, R, ncoef)
        Shell expansions of ``|A|`` and ``|A|^2``.
    """
    n: int
    band_values: np.ndarray
    padded: PaddedSpectrum
    coeffs: np.ndarray


def _full_centred(half_vals, geom, fill=0.0):
    """Full centred cube ``[kz, ky, kx]`` of an even real function known at
    the band points of a half spectrum."""
    n = geom.n
    cube = np.full((n, n, n), fill, dtype=float)
    k = geom.freq.astype(int)
    c = n // 2
    cube[k[:, 2] + c, k[:, 1] + c, k[:, 0] + c] = half_vals
    # Mirror (even function): the band excludes |k| = n/2, so -k stays in range.
    cube[-k[:, 2] + c, -k[:, 1] + c, -k[:, 0] + c] = half_vals
    return cube


def prepare_subtomogram(volume, tilt_range, params=None, index=0, spec=None, observed=None):
    """Expand one subtomogram (once; reused by every iteration).

    Parameters
    ----------
    volume : numpy.ndarray, shape (n, n, n)
        The subtomogram ``[z, y, x]``.
    tilt_range : float or (float, float)
        Its tilt range in degrees (missing wedge about Y).
    params : AlignParams, optional
    index : int
        Its position in the data set.
    spec : numpy.ndarray, optional
        Its :func:`.fourier.spectrum`, if already computed.
    observed : numpy.ndarray of bool, shape (M,), optional
        Which band points (:func:`band_geometry`) were observed, instead of
        the wedge of ``tilt_range`` (e.g. the covered part of an average).

    Returns
    -------
    PreparedSubtomogram
    """
    params = params or AlignParams()
    vol = np.asarray(volume, dtype=float)
    n = vol.shape[0]
    tilt = check_tilt_range(tilt_range)
    r_min, r_max = params.band(n)
    geom = band_geometry(n, r_min, r_max)
    layout = shell_layout(n, params.lmax, r_min, r_max)
    if spec is None:
        spec = spectrum(vol)
    f = geom.freq
    if observed is None:
        obs = wedge_observed(f[:, 0], f[:, 1], f[:, 2], tilt)
    else:
        obs = np.asarray(observed, bool).reshape(-1)
        if obs.shape != (len(geom.index),):
            raise InputError(f"observed: {obs.size} values for {len(geom.index)} band points")
    observed = np.flatnonzero(obs)
    vals = spec.reshape(-1)[geom.index[observed]]
    herm = geom.herm[observed]
    mag = np.zeros(len(geom.index))
    mag[observed] = np.abs(vals)
    if params.shell_mean:
        # Mean |X| over the observed part of each integer shell.
        shell = np.rint(np.linalg.norm(f, axis=1)).astype(int)
        num = np.bincount(shell[observed], weights=herm * mag[observed], minlength=n)
        den = np.bincount(shell[observed], weights=herm, minlength=n)
        mean = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        mag[observed] -= mean[shell[observed]]
    cubes = np.stack([_full_centred(mag, geom), _full_centred(obs.astype(float), geom)])
    # Compact storage: the expansions only steer the rotation search.
    coeffs = expand_shells(cubes, layout).astype(np.complex64)
    observed = observed.astype(np.int32)
    return PreparedSubtomogram(n=n, tilt_range=tilt, observed=observed, values=vals,
                               norm2=float(np.sum(herm * np.abs(vals) ** 2)),
                               n_obs=float(herm.sum()), coeffs=coeffs, index=int(index))


def prepare_reference(volume=None, params=None, spec=None, n=None):
    """Expand an average for alignment (once per average and iteration).

    Parameters
    ----------
    volume : numpy.ndarray, shape (n, n, n), optional
        The average in real space; or give ``spec`` and ``n``.
    params : AlignParams, optional
    spec : numpy.ndarray, complex, shape (n, n, n//2 + 1), optional
        Its centred half spectrum; components outside the band are ignored.
    n : int, optional
        Box size when only ``spec`` is given.

    Returns
    -------
    PreparedReference
    """
    params = params or AlignParams()
    if spec is None:
        vol = np.asarray(volume, dtype=float)
        n = vol.shape[0]
        spec = spectrum(vol)
    r_min, r_max = params.band(n)
    geom = band_geometry(n, r_min, r_max)
    layout = shell_layout(n, params.lmax, r_min, r_max)
    band_vals = spec.reshape(-1)[geom.index]
    # Band-limited copy for interpolation (outside the band does not exist).
    half = np.zeros(n * n * (n // 2 + 1), dtype=complex)
    half[geom.index] = band_vals
    vol_band = sfft.fftshift(sfft.irfftn(half.reshape(n, n, n // 2 + 1), s=(n, n, n),
                                         norm="ortho", workers=WORKERS))
    padded = PaddedSpectrum(vol_band, pad=params.pad)
    mag = np.abs(band_vals)
    cubes = np.stack([_full_centred(mag, geom), _full_centred(mag ** 2, geom)])
    coeffs = expand_shells(cubes, layout)
    return PreparedReference(n=n, band_values=band_vals, padded=padded, coeffs=coeffs)


@dataclass
class AlignmentResult:
    """Candidate transforms of one subtomogram-average pair, best first.

    Attributes
    ----------
    rotations : numpy.ndarray, shape (C, 3, 3)
        Active rotations ``R`` (reference onto particle, geometry convention).
    shifts : numpy.ndarray, shape (C, 3)
        Translations ``t = (tx, ty, tz)`` in voxels.
    scores : numpy.ndarray, shape (C,)
        Constrained correlation ``c(R, t)`` (eq. 1), sorted descending.
    rot_scores : numpy.ndarray, shape (C,)
        Translation-invariant bound ``c~(R)`` at the grid peak (eq. 2).
    sq_dist : numpy.ndarray, shape (C,)
        ``sum_j w_j |X_j - (R_t A)_j|^2`` over the full spectrum.
    ref_norm2 : numpy.ndarray, shape (C,)
        ``sum_j w_j |(R A)_j|^2``.
    """
    rotations: np.ndarray
    shifts: np.ndarray
    scores: np.ndarray
    rot_scores: np.ndarray
    sq_dist: np.ndarray
    ref_norm2: np.ndarray

    def __len__(self):
        return len(self.scores)

    def subset(self, keep):
        """The candidates selected by index array or mask ``keep``."""
        return AlignmentResult(*(getattr(self, f)[keep] for f in
                                 ("rotations", "shifts", "scores", "rot_scores", "sq_dist",
                                  "ref_norm2")))


@functools.lru_cache(maxsize=16)
def _shift_window(n, max_shift):
    """Pruned correlation grid for shifts ``|t| <= max_shift``.

    Returns ``(axis_index, flat)``: the per-axis indices (unshifted FFT
    layout) of the signed shifts ``-h..h`` with ``h = floor(max_shift) + 1``
    (one voxel beyond the window, for the sub-voxel parabola), and the flat
    indices, in that ``(2h+1)^3`` cube, of the shifts inside the window.
    """
    h = int(np.floor(max_shift)) + 1
    h = min(h, (n - 1) // 2)
    k = np.arange(-h, h + 1)
    d2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2
    flat = np.flatnonzero(d2.ravel() <= max_shift ** 2 + 1e-9)
    axis_index = k % n
    for a in (flat, axis_index):
        a.setflags(write=False)
    return axis_index, flat


def _windowed_correlation(h, n, axis_index):
    """Inverse FFT of half spectra ``h`` (C, n, n, n//2+1) evaluated only on
    the shift cube ``axis_index^3``: the z and y transforms keep the window's
    rows before the next axis is transformed (about 40% of the work of a
    full ``irfftn`` at 64^3).  Returns (C, L, L, L), shift ``j - L // 2``.

    For even ``n`` the caller has multiplied ``h`` by ``(-1)^(kx+ky+kz)``
    (:func:`_centring_signs`), which moves shift 0 to index ``n // 2``: the
    window is then one contiguous slice per axis (no gathers)."""
    half = len(axis_index) // 2
    if n % 2 == 0:
        keep = slice(n // 2 - half, n // 2 + half + 1)
        a = sfft.ifft(h, axis=1, norm="forward", workers=WORKERS)
        a = sfft.ifft(a[:, keep], axis=2, norm="forward", workers=WORKERS, overwrite_x=True)
        cc = sfft.irfft(a[:, :, keep], n=n, axis=3, norm="forward", workers=WORKERS)
        return cc[..., keep]
    a = sfft.ifft(h, axis=1, norm="forward", workers=WORKERS)
    a = np.take(a, axis_index, axis=1)
    a = sfft.ifft(a, axis=2, norm="forward", workers=WORKERS)
    a = np.take(a, axis_index, axis=2)
    cc = sfft.irfft(a, n=n, axis=3, norm="forward", workers=WORKERS)
    return np.take(cc, axis_index, axis=3)


def _centring_signs(kidx, n):
    """``(-1)^(kx+ky+kz)`` at band points (indices of :func:`_freq_index`) for
    even ``n`` (a shift by ``n / 2`` of the correlation), else ones."""
    if n % 2:
        return np.ones(kidx.shape[1], dtype=np.float32)
    return np.where(kidx.sum(axis=0) % 2 == 0, 1.0, -1.0).astype(np.float32)


def _parabolic_peaks(cc, flat):
    """Signed sub-voxel peak positions ``(x, y, z)`` of centred correlation cubes.

    Parameters
    ----------
    cc : numpy.ndarray, shape (C, L, L, L)
        Maps of the shifts ``-(L // 2) .. L // 2`` per axis.
    flat : numpy.ndarray of int, shape (C,)
        Flat index of each map's maximum, at least one voxel inside the cube.

    Returns
    -------
    numpy.ndarray, shape (C, 3)
        Integer peak plus a parabola's vertex per axis (clipped to +-0.5).
    """
    c, size = cc.shape[0], cc.shape[1]
    rows = np.arange(c)
    idx = np.stack(np.unravel_index(flat, cc.shape[1:]), axis=1)      # (C, 3) z, y, x
    s0 = cc[rows, idx[:, 0], idx[:, 1], idx[:, 2]]
    off = np.zeros((c, 3))
    for ax in range(3):
        lo, hi = idx.copy(), idx.copy()
        lo[:, ax] = np.maximum(lo[:, ax] - 1, 0)
        hi[:, ax] = np.minimum(hi[:, ax] + 1, size - 1)
        sm = cc[rows, lo[:, 0], lo[:, 1], lo[:, 2]]
        sp = cc[rows, hi[:, 0], hi[:, 1], hi[:, 2]]
        den = sm - 2 * s0 + sp
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(den < 0, 0.5 * (sm - sp) / den, 0.0)
        off[:, ax] = np.clip(d, -0.5, 0.5)
    pos = idx + off - size // 2
    return pos[:, ::-1]                                # (z, y, x) -> (x, y, z)


def _freq_index(freq, n):
    """Integer frequencies ``(kx, ky, kz)`` of band points as indices ``k + n // 2``
    into per-axis phase tables."""
    return np.rint(freq).astype(np.intp).T + n // 2


def translation_search(part, ref, rotations, params, chunk=16):
    """Best translation and exact scores for given candidate rotations.

    For each rotation ``R``, ``CC(t) = sum_k w X conj(R A) e^{2 pi i k.t / n}``
    is computed for all integer shifts by one inverse FFT (batched over
    candidates), maximised within ``|t| <= max_shift``, refined by a
    parabola per axis, and the exact score is evaluated at the sub-voxel
    shift.

    Parameters
    ----------
    part : PreparedSubtomogram
    ref : PreparedReference
    rotations : numpy.ndarray, shape (C, 3, 3)
    params : AlignParams
    chunk : int
        Candidates per batched FFT (bounds memory).

    Returns
    -------
    shifts, scores, sq_dist, ref_norm2 : numpy.ndarray
        Shapes (C, 3), (C,), (C,), (C,); see :class:`AlignmentResult`.
    """
    from .kernels import correlation_spectra, shifted_real_sums
    n = part.n
    geom = band_geometry(n, *params.band(n))
    freq = np.ascontiguousarray(geom.freq[part.observed])
    herm = geom.herm[part.observed]
    flat_idx = geom.index[part.observed]
    x = part.values
    axis_index, win = _shift_window(n, params.shift_limit(n))
    kidx = _freq_index(freq, n)
    sign = _centring_signs(kidx, n)
    nrot = len(rotations)
    out = [np.zeros((nrot, 3)), np.zeros(nrot), np.zeros(nrot), np.zeros(nrot)]
    half_size = n * n * (n // 2 + 1)
    data, pad = ref.padded.data, float(ref.padded.pad)
    # Single precision is enough to locate the peak (the score at the refined
    # shift below is exact) and halves the transforms' cost.  Every chunk
    # writes the same positions, so the buffer is zeroed once.
    spectra = np.zeros((min(chunk, nrot), half_size), dtype=np.complex64)
    for s in range(0, nrot, chunk):
        rots = np.ascontiguousarray(rotations[s:s + chunk], dtype=float)
        c = len(rots)
        h = spectra[:c]
        prod, r2 = correlation_spectra(data, pad, freq, rots, x, herm, sign, flat_idx, h)
        cc = _windowed_correlation(h.reshape(c, n, n, n // 2 + 1), n, axis_index)
        best = win[np.argmax(cc.reshape(c, -1)[:, win], axis=1)]
        t = _parabolic_peaks(cc, best)
        ccv = shifted_real_sums(prod, t, kidx, herm, n)
        out[0][s:s + c] = t
        out[1][s:s + c] = ccv / np.sqrt(np.maximum(r2 * part.norm2, 1e-300))
        out[2][s:s + c] = part.norm2 + r2 - 2 * ccv
        out[3][s:s + c] = r2
    shifts, scores, sq, rn2 = out
    return shifts, scores, sq, rn2


# Centre and the six axial neighbours of a rotation-vector stencil.
_STENCIL = np.vstack([np.zeros(3), np.eye(3), -np.eye(3)])


def _parabola_max(values):
    """Maximiser (stencil units, clipped to [-1, 1]) of a separable parabola
    per axis through ``[centre, +x, +y, +z, -x, -y, -z]``; the best sample if
    an axis is not concave."""
    c0, vp, vm = values[0], values[1:4], values[4:7]
    den = vp + vm - 2 * c0
    if np.all(den < 0):
        return np.clip(0.5 * (vm - vp) / den, -1.0, 1.0)
    return _STENCIL[int(np.argmax(values))]


def refine_rotation(part, ref, rotation, shift, params, step_deg):
    """Refine one rotation off the Euler grid by maximising ``c(R, t)``.

    At fixed translation, the full score is evaluated at ``R`` and six small
    rotations ``exp([+-d e_i]) R`` (``d = step_deg / 2`` first) and the
    vertex of a parabola per axis is taken; ``params.refine_rounds`` rounds
    halve ``d`` each time.  The translation is then searched again at the
    refined rotation.  Seven samples per round instead of a 27-point
    quadratic fit: interpolation of the average dominates the cost, and the
    accuracy is the same after three rounds.

    Returns
    -------
    rotation, shift, score, sq_dist, ref_norm2
    """
    from .kernels import rotated_inner
    geom = band_geometry(part.n, *params.band(part.n))
    freq = np.ascontiguousarray(geom.freq[part.observed])
    herm = geom.herm[part.observed]
    xph = part.values * np.exp(2j * np.pi / part.n * (freq @ shift))
    centre = np.asarray(rotation, dtype=float)
    delta = np.radians(step_deg) / 2.0
    for _ in range(max(int(params.refine_rounds), 1)):
        rots = (Rotation.from_rotvec(_STENCIL * delta) * Rotation.from_matrix(centre)
                ).as_matrix()
        num, den = rotated_inner(ref.padded.data, float(ref.padded.pad), freq, rots, xph,
                                 herm)
        vals = num / np.sqrt(np.maximum(den, 1e-300))
        u = _parabola_max(vals)
        centre = (Rotation.from_rotvec(u * delta) * Rotation.from_matrix(centre)).as_matrix()
        delta /= 2.0
    shifts, scores, sq, rn2 = translation_search(part, ref, centre[None], params)
    return centre, shifts[0], scores[0], sq[0], rn2[0]


def rotation_scores(part, ref, params):
    """Translation-invariant score ``c~`` (eq. 2) on the whole Euler grid.

    Returns
    -------
    numpy.ndarray, shape (N, N, N)
    """
    layout = shell_layout(part.n, params.lmax, *params.band(part.n))
    inner = shell_inner_products(part.coeffs, ref.coeffs, layout)
    # Single precision: the grid only ranks candidate rotations.
    corr = so3_correlation(inner, params.euler_grid(), dtype=np.float32)
    den = np.sqrt(np.maximum(corr[1], 1e-12 * max(corr[1].max(), 1e-300)) * part.norm2)
    return corr[0] / den


def align(part, ref, params=None):
    """Candidate transforms of a prepared subtomogram against an average.

    Parameters
    ----------
    part : PreparedSubtomogram
    ref : PreparedReference
    params : AlignParams, optional

    Returns
    -------
    AlignmentResult
        Candidates sorted by the constrained score, best first.
    """
    params = params or AlignParams()
    if part.n != ref.n:
        raise InputError(f"subtomogram box {part.n} differs from average box {ref.n}")
    score = rotation_scores(part, ref, params)
    group = symmetry_group(params.symmetry) if params.symmetry != "C1" else None
    rots, rvals = find_peaks(score, params.max_candidates, params.min_separation_deg,
                             group=group)
    shifts, scores, sq, rn2 = translation_search(part, ref, rots, params)
    if params.refine > 0:
        for j in np.argsort(-scores, kind="stable")[:params.refine]:
            out = refine_rotation(part, ref, rots[j], shifts[j], params,
                                  params.grid_step_deg())
            if out[2] > scores[j]:
                rots[j], shifts[j], scores[j], sq[j], rn2[j] = out
    order = np.argsort(-scores, kind="stable")
    return AlignmentResult(rotations=rots[order], shifts=shifts[order], scores=scores[order],
                           rot_scores=rvals[order], sq_dist=sq[order], ref_norm2=rn2[order])


def fast_align(subtomogram, reference, tilt_range, params=None):
    """Align one subtomogram to one average (convenience wrapper).

    Parameters
    ----------
    subtomogram, reference : numpy.ndarray, shape (n, n, n)
    tilt_range : float or (float, float)
        The subtomogram's tilt range in degrees.
    params : AlignParams, optional

    Returns
    -------
    AlignmentResult
        ``rotations[0]``, ``shifts[0]`` is the best transform mapping the
        reference onto the subtomogram.
    """
    check_volumes([subtomogram, reference], name="volume")
    params = params or AlignParams()
    part = prepare_subtomogram(subtomogram, tilt_range, params)
    ref = prepare_reference(reference, params)
    return align(part, ref, params)
