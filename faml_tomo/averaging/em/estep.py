"""The E-step: candidate transforms, posteriors and sufficient statistics per subtomogram."""

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import logsumexp

from ..align import AlignmentResult, align, band_geometry, translation_search
from ..backrotate import back_rotate as _back_rotate
from ..backrotate import padded_observed as _padded_observed
from ..symmetry import symmetry_group
from ..voronoi import voronoi_weights
from .band import _fsc_weights
from .model import _hybrid, _lowpass, _reference
from .state import ChunkStats


def _rng(seed, iteration, index, k):
    return np.random.default_rng(
        np.random.SeedSequence([int(seed), int(iteration), int(index), int(k)])
    )


@dataclass
class LeaveOneOut:
    """What the E-step needs to take each subtomogram's own contribution out
    of the average it is aligned to (FAML, ``leave_one_out``).

    Attributes
    ----------
    spectra : numpy.ndarray, complex, shape (K, M)
        Unfiltered class averages (band points).
    filter : numpy.ndarray, shape (M,)
        Per band point weight that makes the E-step references from
        ``spectra`` (FSC weight times the marching low-pass).
    gamma : numpy.ndarray, shape (K,)
        Posterior mass of each class in the M-step that made ``spectra``.
    classes, max_posterior, rotations, shifts : numpy.ndarray
        Per subtomogram, from that E-step.
    mask : numpy.ndarray, shape (n, n, n), optional
        Real-space reference mask (see :func:`classify`).
    radius : int, optional
        Band radius of the E-step (reapplied after masking).
    focus_mask : numpy.ndarray, shape (n, n, n), optional
        Classification mask (see :func:`classify`).
    low, gamma_low : numpy.ndarray, shapes (M,) bool and (K,), optional
        Gold standard: band points where ``spectra`` is the joined average
        of both half-sets, and the class masses of that average.
    """

    spectra: np.ndarray
    filter: np.ndarray
    gamma: np.ndarray
    classes: np.ndarray
    max_posterior: np.ndarray
    rotations: np.ndarray
    shifts: np.ndarray
    mask: np.ndarray | None = None
    radius: int | None = None
    focus_mask: np.ndarray | None = None
    low: np.ndarray | None = None
    gamma_low: np.ndarray | None = None


def _leave_one_out_refs(part, refs, loo, padded, geom, ap):
    """``refs`` with the subtomogram's previous class average replaced by the
    average without its own contribution.

    The M-step (eq. 10) adds ``gamma (R^-1 (w X) - R^-1 w A) / g_k`` per
    candidate; it is approximated by the subtomogram's best previous
    transform with the mass of its class (the posteriors are concentrated).
    Without this, at low SNR a subtomogram's own noise in the average
    (``~ |X|^2 / N`` in the score) keeps it at its previous pose."""
    k = int(loo.classes[part.index])
    g = float(loo.gamma[k])
    if g <= 1.0 + 1e-9:
        return refs
    vals, mask = _back_rotate(part, padded, loo.rotations[part.index], loo.shifts[part.index], geom)
    # Symmetrised, the own term sits in G rotated copies of weight 1/G each;
    # only the unrotated one correlates with the subtomogram's own noise.
    n_sym = len(symmetry_group(ap.symmetry))
    own = float(loo.max_posterior[part.index]) * (vals - mask * loo.spectra[k]) / (g * n_sym)
    if loo.low is not None:
        # the joined shells hold the subtomogram with the mass of both halves
        own = np.where(loo.low, own * (g / max(float(loo.gamma_low[k]), g)), own)
    spec = loo.filter * (loo.spectra[k] - own)
    if loo.focus_mask is not None:
        spec = _hybrid(
            spec[None],
            np.ones(1),
            loo.focus_mask,
            geom,
            consensus=loo.filter * np.tensordot(loo.gamma / loo.gamma.sum(), loo.spectra, axes=1),
        )[0]
        if loo.radius is not None:
            spec = _lowpass(spec, geom, loo.radius)
    out = list(refs)
    out[k] = _reference(spec, geom, ap, loo.mask, loo.radius)
    return out


def _shared_candidates(part, refs, cands, ap, top):
    """Every class scored at the same rotations: the best ``top`` candidate
    rotations of each class, each class with its own best translation.

    Each class's likelihood is a Voronoi-weighted sum over candidate nodes;
    with each class searched on its own, a class's nodes are where *its*
    average fits the subtomogram's noise best, and at low SNR that selection
    bias outweighs a small difference between the classes (measured: 4v4r
    with and without 9 % of its mass, SNR 0.01, started from the truth:
    F1 0.76-0.85 with own nodes, 0.91-0.94 with shared ones).  Comparing the
    classes on common nodes removes it, as common random numbers do for a
    Monte-Carlo comparison."""
    tops = [c.subset(np.arange(min(top, len(c)))) for c in cands]
    rotations = np.concatenate([t.rotations for t in tops])
    owner = np.concatenate([np.full(len(t), j) for j, t in enumerate(tops)])
    out = []
    for k, ref in enumerate(refs):
        # its own best rotations were searched already (same function, same values)
        shifts, scores = np.zeros((len(rotations), 3)), np.zeros(len(rotations))
        sq, rn2 = np.zeros(len(rotations)), np.zeros(len(rotations))
        own, other = owner == k, owner != k
        shifts[own], scores[own] = tops[k].shifts, tops[k].scores
        sq[own], rn2[own] = tops[k].sq_dist, tops[k].ref_norm2
        shifts[other], scores[other], sq[other], rn2[other] = translation_search(
            part, ref, rotations[other], ap
        )
        res = AlignmentResult(
            rotations=rotations.copy(),
            shifts=shifts,
            scores=scores,
            rot_scores=scores.copy(),
            sq_dist=sq,
            ref_norm2=rn2,
        )
        out.append(res.subset(np.argsort(-scores, kind="stable")))
    return out


def _fa_pick(cands, log_alpha, sigma2, xi2, const, first, acc):
    """FA: the single best candidate over all classes.  Returns the
    subtomogram's log-likelihood, its class, candidate and posterior, and
    the selected ``(class, candidate, weight)``."""
    k = int(np.argmax([c.scores[0] for c in cands]))
    c = cands[k]
    t2 = float(c.shifts[0] @ c.shifts[0])
    ll_i = float(log_alpha[k] - c.sq_dist[0] / (2 * sigma2) - t2 / (2 * xi2) + const)
    acc.sq += float(c.sq_dist[0])
    acc.t2 += t2
    acc.gamma[k] += 1.0
    acc.gamma_half[k] += float(first)
    return ll_i, k, 0, 1.0, [(k, 0, 1.0)]


def _faml_posteriors(
    part,
    cands,
    log_alpha,
    sigma2,
    xi2,
    const,
    first,
    acc,
    params,
    iteration,
    group,
    geom,
    loo,
    ref_noise,
):
    """FAML: posteriors over every class's candidates (eqs. 14-15, Voronoi
    weights), accumulated into ``acc``.  Returns as :func:`_fa_pick`."""
    n_k = len(cands)
    logw, owner = [], []
    for k, c in enumerate(cands):
        v = voronoi_weights(
            c.rotations,
            c.shifts,
            params.n_voronoi,
            params.alpha_trd,
            rng=_rng(params.run_seed(), iteration, part.index, k),
            group=group,
        )
        t2 = np.sum(c.shifts**2, axis=1)
        with np.errstate(divide="ignore"):
            lw = log_alpha[k] + np.log(v) - c.sq_dist / (2 * sigma2) - t2 / (2 * xi2)
        logw.append(lw)
        owner.append(np.full(len(c), k))
    logw = np.concatenate(logw)
    owner = np.concatenate(owner)
    ll_i = float(logsumexp(logw) + const)
    if ref_noise is not None:
        # E|X - A_est|^2 = E|X - A|^2 + noise energy of A_est on the
        # observed components (independent of X: leave-one-out)
        energy, mass = ref_noise
        if loo is not None:
            # its previous class's reference lacks its own contribution
            mass = mass.copy()
            own = int(loo.classes[part.index])
            mass[own] -= float(loo.max_posterior[part.index])
        noise = np.where(mass >= 1.0, energy / np.maximum(mass, 1.0), 0.0)
        logw = logw + 0.5 * (part.n_obs / geom.n_full) * noise[owner]
    gamma = np.exp(logw - logsumexp(logw))
    mass = np.bincount(owner, weights=gamma, minlength=n_k)
    k = int(np.argmax(mass))
    start = sum(len(cands[j]) for j in range(k))
    phi = int(np.argmax(gamma[start : start + len(cands[k])]))
    sel = []
    pos = 0
    for kk, c in enumerate(cands):
        g = gamma[pos : pos + len(c)]
        pos += len(c)
        acc.gamma[kk] += g.sum()
        acc.gamma_half[kk] += g.sum() * first
        acc.sq += float(g @ c.sq_dist)
        acc.t2 += float(g @ np.sum(c.shifts**2, axis=1))
        sel.extend((kk, j, float(g[j])) for j in np.flatnonzero(g >= params.min_posterior))
    return ll_i, k, phi, float(mass[k]), sel


def _estep_one(
    part, refs, alpha, sigma2, xi2, params, iteration, acc, loo=None, halves=None, ref_noise=None
):
    """Candidates, posteriors and statistics of one subtomogram, into ``acc``."""
    ap = params.align
    geom = band_geometry(part.n, *ap.band(part.n))
    n_k = len(refs)
    if halves is None:
        first = part.index % 2 == 0
    else:
        refs, loo, first = halves.side(part.index, refs, loo)
    padded = _padded_observed(part, geom, ap.pad)
    if loo is not None:
        refs = _leave_one_out_refs(part, refs, loo, padded, geom, ap)
    cands = [align(part, refs[k], ap) for k in range(n_k)]
    if (
        params.mode == "faml"
        and n_k > 1
        and int(params.shared_candidates) > 0
        and not params.gold_standard
    ):
        cands = _shared_candidates(part, refs, cands, ap, int(params.shared_candidates))
    group = params.group() if ap.symmetry != "C1" else None
    const = -0.5 * part.n_obs * np.log(2 * np.pi * sigma2) - 1.5 * np.log(2 * np.pi * xi2)
    with np.errstate(divide="ignore"):
        log_alpha = np.log(alpha)
    if params.mode == "fa":
        ll_i, k, phi, post_k, sel = _fa_pick(cands, log_alpha, sigma2, xi2, const, first, acc)
    else:
        ll_i, k, phi, post_k, sel = _faml_posteriors(
            part,
            cands,
            log_alpha,
            sigma2,
            xi2,
            const,
            first,
            acc,
            params,
            iteration,
            group,
            geom,
            loo,
            ref_noise,
        )
    acc.loglik += ll_i
    acc.missing += geom.n_full - part.n_obs
    for kk, j, g in sel:
        c = cands[kk]
        vals, mask = _back_rotate(part, padded, c.rotations[j], c.shifts[j], geom)
        acc.num[kk] += g * vals
        acc.wsum[kk] += g * mask
        if first:
            acc.num_half[kk] += g * vals
            acc.wsum_half[kk] += g * mask
    best = cands[k]
    acc.score += float(best.scores[phi])
    acc.index.append(part.index)
    acc.classes.append(k)
    acc.max_posterior.append(post_k)
    acc.rotations.append(best.rotations[phi])
    acc.shifts.append(best.shifts[phi])
    acc.n_candidates.append(len(best))
    acc.scores.append(float(best.scores[phi]))
    acc.logliks.append(ll_i)


def estep_chunk(
    parts: list,
    refs: list,
    alpha: np.ndarray,
    sigma2: float,
    xi2: float,
    params: Any,
    iteration: int,
    loo: LeaveOneOut | None = None,
    halves: Any = None,
    ref_noise: tuple | None = None,
) -> ChunkStats:
    """E-step statistics of a chunk of subtomograms (a pure function).

    Parameters
    ----------
    parts : list of PreparedSubtomogram
    refs : list of PreparedReference
        One per class.
    alpha : numpy.ndarray, shape (K,)
    sigma2, xi2 : float
    params : EMParams
    iteration : int
        Number of the iteration (seeds the Voronoi samples).
    loo : LeaveOneOut, optional
    halves : HalfSets, optional
        Half-set membership (default: even/odd index) and, for independent
        half-sets, the second half-set's references and leave-one-out data.
    ref_noise : (numpy.ndarray, numpy.ndarray), optional
        Per class, the noise energy of its reference over the whole band
        times its mass, in units of ``sigma2``, and the mass
        (:attr:`EMParams.noise_correction`).

    Returns
    -------
    ChunkStats
    """
    n = parts[0].n
    geom = band_geometry(n, *params.align.band(n))
    acc = ChunkStats.zeros(len(refs), len(geom.index))
    for part in parts:
        _estep_one(part, refs, alpha, sigma2, xi2, params, iteration, acc, loo, halves, ref_noise)
    return acc


def _reference_noise(state, params, geom, radius, n_part, focus_mask=None):
    """Expected noise energy of each class's E-step reference over the band,
    in units of ``sigma^2`` (:attr:`EMParams.noise_correction`), as
    ``(energy times mass, mass)`` per class, or None.

    The eq. 10 update keeps ``1 - f`` of the previous average where a
    fraction ``f`` of the class observed a component, so at its fixed point
    a component's noise variance is ``sigma^2 / (g (2 - f))`` for class mass
    ``g``; the E-step's filter (FSC weight, marching low-pass) scales it by
    its square.  Not for independent half-sets (their averages share the
    shells below the join radius, and the per-half noise model measured
    worse: F1 1.0 -> 0.95 on test_averaging_gold_standard's two classes).
    With a classification mask only the masked part of a reference is the
    class's own (the rest is the consensus, the same noise for every
    class): the energy is scaled by the mask's mean square (white noise
    spreads evenly over the box)."""
    if not (
        params.noise_correction
        and params.mode == "faml"
        and len(state.alpha) > 1
        and state.coverage is not None
        and state.half_spectra is None
    ):
        return None
    filt = np.ones(len(geom.index))
    if params.fsc_weight and state.fsc is not None:
        filt = filt * _fsc_weights(state.fsc, geom)
    filt = _lowpass(filt, geom, radius)
    # symmetrised averages hold G copies of each member
    mass = np.asarray(state.alpha, float) * n_part * len(params.group())
    cover = np.nan_to_num(np.asarray(state.coverage, float), nan=0.0)
    per_point = geom.herm * filt**2 / (2.0 - np.clip(cover, 0.0, 1.0))
    inside = 1.0 if focus_mask is None else float(np.mean(np.square(focus_mask)))
    return inside * per_point.sum(axis=1), mass
