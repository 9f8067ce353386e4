"""The E-step of one iteration: the references of each half-set, their
leave-one-out data, and the run over all chunks of subtomograms."""

import numpy as np

from ..halves import HalfSets, joined_spectra, random_halves, shell_index
from .band import _fsc_weights, _model_spectra
from .estep import LeaveOneOut, estep_chunk
from .model import _hybrid, _lowpass, _reference


def _side_spectra(state, params, geom):
    """The averages each half-set is aligned to: one set (the state's), or
    for independent half-sets each half's own, joined below the join radius."""
    if state.half_spectra is None:
        return [state.spectra]
    r_join = params.join_radius(geom.n)
    return [joined_spectra(h, state.spectra, geom, r_join) for h in state.half_spectra]


def _leave_one_out_data(state, params, geom, radius, n_part, mask=None, focus_mask=None, side=None):
    """Leave-one-out data of one set of E-step references (``side``: the
    half-set, gold standard) or None when not used."""
    if not (params.leave_one_out and params.mode == "faml" and state.classes is not None):
        return None
    filt = np.ones(len(geom.index))
    if params.fsc_weight and state.fsc is not None:
        filt = filt * _fsc_weights(state.fsc, geom)
    filt = _lowpass(filt, geom, radius)
    spectra, gamma, low, gamma_low = state.spectra, state.alpha * n_part, None, None
    if side is not None:
        spectra = _side_spectra(state, params, geom)[side]
        gamma, gamma_low = state.half_gamma[side], gamma
        low = shell_index(geom) <= params.join_radius(geom.n)
    return LeaveOneOut(
        spectra=spectra,
        filter=filt,
        gamma=gamma,
        classes=state.classes,
        max_posterior=state.max_posterior,
        rotations=state.rotations,
        shifts=state.shifts,
        mask=mask,
        radius=radius,
        focus_mask=focus_mask,
        low=low,
        gamma_low=gamma_low,
    )


def _estep_inputs(state, params, geom, r_cur, n_part, mask, focus_mask):
    """References and leave-one-out data of the first (or only) set, and the
    :class:`HalfSets` (None without independent half-sets)."""
    sets = []
    for side, spectra in enumerate(_side_spectra(state, params, geom)):
        shown = _model_spectra(state, params, geom, r_cur, spectra)
        if focus_mask is not None:
            # the consensus weighted as in the leave-one-out references (each
            # half-set's own masses for independent half-sets)
            weights = (
                state.alpha
                if state.half_spectra is None
                else state.half_gamma[side] / max(float(state.half_gamma[side].sum()), 1e-300)
            )
            # the mask's soft edge spreads the averages beyond the band radius
            shown = np.stack(
                [_lowpass(s, geom, r_cur) for s in _hybrid(shown, weights, focus_mask, geom)]
            )
        refs = [_reference(s, geom, params.align, mask, r_cur) for s in shown]
        loo = _leave_one_out_data(
            state,
            params,
            geom,
            r_cur,
            n_part,
            mask,
            focus_mask,
            side if state.half_spectra is not None else None,
        )
        sets.append((refs, loo))
    if state.half_spectra is None:
        return sets[0][0], sets[0][1], None
    halves = HalfSets(first=random_halves(n_part, params.seed), refs=sets[1][0], loo=sets[1][1])
    return sets[0][0], sets[0][1], halves


def _run_estep(runner, refs, state, params, iteration, loo=None, halves=None, ref_noise=None):
    return runner.reduce(
        estep_chunk,
        refs,
        state.alpha,
        state.sigma2,
        state.xi2,
        params,
        iteration,
        loo,
        halves,
        ref_noise,
    )  # chunk order
