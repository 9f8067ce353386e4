"""The EM driver: data checks, checkpoint resume, the consensus run and the iterations."""

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...errors import InputError
from ...io.mrc import atomic_path
from ...typealiases import PathLike
from ..align import band_geometry
from ..coverage import class_coverage, gap_message
from ..halves import shell_index
from ..parallel import SerialRunner, make_runner
from ..wedge import check_tilt_range
from .band import _fsc_radius, _next_radius
from .estep import _reference_noise
from .estep_inputs import _estep_inputs, _run_estep
from .model import _m_step
from .params import EMParams
from .reseed import _reseed_starved, _starved
from .runkey import _chunk_summary, _fingerprint
from .start import _initial_state
from .starts import _best_start, _go_on, _legacy_params, _run_label, _start_checkpoint, _starts
from .state import (
    CHECKPOINT_NAME,
    CONSENSUS_CHECKPOINT_NAME,
    ClassificationResult,
    EMState,
    _load_checkpoint,
    _result,
    _save_checkpoint,
)
from .symframe import _active, _frame_switch, _symmetrized, _to_symmetry_frame

logger = logging.getLogger(__name__)

# logged when a run continues from its checkpoint (a protocol step per
# iteration does so every step and may leave it out)
RESUME_MESSAGE = "resuming from %s after iteration %d"


def _as_tilt_ranges(tilt_range, n_particles):
    arr = np.asarray(tilt_range, dtype=float)
    if arr.ndim == 2:
        if len(arr) != n_particles:
            raise InputError(f"got {len(arr)} tilt ranges for {n_particles} subtomograms")
        return [check_tilt_range(r) for r in arr]
    tr = check_tilt_range(tilt_range)
    return [tr] * n_particles


def prepare_data(subtomograms: Any, tilt_range: Sequence, params: EMParams | None = None) -> list:
    """Check and expand all subtomograms in this process.

    Parameters
    ----------
    subtomograms : numpy.ndarray, shape (N, n, n, n), or sequence of volumes
    tilt_range : (float, float) or sequence of N such pairs
    params : EMParams, optional

    Returns
    -------
    list of PreparedSubtomogram
    """
    params = params or EMParams()
    ranges = _as_tilt_ranges(tilt_range, len(subtomograms))
    runner = SerialRunner(subtomograms, ranges, params)
    return [p for c in range(runner.n_chunks) for p in runner.parts[c]]


def _run_consensus(runner, params, checkpoint_dir, comm, mask):
    """The ``K = 1`` run that ``init="consensus"`` starts the classes from
    (without a point group: the classes are turned into their symmetry
    frames later, as in any reference-free run; one set, also for
    independent half-sets: it only gives the split, see
    :func:`.start._consensus_state`)."""
    one = dataclasses.replace(
        params,
        n_classes=1,
        init="random",
        max_iter=int(params.consensus_iterations),
        align=dataclasses.replace(params.align, symmetry="C1"),
        gold_standard=False,
        starts=1,  # the start's own consensus (its checkpoint named after it)
    )
    logger.info(
        "consensus: up to %d iterations with one class before the %d classes are split",
        one.max_iter,
        int(params.n_classes),
    )
    return _classify(
        runner,
        one,
        None,
        checkpoint_dir,
        None,
        comm,
        mask,
        checkpoint_name=CONSENSUS_CHECKPOINT_NAME,
    )


def classify(
    subtomograms: Any,
    tilt_range: Sequence = (-60, 60),
    params: EMParams | None = None,
    references: Sequence | None = None,
    checkpoint_dir: PathLike | None = None,
    callback: Callable | None = None,
    workers: int = 1,
    comm: Any = None,
    mask: np.ndarray | None = None,
    focus_mask: np.ndarray | None = None,
    **overrides: Any,
) -> ClassificationResult:
    """FAML (or FA) averaging and classification of subtomograms.

    Parameters
    ----------
    subtomograms : numpy.ndarray, shape (N, n, n, n), or sequence of volumes
        Cubic boxes of one size, ``[z, y, x]``.  Any sequence works (e.g. a
        lazy reader of files): each volume is read once and expanded.
    tilt_range : (float, float) or sequence of N pairs
        Tilt range in degrees (missing wedge about Y), one for all or one
        per subtomogram.
    params : EMParams, optional
    references : sequence of K volumes, or of one, optional
        Initial averages instead of the initial split (``init``) (scaled to the
        data by a least-squares fit on a few subtomograms).  One volume with
        ``K > 1``: the classes start from random subsets of the subtomograms
        at their transforms against it (RELION's way of starting classes
        from one map).
    checkpoint_dir : str or Path, optional
        Folder for the per-iteration checkpoint; an existing checkpoint for
        the same data and settings is resumed.
    callback : callable, optional
        ``callback(state)`` after every finished iteration (progress; an
        exception raised there stops the run after the checkpoint), and
        once with the restored state when a checkpoint is resumed (a kill
        may have fallen between the checkpoint and the callback's files).
    workers : int
        Processes for the per-subtomogram work (same result as serial).
    comm : mpi4py communicator, optional
        Spread the subtomograms over MPI ranks (same result as serial);
        every rank calls :func:`classify` with the same arguments, only rank
        0 writes the checkpoint.
    mask : numpy.ndarray, shape (n, n, n), optional
        Real-space reference mask in ``[0, 1]`` (soft edges recommended):
        the class averages are multiplied by it before each alignment, so
        that only the masked region drives alignment and likelihood (the
        averages returned are not masked).
    focus_mask : numpy.ndarray, shape (n, n, n), optional
        Classification mask in ``[0, 1]`` (focused classification): in the
        E-step each class is represented by its average inside this mask
        and by the consensus of all classes outside it, so that classes
        differ only where the mask is (e.g. a subunit present or absent
        while the rest varies for other reasons).  The mask is in the frame
        of the averages: use it with references, e.g. one consensus map
        from which the ``K`` classes start.
    **overrides
        Fields of :class:`EMParams` (e.g. ``n_classes=2, mode="fa"``).

    Returns
    -------
    ClassificationResult

    Raises
    ------
    InputError
        Mixed or non-cubic boxes, constant or non-finite volumes, ``K > N``,
        tilt range outside [-90, 90], unusable settings, a mask of the wrong
        size or with values outside [0, 1].
    """
    params = dataclasses.replace(params or EMParams(), **overrides)
    n_part = len(subtomograms)
    if n_part == 0:
        raise InputError("no subtomograms given")
    params.check(n_part)
    ranges = _as_tilt_ranges(tilt_range, n_part)
    with make_runner(subtomograms, ranges, params, workers, comm) as runner:
        return _classify(
            runner, params, references, checkpoint_dir, callback, comm, mask, focus_mask
        )


def _resume(ckpt, fingerprint, comm, callback, legacy=()):
    """The state of a checkpoint of this run (None without one; ``legacy``:
    the run's keys in earlier versions); rank 0 reads it and every rank
    gets it."""
    is_root = comm is None or comm.Get_rank() == 0
    state = None
    if is_root:
        atomic_path(ckpt).remove_stale()  # a kill during a checkpoint write
        state = _load_checkpoint(ckpt, fingerprint, legacy) if ckpt.exists() else None
    if comm is not None:
        state = comm.bcast(state, root=0)
    if state is not None:
        logger.info(RESUME_MESSAGE, ckpt, state.iteration)
        if callback is not None:
            # a kill may have fallen between the checkpoint and the callback
            callback(state)
    return state


def _average_change(spectra, old, geom, radius):
    """Largest relative change of a class average over the shells the E-step
    used (beyond them, noise)."""
    inb = shell_index(geom) <= radius
    diff = np.linalg.norm((spectra - old)[:, inb], axis=1)
    return float(np.max(diff / np.maximum(np.linalg.norm(spectra[:, inb], axis=1), 1e-300)))


def _iterate(runner, state, params, references, geom, mask, focus_mask, log_level=logging.INFO):
    """One EM iteration (re-seeding, E-step, M-step, marching, convergence):
    the next state."""
    n_part = runner.n_particles
    t0 = time.perf_counter()
    it = state.iteration
    if _frame_switch(params, references, it):
        state = _to_symmetry_frame(state, params, geom)
    active = _active(params, references, it)
    starved = _starved(state, active, n_part, references)
    if starved:
        state = _reseed_starved(runner, state, starved, active, geom)
    r_cur = int(state.r_current) if state.r_current is not None else params.start_radius(geom.n)
    refs, loo, halves = _estep_inputs(state, params, geom, r_cur, n_part, mask, focus_mask)
    noise = _reference_noise(state, active, geom, r_cur, n_part, focus_mask)
    stats = _symmetrized(
        _run_estep(runner, refs, state, active, it, loo, halves, noise), active, geom
    )
    classes = np.asarray(stats.classes)
    changes = (
        int(np.count_nonzero(classes != state.classes)) if state.classes is not None else n_part
    )
    spectra, alpha, sigma2, xi2, half, half_gamma = _m_step(state, stats, params, n_part, geom)
    ll = float(stats.loglik)
    change = _average_change(spectra, state.spectra, geom, r_cur)
    r_fsc, fsc, fsc_classes = _fsc_radius(stats, geom, params.fsc_level())
    r_next = _next_radius(r_cur, r_fsc, params, geom)
    converged = (
        it > 0
        and change < params.tol
        and r_next == r_cur
        and changes <= params.class_tol * n_part
        and (active is params or params.align.symmetry == "C1")
    )
    state = EMState(
        iteration=it + 1,
        spectra=spectra,
        alpha=alpha,
        sigma2=float(sigma2),
        xi2=float(xi2),
        log_likelihood=state.log_likelihood + [ll],
        mean_score=state.mean_score + [float(stats.score / n_part)],
        class_changes=state.class_changes + [changes],
        average_change=state.average_change + [change],
        converged=bool(converged),
        r_current=r_next,
        radius=state.radius + [r_cur],
        fsc_radius=state.fsc_radius + [r_fsc],
        fsc=[float(v) for v in fsc],
        classes=classes,
        max_posterior=np.asarray(stats.max_posterior),
        rotations=np.asarray(stats.rotations),
        shifts=np.asarray(stats.shifts),
        n_candidates=np.asarray(stats.n_candidates),
        scores=np.asarray(stats.scores),
        logliks=np.asarray(stats.logliks),
        reseeded=state.reseeded,
        half_spectra=half,
        half_gamma=half_gamma,
        fsc_classes=fsc_classes if half is not None else None,
        coverage=class_coverage(stats.wsum, stats.gamma),
    )
    if state.converged and _starved(state, params, n_part, references):
        state.converged = False  # a class to re-seed first
    logger.log(
        log_level,  # DEBUG when a progress callback reports the iteration instead
        "%s iteration %d: log-likelihood %.6g, mean score %.4f, "
        "%d class changes, average change %.4f, sigma %.4g, band %d shells "
        "(FSC %d, next %d), %.1f s",
        _run_label(params),
        it + 1,
        ll,
        state.mean_score[-1],
        changes,
        change,
        np.sqrt(sigma2),
        r_cur,
        r_fsc,
        r_next,
        time.perf_counter() - t0,
    )
    return state


def _kept_result(states, runs, geom):
    """The result of the start with the highest log-likelihood (converged
    when all starts are)."""
    best, state = _best_start(states)
    result = _result(state, runs[best], geom)
    result.converged = all(st.converged for st in states)
    if len(runs) > 1:
        result.start_log_likelihoods = [
            float(st.log_likelihood[-1]) if st.log_likelihood else None for st in states
        ]
        logger.info(
            "%d starts, final log-likelihoods %s: start %d kept",
            len(runs),
            result.start_log_likelihoods,
            best + 1,
        )
    return result


def _classify(
    runner,
    params,
    references,
    checkpoint_dir,
    callback,
    comm,
    mask=None,
    focus_mask=None,
    checkpoint_name=CHECKPOINT_NAME,
):
    summary = runner.map(_chunk_summary)
    n = summary[0][0]
    geom = band_geometry(n, *params.align.band(n))
    _, mask, focus_mask = _fingerprint(
        params, runner.n_particles, summary, references, mask, focus_mask
    )
    if (
        params.align.symmetry != "C1"
        and references is None
        and params.c1_iterations >= params.max_iter
    ):
        # a warning, not an error: the protocol runs one iteration per step
        logger.warning(
            "symmetry %s without references is imposed after %d iterations "
            "without it (c1_iterations); this run stops after %d",
            params.align.symmetry,
            params.c1_iterations,
            params.max_iter,
        )
    is_root = comm is None or comm.Get_rank() == 0
    runs = _starts(params)
    ckpts = [_start_checkpoint(checkpoint_dir, checkpoint_name, p) for p in runs]

    def key(p):
        return _fingerprint(p, runner.n_particles, summary, references, mask, focus_mask)[0]

    keys = [key(p) for p in runs]
    states = []
    for p, ck in zip(runs, ckpts):
        # one start: the restored state goes to the callback now; several: the
        # best of them, below
        old = [key(q) for q in _legacy_params(p)]
        state = _resume(ck, key(p), comm, callback if len(runs) == 1 else None, old) if ck else None
        states.append(state)
    if len(runs) > 1 and callback is not None and any(st is not None for st in states):
        callback(_best_start([st for st in states if st is not None])[1])
    for i, p in enumerate(runs):
        if states[i] is None:
            consensus = None
            if p.initial_split(references) == "consensus":
                consensus = _run_consensus(runner, p, checkpoint_dir, comm, mask)
            states[i] = _initial_state(runner, p, references, geom, consensus)
    level = logging.INFO if callback is None else logging.DEBUG
    while _go_on(states, params.max_iter):
        # the starts stay at the same iteration (one left behind by a kill
        # catches up first) and stop together, when all have converged
        low = min(st.iteration for st in states)
        for i, p in enumerate(runs):
            if states[i].iteration > low:
                continue
            states[i] = _iterate(runner, states[i], p, references, geom, mask, focus_mask, level)
            if ckpts[i] is not None and is_root:
                _save_checkpoint(ckpts[i], states[i], keys[i])
        if callback is not None and len({st.iteration for st in states}) == 1:
            callback(_best_start(states)[1])
    result = _kept_result(states, runs, geom)
    if result.coverage_gaps is not None and gap_message(result.coverage_gaps):
        logger.warning("%s", gap_message(result.coverage_gaps))
    return result
