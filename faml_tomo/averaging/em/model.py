"""Class averages as band values: E-step references, masks, the M-step (eqs. 10-13) and
hard means at known transforms."""

import numpy as np
from numpy.typing import ArrayLike

from ...errors import InputError
from ..align import prepare_reference
from ..backrotate import hard_sums as _hard_sums
from ..fourier import spectrum, volume_from_spectrum
from ..halves import combine_halves, shell_index
from ..parallel import add_arrays
from ..symmetry import symmetrize_band, symmetrize_weights


_XI2_MIN = 0.25  # translation prior SD floor: half a voxel


def _half_from_band(values, geom):
    n = geom.n
    half = np.zeros(n * n * (n // 2 + 1), dtype=complex)
    half[geom.index] = values
    return half.reshape(n, n, n // 2 + 1)


def _lowpass(values, geom, radius):
    """Band values with the shells beyond ``radius`` set to zero."""
    if radius >= geom.r_max:
        return values
    return np.where(shell_index(geom) <= radius, values, 0.0)


def _reference(values, geom, align_params, mask=None, radius=None):
    """Prepared E-step reference from band values; with a mask, the average
    is multiplied by it in real space and cut back to the band (and to the
    marching radius: the mask's edge would otherwise leak high frequencies)."""
    half = _half_from_band(values, geom)
    if mask is not None:
        masked = spectrum(volume_from_spectrum(half, geom.n) * mask).reshape(-1)[geom.index]
        if radius is not None:
            masked = _lowpass(masked, geom, radius)
        half = _half_from_band(masked, geom)
    return prepare_reference(spec=half, n=geom.n, params=align_params)


def check_mask(mask: ArrayLike, n: int) -> np.ndarray:
    """Check a reference mask for boxes of ``n`` voxels.

    Parameters
    ----------
    mask : array_like, shape (n, n, n)
        Real-space weights in ``[0, 1]`` (binary or soft-edged), ``[z, y, x]``.
    n : int

    Returns
    -------
    numpy.ndarray, float64, shape (n, n, n)

    Raises
    ------
    InputError
        Wrong shape, non-finite values, values outside ``[0, 1]`` (beyond a
        rounding tolerance) or an empty mask.
    """
    m = np.asarray(mask, dtype=float)
    if m.shape != (n, n, n):
        raise InputError(f"mask has shape {m.shape}, the subtomograms are {n}^3 voxels")
    if not np.all(np.isfinite(m)):
        raise InputError("mask contains NaN or infinite values")
    if m.min() < -1e-3 or m.max() > 1 + 1e-3:
        raise InputError(f"mask values must lie in [0, 1], got {m.min():.3g}..{m.max():.3g}")
    m = np.clip(m, 0.0, 1.0)
    if m.sum() < 1.0:
        raise InputError("mask is empty (sums to less than one voxel)")
    return m


def _count_floor(params):
    """Smallest observation count a mean divides by: symmetrised counts are
    interpolated, and a component seen by half a subtomogram in one copy or
    less is left out (dividing by a near-zero count gave values of 1e13 and a
    noise sigma of 1e9); without symmetry any count above zero, as always."""
    g = len(params.group())
    return 0.5 / g if g > 1 else 0.0


def _hard_mean(runner, members, state, params, geom, fallback):
    """Wedge-compensated (symmetrised) mean of ``members`` at their best
    transforms; ``fallback`` where none of them observed a component."""
    num, cnt = runner.reduce(
        _hard_sums,
        set(np.asarray(members).tolist()),
        state.rotations,
        state.shifts,
        geom,
        params.align.pad,
        add=add_arrays,
    )
    num = symmetrize_band(num, geom, params.group(), params.align.pad)
    cnt = symmetrize_weights(cnt, geom, params.group())
    seen = cnt > _count_floor(params)
    return np.where(seen, num / np.where(seen, cnt, 1.0), fallback)


def _hybrid(spectra, alpha, focus_mask, geom, consensus=None):
    """Focused classification: each class's reference is its average inside
    the classification mask and the consensus (the classes' mean weighted by
    ``alpha``, or ``consensus``) outside it.  The part outside the mask then
    predicts the same for every class and only the masked part tells them
    apart (RELION's signal subtraction, done on the references).  Band
    spectra in, band spectra out."""
    n = geom.n
    vols = [volume_from_spectrum(_half_from_band(s, geom), n) for s in spectra]
    if consensus is None:
        cons = np.tensordot(alpha, np.stack(vols), axes=1)
    else:
        cons = volume_from_spectrum(_half_from_band(consensus, geom), n)
    return np.stack(
        [spectrum(focus_mask * v + (1 - focus_mask) * cons).reshape(-1)[geom.index] for v in vols]
    )


def _update_spectra(old, num, wsum, gamma, params):
    """Class averages from summed statistics (eq. 10; FA: wedge-compensated
    mean); an empty class keeps its average."""
    spectra = old.copy()
    for k in range(len(spectra)):
        g = gamma[k]
        if g <= 1e-12:
            continue
        if params.mode == "fa":
            ok = wsum[k] >= params.fa_min_weight
            spectra[k] = np.where(ok, num[k] / np.where(ok, wsum[k], 1.0), 0.0)
        else:
            spectra[k] = (num[k] + (g - wsum[k]) * old[k]) / g
    return spectra


def _m_step(state, stats, params, n_part, geom):
    """New model from summed statistics (eqs. 10-13).  Returns the averages,
    class weights, noise and translation variances and, for independent
    half-sets, the half-sets' averages and class masses (else None)."""
    half = half_gamma = None
    if state.half_spectra is None:
        spectra = _update_spectra(state.spectra, stats.num, stats.wsum, stats.gamma, params)
    else:
        half_gamma = np.stack([stats.gamma_half, stats.gamma - stats.gamma_half])
        half = np.stack(
            [
                _update_spectra(
                    state.half_spectra[0], stats.num_half, stats.wsum_half, half_gamma[0], params
                ),
                _update_spectra(
                    state.half_spectra[1],
                    stats.num - stats.num_half,
                    stats.wsum - stats.wsum_half,
                    half_gamma[1],
                    params,
                ),
            ]
        )
        spectra = combine_halves(half, half_gamma)
    alpha = stats.gamma / n_part
    sigma2 = (stats.sq + state.sigma2 * stats.missing) / (n_part * geom.n_full)
    xi2 = max(stats.t2 / (3.0 * n_part), _XI2_MIN)
    return spectra, alpha, max(sigma2, 1e-12), xi2, half, half_gamma
