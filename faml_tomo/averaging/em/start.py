"""The initial model: the paper's random split, k-means, a consensus split or user references."""

import dataclasses
import logging

import numpy as np

from ...errors import InputError
from ..align import align, check_volume, prepare_reference
from ..consensus import FIT_FRACTION, kmeans, wmd_split
from ..fourier import spectrum
from ..halves import random_halves, shell_index
from ..parallel import add_arrays
from ..symmetry import symmetrize_band, symmetrize_weights
from .estep import estep_chunk
from .model import _count_floor, _half_from_band, _hard_mean, _lowpass, _reference
from .state import EMState
from .symframe import _active

logger = logging.getLogger(__name__)


def _init_sums(parts, labels, k, m):
    num = np.zeros((k, m), dtype=complex)
    cnt = np.zeros((k, m))
    for p in parts:
        lab = labels[p.index]
        num[lab, p.observed] += p.values
        cnt[lab, p.observed] += 1.0
    return num, cnt


def _init_sigma2(parts, i, spec, geom):
    for p in parts:
        if p.index == i:
            herm = geom.herm[p.observed]
            return float(np.sum(herm * np.abs(p.values - spec[p.observed]) ** 2) / p.n_obs)
    return None


def _initial_state(runner, params, references, geom, consensus=None):
    """Initial model (paper §2.4), or from user references, or from the
    result of a consensus run (``init="consensus"``).

    §2.4: class weights 1/K; the subtomograms are split evenly into K random
    sets and each class average is the mean of its set (per component, over
    the subtomograms that observed it); sigma^2 is the mean squared
    difference between a random subtomogram and a random class average over
    the observed components; xi is the box size.
    """
    if consensus is not None:
        return _consensus_state(runner, params, consensus, geom)
    n_part, n = runner.n_particles, geom.n
    k = int(params.n_classes)
    rng = np.random.default_rng(np.random.SeedSequence([params.run_seed(), 0x5EED]))
    m = len(geom.index)
    labels = np.empty(n_part, dtype=int)
    labels[rng.permutation(n_part)] = np.arange(n_part) % k
    if params.initial_split(references) == "kmeans":
        labels = _kmeans_split(runner, params, geom)
    if references is None:
        num, cnt = runner.reduce(_init_sums, labels, k, m, add=add_arrays)  # chunk order
        if params.align.symmetry != "C1" and params.c1_iterations == 0:
            num = symmetrize_band(num, geom, params.group(), params.align.pad)
            cnt = symmetrize_weights(cnt, geom, params.group())
        seen = cnt > _count_floor(params)
        spectra = np.divide(num, cnt, out=np.zeros_like(num), where=seen)
    else:
        if len(references) not in (1, k):
            raise InputError(
                f"got {len(references)} references for K={k} classes (give "
                f"one per class, or one to start all {k} from)"
            )
        refs = [check_volume(r, i, n, name="reference") for i, r in enumerate(references)]
        if len(refs) > 1 and all(np.array_equal(r, refs[0]) for r in refs[1:]):
            # identical classes get identical posteriors and stay identical
            raise InputError(
                f"the {k} references are identical: the classes would never "
                f"separate; start from {k} different maps (e.g. with and "
                f"without the region of interest) or without references"
            )
        spectra = np.stack(
            [spectrum((r - r.mean()) / r.std()).reshape(-1)[geom.index] for r in refs]
        )
        spectra = symmetrize_band(spectra, geom, params.group(), params.align.pad)
        spectra = _fit_reference_scale(runner, spectra, params, geom)
        if len(spectra) < k:
            spectra = _split_reference(runner, params, spectra[0], labels, geom)
    i, kk = int(rng.integers(n_part)), int(rng.integers(k))
    sigma2 = next(v for v in runner.map(_init_sigma2, i, spectra[kk], geom) if v is not None)
    state = EMState(
        iteration=0,
        spectra=spectra,
        alpha=np.full(k, 1.0 / k),
        sigma2=max(sigma2, 1e-12),
        xi2=float(n) ** 2,
    )
    return _independent_halves(state, params, geom, n_part)


def _independent_halves(state, params, geom, n_part):
    """``state`` as the start of independent half-sets (``gold_standard``):
    both halves start from the averages low-passed to the join radius, so
    that nothing beyond it is shared; each half's class masses are its
    members per class (the initial split's, or the class weights of its
    size).  Unchanged without ``gold_standard``."""
    if not params.gold_standard:
        return state
    first = random_halves(n_part, params.seed)
    low = np.stack([_lowpass(s, geom, params.join_radius(geom.n)) for s in state.spectra])
    if state.classes is None:
        sizes = np.array([first.sum(), (~first).sum()], float)
        state.half_gamma = sizes[:, None] * state.alpha[None, :]
    else:
        k = len(state.spectra)
        state.half_gamma = np.stack(
            [np.bincount(state.classes[side], minlength=k) for side in (first, ~first)]
        ).astype(float)
    state.spectra = low
    state.half_spectra = np.stack([low, low])
    if state.r_current is not None:
        # the leave-one-out of the first E-step takes each subtomogram out of
        # these averages: only to where they hold anything
        state.r_current = min(int(state.r_current), params.join_radius(geom.n))
    return state


def _consensus_state(runner, params, consensus, geom):
    """Initial model from a consensus result: the classes split by
    :func:`.consensus.wmd_split` at the consensus poses (to the consensus's
    band), each class the wedge-compensated mean of its members there,
    sigma, the translation prior and the FSC those of the consensus; the
    split is each subtomogram's previous class (leave-one-out from the first
    iteration).

    The classes march again from the start radius (not from the consensus's
    band): a class average made of half the subtomograms at the consensus
    poses holds mostly noise at the consensus's resolution, and scoring the
    classes on it made them swap members wholesale from one iteration to the
    next (measured: 3j9i vs 3cf3, 100 + 100, SNR 0.002, one data seed: sizes
    36/164, 188/12, 0/200, ...; F1 0.34, FA 0.62; marching again from 5
    shells: sizes settling to 105/95, F1 0.90).

    With independent half-sets (``gold_standard``) the classes start from
    these averages low-passed to the join radius, which both halves share
    as they share any start, and the first E-step sees no more than that
    (with marching it starts there anyway; without, its band is capped
    there for that iteration, so its leave-one-out stays where the
    averages hold something).  The
    split thus reaches the halves only as labels and shared low-resolution
    averages; the poses are found again within each half from the first
    iteration.  The consensus run itself shares its reference (it only
    gives the split): run as independent halves, or with each half split
    on its own, it lost the split on a small set (16 subtomograms a half:
    split 26/6, F1 0.69 after 6 iterations; or split 3/13 and 6/10, F1
    0.46 after 3; this start: 0.875 after 6, the paper's random start
    0.48, and without half-sets 1.0)."""
    n_part, k = runner.n_particles, int(params.n_classes)
    c1 = _active(params, None, 0)
    poses = EMState(
        iteration=0,
        spectra=None,
        alpha=np.ones(1),
        sigma2=1.0,
        xi2=1.0,
        rotations=np.asarray(consensus.rotations, float),
        shifts=np.asarray(consensus.shifts, float),
    )
    fit = np.asarray(consensus.scores, float)
    best = np.argsort(-fit, kind="stable")[: max(int(np.ceil(FIT_FRACTION * n_part)), 1)]
    zero = np.zeros(len(geom.index), dtype=complex)
    average = _hard_mean(runner, best, poses, c1, geom, zero)
    radius = int(consensus.radius[-1])
    labels = wmd_split(
        runner,
        poses.rotations,
        poses.shifts,
        fit,
        average,
        geom,
        k,
        radius,
        params.align.pad,
        params.run_seed(),
        params.init_restarts,
    )
    spectra = np.stack(
        [
            _hard_mean(runner, np.flatnonzero(labels == c), poses, c1, geom, average)
            for c in range(k)
        ]
    )
    state = EMState(
        iteration=0,
        spectra=spectra,
        alpha=np.bincount(labels, minlength=k) / float(n_part),
        sigma2=max(float(consensus.sigma) ** 2, 1e-12),
        xi2=float(consensus.xi) ** 2,
        classes=labels,
        max_posterior=np.ones(n_part),
        rotations=poses.rotations,
        shifts=poses.shifts,
        logliks=np.asarray(consensus.logliks, float),
        r_current=min(radius, params.start_radius(geom.n)),
        fsc=None if consensus.fsc is None else [float(v) for v in consensus.fsc],
    )
    return _independent_halves(state, params, geom, n_part)


def _split_reference(runner, params, spec, labels, geom):
    """``K`` starting averages from one reference (RELION's way of starting
    K classes from one map): every subtomogram at its best transform against
    the reference, then the wedge-compensated mean of each random subset of
    ``labels`` at those transforms; components a subset never observed keep
    the reference.  The classes share the reference's frame, so a
    classification mask drawn on it applies to every class."""
    one = dataclasses.replace(params, n_classes=1, mode="fa")
    ref = [_reference(spec, geom, params.align)]
    total = runner.reduce(estep_chunk, ref, np.ones(1), 1.0, float(geom.n) ** 2, one, 0)
    rotations, shifts = np.asarray(total.rotations), np.asarray(total.shifts)
    state = EMState(
        iteration=0,
        spectra=spec[None],
        alpha=np.ones(1),
        sigma2=1.0,
        xi2=1.0,
        rotations=rotations,
        shifts=shifts,
    )
    spectra = np.stack(
        [
            _hard_mean(runner, np.flatnonzero(labels == c), state, params, geom, spec)
            for c in range(int(params.n_classes))
        ]
    )
    logger.info(
        "%d classes started from one reference: random subsets of %s "
        "subtomograms at their transforms against it",
        int(params.n_classes),
        np.bincount(labels).tolist(),
    )
    return spectra


def _init_descriptors(parts, geom, r_hi):
    """Rotation-invariant descriptors: log mean power per shell ``r_min..r_hi``
    over each subtomogram's observed components (the wedge only removes
    samples; for a roughly isotropic shell power the mean is unchanged)."""
    shell = shell_index(geom)
    out = []
    for p in parts:
        sh = shell[p.observed]
        h = geom.herm[p.observed]
        num = np.bincount(sh, weights=h * np.abs(p.values) ** 2, minlength=r_hi + 1)
        den = np.bincount(sh, weights=h, minlength=r_hi + 1)
        sel = slice(geom.r_min, r_hi + 1)
        mean = np.divide(
            num[sel], den[sel], out=np.full(r_hi + 1 - geom.r_min, np.nan), where=den[sel] > 0
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append((p.index, np.log(mean)))
    return out


def _kmeans_split(runner, params, geom):
    """Initial labels from k-means of the shell-power descriptors (standardised,
    reduced to their leading principal components)."""
    n_part, n, k = runner.n_particles, geom.n, int(params.n_classes)
    r_hi = int(min(geom.r_max, max(geom.r_min + 2, n // 4)))
    x = np.full((n_part, r_hi + 1 - geom.r_min), np.nan)
    for chunk in runner.map(_init_descriptors, geom, r_hi):
        for i, d in chunk:
            x[i] = d
    x = x[:, np.all(np.isfinite(x), axis=0)]
    sd = x.std(axis=0)
    x = (x[:, sd > 0] - x[:, sd > 0].mean(axis=0)) / sd[sd > 0]
    if x.shape[1] == 0:
        raise InputError(
            "k-means initialisation: the subtomograms have no usable shell power; use init='random'"
        )
    u, sv, _ = np.linalg.svd(x, full_matrices=False)
    y = u[:, : min(k + 1, x.shape[1])] * sv[: min(k + 1, x.shape[1])]
    rng = np.random.default_rng(np.random.SeedSequence([params.run_seed(), 0x4B4D]))
    labels, _ = kmeans(y, k, rng, params.init_restarts)
    logger.info("k-means initial split: class sizes %s", np.bincount(labels, minlength=k))
    return labels


def _scale_samples(parts, subset, refs, align_params):
    """Per sampled subtomogram: best score and least-squares scale against
    each reference (shape (R,) each)."""
    out = []
    for p in parts:
        if p.index not in subset:
            continue
        scores, scales = [], []
        for r in refs:
            res = align(p, r, align_params)
            n2 = res.ref_norm2[0]
            cc = 0.5 * (p.norm2 + n2 - res.sq_dist[0])
            scores.append(res.scores[0])
            scales.append(cc / n2 if n2 > 0 else 0.0)
        out.append((np.array(scores), np.array(scales)))
    return out


def _fit_reference_scale(runner, spectra, params, geom, n_fit=16):
    """Scale user references to the data: least-squares scale of the aligned
    reference against a few subtomograms, median per class.

    References of the opposite contrast (e.g. a positive density map for
    data where protein is dark) align badly and fit a negative scale; each
    reference is therefore also tried inverted, and the sign whose
    alignments score higher over the sample is kept (logged)."""
    n_part, k = runner.n_particles, len(spectra)
    subset = set(np.unique(np.linspace(0, n_part - 1, min(n_fit, n_part)).astype(int)).tolist())
    both = np.concatenate([spectra, -spectra])
    refs = [
        prepare_reference(spec=_half_from_band(sp, geom), n=geom.n, params=params.align)
        for sp in both
    ]
    samples = [x for chunk in runner.map(_scale_samples, subset, refs, params.align) for x in chunk]
    out = spectra.copy()
    if not samples:
        return out
    scores = np.array([sc for sc, _ in samples])  # (S, 2K)
    scales = np.array([sl for _, sl in samples])
    sign = np.where(scores[:, :k].sum(axis=0) >= scores[:, k:].sum(axis=0), 1, -1)
    cols = np.where(sign > 0, np.arange(k), np.arange(k) + k)
    best = np.argmax(scores[:, cols], axis=1)
    for kk in range(k):
        if sign[kk] < 0:
            logger.warning(
                "reference %d has the opposite contrast of the subtomograms: inverted", kk + 1
            )
        vals = scales[best == kk, cols[kk]]
        if len(vals) == 0:
            vals = scales[np.arange(len(best)), cols[best]]
        med = float(np.median(vals)) * sign[kk]
        out[kk] = spectra[kk] * (med if med != 0 else float(sign[kk]))
    return out
