"""FAML expectation-maximisation and the FA comparator (paper §2.3-2.4).

Data model (eq. 7): ``X_i = R_phi_i A_k_i + G_i`` in Fourier space, ``G_i``
white Gaussian noise of variance ``sigma^2`` per component, observed only
inside each subtomogram's wedge.  With the orthonormal centred transform of
:mod:`.fourier` and sums over the full spectrum inside the shell band, the
likelihood is the real-space Gaussian likelihood, ``sigma`` the real-space
noise level.

One iteration (Algorithm 1):

1. E-step, per subtomogram ``i`` and class ``k``: fast alignment
   (:func:`.align.align`) gives the candidate set ``Phi_ik`` with squared
   distances ``D = sum_j w_ij |(R_phi A_k)_j - X_ij|^2``; Monte-Carlo Voronoi
   weights ``v~`` (:func:`.voronoi.voronoi_weights`); posteriors (eqs. 14-15)
   in log space::

       log e(phi, k) = log alpha_k - D / (2 sigma^2) - |t|^2 / (2 xi^2)
       P(k, phi | X_i) v~ = softmax over (k, phi) of [log e + log v~]

2. M-step: eqs. 10-13 (averages with the unobserved part of each back-rotated
   subtomogram filled by the current average, class weights, noise level,
   translation prior).

The E-step of one subtomogram is a pure function of the subtomogram, the
prepared averages, the model scalars, the seed and the iteration number (its
Voronoi samples come from ``SeedSequence([seed, iteration, index, k])``), and
returns additive sufficient statistics.  Statistics are summed over fixed
chunks of subtomograms in index order and the chunks are summed in order, so
the result does not depend on how chunks are spread over workers.

Resolution control and initialisation (defaults; ``marching=False,
fsc_weight=False, leave_one_out=False`` give the paper's algorithm):

* frequency marching: the E-step sees the averages low-passed to a radius
  that starts at ``n / 8`` shells and widens with the half-set FSC (even/odd
  subtomogram index) computed from the M-step sums each iteration;
* FSC weighting of the references and the returned averages,
  ``sqrt(2 FSC / (1 + FSC))`` per shell;
* leave-one-out (FAML): each subtomogram is scored against its previous class
  average minus its own contribution (self-bias at low SNR);
* FAML with ``K > 1`` (``init="auto"``): a one-class consensus run first,
  then the classes start from k-means of the principal components of the
  wedge-masked differences to the consensus (:mod:`.consensus`), instead of
  the paper's random split (``init="random"``; ``init="kmeans"``: k-means of
  rotation-invariant shell-power descriptors);
* FAML with ``K > 1``: every class is scored on the same candidate
  rotations (``shared_candidates``), the union of each class's best.

FA mode (the paper's comparator) assigns each subtomogram to its single best
candidate over all classes (highest constrained correlation) and averages
the aligned subtomograms with missing-wedge compensation
(``sum R^-1 (w X) / sum R^-1 w`` where at least ``fa_min_weight`` subtomograms
observed a component, zero elsewhere).

Each finished iteration can be written to a checkpoint (``.npz``, atomic
rename); a run started again with the same data, settings and folder resumes
after the last finished iteration and ends identical to an uninterrupted run.
"""
import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import logsumexp

from ..errors import InputError
from ..geometry import matrix_to_euler
from ..io.arrays import save_npz
from ..io.mrc import atomic_path
from .align import (AlignmentResult, AlignParams, align, band_geometry, check_volume,
                    prepare_reference, translation_search)
from .backrotate import back_rotate as _back_rotate
from .backrotate import hard_sums as _hard_sums
from .backrotate import padded_observed as _padded_observed
from .consensus import FIT_FRACTION, kmeans, wmd_split
from .coverage import class_coverage, coverage_gaps, gap_message
from .fourier import PaddedSpectrum, spectrum, volume_from_spectrum
from .halves import (FSC_GOLD, HalfSets, class_fsc, combine_halves, fsc_radius,
                     joined_spectra, random_halves, shell_index, subset_numbers)
from .parallel import SerialRunner, add_arrays, make_runner
from .symmetry import (check_symmetry, symmetrize_band, symmetrize_observed,
                       symmetrize_weights, symmetry_group, turn_weights)
from .voronoi import voronoi_weights
from .wedge import check_tilt_range

logger = logging.getLogger(__name__)

__all__ = ["EMParams", "EMState", "ChunkStats", "ClassificationResult", "classify",
           "prepare_data", "estep_chunk", "result_from_state", "check_mask",
           "CHECKPOINT_NAME", "CONSENSUS_CHECKPOINT_NAME"]

CHECKPOINT_NAME = "faml_checkpoint.npz"
CONSENSUS_CHECKPOINT_NAME = "faml_consensus_checkpoint.npz"
_MODES = ("faml", "fa")
_INITS = ("auto", "consensus", "kmeans", "random")
_XI2_MIN = 0.25          # translation prior SD floor: half a voxel


@dataclass(frozen=True)
class EMParams:
    """Settings of a classification run.

    Attributes
    ----------
    n_classes : int
        Number of classes ``K`` (1: reference-free averaging).
    mode : {"faml", "fa"}
        Maximum likelihood over candidate sets, or alignment-only averaging
        with hard assignment to the best candidate.
    max_iter : int
        Largest number of iterations (the paper runs 20).
    tol : float
        Converged when every class average changed by less than this
        fraction (``||A_new - A_old|| / ||A_new||`` over the band) ...
    class_tol : float
        ... and at most this fraction of subtomograms changed class.  (The
        log-likelihood is a sum over all components of all subtomograms, so
        a relative tolerance on it would stop far too early at low SNR.)
    n_voronoi : int
        Monte-Carlo samples per candidate set.
    alpha_trd : float
        Translation weight of the transform distance ``tau``.
    seed : int
        Seed of the initial split and of all Voronoi samples.
    normalize : bool
        Scale each subtomogram to mean 0, standard deviation 1 first.
    min_posterior : float
        Candidates with a smaller posterior are left out of the average
        update (their mass keeps the current average; at most
        ``max_candidates * min_posterior`` per subtomogram).
    fa_min_weight : float
        FA: components observed by fewer subtomograms are set to zero.
    chunk_size : int
        Subtomograms per statistics chunk (fixes the summation order).
    align : AlignParams
        Fast-alignment settings.
    init : {"auto", "consensus", "random", "kmeans"}
        Initial split for ``K > 1`` without references.  ``"consensus"``:
        ``consensus_iterations`` of ``K = 1`` first, then the classes start
        from k-means of the principal components of the subtomograms'
        wedge-masked differences to the consensus at its poses
        (:mod:`.consensus`); measured on a subtle pair (4v4r with and without
        9 % of its mass, SNR 0.01) it finds splits that EM from a random
        start does not.  ``"auto"`` (default): ``"consensus"`` for FAML
        without independent half-sets, ``"random"`` otherwise (FA stays the
        paper's comparator).  ``"random"`` is the
        paper's random even split (§2.4; with marching and leave-one-out it
        no longer locks in on the measured cases); ``"kmeans"`` clusters
        rotation-invariant descriptors of the subtomograms (log radial power
        spectrum over the observed part of each low-frequency shell;
        k-means++ with ``init_restarts`` seeded starts, the lowest
        within-cluster sum kept) -- good for classes of different size, but
        it can lock EM into a wrong split when the classes have similar
        power spectra (measured: two same-size blob phantoms, F1 0.37 vs 1.0
        random).  Ignored for ``K = 1``.
    init_restarts : int
        Seeded k-means starts.
    consensus_iterations : int
        Iterations of the ``K = 1`` consensus run of ``init="consensus"``
        (it stops earlier when converged); checkpointed beside the main
        checkpoint (:data:`CONSENSUS_CHECKPOINT_NAME`).
    marching : bool
        Frequency marching: the E-step sees the averages low-passed to a
        current radius ``r_cur`` (shells), starting at ``r_start`` and
        widened after every iteration to where the Fourier shell correlation
        of two half-set averages (even/odd subtomogram index, wedge-compensated)
        falls below ``fsc_threshold``, at most ``march_step`` shells at a time,
        never narrowed and never beyond the band of ``align``.  This curbs the
        self-bias of each particle's own noise in the averages at low SNR (the
        posteriors otherwise go one-hot on noise).  ``False``: the paper's
        full-band behaviour (the whole ``align`` band from the start).
    r_start : int, optional
        First radius of the marching (default ``max(3, n // 8)``); also the
        join radius of gold-standard half-sets.
    fsc_threshold : float
        Half-set FSC level that defines the resolution reached without
        ``gold_standard`` (0.5: the half-sets share the reference, so the
        FSC is optimistic).  Gold-standard runs use 0.143.
    march_step : int
        Largest widening per iteration, in shells.
    fsc_weight : bool
        Weight each shell of the averages by ``C = sqrt(2 FSC / (1 + FSC))``
        of the last half-set FSC (negative FSC: 0), the expected correlation
        of the full average with the truth (Rosenthal & Henderson 2003), both
        for the E-step references and for the returned averages; suppresses
        shells that are mostly noise.  ``False``: unweighted (the paper).
    min_class_size : float
        Reference-free runs with ``K > 1``: a class whose posterior mass
        falls below this many subtomograms is re-seeded once, from the
        worst-fitting half (lowest log-likelihood) of the largest class at
        their best transforms (like splitting the largest class in CL2D).
        Small data sets otherwise lose classes for good: an average made of
        one or two noisy subtomograms attracts nobody.  ``0`` disables it.
    leave_one_out : bool
        FAML: align and score each subtomogram against its previous class
        average minus its own contribution (from its best previous transform),
        which removes the self-bias of its own noise in the average (at SNR
        0.003 and N = 100 it is worth ~10 nats and freezes every particle at
        its first pose).  One extra reference expansion per subtomogram and
        iteration.  ``False``: the paper (FA mode never uses it).
    noise_correction : bool
        FAML with ``K > 1``: class posteriors compare the subtomogram with
        each class's *true* average, not with its noisy estimate: the
        expected noise energy of the estimate over the subtomogram's
        observed components (about ``sigma^2 / g_k`` per component for a
        class of mass ``g_k``, ``g_k - 1`` for its own class with
        leave-one-out, times the square of the filter the E-step applies) is
        taken off the squared distance.  Without it a smaller class's
        noisier average costs every subtomogram about ``J / (2 g_k)`` nats
        (``J``: observed components in the E-step band), so a class that
        shrank, or was re-seeded, cannot win its members back.  Measured
        (``bench_faml_classify_snr.py``'s pair: 4v4r with and without 9 % of
        its mass, 100 + 100, 32^3 at 12 Å/px, seed 0): F1 0.39 -> 1.0 at
        SNR 0.05 and 0.38 -> 0.97 at SNR 0.02 (FA: 1.0 and 0.50).  Only the
        posteriors use it; the reported log-likelihood is the plain one.
        Not applied with ``gold_standard``.  ``False``: the paper.
    shared_candidates : int
        FAML with ``K > 1``: every class is scored at the best
        ``shared_candidates`` candidate rotations of *every* class (each
        class at its own best translation), so that the class posteriors
        compare the classes on the same nodes of the pose integral.  Each
        class searched alone (the paper) picks the nodes where its own
        average best fits the noise, a bias that at low SNR swamps a small
        difference between classes (measured, 4v4r with and without 9 % of
        its mass, 100 + 100, SNR 0.01, started from the truth: F1 0.76-0.85
        -> 0.91-0.94).  Costs ``K (K - 1) shared_candidates`` translation
        searches per subtomogram on top of the ``K max_candidates`` of the
        search.
        Not applied with ``gold_standard`` (measured worse there: two
        phantoms, 20 + 20, SNR 0.05, four data/run seeds: F1 1.0 / 1.0 /
        1.0 / 0.55 on own candidates, 0.975 / 1.0 / 0.90 / 0.42 shared;
        without half-sets the same runs gave 0.95 / 1.0 / 1.0 / 1.0 and
        1.0 on all four).  ``0``: each class on its own candidates (the
        paper).
    c1_iterations : int
        Runs with a point group (``align.symmetry``) and no references:
        iterations without symmetry before each class average is turned into
        its symmetry frame (:func:`.symmetry_frame.find_symmetry_frame`) and
        the group is imposed; a reference-free average starts in an
        arbitrary frame, and symmetrising it about the wrong axes blurs it.
        With references the group is imposed from the start (they must be
        in the symmetry frame, as in RELION).
    gold_standard : bool
        Independent half-sets (Scheres & Chen 2012): the subtomograms are
        split at random (seeded) into two halves before the first
        iteration; each half is aligned and classified only against
        averages made from its own half, which start from the initial
        averages low-passed to the join radius (``r_start`` or
        ``max(3, n // 8)`` shells) and share only the shells up to it (as
        RELION's ``--low_resol_join_halves``: keeps the halves' classes and
        frames in register).  The per-class FSC of the two halves at 0.143
        is the resolution; marching and FSC weighting follow it.  The
        returned averages join the halves.  ``False``: one set, and an
        even/odd FSC that shares the reference (optimistic).
    """
    n_classes: int = 1
    mode: str = "faml"
    max_iter: int = 20
    tol: float = 0.01
    class_tol: float = 0.005
    n_voronoi: int = 10000
    alpha_trd: float = 1.0
    seed: int = 0
    normalize: bool = True
    min_posterior: float = 1e-4
    fa_min_weight: float = 1.0
    chunk_size: int = 8
    align: AlignParams = field(default_factory=AlignParams)
    init: str = "auto"
    init_restarts: int = 10
    marching: bool = True
    r_start: int = None
    fsc_threshold: float = 0.5
    march_step: int = 2
    fsc_weight: bool = True
    leave_one_out: bool = True
    noise_correction: bool = True
    min_class_size: float = 3.0
    c1_iterations: int = 10
    gold_standard: bool = False
    shared_candidates: int = 10
    consensus_iterations: int = 20

    def join_radius(self, n):
        """Radius (shells) of the low-pass start: the first marching radius
        and the join radius of gold-standard half-sets, box ``n``."""
        r_min, r_max = self.align.band(n)
        r0 = max(3, n // 8) if self.r_start is None else int(self.r_start)
        return int(min(max(r0, r_min), r_max))

    def start_radius(self, n):
        """First E-step band radius for a box of ``n`` voxels."""
        return self.join_radius(n) if self.marching else self.align.band(n)[1]

    def initial_split(self, references=None):
        """The initial split ``init`` resolves to (``"random"`` for ``K = 1``
        and with references, where no split is made)."""
        if int(self.n_classes) == 1 or references is not None:
            return "random"
        if self.init == "auto":
            return ("consensus" if self.mode == "faml" and not self.gold_standard
                    else "random")
        return self.init

    def fsc_level(self):
        """FSC level that defines the resolution (0.143 for independent
        half-sets, ``fsc_threshold`` otherwise)."""
        return FSC_GOLD if self.gold_standard else self.fsc_threshold

    def check(self, n_particles):
        """Raise :class:`InputError` for unusable settings."""
        if self.mode not in _MODES:
            raise InputError(f"mode must be one of {_MODES}, got {self.mode!r}")
        if int(self.n_classes) < 1:
            raise InputError(f"number of classes K must be >= 1, got {self.n_classes}")
        if self.n_classes > n_particles:
            raise InputError(f"number of classes K={self.n_classes} exceeds the number of "
                             f"subtomograms N={n_particles}")
        if int(self.max_iter) < 1:
            raise InputError(f"max_iter must be >= 1, got {self.max_iter}")
        if int(self.n_voronoi) < 1:
            raise InputError(f"n_voronoi must be >= 1, got {self.n_voronoi}")
        if self.alpha_trd < 0:
            raise InputError(f"alpha_trd must be >= 0, got {self.alpha_trd}")
        if int(self.chunk_size) < 1:
            raise InputError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if not 4 <= int(self.align.lmax) <= 64:
            raise InputError(f"angular bandwidth lmax must be between 4 and 64, got "
                             f"{self.align.lmax}")
        if not self.tol >= 0:
            raise InputError(f"convergence tolerance must be >= 0, got {self.tol}")
        if int(self.align.max_candidates) < 1:
            raise InputError(f"max_candidates must be >= 1, got {self.align.max_candidates}")
        if self.init not in _INITS:
            raise InputError(f"init must be one of {_INITS}, got {self.init!r}")
        if self.init == "consensus" and self.gold_standard and int(self.n_classes) > 1:
            raise InputError("init='consensus' aligns all subtomograms to one consensus "
                             "before the split: not with gold-standard half-sets (use "
                             "init='random' or 'auto')")
        if int(self.consensus_iterations) < 1:
            raise InputError(f"consensus_iterations must be >= 1, got "
                             f"{self.consensus_iterations}")
        if int(self.init_restarts) < 1:
            raise InputError(f"init_restarts must be >= 1, got {self.init_restarts}")
        if int(self.march_step) < 1:
            raise InputError(f"march_step must be >= 1, got {self.march_step}")
        if self.r_start is not None and int(self.r_start) < 1:
            raise InputError(f"r_start must be >= 1, got {self.r_start}")
        if not self.min_class_size >= 0:
            raise InputError(f"min_class_size must be >= 0, got {self.min_class_size}")
        if int(self.shared_candidates) < 0:
            raise InputError(f"shared_candidates must be >= 0, got {self.shared_candidates}")
        if int(self.c1_iterations) < 0:
            raise InputError(f"c1_iterations must be >= 0, got {self.c1_iterations}")
        if self.gold_standard and n_particles < 2 * int(self.n_classes):
            raise InputError(f"gold-standard half-sets need at least 2 K = "
                             f"{2 * int(self.n_classes)} subtomograms, got {n_particles}")
        if check_symmetry(self.align.symmetry) != self.align.symmetry:
            raise InputError(f"symmetry {self.align.symmetry!r}: write it as "
                             f"{check_symmetry(self.align.symmetry)!r}")

    def group(self):
        """Rotation matrices of the averages' point group, shape (G, 3, 3)."""
        return symmetry_group(self.align.symmetry)

    def fingerprint(self):
        """Settings that change results (not the stopping rule), as JSON."""
        d = dataclasses.asdict(self)
        for k in ("max_iter", "tol", "class_tol"):
            d.pop(k)
        # what the split resolves to (checkpoints from before "auto" resume)
        d["init"] = self.initial_split()
        if d["init"] != "consensus":
            d.pop("consensus_iterations")
        if d["align"]["symmetry"] == "C1":
            # settings that do nothing without symmetry: checkpoints made
            # before symmetry existed still resume
            d["align"].pop("symmetry")
            d.pop("c1_iterations")
        if not d["gold_standard"]:
            d.pop("gold_standard")
        if d["n_classes"] == 1 or d["mode"] != "faml":
            d.pop("noise_correction")           # no effect: such checkpoints still resume
        if d["n_classes"] == 1 or d["mode"] != "faml" or d.get("gold_standard"):
            d.pop("shared_candidates")
        return json.dumps(d, sort_keys=True)


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
    r_current: int = None
    radius: list = field(default_factory=list)
    fsc_radius: list = field(default_factory=list)
    fsc: list = None
    classes: np.ndarray = None
    max_posterior: np.ndarray = None
    rotations: np.ndarray = None
    shifts: np.ndarray = None
    n_candidates: np.ndarray = None
    scores: np.ndarray = None
    logliks: np.ndarray = None
    reseeded: list = field(default_factory=list)
    half_spectra: np.ndarray = None
    half_gamma: np.ndarray = None
    fsc_classes: np.ndarray = None
    coverage: np.ndarray = None


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
    radius: list = None
    fsc_radius: list = None
    logliks: np.ndarray = None
    fsc: np.ndarray = None
    fsc_shells: np.ndarray = None
    reseeded: list = field(default_factory=list)
    gold_standard: bool = False
    fsc_classes: np.ndarray = None
    subsets: np.ndarray = None
    join_radius: int = None
    coverage_gaps: np.ndarray = None

    def euler_angles(self):
        """RELION ZYZ ``(rot, tilt, psi)`` in degrees of :attr:`rotations`,
        shape (N, 3)."""
        return matrix_to_euler(self.rotations)


@dataclass
class ChunkStats:
    """Additive sufficient statistics of a chunk of subtomograms, plus the
    per-subtomogram outcomes (in index order)."""
    num: np.ndarray            # (K, M) complex: sum gamma R^-1 (w X)
    wsum: np.ndarray           # (K, M): sum gamma R^-1 w
    gamma: np.ndarray          # (K,): sum gamma
    num_half: np.ndarray = None    # (K, M) complex: num over the first half-set
    wsum_half: np.ndarray = None   # (K, M): wsum over the first half-set
    gamma_half: np.ndarray = None  # (K,): gamma over the first half-set
    sq: float = 0.0            # sum gamma D
    t2: float = 0.0            # sum gamma |t|^2
    missing: float = 0.0       # sum (J - J_i^o)
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
    def zeros(cls, k, m):
        return cls(num=np.zeros((k, m), dtype=complex), wsum=np.zeros((k, m)),
                   gamma=np.zeros(k), num_half=np.zeros((k, m), dtype=complex),
                   wsum_half=np.zeros((k, m)), gamma_half=np.zeros(k))

    def add(self, other):
        """Add ``other`` (the next chunk in order) into this one."""
        self.num += other.num
        self.wsum += other.wsum
        self.num_half += other.num_half
        self.wsum_half += other.wsum_half
        self.gamma_half += other.gamma_half
        self.gamma += other.gamma
        for name in ("sq", "t2", "missing", "loglik", "score"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("index", "classes", "max_posterior", "rotations", "shifts",
                     "n_candidates", "scores", "logliks"):
            getattr(self, name).extend(getattr(other, name))
        return self


# --------------------------------------------------------------------------- data

def _as_tilt_ranges(tilt_range, n_particles):
    arr = np.asarray(tilt_range, dtype=float)
    if arr.ndim == 2:
        if len(arr) != n_particles:
            raise InputError(f"got {len(arr)} tilt ranges for {n_particles} subtomograms")
        return [check_tilt_range(r) for r in arr]
    tr = check_tilt_range(tilt_range)
    return [tr] * n_particles


def prepare_data(subtomograms, tilt_range, params=None):
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


def _chunk_summary(parts):
    """Box size and a digest of a chunk (data fingerprint for checkpoints)."""
    h = hashlib.sha1()
    for p in parts:
        h.update(np.array([p.norm2, p.n_obs, *p.tilt_range]).tobytes())
        h.update(np.ascontiguousarray(p.values[:64]).tobytes())
    return parts[0].n, h.hexdigest()


# --------------------------------------------------------------------------- E-step

def _rng(seed, iteration, index, k):
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(iteration),
                                                         int(index), int(k)]))


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
    mask: np.ndarray = None
    radius: int = None
    focus_mask: np.ndarray = None
    low: np.ndarray = None
    gamma_low: np.ndarray = None


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
    vals, mask = _back_rotate(part, padded, loo.rotations[part.index],
                              loo.shifts[part.index], geom)
    # Symmetrised, the own term sits in G rotated copies of weight 1/G each;
    # only the unrotated one correlates with the subtomogram's own noise.
    n_sym = len(symmetry_group(ap.symmetry))
    own = float(loo.max_posterior[part.index]) * (vals - mask * loo.spectra[k]) / (g * n_sym)
    if loo.low is not None:
        # the joined shells hold the subtomogram with the mass of both halves
        own = np.where(loo.low, own * (g / max(float(loo.gamma_low[k]), g)), own)
    spec = loo.filter * (loo.spectra[k] - own)
    if loo.focus_mask is not None:
        spec = _hybrid(spec[None], np.ones(1), loo.focus_mask, geom,
                       consensus=loo.filter * np.tensordot(loo.gamma / loo.gamma.sum(),
                                                           loo.spectra, axes=1))[0]
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
            part, ref, rotations[other], ap)
        res = AlignmentResult(rotations=rotations.copy(), shifts=shifts, scores=scores,
                              rot_scores=scores.copy(), sq_dist=sq, ref_norm2=rn2)
        out.append(res.subset(np.argsort(-scores, kind="stable")))
    return out


def _estep_one(part, refs, alpha, sigma2, xi2, params, iteration, acc, loo=None,
               halves=None, ref_noise=None):
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
    if (params.mode == "faml" and n_k > 1 and int(params.shared_candidates) > 0
            and not params.gold_standard):
        cands = _shared_candidates(part, refs, cands, ap, int(params.shared_candidates))
    group = params.group() if ap.symmetry != "C1" else None
    const = -0.5 * part.n_obs * np.log(2 * np.pi * sigma2) - 1.5 * np.log(2 * np.pi * xi2)
    with np.errstate(divide="ignore"):
        log_alpha = np.log(alpha)
    if params.mode == "fa":
        best = [c.scores[0] for c in cands]
        k = int(np.argmax(best))
        c = cands[k]
        sel = [(k, 0, 1.0)]
        t2 = float(c.shifts[0] @ c.shifts[0])
        ll_i = float(log_alpha[k] - c.sq_dist[0] / (2 * sigma2) - t2 / (2 * xi2) + const)
        post_k, phi, n_c = 1.0, 0, len(c)
        acc.sq += float(c.sq_dist[0])
        acc.t2 += t2
        acc.gamma[k] += 1.0
        acc.gamma_half[k] += float(first)
    else:
        logw, owner = [], []
        for k, c in enumerate(cands):
            v = voronoi_weights(c.rotations, c.shifts, params.n_voronoi, params.alpha_trd,
                                rng=_rng(params.seed, iteration, part.index, k),
                                group=group)
            t2 = np.sum(c.shifts ** 2, axis=1)
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
        post_k = float(mass[k])
        start = sum(len(cands[j]) for j in range(k))
        phi = int(np.argmax(gamma[start:start + len(cands[k])]))
        n_c = len(cands[k])
        sel = []
        pos = 0
        for kk, c in enumerate(cands):
            g = gamma[pos:pos + len(c)]
            pos += len(c)
            acc.gamma[kk] += g.sum()
            acc.gamma_half[kk] += g.sum() * first
            acc.sq += float(g @ c.sq_dist)
            acc.t2 += float(g @ np.sum(c.shifts ** 2, axis=1))
            sel.extend((kk, j, float(g[j])) for j in np.flatnonzero(g >= params.min_posterior))
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
    acc.n_candidates.append(n_c)
    acc.scores.append(float(best.scores[phi]))
    acc.logliks.append(ll_i)


def estep_chunk(parts, refs, alpha, sigma2, xi2, params, iteration, loo=None, halves=None,
                ref_noise=None):
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
        _estep_one(part, refs, alpha, sigma2, xi2, params, iteration, acc, loo, halves,
                   ref_noise)
    return acc


# --------------------------------------------------------------------------- model

def _half_from_band(values, geom):
    n = geom.n
    half = np.zeros(n * n * (n // 2 + 1), dtype=complex)
    half[geom.index] = values
    return half.reshape(n, n, n // 2 + 1)


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


def check_mask(mask, n):
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


def _count_floor(params):
    """Smallest observation count a mean divides by: symmetrised counts are
    interpolated, and a component seen by half a subtomogram in one copy or
    less is left out (dividing by a near-zero count gave values of 1e13 and a
    noise sigma of 1e9); without symmetry any count above zero, as always."""
    g = len(params.group())
    return 0.5 / g if g > 1 else 0.0


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
    rng = np.random.default_rng(np.random.SeedSequence([int(params.seed), 0x5EED]))
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
            raise InputError(f"got {len(references)} references for K={k} classes (give "
                             f"one per class, or one to start all {k} from)")
        refs = [check_volume(r, i, n, name="reference") for i, r in enumerate(references)]
        if len(refs) > 1 and all(np.array_equal(r, refs[0]) for r in refs[1:]):
            # identical classes get identical posteriors and stay identical
            raise InputError(f"the {k} references are identical: the classes would never "
                             f"separate; start from {k} different maps (e.g. with and "
                             f"without the region of interest) or without references")
        spectra = np.stack([spectrum((r - r.mean()) / r.std()).reshape(-1)[geom.index]
                            for r in refs])
        spectra = symmetrize_band(spectra, geom, params.group(), params.align.pad)
        spectra = _fit_reference_scale(runner, spectra, params, geom)
        if len(spectra) < k:
            spectra = _split_reference(runner, params, spectra[0], labels, geom)
    i, kk = int(rng.integers(n_part)), int(rng.integers(k))
    sigma2 = next(v for v in runner.map(_init_sigma2, i, spectra[kk], geom) if v is not None)
    state = EMState(iteration=0, spectra=spectra, alpha=np.full(k, 1.0 / k),
                    sigma2=max(sigma2, 1e-12), xi2=float(n) ** 2)
    if params.gold_standard:
        # both half-sets start from the averages low-passed to the join
        # radius: nothing beyond it is shared
        first = random_halves(n_part, params.seed)
        low = np.stack([_lowpass(s, geom, params.join_radius(n)) for s in spectra])
        sizes = np.array([first.sum(), (~first).sum()], float)
        state.spectra = low
        state.half_spectra = np.stack([low, low])
        state.half_gamma = sizes[:, None] * state.alpha[None, :]
    return state


def _run_consensus(runner, params, checkpoint_dir, comm, mask):
    """The ``K = 1`` run that ``init="consensus"`` starts the classes from
    (without a point group: the classes are turned into their symmetry
    frames later, as in any reference-free run)."""
    one = dataclasses.replace(params, n_classes=1, init="random",
                              max_iter=int(params.consensus_iterations),
                              align=dataclasses.replace(params.align, symmetry="C1"))
    logger.info("consensus: up to %d iterations with one class before the %d classes "
                "are split", one.max_iter, int(params.n_classes))
    return _classify(runner, one, None, checkpoint_dir, None, comm, mask,
                     checkpoint_name=CONSENSUS_CHECKPOINT_NAME)


def _consensus_state(runner, params, consensus, geom):
    """Initial model from a consensus result: the classes split by
    :func:`.consensus.wmd_split` at the consensus poses, each class the
    wedge-compensated mean of its members there, sigma, the translation
    prior, the band radius and the FSC those of the consensus; the split is
    each subtomogram's previous class (leave-one-out from the first
    iteration)."""
    n_part, k = runner.n_particles, int(params.n_classes)
    c1 = _active(params, None, 0)
    poses = EMState(iteration=0, spectra=None, alpha=np.ones(1), sigma2=1.0, xi2=1.0,
                    rotations=np.asarray(consensus.rotations, float),
                    shifts=np.asarray(consensus.shifts, float))
    fit = np.asarray(consensus.scores, float)
    best = np.argsort(-fit, kind="stable")[:max(int(np.ceil(FIT_FRACTION * n_part)), 1)]
    zero = np.zeros(len(geom.index), dtype=complex)
    average = _hard_mean(runner, best, poses, c1, geom, zero)
    radius = int(consensus.radius[-1])
    labels = wmd_split(runner, poses.rotations, poses.shifts, fit, average, geom, k, radius,
                       params.align.pad, params.seed, params.init_restarts)
    spectra = np.stack([_hard_mean(runner, np.flatnonzero(labels == c), poses, c1, geom,
                                   average) for c in range(k)])
    return EMState(iteration=0, spectra=spectra,
                   alpha=np.bincount(labels, minlength=k) / float(n_part),
                   sigma2=max(float(consensus.sigma) ** 2, 1e-12),
                   xi2=float(consensus.xi) ** 2, classes=labels,
                   max_posterior=np.ones(n_part), rotations=poses.rotations,
                   shifts=poses.shifts, logliks=np.asarray(consensus.logliks, float),
                   r_current=radius,
                   fsc=None if consensus.fsc is None else [float(v) for v in consensus.fsc])


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
    state = EMState(iteration=0, spectra=spec[None], alpha=np.ones(1), sigma2=1.0, xi2=1.0,
                    rotations=rotations, shifts=shifts)
    spectra = np.stack([_hard_mean(runner, np.flatnonzero(labels == c), state, params, geom,
                                   spec) for c in range(int(params.n_classes))])
    logger.info("%d classes started from one reference: random subsets of %s "
                "subtomograms at their transforms against it", int(params.n_classes),
                np.bincount(labels).tolist())
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
        mean = np.divide(num[sel], den[sel], out=np.full(r_hi + 1 - geom.r_min, np.nan),
                         where=den[sel] > 0)
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
        raise InputError("k-means initialisation: the subtomograms have no usable "
                         "shell power; use init='random'")
    u, sv, _ = np.linalg.svd(x, full_matrices=False)
    y = u[:, :min(k + 1, x.shape[1])] * sv[:min(k + 1, x.shape[1])]
    rng = np.random.default_rng(np.random.SeedSequence([int(params.seed), 0x4B4D]))
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
    subset = set(np.unique(np.linspace(0, n_part - 1, min(n_fit, n_part)).astype(int))
                 .tolist())
    both = np.concatenate([spectra, -spectra])
    refs = [prepare_reference(spec=_half_from_band(sp, geom), n=geom.n, params=params.align)
            for sp in both]
    samples = [x for chunk in runner.map(_scale_samples, subset, refs, params.align)
               for x in chunk]
    out = spectra.copy()
    if not samples:
        return out
    scores = np.array([sc for sc, _ in samples])          # (S, 2K)
    scales = np.array([sl for _, sl in samples])
    sign = np.where(scores[:, :k].sum(axis=0) >= scores[:, k:].sum(axis=0), 1, -1)
    cols = np.where(sign > 0, np.arange(k), np.arange(k) + k)
    best = np.argmax(scores[:, cols], axis=1)
    for kk in range(k):
        if sign[kk] < 0:
            logger.warning("reference %d has the opposite contrast of the subtomograms: "
                           "inverted", kk + 1)
        vals = scales[best == kk, cols[kk]]
        if len(vals) == 0:
            vals = scales[np.arange(len(best)), cols[best]]
        med = float(np.median(vals)) * sign[kk]
        out[kk] = spectra[kk] * (med if med != 0 else float(sign[kk]))
    return out


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
        half = np.stack([
            _update_spectra(state.half_spectra[0], stats.num_half, stats.wsum_half,
                            half_gamma[0], params),
            _update_spectra(state.half_spectra[1], stats.num - stats.num_half,
                            stats.wsum - stats.wsum_half, half_gamma[1], params)])
        spectra = combine_halves(half, half_gamma)
    alpha = stats.gamma / n_part
    sigma2 = (stats.sq + state.sigma2 * stats.missing) / (n_part * geom.n_full)
    xi2 = max(stats.t2 / (3.0 * n_part), _XI2_MIN)
    return spectra, alpha, max(sigma2, 1e-12), xi2, half, half_gamma


def _starved(state, params, n_part, references):
    """Classes to re-seed before the next E-step (see ``min_class_size``):
    posterior mass below the limit, not re-seeded before; never with user
    references, for ``K = 1`` or before the first E-step."""
    if (references is not None or len(state.spectra) < 2 or params.min_class_size <= 0
            or state.classes is None):
        return []
    done = {int(e[1]) for e in state.reseeded}
    return [c for c in range(len(state.spectra))
            if state.alpha[c] * n_part < params.min_class_size and c not in done]


def _reseed_starved(runner, state, starved, params, geom):
    """Re-seed classes that lost (almost) all their subtomograms.

    Each class in ``starved`` gets the wedge-compensated mean of the
    worst-fitting half (lowest log-likelihood) of the largest class's members
    at their best transforms; the components none of them observed keep the
    largest class's average.  Uses only the state (so a resumed run makes the
    same decision as an uninterrupted one).  Returns the new state.
    """
    n_part = runner.n_particles
    spectra, alpha = state.spectra.copy(), state.alpha.copy()
    half = half_gamma = first = None
    if state.half_spectra is not None:
        half, half_gamma = state.half_spectra.copy(), state.half_gamma.copy()
        first = random_halves(n_part, params.seed)
    classes = np.asarray(state.classes).copy()
    max_post = np.asarray(state.max_posterior, float).copy()
    events = []
    for c in starved:
        j = int(np.argmax(alpha))
        members = np.flatnonzero(classes == j)
        if j == c or len(members) < 2 * max(params.min_class_size, 1.0):
            continue                         # nothing worth splitting
        take = members[np.argsort(state.logliks[members], kind="stable")[:len(members) // 2]]
        if half is None:
            spectra[c] = _hard_mean(runner, take, state, params, geom, spectra[j])
        else:
            # each half-set's new class from its own members only
            for h, side in enumerate((first, ~first)):
                sub = take[side[take]]
                half[h, c] = _hard_mean(runner, sub, state, params, geom, half[h, j])
                half_gamma[h, j] = max(half_gamma[h, j] - len(sub), 0.0)
                half_gamma[h, c] = len(sub)
            spectra = combine_halves(half, half_gamma)
        moved = len(take) / n_part
        alpha[j] = max(alpha[j] - moved, 1.0 / n_part)
        alpha[c] = moved
        alpha = alpha / alpha.sum()
        classes[take] = c
        max_post[take] = 1.0
        events.append([int(state.iteration + 1), c, j, int(len(take))])
        logger.info("class %d kept %.2f subtomograms: re-seeded from the %d worst-fitting "
                    "of class %d's %d", c + 1, float(state.alpha[c] * n_part), len(take),
                    j + 1, len(members))
    if not events:
        return state
    return dataclasses.replace(state, spectra=spectra, alpha=alpha, classes=classes,
                               max_posterior=max_post, reseeded=state.reseeded + events,
                               half_spectra=half, half_gamma=half_gamma)


def _hard_mean(runner, members, state, params, geom, fallback):
    """Wedge-compensated (symmetrised) mean of ``members`` at their best
    transforms; ``fallback`` where none of them observed a component."""
    num, cnt = runner.reduce(_hard_sums, set(np.asarray(members).tolist()), state.rotations,
                             state.shifts, geom, params.align.pad, add=add_arrays)
    num = symmetrize_band(num, geom, params.group(), params.align.pad)
    cnt = symmetrize_weights(cnt, geom, params.group())
    seen = cnt > _count_floor(params)
    return np.where(seen, num / np.where(seen, cnt, 1.0), fallback)


# --------------------------------------------------------------------------- resolution

def _lowpass(values, geom, radius):
    """Band values with the shells beyond ``radius`` set to zero."""
    if radius >= geom.r_max:
        return values
    return np.where(shell_index(geom) <= radius, values, 0.0)


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


# --------------------------------------------------------------------------- checkpoint

def _save_checkpoint(path, state, fingerprint):
    arrays = {k: v for k, v in dataclasses.asdict(state).items()
              if isinstance(v, np.ndarray)}
    meta = {k: v for k, v in dataclasses.asdict(state).items()
            if not isinstance(v, np.ndarray) and v is not None}
    meta["fingerprint"] = fingerprint
    save_npz(path, meta=np.array(json.dumps(meta)), **arrays)


def _load_checkpoint(path, fingerprint):
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in z.files if k != "meta"}
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: unreadable checkpoint ({exc})") from exc
    if meta.pop("fingerprint") != fingerprint:
        raise InputError(f"{path}: checkpoint was written for other data or settings; "
                         f"use another folder or remove it")
    return EMState(**meta, **arrays)


# --------------------------------------------------------------------------- driver

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
    return np.stack([spectrum(focus_mask * v + (1 - focus_mask) * cons).reshape(-1)[geom.index]
                     for v in vols])


def _side_spectra(state, params, geom):
    """The averages each half-set is aligned to: one set (the state's), or
    for independent half-sets each half's own, joined below the join radius."""
    if state.half_spectra is None:
        return [state.spectra]
    r_join = params.join_radius(geom.n)
    return [joined_spectra(h, state.spectra, geom, r_join) for h in state.half_spectra]


def _leave_one_out_data(state, params, geom, radius, n_part, mask=None, focus_mask=None,
                        side=None):
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
    return LeaveOneOut(spectra=spectra, filter=filt, gamma=gamma,
                       classes=state.classes, max_posterior=state.max_posterior,
                       rotations=state.rotations, shifts=state.shifts, mask=mask,
                       radius=radius, focus_mask=focus_mask, low=low, gamma_low=gamma_low)


def _estep_inputs(state, params, geom, r_cur, n_part, mask, focus_mask):
    """References and leave-one-out data of the first (or only) set, and the
    :class:`HalfSets` (None without independent half-sets)."""
    sets = []
    for side, spectra in enumerate(_side_spectra(state, params, geom)):
        shown = _model_spectra(state, params, geom, r_cur, spectra)
        if focus_mask is not None:
            # the consensus weighted as in the leave-one-out references (each
            # half-set's own masses for independent half-sets)
            weights = (state.alpha if state.half_spectra is None else
                       state.half_gamma[side] / max(float(state.half_gamma[side].sum()),
                                                    1e-300))
            # the mask's soft edge spreads the averages beyond the band radius
            shown = np.stack([_lowpass(s, geom, r_cur)
                              for s in _hybrid(shown, weights, focus_mask, geom)])
        refs = [_reference(s, geom, params.align, mask, r_cur) for s in shown]
        loo = _leave_one_out_data(state, params, geom, r_cur, n_part, mask, focus_mask,
                                  side if state.half_spectra is not None else None)
        sets.append((refs, loo))
    if state.half_spectra is None:
        return sets[0][0], sets[0][1], None
    halves = HalfSets(first=random_halves(n_part, params.seed), refs=sets[1][0],
                      loo=sets[1][1])
    return sets[0][0], sets[0][1], halves


def _active(params, references, iteration):
    """The settings of one iteration: without the point group during the
    first ``c1_iterations`` of a reference-free symmetric run."""
    if (params.align.symmetry == "C1" or references is not None
            or iteration >= params.c1_iterations):
        return params
    return dataclasses.replace(params, align=dataclasses.replace(params.align,
                                                                 symmetry="C1"))


def _frame_switch(params, references, iteration):
    """Whether this iteration starts by turning the averages into their
    symmetry frame (the first symmetric iteration of a reference-free run)."""
    return (params.align.symmetry != "C1" and references is None
            and params.c1_iterations > 0 and iteration == params.c1_iterations)


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
    return np.array([float((v.sum(axis=(0, 1)) * idx).sum()),        # x
                     float((v.sum(axis=(0, 2)) * idx).sum()),        # y
                     float((v.sum(axis=(1, 2)) * idx).sum())]) / tot  # z


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
    from .symmetry_frame import find_symmetry_frame
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
        phase = np.exp((2j * np.pi / n) * (geom.freq @ c))        # A_c(r) = A(r + c)
        members = np.asarray(state.classes) == k
        shifts[members] += rotations[members] @ c                  # t' = t + R c
        for spectra in sets:
            spectra[k] = spectra[k] * phase
        vol = volume_from_spectrum(_half_from_band(shown[k] * phase, geom), n)
        frame, score = find_symmetry_frame(vol, group, params.align, seed=params.seed,
                                           coverage=None if cov is None else cov[k])
        logger.info("class %d: turned into its %s frame (correlation with its "
                    "symmetrised self %.3f)", k + 1, params.align.symmetry, score)
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
        sets = [symmetrize_observed(wsp, cov, spectra, geom, group, pad)
                for spectra, wsp in zip(sets, weighted)]
        cov = symmetrize_weights(cov, geom, group).astype(np.float32)
    return dataclasses.replace(state, spectra=sets[0], rotations=rotations, shifts=shifts,
                               half_spectra=np.stack(sets[1:]) if len(sets) > 1 else None,
                               coverage=state.coverage if cov is None else cov)


def _symmetrized(stats, params, geom):
    """E-step sums averaged over the point group (data and wedge weights
    separately: each copy fills the others' missing wedges)."""
    if params.align.symmetry == "C1":
        return stats
    group, pad = params.group(), params.align.pad
    return dataclasses.replace(
        stats, num=symmetrize_band(stats.num, geom, group, pad),
        wsum=symmetrize_weights(stats.wsum, geom, group),
        num_half=symmetrize_band(stats.num_half, geom, group, pad),
        wsum_half=symmetrize_weights(stats.wsum_half, geom, group))


def _run_estep(runner, refs, state, params, iteration, loo=None, halves=None, ref_noise=None):
    return runner.reduce(estep_chunk, refs, state.alpha, state.sigma2, state.xi2, params,
                         iteration, loo, halves, ref_noise)      # chunk order


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
    if not (params.noise_correction and params.mode == "faml" and len(state.alpha) > 1
            and state.coverage is not None and state.half_spectra is None):
        return None
    filt = np.ones(len(geom.index))
    if params.fsc_weight and state.fsc is not None:
        filt = filt * _fsc_weights(state.fsc, geom)
    filt = _lowpass(filt, geom, radius)
    # symmetrised averages hold G copies of each member
    mass = np.asarray(state.alpha, float) * n_part * len(params.group())
    cover = np.nan_to_num(np.asarray(state.coverage, float), nan=0.0)
    per_point = geom.herm * filt ** 2 / (2.0 - np.clip(cover, 0.0, 1.0))
    inside = 1.0 if focus_mask is None else float(np.mean(np.square(focus_mask)))
    return inside * per_point.sum(axis=1), mass


def result_from_state(state, params, n):
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
    avgs = np.stack([volume_from_spectrum(_half_from_band(s, geom), n)
                     for s in _model_spectra(state, params, geom)])
    return ClassificationResult(
        averages=avgs, classes=state.classes, max_posterior=state.max_posterior,
        rotations=state.rotations, shifts=state.shifts, n_candidates=state.n_candidates,
        scores=state.scores, alpha=state.alpha, sigma=float(np.sqrt(state.sigma2)),
        xi=float(np.sqrt(state.xi2)), log_likelihood=list(state.log_likelihood),
        mean_score=list(state.mean_score), class_changes=list(state.class_changes),
        average_change=list(state.average_change), n_iterations=state.iteration,
        converged=state.converged, mode=params.mode, seed=params.seed,
        radius=list(state.radius), fsc_radius=list(state.fsc_radius),
        logliks=state.logliks,
        fsc=None if state.fsc is None else np.asarray(state.fsc, dtype=float),
        fsc_shells=None if state.fsc is None else np.arange(geom.r_min,
                                                             geom.r_min + len(state.fsc)),
        reseeded=[list(e) for e in state.reseeded], gold_standard=params.gold_standard,
        fsc_classes=None if state.fsc_classes is None else np.asarray(state.fsc_classes),
        subsets=subset_numbers(random_halves(len(state.classes), params.seed)
                               if params.gold_standard
                               else np.arange(len(state.classes)) % 2 == 0)
        if state.classes is not None else None,
        join_radius=params.join_radius(n) if params.gold_standard else None,
        coverage_gaps=None if state.coverage is None
        else coverage_gaps(state.coverage, geom))


def classify(subtomograms, tilt_range=(-60, 60), params=None, references=None,
             checkpoint_dir=None, callback=None, workers=1, comm=None, mask=None,
             focus_mask=None, **overrides):
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
        return _classify(runner, params, references, checkpoint_dir, callback, comm, mask,
                         focus_mask)


def _digest(volumes):
    """Checkpoint key of the user references (``True`` without: the key of
    runs made before references were hashed)."""
    if volumes is None:
        return True
    h = hashlib.sha1()
    for v in volumes:
        h.update(np.asarray(v, dtype=np.float32).tobytes())
    return h.hexdigest()


def _classify(runner, params, references, checkpoint_dir, callback, comm, mask=None,
              focus_mask=None, checkpoint_name=CHECKPOINT_NAME):
    n_part = runner.n_particles
    summary = runner.map(_chunk_summary)
    n = summary[0][0]
    geom = band_geometry(n, *params.align.band(n))
    mask_digest = None
    if mask is not None:
        mask = check_mask(mask, n)
        mask_digest = hashlib.sha1(mask.astype(np.float32).tobytes()).hexdigest()
    extra = [mask_digest] if mask is not None else []
    if focus_mask is not None:
        focus_mask = check_mask(focus_mask, n)
        # "focus2": hybrid references low-passed to the band since 2026-12-06
        extra.append("focus2:" + hashlib.sha1(focus_mask.astype(np.float32).tobytes())
                     .hexdigest())
    fingerprint = json.dumps([params.fingerprint(), n_part, n,
                              hashlib.sha1("".join(h for _, h in summary).encode()).hexdigest(),
                              _digest(references)] + extra)
    if (params.align.symmetry != "C1" and references is None
            and params.c1_iterations >= params.max_iter):
        # a warning, not an error: the protocol runs one iteration per step
        logger.warning("symmetry %s without references is imposed after %d iterations "
                       "without it (c1_iterations); this run stops after %d",
                       params.align.symmetry, params.c1_iterations, params.max_iter)
    is_root = comm is None or comm.Get_rank() == 0
    ckpt = Path(checkpoint_dir) / checkpoint_name if checkpoint_dir is not None else None
    state = None
    if ckpt is not None:
        if is_root:
            atomic_path(ckpt).remove_stale()        # a kill during a checkpoint write
        state = _load_checkpoint(ckpt, fingerprint) if is_root and ckpt.exists() else None
        if comm is not None:
            state = comm.bcast(state, root=0)
        if state is not None:
            logger.info("resuming from %s after iteration %d", ckpt, state.iteration)
            if callback is not None:
                # a kill may have fallen between the checkpoint and the callback
                callback(state)
    if state is None:
        consensus = None
        if params.initial_split(references) == "consensus":
            consensus = _run_consensus(runner, params, checkpoint_dir, comm, mask)
        state = _initial_state(runner, params, references, geom, consensus)
    while not state.converged and state.iteration < params.max_iter:
        t0 = time.perf_counter()
        it = state.iteration
        if _frame_switch(params, references, it):
            state = _to_symmetry_frame(state, params, geom)
        active = _active(params, references, it)
        starved = _starved(state, active, n_part, references)
        if starved:
            state = _reseed_starved(runner, state, starved, active, geom)
        r_cur = (int(state.r_current) if state.r_current is not None
                 else params.start_radius(n))
        refs, loo, halves = _estep_inputs(state, params, geom, r_cur, n_part, mask,
                                          focus_mask)
        noise = _reference_noise(state, active, geom, r_cur, n_part, focus_mask)
        stats = _symmetrized(_run_estep(runner, refs, state, active, it, loo, halves, noise),
                             active, geom)
        classes = np.asarray(stats.classes)
        changes = (int(np.count_nonzero(classes != state.classes))
                   if state.classes is not None else n_part)
        spectra, alpha, sigma2, xi2, half, half_gamma = _m_step(state, stats, params, n_part,
                                                                 geom)
        ll = float(stats.loglik)
        # Change over the shells the E-step used (beyond them, noise).
        inb = shell_index(geom) <= r_cur
        diff = np.linalg.norm((spectra - state.spectra)[:, inb], axis=1)
        change = float(np.max(diff / np.maximum(np.linalg.norm(spectra[:, inb], axis=1),
                                                1e-300)))
        r_fsc, fsc, fsc_classes = _fsc_radius(stats, geom, params.fsc_level())
        r_next = _next_radius(r_cur, r_fsc, params, geom)
        converged = (it > 0 and change < params.tol and r_next == r_cur
                     and changes <= params.class_tol * n_part
                     and (active is params or params.align.symmetry == "C1"))
        state = EMState(
            iteration=it + 1, spectra=spectra, alpha=alpha, sigma2=float(sigma2),
            xi2=float(xi2), log_likelihood=state.log_likelihood + [ll],
            mean_score=state.mean_score + [float(stats.score / n_part)],
            class_changes=state.class_changes + [changes],
            average_change=state.average_change + [change], converged=bool(converged),
            r_current=r_next, radius=state.radius + [r_cur],
            fsc_radius=state.fsc_radius + [r_fsc], fsc=[float(v) for v in fsc],
            classes=classes, max_posterior=np.asarray(stats.max_posterior),
            rotations=np.asarray(stats.rotations), shifts=np.asarray(stats.shifts),
            n_candidates=np.asarray(stats.n_candidates),
            scores=np.asarray(stats.scores), logliks=np.asarray(stats.logliks),
            reseeded=state.reseeded, half_spectra=half, half_gamma=half_gamma,
            fsc_classes=fsc_classes if half is not None else None,
            coverage=class_coverage(stats.wsum, stats.gamma))
        if state.converged and _starved(state, params, n_part, references):
            state.converged = False         # a class to re-seed first
        if ckpt is not None and is_root:
            _save_checkpoint(ckpt, state, fingerprint)
        logger.info("%s iteration %d: log-likelihood %.6g, mean score %.4f, "
                    "%d class changes, average change %.4f, sigma %.4g, band %d shells "
                    "(FSC %d, next %d), %.1f s",
                    params.mode.upper(), it + 1, ll, state.mean_score[-1], changes, change,
                    np.sqrt(sigma2), r_cur, r_fsc, r_next, time.perf_counter() - t0)
        if callback is not None:
            callback(state)
    result = _result(state, params, geom)
    if result.coverage_gaps is not None and gap_message(result.coverage_gaps):
        logger.warning("%s", gap_message(result.coverage_gaps))
    return result
