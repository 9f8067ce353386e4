"""Model state, chunk statistics, the result of a run and checkpoints."""

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import CheckpointMismatch, InputError
from ...geometry import matrix_to_euler
from ...io.arrays import save_npz
from ..align import band_geometry
from ..coverage import coverage_gaps
from ..fourier import volume_from_spectrum
from ..halves import random_halves, subset_numbers
from .band import _model_spectra
from .model import _half_from_band


CHECKPOINT_NAME = "faml_checkpoint.npz"
CONSENSUS_CHECKPOINT_NAME = "faml_consensus_checkpoint.npz"


@dataclass
class EMState:
    """Model and history after a number of finished iterations.

    Attributes
    ----------
    iteration : int
        Finished iterations.
    spectra : numpy.ndarray, complex, shape (K, M)
        Class averages ``A_k`` at the band points (:func:`.align.band_geometry`).
    alpha : numpy.ndarray, shape (K,)
    sigma2, xi2 : float
        Noise variance and translation-prior variance (voxels^2).
    log_likelihood, mean_score : list of float
        Per finished iteration (of the model the E-step used).
    class_changes : list of int
        Subtomograms that changed class, per iteration.
    average_change : list of float
        Largest relative change of a class average, per iteration.
    converged : bool
    r_current : int
        Band radius (shells) the next E-step uses (frequency marching).
    radius : list of int
        Band radius each finished iteration's E-step used.
    fsc_radius : list of int
        Half-set FSC resolution (shells) after each iteration.
    fsc : list of float
        Last half-set FSC curve, shells ``r_min..r_max`` (None before the
        first iteration).
    classes, max_posterior, rotations, shifts, n_candidates, scores, logliks : ndarray
        Per-subtomogram outcome of the last E-step (None before the first).
    reseeded : list of [int, int, int, int]
        ``[iteration, class, from_class, subtomograms]`` of each class
        re-seeded before that iteration's E-step (0-based classes; see
        ``EMParams.min_class_size``).
    half_spectra : numpy.ndarray, complex, shape (2, K, M)
        Gold standard: each half-set's class averages (``spectra`` is their
        mass-weighted combination).
    half_gamma : numpy.ndarray, shape (2, K)
        Gold standard: class masses of each half-set in the last M step.
    fsc_classes : numpy.ndarray, shape (K, S)
        Gold standard: last per-class FSC of the half-sets, shells
        ``r_min..r_max``.
    coverage : numpy.ndarray, float32, shape (K, M)
        Fraction of each class's subtomograms that observed each band point
        in the last E-step (:func:`.coverage.class_coverage`).
    """

    iteration: int
    spectra: np.ndarray
    alpha: np.ndarray
    sigma2: float
    xi2: float
    log_likelihood: list = field(default_factory=list)
    mean_score: list = field(default_factory=list)
    class_changes: list = field(default_factory=list)
    average_change: list = field(default_factory=list)
    converged: bool = False
    r_current: int | None = None
    radius: list = field(default_factory=list)
    fsc_radius: list = field(default_factory=list)
    fsc: list | None = None
    classes: np.ndarray | None = None
    max_posterior: np.ndarray | None = None
    rotations: np.ndarray | None = None
    shifts: np.ndarray | None = None
    n_candidates: np.ndarray | None = None
    scores: np.ndarray | None = None
    logliks: np.ndarray | None = None
    reseeded: list = field(default_factory=list)
    half_spectra: np.ndarray | None = None
    half_gamma: np.ndarray | None = None
    fsc_classes: np.ndarray | None = None
    coverage: np.ndarray | None = None


@dataclass
class ChunkStats:
    """Additive sufficient statistics of a chunk of subtomograms, plus the
    per-subtomogram outcomes (in index order)."""

    num: np.ndarray  # (K, M) complex: sum gamma R^-1 (w X)
    wsum: np.ndarray  # (K, M): sum gamma R^-1 w
    gamma: np.ndarray  # (K,): sum gamma
    num_half: np.ndarray | None = None  # (K, M) complex: num over the first half-set
    wsum_half: np.ndarray | None = None  # (K, M): wsum over the first half-set
    gamma_half: np.ndarray | None = None  # (K,): gamma over the first half-set
    sq: float = 0.0  # sum gamma D
    t2: float = 0.0  # sum gamma |t|^2
    missing: float = 0.0  # sum (J - J_i^o)
    loglik: float = 0.0
    score: float = 0.0
    index: list = field(default_factory=list)
    classes: list = field(default_factory=list)
    max_posterior: list = field(default_factory=list)
    rotations: list = field(default_factory=list)
    shifts: list = field(default_factory=list)
    n_candidates: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    logliks: list = field(default_factory=list)

    @classmethod
    def zeros(cls, k: int, m: int) -> "ChunkStats":
        return cls(
            num=np.zeros((k, m), dtype=complex),
            wsum=np.zeros((k, m)),
            gamma=np.zeros(k),
            num_half=np.zeros((k, m), dtype=complex),
            wsum_half=np.zeros((k, m)),
            gamma_half=np.zeros(k),
        )

    def add(self, other: "ChunkStats") -> "ChunkStats":
        """Add ``other`` (the next chunk in order) into this one."""
        assert self.num_half is not None and self.wsum_half is not None  # zeros()
        assert self.gamma_half is not None
        self.num += other.num
        self.wsum += other.wsum
        self.num_half += other.num_half
        self.wsum_half += other.wsum_half
        self.gamma_half += other.gamma_half
        self.gamma += other.gamma
        for name in ("sq", "t2", "missing", "loglik", "score"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in (
            "index",
            "classes",
            "max_posterior",
            "rotations",
            "shifts",
            "n_candidates",
            "scores",
            "logliks",
        ):
            getattr(self, name).extend(getattr(other, name))
        return self


@dataclass
class ClassificationResult:
    """Outcome of :func:`classify`.

    Attributes
    ----------
    averages : numpy.ndarray, shape (K, n, n, n)
        Class averages in real space ``[z, y, x]`` (band-limited, mean 0;
        weighted per shell by the half-set FSC when ``fsc_weight``).
    classes : numpy.ndarray of int, shape (N,)
        Class of each subtomogram (largest posterior class mass).
    max_posterior : numpy.ndarray, shape (N,)
        That class's posterior mass (1 in FA mode).
    rotations : numpy.ndarray, shape (N, 3, 3)
        Best transform's rotation ``R`` (average onto subtomogram,
        :mod:`faml_tomo.geometry` convention).
    shifts : numpy.ndarray, shape (N, 3)
        Its translation ``t`` in voxels ``(x, y, z)``.
    n_candidates : numpy.ndarray of int, shape (N,)
        Candidate transforms of the subtomogram for its class.
    scores : numpy.ndarray, shape (N,)
        Constrained correlation of the best transform.
    alpha : numpy.ndarray, shape (K,)
        Class weights.
    sigma : float
        Noise standard deviation per Fourier component of the orthonormal
        spectrum (equal to the real-space SD of white noise; subtomograms
        normalised to SD 1 first unless ``normalize=False``).
    xi : float
        Translation prior standard deviation in voxels.
    log_likelihood : list of float
        Per iteration (FA: of its hard assignment).
    mean_score : list of float
        Mean best constrained correlation per iteration.
    class_changes : list of int
    average_change : list of float
        Largest relative change of a class average per iteration.
    n_iterations : int
    converged : bool
    mode : str
    seed : int
    radius : list of int
        Band radius (shells, cycles per box) each iteration's E-step used
        (frequency marching; constant without it).
    fsc_radius : list of int
        Half-set FSC resolution in shells after each iteration.
    logliks : numpy.ndarray, shape (N,)
        Each subtomogram's log-likelihood ``log p(X_i)`` under the model of
        the last E-step (FA: of its single best transform); they sum to the
        last entry of :attr:`log_likelihood`.
    fsc : numpy.ndarray, shape (S,)
        Last half-set FSC, class-mass weighted, at shells :attr:`fsc_shells`:
        of the independent half-sets with ``gold_standard``, otherwise of
        the even vs odd subtomograms (they share the reference, so it is
        optimistic).
    fsc_shells : numpy.ndarray of int, shape (S,)
        Fourier shells (cycles per box) of :attr:`fsc`.
    reseeded : list of [int, int, int, int]
        ``[iteration, class, from_class, subtomograms]`` (0-based classes) of
        each class re-seeded, before that iteration's E-step, after losing its
        subtomograms (``EMParams.min_class_size``).
    gold_standard : bool
        Whether the half-sets were independent (:attr:`fsc` is then a
        gold-standard FSC, read at 0.143).
    fsc_classes : numpy.ndarray, shape (K, S)
        Gold standard: the FSC of each class's half-set averages.
    subsets : numpy.ndarray of int, shape (N,)
        Half-set of each subtomogram, 1 or 2 (RELION's ``rlnRandomSubset``;
        even/odd index without ``gold_standard``).
    join_radius : int
        Gold standard: shells up to which the half-sets shared their
        averages (a resolution there, or one shell beyond, is not measured).
    coverage_gaps : numpy.ndarray, shape (K,)
        Fraction of each class's band observed by fewer than 10 % of its
        subtomograms at their last poses: the missing wedge left unfilled in
        the average (:mod:`.coverage`; above 5 % a warning is logged).
    start : int
        The independent start returned (0-based; :attr:`EMParams.starts`).
    start_log_likelihoods : list of float, optional
        With several starts: each start's final log-likelihood.
    """

    averages: np.ndarray
    classes: np.ndarray
    max_posterior: np.ndarray
    rotations: np.ndarray
    shifts: np.ndarray
    n_candidates: np.ndarray
    scores: np.ndarray
    alpha: np.ndarray
    sigma: float
    xi: float
    log_likelihood: list
    mean_score: list
    class_changes: list
    average_change: list
    n_iterations: int
    converged: bool
    mode: str
    seed: int
    radius: list | None = None
    fsc_radius: list | None = None
    logliks: np.ndarray | None = None
    fsc: np.ndarray | None = None
    fsc_shells: np.ndarray | None = None
    reseeded: list = field(default_factory=list)
    gold_standard: bool = False
    fsc_classes: np.ndarray | None = None
    subsets: np.ndarray | None = None
    join_radius: int | None = None
    coverage_gaps: np.ndarray | None = None
    start: int = 0
    start_log_likelihoods: list | None = None

    def euler_angles(self) -> np.ndarray:
        """RELION ZYZ ``(rot, tilt, psi)`` in degrees of :attr:`rotations`,
        shape (N, 3)."""
        return matrix_to_euler(self.rotations)


def _save_checkpoint(path, state, fingerprint):
    arrays = {k: v for k, v in dataclasses.asdict(state).items() if isinstance(v, np.ndarray)}
    meta = {
        k: v
        for k, v in dataclasses.asdict(state).items()
        if not isinstance(v, np.ndarray) and v is not None
    }
    meta["fingerprint"] = fingerprint
    save_npz(path, meta=np.array(json.dumps(meta)), **arrays)


def _load_checkpoint(path, fingerprint, legacy=()):
    """The state saved at ``path`` by the run of key ``fingerprint`` (or of
    one of the ``legacy`` keys the same run had in earlier versions)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in z.files if k != "meta"}
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: unreadable checkpoint ({exc})") from exc
    if meta.pop("fingerprint") not in (fingerprint, *legacy):
        raise CheckpointMismatch(
            f"{path}: checkpoint was written for other data or settings; "
            f"use another folder or remove it"
        )
    return EMState(**meta, **arrays)


def result_from_state(state: EMState, params: Any, n: int) -> ClassificationResult:
    """The :class:`ClassificationResult` of a state (e.g. in a ``callback``,
    to save every iteration's averages).

    Parameters
    ----------
    state : EMState
        After at least one finished iteration.
    params : EMParams
        The run's settings.
    n : int
        Box size in voxels.
    """
    return _result(state, params, band_geometry(n, *params.align.band(n)))


def _result(state, params, geom):
    n = geom.n
    avgs = np.stack(
        [
            volume_from_spectrum(_half_from_band(s, geom), n)
            for s in _model_spectra(state, params, geom)
        ]
    )
    return ClassificationResult(
        averages=avgs,
        classes=state.classes,
        max_posterior=state.max_posterior,
        rotations=state.rotations,
        shifts=state.shifts,
        n_candidates=state.n_candidates,
        scores=state.scores,
        alpha=state.alpha,
        sigma=float(np.sqrt(state.sigma2)),
        xi=float(np.sqrt(state.xi2)),
        log_likelihood=list(state.log_likelihood),
        mean_score=list(state.mean_score),
        class_changes=list(state.class_changes),
        average_change=list(state.average_change),
        n_iterations=state.iteration,
        converged=state.converged,
        mode=params.mode,
        seed=params.seed,
        radius=list(state.radius),
        fsc_radius=list(state.fsc_radius),
        logliks=state.logliks,
        fsc=None if state.fsc is None else np.asarray(state.fsc, dtype=float),
        fsc_shells=None
        if state.fsc is None
        else np.arange(geom.r_min, geom.r_min + len(state.fsc)),
        reseeded=[list(e) for e in state.reseeded],
        gold_standard=params.gold_standard,
        fsc_classes=None if state.fsc_classes is None else np.asarray(state.fsc_classes),
        subsets=subset_numbers(
            random_halves(len(state.classes), params.seed)
            if params.gold_standard
            else np.arange(len(state.classes)) % 2 == 0
        )
        if state.classes is not None
        else None,
        join_radius=params.join_radius(n) if params.gold_standard else None,
        coverage_gaps=None if state.coverage is None else coverage_gaps(state.coverage, geom),
        start=int(params.start),
    )
