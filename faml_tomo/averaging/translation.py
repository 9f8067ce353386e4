"""The candidates of the fast alignment (:mod:`.align`): translation search by
a masked FFT cross-correlation with sub-voxel parabolas, exact scores and
squared distances, local rotation refinement."""

import functools
import logging
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy.spatial.transform import Rotation

from .alignsetup import AlignParams, band_geometry
from .fourier import WORKERS
from .prepared import PreparedReference, PreparedSubtomogram
from .so3 import shell_inner_products, so3_correlation
from .sph import shell_layout

logger = logging.getLogger(__name__)


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

    def subset(self, keep: np.ndarray) -> "AlignmentResult":
        """The candidates selected by index array or mask ``keep``."""
        return AlignmentResult(
            *(
                getattr(self, f)[keep]
                for f in ("rotations", "shifts", "scores", "rot_scores", "sq_dist", "ref_norm2")
            )
        )


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
    flat = np.flatnonzero(d2.ravel() <= max_shift**2 + 1e-9)
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
    idx = np.stack(np.unravel_index(flat, cc.shape[1:]), axis=1)  # (C, 3) z, y, x
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
    return pos[:, ::-1]  # (z, y, x) -> (x, y, z)


def _freq_index(freq, n):
    """Integer frequencies ``(kx, ky, kz)`` of band points as indices ``k + n // 2``
    into per-axis phase tables."""
    return np.rint(freq).astype(np.intp).T + n // 2


def translation_search(
    part: PreparedSubtomogram,
    ref: PreparedReference,
    rotations: np.ndarray,
    params: AlignParams,
    chunk: int = 16,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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
        rots = np.ascontiguousarray(rotations[s : s + chunk], dtype=float)
        c = len(rots)
        h = spectra[:c]
        prod, r2 = correlation_spectra(data, pad, freq, rots, x, herm, sign, flat_idx, h)
        cc = _windowed_correlation(h.reshape(c, n, n, n // 2 + 1), n, axis_index)
        best = win[np.argmax(cc.reshape(c, -1)[:, win], axis=1)]
        t = _parabolic_peaks(cc, best)
        ccv = shifted_real_sums(prod, t, kidx, herm, n)
        out[0][s : s + c] = t
        out[1][s : s + c] = ccv / np.sqrt(np.maximum(r2 * part.norm2, 1e-300))
        out[2][s : s + c] = part.norm2 + r2 - 2 * ccv
        out[3][s : s + c] = r2
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


def refine_rotation(
    part: PreparedSubtomogram,
    ref: PreparedReference,
    rotation: np.ndarray,
    shift: np.ndarray,
    params: AlignParams,
    step_deg: float,
) -> tuple[np.ndarray, np.ndarray, float, float, float]:
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
        rots = (Rotation.from_rotvec(_STENCIL * delta) * Rotation.from_matrix(centre)).as_matrix()
        num, den = rotated_inner(ref.padded.data, float(ref.padded.pad), freq, rots, xph, herm)
        vals = num / np.sqrt(np.maximum(den, 1e-300))
        u = _parabola_max(vals)
        centre = (Rotation.from_rotvec(u * delta) * Rotation.from_matrix(centre)).as_matrix()
        delta /= 2.0
    shifts, scores, sq, rn2 = translation_search(part, ref, centre[None], params)
    return centre, shifts[0], scores[0], sq[0], rn2[0]


def rotation_scores(
    part: PreparedSubtomogram, ref: PreparedReference, params: AlignParams
) -> np.ndarray:
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
