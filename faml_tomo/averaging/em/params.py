"""Settings of a FAML or FA run (:class:`EMParams`), checked and fingerprinted."""

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ...errors import InputError
from ..align import AlignParams
from ..halves import FSC_GOLD
from ..symmetry import check_symmetry, symmetry_group

_MODES = ("faml", "fa")
_INITS = ("auto", "consensus", "kmeans", "random")


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
        start does not.  With ``gold_standard`` the consensus run shares its
        reference (it only gives the split), and both halves start from the
        class averages low-passed to the join radius (see
        :func:`.start._consensus_state`).  ``"auto"`` (default):
        ``"consensus"`` for FAML, ``"random"`` for FA (FA stays the
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
    starts : int
        Independent starts: the run is made ``starts`` times, each with its
        own random initial split (and consensus run), initial noise estimate
        and Voronoi samples (``start`` 0, 1, ...; the half-sets are the
        same), iteration by iteration side by side until all have
        converged (they stop together), and the start with the highest
        log-likelihood is returned; the per-iteration callback gets the
        best start at each iteration.  EM from a
        featureless start finds different optima at low SNR, and the
        log-likelihood tells the better one (measured: 4v4r, 100
        subtomograms, SNR 0.003, +-60 deg, 3 data seeds: the highest final
        log-likelihood of 2-3 starts picked r 0.771 / 0.777 / 0.777 against
        the truth, the others 0.681-0.786).  Costs ``starts`` times the run.
    start : int
        Which start this is (0: the run's own seed; set by the driver).
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
    r_start: int | None = None
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
    starts: int = 1
    start: int = 0

    def run_seed(self) -> int:
        """Seed of this start's initial model and Voronoi samples: ``seed``
        for start 0, one derived from ``(seed, start)`` otherwise."""
        if int(self.start) == 0:
            return int(self.seed)
        seq = np.random.SeedSequence([int(self.seed), int(self.start), 0x57A27])
        return int(seq.generate_state(1)[0])

    def join_radius(self, n: int) -> int:
        """Radius (shells) of the low-pass start: the first marching radius
        and the join radius of gold-standard half-sets, box ``n``."""
        r_min, r_max = self.align.band(n)
        r0 = max(3, n // 8) if self.r_start is None else int(self.r_start)
        return int(min(max(r0, r_min), r_max))

    def start_radius(self, n: int) -> int:
        """First E-step band radius for a box of ``n`` voxels."""
        return self.join_radius(n) if self.marching else self.align.band(n)[1]

    def initial_split(self, references: Sequence | None = None) -> str:
        """The initial split ``init`` resolves to (``"random"`` for ``K = 1``
        and with references, where no split is made)."""
        if int(self.n_classes) == 1 or references is not None:
            return "random"
        if self.init == "auto":
            return "consensus" if self.mode == "faml" else "random"
        return self.init

    def fsc_level(self) -> float:
        """FSC level that defines the resolution (0.143 for independent
        half-sets, ``fsc_threshold`` otherwise)."""
        return FSC_GOLD if self.gold_standard else self.fsc_threshold

    def check(self, n_particles: int) -> None:
        """Raise :class:`InputError` for unusable settings."""
        if self.mode not in _MODES:
            raise InputError(f"mode must be one of {_MODES}, got {self.mode!r}")
        if int(self.n_classes) < 1:
            raise InputError(f"number of classes K must be >= 1, got {self.n_classes}")
        if self.n_classes > n_particles:
            raise InputError(
                f"number of classes K={self.n_classes} exceeds the number of "
                f"subtomograms N={n_particles}"
            )
        if int(self.max_iter) < 1:
            raise InputError(f"max_iter must be >= 1, got {self.max_iter}")
        if int(self.n_voronoi) < 1:
            raise InputError(f"n_voronoi must be >= 1, got {self.n_voronoi}")
        if self.alpha_trd < 0:
            raise InputError(f"alpha_trd must be >= 0, got {self.alpha_trd}")
        if int(self.chunk_size) < 1:
            raise InputError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if not 4 <= int(self.align.lmax) <= 64:
            raise InputError(
                f"angular bandwidth lmax must be between 4 and 64, got {self.align.lmax}"
            )
        if not self.tol >= 0:
            raise InputError(f"convergence tolerance must be >= 0, got {self.tol}")
        if int(self.align.max_candidates) < 1:
            raise InputError(f"max_candidates must be >= 1, got {self.align.max_candidates}")
        if self.init not in _INITS:
            raise InputError(f"init must be one of {_INITS}, got {self.init!r}")
        if int(self.starts) < 1:
            raise InputError(f"starts must be >= 1, got {self.starts}")
        if int(self.start) < 0:
            raise InputError(f"start must be >= 0, got {self.start}")
        if int(self.consensus_iterations) < 1:
            raise InputError(f"consensus_iterations must be >= 1, got {self.consensus_iterations}")
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
            raise InputError(
                f"gold-standard half-sets need at least 2 K = "
                f"{2 * int(self.n_classes)} subtomograms, got {n_particles}"
            )
        if check_symmetry(self.align.symmetry) != self.align.symmetry:
            raise InputError(
                f"symmetry {self.align.symmetry!r}: write it as "
                f"{check_symmetry(self.align.symmetry)!r}"
            )

    def group(self) -> np.ndarray:
        """Rotation matrices of the averages' point group, shape (G, 3, 3)."""
        return symmetry_group(self.align.symmetry)

    def fingerprint(self) -> str:
        """Settings that change results (not the stopping rule), as JSON."""
        d = dataclasses.asdict(self)
        # starts: each start has its own checkpoint (start 0 a plain run's)
        for k in ("max_iter", "tol", "class_tol", "starts"):
            d.pop(k)
        if d["start"] == 0:
            d.pop("start")
        # what the split resolves to (checkpoints from before "auto" resume)
        d["init"] = self.initial_split()
        if d["init"] != "consensus":
            d.pop("consensus_iterations")
        else:
            d["consensus_march"] = "restart"  # classes march again after the split
        if d["align"]["symmetry"] == "C1":
            # settings that do nothing without symmetry: checkpoints made
            # before symmetry existed still resume
            d["align"].pop("symmetry")
            d.pop("c1_iterations")
        if not d["gold_standard"]:
            d.pop("gold_standard")
        if d["n_classes"] == 1 or d["mode"] != "faml":
            d.pop("noise_correction")  # no effect: such checkpoints still resume
        if d["n_classes"] == 1 or d["mode"] != "faml" or d.get("gold_standard"):
            d.pop("shared_candidates")
        return json.dumps(d, sort_keys=True)
