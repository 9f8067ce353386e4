"""The classification job: every setting of a FAML / FA run once (default,
unit, help), its checks, and :func:`run` (:mod:`.runjob`), the one entry point
that the command line, the protocol, the demo and ``faml-tomo run job.json`` call.

Outputs in ``out`` (:mod:`.outputs`): ``class_NN.mrc``, ``particles.star``,
``history.json``, ``iterations/``, ``job.json`` (the job, its resolved
values and results), the run marker ``faml_run.json`` and the checkpoint
``faml_checkpoint.npz``: running the same job again resumes after the last
finished iteration, and a larger ``iterations`` continues a finished run.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..jobs import coerce_fields, option
from .runjob import run, summary
from .symmetry import SYMMETRY_HELP

if TYPE_CHECKING:
    from .em import EMParams

__all__ = ["ClassifyJob", "run", "summary", "job_defaults", "MODES", "INITS"]

MODES = ("faml", "fa")
INITS = ("auto", "consensus", "random", "kmeans")


@dataclass(frozen=True)
class ClassifyJob:
    """Settings of a classification run (fields: see ``faml-tomo classify
    --help``, generated from them)."""

    TASK = "classify"
    SCHEMA = 1

    star: Path | None = option(
        None,
        "particle STAR file (rlnImageName or rlnSubtomogramName; paths relative to the STAR file)",
    )
    folder: Path | None = option(None, "folder of subtomogram MRC files")
    tilt_range: tuple[float, float] | None = option(
        None,
        "tilt range about Y (default: per subtomogram from the STAR file or "
        "--tomograms, else -60 60; asymmetric allowed)",
        unit="deg",
        metavar=("MIN", "MAX"),
    )
    tomograms: Path | None = option(
        None,
        "RELION 5 tomograms.star: the tilt range of each "
        "subtomogram's tomogram (rlnTomoName) from its "
        "tilt-series table",
    )
    classes: int = option(1, "number of classes K; 1 gives a single reference-free average")
    iterations: int = option(
        20, "largest number of iterations (the paper runs 20); the run stops earlier when converged"
    )
    mode: str = option(
        "faml",
        "faml (maximum likelihood) or fa (alignment only, the paper's comparator)",
        choices=MODES,
    )
    references: tuple[Path, ...] | None = option(
        None,
        "K initial averages (MRC) instead of the initial split, or one map to start "
        "all classes from (random subsets of the subtomograms at their transforms "
        "against it, as RELION starts classes from one reference; with --focus-mask, "
        "focused classification of a consensus map)",
    )
    mask: Path | None = option(
        None,
        "reference mask (MRC, values 0..1, soft edge "
        "recommended, box of the subtomograms): only the masked "
        "region of the averages drives alignment and likelihood",
    )
    focus_mask: Path | None = option(
        None,
        "classification mask (MRC, values 0..1, box of the subtomograms, in the frame "
        "of the references): the classes are told apart only inside it, poses still "
        "come from the whole particle (focused classification)",
    )
    seed: int = option(0, "random seed of the initial split and the Voronoi samples")
    tolerance: float = option(
        0.01,
        "converged when every class average changes by less "
        "than this fraction (and at most 0.5% of the particles "
        "change class)",
    )
    workers: int = option(1, "processes on this machine (the result does not depend on it)")
    voxel_size: float | None = option(
        None,
        "voxel size of the subtomograms (default: from "
        "their headers; required when a header gives "
        "none)",
        unit="Å",
    )
    resolution: float | None = option(
        None,
        "low-pass limit for alignment and likelihood (default Nyquist); helps at very low SNR",
        unit="Å",
    )
    max_candidates: int = option(50, "candidate transforms per particle and class")
    lmax: int = option(
        35,
        "spherical-harmonic degree of the rotational search; Euler grid "
        "2 lmax + 2 (35: 5 degrees); 4 to 64",
    )
    voronoi_samples: int = option(10000, "Monte-Carlo samples for the Voronoi weights")
    alpha_trd: float = option(
        1.0, "translation weight (per voxel, against rotation per radian) of the transform distance"
    )
    normalize: bool = option(
        True, "do not scale subtomograms to mean 0 / SD 1", flag="--no-normalize"
    )
    init: str = option(
        "auto",
        "initial split for K > 1 without references: consensus (align "
        "all to one average first, then split by the principal "
        "components of the wedge-masked differences), the paper's "
        "random split, or k-means of rotation-invariant shell-power "
        "descriptors; auto: consensus for FAML, random for FA "
        "(with --gold-standard both half-sets start from the consensus "
        "split's averages low-passed to the join resolution)",
        choices=INITS,
    )
    consensus_iterations: int = option(
        20,
        "--init consensus: iterations of the one-class "
        "consensus run (it stops earlier once converged)",
    )
    shared_candidates: int = option(
        10,
        "FAML, K > 1: score every class at the best N "
        "candidate rotations of every class, so that classes "
        "are compared on the same poses (0: each class on its "
        "own candidates, as the paper)",
    )
    full_band: bool = option(
        False,
        "the paper's behaviour: no frequency marching and no FSC "
        "weighting (whole band from the first iteration)",
    )
    start_resolution: float | None = option(
        None,
        "frequency marching: first low-pass limit (default box/8 shells, i.e. 8 voxels)",
        unit="Å",
    )
    min_class_size: float = option(
        3.0,
        "K > 1 without references: re-seed (once) a class "
        "left with fewer subtomograms than this, from the "
        "worst-fitting half of the largest class (0: never)",
    )
    symmetry: str = option(
        "C1", SYMMETRY_HELP + "; imposed on the averages and taken into account in the search"
    )
    c1_iterations: int = option(
        10,
        "with --symmetry and no --references: iterations without "
        "symmetry before each average is turned into its "
        "symmetry frame and the symmetry imposed",
    )
    starts: int = option(
        1,
        "independent starts: make the run N times side by side, each from "
        "its own random start (initial split, noise estimate, Voronoi "
        "samples), and keep the one with the highest log-likelihood; "
        "N times the time, for reference-free runs at low SNR",
    )
    gold_standard: bool = option(
        False,
        "independent half-sets: split the subtomograms at "
        "random before the first iteration and refine each "
        "half against its own averages (shared only up to the "
        "start resolution); the resolution is where their FSC "
        "falls below 0.143, per class",
    )

    def __post_init__(self) -> None:
        coerce_fields(self)

    def problems(self, n_particles: int | None = None) -> list[str]:
        """Readable messages for settings that cannot run (empty: fine);
        ``n_particles`` adds the checks that need the data's size."""
        out = []
        if (self.star is None) == (self.folder is None):
            out.append("give the subtomograms as a STAR file or as a folder (one of them)")
        for name in ("workers", "classes", "iterations", "starts"):
            if getattr(self, name) < 1:
                out.append(f"--{name} must be >= 1, got {getattr(self, name)}")
        for name in ("resolution", "start_resolution", "voxel_size"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                out.append(f"--{name.replace('_', '-')} must be > 0 Å, got {v}")
        if self.tilt_range is not None and not (
            -90 <= self.tilt_range[0] < self.tilt_range[1] <= 90
        ):
            out.append(
                f"tilt range must satisfy -90 <= min < max <= 90, got "
                f"{self.tilt_range[0]:g} {self.tilt_range[1]:g}"
            )
        if self.tomograms is not None and self.star is None:
            out.append("tomograms needs a STAR file of particles with rlnTomoName")
        if not out:
            try:
                self.em_params().check(n_particles or 2 * self.classes)
            except InputError as exc:
                out.append(str(exc))
        return out

    def em_params(self, box: int | None = None, voxel: float | None = None) -> "EMParams":
        """The :class:`~faml_tomo.averaging.em.EMParams` of this job for
        subtomograms of ``box`` voxels at ``voxel`` Å (the resolution limits
        need them; without, they are left out).

        Raises
        ------
        InputError
            A resolution beyond Nyquist, an unknown symmetry."""
        from .align import AlignParams
        from .em import EMParams
        from .symmetry import check_symmetry

        r_max = r_start = None
        if box is not None and voxel is not None:
            r_max, r_start = self.band_radii(box, voxel)
        return EMParams(
            n_classes=self.classes,
            mode=self.mode,
            max_iter=self.iterations,
            tol=self.tolerance,
            init=self.init,
            consensus_iterations=self.consensus_iterations,
            shared_candidates=self.shared_candidates,
            marching=not self.full_band,
            fsc_weight=not self.full_band,
            r_start=r_start,
            n_voronoi=self.voronoi_samples,
            alpha_trd=self.alpha_trd,
            seed=self.seed,
            normalize=self.normalize,
            min_class_size=self.min_class_size,
            c1_iterations=self.c1_iterations,
            gold_standard=self.gold_standard,
            starts=self.starts,
            align=AlignParams(
                lmax=self.lmax,
                r_max=r_max,
                max_candidates=self.max_candidates,
                symmetry=check_symmetry(self.symmetry),
            ),
        )

    def band_radii(self, box: int, voxel: float) -> tuple[int | None, int | None]:
        """``(r_max, r_start)`` in shells of the resolution limits (None: not set)."""
        r_max = r_start = None
        if self.resolution is not None:
            if self.resolution <= 2 * voxel:
                raise InputError(
                    f"--resolution {self.resolution:g} Å is beyond Nyquist "
                    f"({2 * voxel:g} Å at {voxel:g} Å/px)"
                )
            r_max = max(2, min(box // 2 - 1, int(box * voxel / self.resolution)))
        if self.start_resolution is not None:
            if self.start_resolution <= 2 * voxel:
                raise InputError(
                    f"--start-resolution {self.start_resolution:g} Å is beyond "
                    f"Nyquist ({2 * voxel:g} Å at {voxel:g} Å/px)"
                )
            r_start = max(1, int(box * voxel / self.start_resolution))
        return r_max, r_start

    def inputs(self) -> list[Path]:
        """Every input path of the job (for the output-folder checks)."""
        return [
            p
            for p in (
                self.star,
                self.folder,
                self.mask,
                self.focus_mask,
                self.tomograms,
                *(self.references or ()),
            )
            if p is not None
        ]


def job_defaults() -> dict:
    """Field name -> default of :class:`ClassifyJob` (one source for the
    command line, the protocol form and the API)."""
    return {f.name: f.default for f in dataclasses.fields(ClassifyJob)}
