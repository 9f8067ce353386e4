"""Point groups in a reference-free run: iterations without the group, then each average
turned into its symmetry frame."""

import dataclasses
import logging

import numpy as np

from ..fourier import PaddedSpectrum, volume_from_spectrum
from ..symmetry import symmetrize_band, symmetrize_observed, symmetrize_weights, turn_weights
from .band import _model_spectra
from .model import _half_from_band

logger = logging.getLogger(__name__)


def _active(params, references, iteration):
    """The settings of one iteration: without the point group during the
    first ``c1_iterations`` of a reference-free symmetric run."""
    if params.align.symmetry == "C1" or references is not None or iteration >= params.c1_iterations:
        return params
    return dataclasses.replace(params, align=dataclasses.replace(params.align, symmetry="C1"))


def _frame_switch(params, references, iteration):
    """Whether this iteration starts by turning the averages into their
    symmetry frame (the first symmetric iteration of a reference-free run)."""
    return (
        params.align.symmetry != "C1"
        and references is None
        and params.c1_iterations > 0
        and iteration == params.c1_iterations
    )


def _turn(spectra, geom, frame, pad):
    """Band values turned: ``A'(k) = A(F k)``."""
    n = geom.n
    padded = PaddedSpectrum(volume_from_spectrum(_half_from_band(spectra, geom), n), pad)
    return padded.sample(geom.freq @ frame.T)


def _energy_centre(spectrum_k, geom):
    """Centroid ``(x, y, z)`` (voxels from the box centre) of the squared
    density of a band-limited average: the particle's centre whatever its
    contrast, and, for a point group, its symmetry centre (on the axis for
    ``Cn``, where an offset along the axis does not matter)."""
    n = geom.n
    v = volume_from_spectrum(_half_from_band(spectrum_k, geom), n) ** 2
    tot = float(v.sum())
    if tot <= 0:
        return np.zeros(3)
    idx = np.arange(n) - n // 2
    return (
        np.array(
            [
                float((v.sum(axis=(0, 1)) * idx).sum()),  # x
                float((v.sum(axis=(0, 2)) * idx).sum()),  # y
                float((v.sum(axis=(1, 2)) * idx).sum()),
            ]
        )
        / tot
    )  # z


def _to_symmetry_frame(state, params, geom):
    """Each class average turned into its symmetry frame and symmetrised;
    its members' rotations follow (``R_i -> R_i F``), so that the poses and
    the leave-one-out terms stay consistent.

    With the last E-step's coverage, each copy counts only where the class
    observed it (:func:`.symmetry.symmetrize_observed`), and the frame is
    searched on the observed part: the C1 poses of a symmetric particle may
    leave part of the band unobserved (its mates pile up their wedges), still
    holding the start's values, and a plain group average mixes those into
    every copy (measured, 3j9i D7, rotations about Y with ±40°, SNR 0.1: r
    with the truth 0.79 -> 0.49 at the switch, 0.61 at the end; with the
    coverage 0.99 and 0.992)."""
    from ..symmetry_frame import find_symmetry_frame

    group, pad, n = params.group(), params.align.pad, geom.n
    shown = _model_spectra(state, params, geom)
    # the whole set's averages, then each independent half-set's
    sets = [state.spectra.copy()]
    if state.half_spectra is not None:
        sets += [h.copy() for h in state.half_spectra]
    cov = None if state.coverage is None else np.nan_to_num(np.asarray(state.coverage, float))
    weighted = [s.copy() for s in sets]
    rotations = np.asarray(state.rotations, float).copy()
    shifts = np.asarray(state.shifts, float).copy()
    for k in range(len(sets[0])):
        # A reference-free average drifts off the box centre (measured 2.6
        # voxels on 3j9i, D7: its best frame about the box centre scored 0.79
        # instead of 0.98 and the switch dropped r from 0.99 to 0.85): the
        # group acts about the particle's centre, so move it there first
        c = _energy_centre(shown[k], geom)
        phase = np.exp((2j * np.pi / n) * (geom.freq @ c))  # A_c(r) = A(r + c)
        members = np.asarray(state.classes) == k
        shifts[members] += rotations[members] @ c  # t' = t + R c
        for spectra in sets:
            spectra[k] = spectra[k] * phase
        vol = volume_from_spectrum(_half_from_band(shown[k] * phase, geom), n)
        frame, score = find_symmetry_frame(
            vol, group, params.align, seed=params.seed, coverage=None if cov is None else cov[k]
        )
        logger.info(
            "class %d: turned into its %s frame (correlation with its symmetrised self %.3f)",
            k + 1,
            params.align.symmetry,
            score,
        )
        for spectra, wsp in zip(sets, weighted):
            if cov is not None:
                wsp[k] = _turn(cov[k] * spectra[k], geom, frame, pad)
            spectra[k] = _turn(spectra[k], geom, frame, pad)
        if cov is not None:
            cov[k] = turn_weights(cov[k], geom, frame)
        rotations[members] = rotations[members] @ frame
    if cov is None:
        sets = [symmetrize_band(spectra, geom, group, pad) for spectra in sets]
    else:
        sets = [
            symmetrize_observed(wsp, cov, spectra, geom, group, pad)
            for spectra, wsp in zip(sets, weighted)
        ]
        cov = symmetrize_weights(cov, geom, group).astype(np.float32)
    return dataclasses.replace(
        state,
        spectra=sets[0],
        rotations=rotations,
        shifts=shifts,
        half_spectra=np.stack(sets[1:]) if len(sets) > 1 else None,
        coverage=state.coverage if cov is None else cov,
    )


def _symmetrized(stats, params, geom):
    """E-step sums averaged over the point group (data and wedge weights
    separately: each copy fills the others' missing wedges)."""
    if params.align.symmetry == "C1":
        return stats
    group, pad = params.group(), params.align.pad
    return dataclasses.replace(
        stats,
        num=symmetrize_band(stats.num, geom, group, pad),
        wsum=symmetrize_weights(stats.wsum, geom, group),
        num_half=symmetrize_band(stats.num_half, geom, group, pad),
        wsum_half=symmetrize_weights(stats.wsum_half, geom, group),
    )
