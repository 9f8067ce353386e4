"""Resolution of the averages: half-set FSC, FSC weights and frequency marching."""

import numpy as np

from ..halves import class_fsc, fsc_radius, shell_index
from .model import _lowpass


def _fsc_radius(stats, geom, threshold):
    """Last shell before the half-set FSC (first half-set vs the rest,
    posterior-weighted sums of the back-rotated observed components; classes
    weighted by their mass) first drops below ``threshold``.  Returns
    ``(radius, curve, per_class)``; curves over shells ``r_min..r_max``."""
    per_class = class_fsc(stats.num_half, stats.num - stats.num_half, geom)
    curve = np.zeros(per_class.shape[1])
    wt = 0.0
    for k in range(len(per_class)):
        g = float(stats.gamma[k])
        if g <= 1e-12:
            continue
        curve += g * per_class[k]
        wt += g
    curve = curve / max(wt, 1e-300)
    return fsc_radius(curve, geom, threshold), curve, per_class


def _fsc_weights(fsc, geom):
    """Per band point ``sqrt(2 FSC / (1 + FSC))`` of its shell (FSC < 0: 0)."""
    f = np.clip(np.asarray(fsc, float), 0.0, 1.0)
    c = np.sqrt(2 * f / (1 + f))
    shell = np.clip(shell_index(geom) - geom.r_min, 0, len(c) - 1)
    return c[shell]


def _model_spectra(state, params, geom, radius=None, spectra=None):
    """Class averages (``spectra``, default the state's) as used for
    alignment/output: FSC-weighted (if asked and known), low-passed to
    ``radius`` (if given)."""
    spectra = state.spectra if spectra is None else spectra
    if params.fsc_weight and state.fsc is not None:
        spectra = spectra * _fsc_weights(state.fsc, geom)
    if radius is not None:
        spectra = np.stack([_lowpass(s, geom, radius) for s in spectra])
    return spectra


def _next_radius(r_cur, r_fsc, params, geom):
    """Frequency marching: widen to one shell beyond the FSC resolution, at
    most ``march_step`` shells at a time, never narrower, within the band."""
    if not params.marching:
        return geom.r_max
    target = min(r_fsc + 1, r_cur + int(params.march_step))
    return int(min(geom.r_max, max(r_cur, target)))
