"""The classification job: every setting of a FAML / FA run once (default,
unit, help), its checks, and :func:`run`, the one entry point that the
command line, the protocol, the demo and ``faml-tomo run job.json`` call.

Outputs in ``out`` (:mod:`.outputs`): ``class_NN.mrc``, ``particles.star``,
``history.json``, ``iterations/``, ``job.json`` (the job, its resolved
values and results), the run marker ``faml_run.json`` and the checkpoint
``faml_checkpoint.npz``: running the same job again resumes after the last
finished iteration, and a larger ``iterations`` continues a finished run.
"""

import dataclasses
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.jobjson import write_job_json
from ..jobs import coerce_fields, job_to_json, option
from .symmetry import SYMMETRY_HELP

logger = logging.getLogger(__name__)

__all__ = ["ClassifyJob", "run", "MODES", "INITS"]

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
        "descriptors; auto: consensus for FAML without "
        "--gold-standard, else random",
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
    gold_standard: bool = option(
        False,
        "independent half-sets: split the subtomograms at "
        "random before the first iteration and refine each "
        "half against its own averages (shared only up to the "
        "start resolution); the resolution is where their FSC "
        "falls below 0.143, per class",
    )

    def __post_init__(self):
        coerce_fields(self)

    def problems(self, n_particles: int | None = None) -> list[str]:
        """Readable messages for settings that cannot run (empty: fine);
        ``n_particles`` adds the checks that need the data's size."""
        out = []
        if (self.star is None) == (self.folder is None):
            out.append("give the subtomograms as a STAR file or as a folder (one of them)")
        for name in ("workers", "classes", "iterations"):
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

    def em_params(self, box: int | None = None, voxel: float | None = None):
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
            align=AlignParams(
                lmax=self.lmax,
                r_max=r_max,
                max_candidates=self.max_candidates,
                symmetry=check_symmetry(self.symmetry),
            ),
        )

    def band_radii(self, box: int, voxel: float) -> tuple:
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

    def inputs(self) -> list:
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


class _Progress:
    """The per-iteration callback of :func:`~.em.classify`: writes each
    iteration's files (completing those of a resumed checkpoint) and tells
    ``say`` what happened."""

    def __init__(self, out, params, box, voxel, root, say, resuming, t0):
        self.out, self.params, self.box, self.voxel = out, params, box, voxel
        self.root, self.say, self.resuming, self.t0 = root, say, resuming, t0

    def __call__(self, state):
        from .em import result_from_state
        from .outputs import finished_iterations, write_iteration

        if self.resuming:
            # the restored state: complete its files if a kill fell between
            # the checkpoint and them (history.json would lack the iteration)
            self.resuming = False
            if self.root and state.iteration not in finished_iterations(self.out):
                write_iteration(
                    self.out, result_from_state(state, self.params, self.box), self.voxel
                )
                self.say(f"iteration {state.iteration}: files restored from the checkpoint")
            return
        if not self.root:
            return
        write_iteration(self.out, result_from_state(state, self.params, self.box), self.voxel)
        self.say(
            f"iteration {state.iteration}/{self.params.max_iter}: log-likelihood "
            f"{state.log_likelihood[-1]:.6g}, mean score {state.mean_score[-1]:.4f}, "
            f"class changes {state.class_changes[-1]}, average change "
            f"{state.average_change[-1]:.4f}, sizes "
            f"{np.bincount(state.classes, minlength=len(state.alpha)).tolist()}, "
            f"band {state.radius[-1]} shells (FSC {state.fsc_radius[-1]}), "
            f"{time.perf_counter() - self.t0:.0f} s"
        )
        for e in state.reseeded:
            if e[0] == state.iteration:
                self.say(
                    f"  class {e[1] + 1} had lost its subtomograms: re-seeded before "
                    f"this iteration from the {e[3]} worst-fitting of class {e[2] + 1}"
                )


def _quiet(message: str) -> None:
    logger.info("%s", message)


def run(
    job: ClassifyJob,
    out,
    progress: Callable[[str], None] | None = None,
    comm=None,
    restart: bool = False,
):
    """Run a classification job into the folder ``out``.

    Parameters
    ----------
    job : ClassifyJob
    out : str or Path
        Output folder (created; a finished or interrupted run of the same job
        there is resumed).
    progress : callable, optional
        ``progress(line)`` for each progress line (default: the log, INFO).
    comm : mpi4py communicator, optional
        Spread the subtomograms over MPI ranks; only rank 0 writes.
    restart : bool
        Ignore a checkpoint in ``out`` (and remove its per-iteration files).

    Returns
    -------
    ClassificationResult or None
        The result on rank 0 (None on the other ranks).

    Raises
    ------
    InputError
        Unusable settings or inputs (the message names the problem);
        :class:`~faml_tomo.errors.CheckpointMismatch` when ``out`` holds the
        checkpoint of another job.
    """
    from ..io.mrc import read_mrc
    from ..io.publish import Publication
    from .em import CHECKPOINT_NAME, CONSENSUS_CHECKPOINT_NAME, classify
    from .inputs import check_inputs
    from .outputs import ITERATIONS_DIR, write_final
    from .parallel import VolumeFiles

    say = progress or _quiet
    root = comm is None or comm.Get_rank() == 0
    t0 = time.perf_counter()
    out = Path(out)
    paths, tilt, info, source = check_inputs(job, out)
    params = job.em_params(info.box, info.voxel_size)
    refs = [read_mrc(p)[0] for p in job.references] if job.references else None
    mask = read_mrc(job.mask)[0] if job.mask is not None else None
    focus = read_mrc(job.focus_mask)[0] if job.focus_mask is not None else None
    if root and restart:
        (out / CHECKPOINT_NAME).unlink(missing_ok=True)
        (out / CONSENSUS_CHECKPOINT_NAME).unlink(missing_ok=True)
        shutil.rmtree(out / ITERATIONS_DIR, ignore_errors=True)
    callback = _Progress(
        out, params, info.box, info.voxel_size, root, say, (out / CHECKPOINT_NAME).is_file(), t0
    )
    kw = dict(
        references=refs,
        checkpoint_dir=out,
        callback=callback,
        workers=job.workers,
        comm=comm,
        mask=mask,
        focus_mask=focus,
    )
    if not root:
        classify(VolumeFiles(paths), tilt, params, **kw)
        return None
    with Publication(out, "classify", in_place=True) as stage:
        res = classify(VolumeFiles(paths), tilt, params, **kw)
        write_final(out, res, paths, info.voxel_size, dest=stage, source=source)
        _write_job(stage / "job.json", job, out, info, params, paths, comm, res, t0)
    for line in summary(job, res, out, info.box, info.voxel_size, time.perf_counter() - t0):
        say(line)
    return res


def summary(job, res, out, box, voxel, seconds) -> list[str]:
    """Closing lines of a run: size, convergence, the gold-standard
    resolution of each class, unfilled missing wedge."""
    from .coverage import gap_message
    from .outputs import class_resolutions

    lines = [
        f"{job.mode.upper()}: {len(res.classes)} subtomograms, {len(res.averages)} "
        f"classes, {res.n_iterations} iterations "
        f"({'converged' if res.converged else 'not converged'}) in {seconds:.1f} s; "
        f"wrote {out}"
    ]
    for k, r in enumerate(class_resolutions(res) or []):
        where = (
            f"{box * voxel / r:.1f} Å"
            if r > res.join_radius + 1
            else f"not resolved beyond the shared start resolution "
            f"({box * voxel / res.join_radius:.0f} Å)"
        )
        lines.append(f"class {k + 1}: gold-standard resolution (FSC 0.143) {where}")
    gaps = gap_message(res.coverage_gaps) if res.coverage_gaps is not None else None
    if gaps:
        lines.append(f"warning: {gaps}")
    return lines


def _write_job(path, job, out, info, params, paths, comm, res, t0):
    fields = job_to_json(job)
    write_job_json(
        path,
        "classify",
        {
            **fields["fields"],
            "out": str(out),
            "resolved": {
                "voxel_size": info.voxel_size,
                "n_particles": len(paths),
                "box": info.box,
                "r_max": params.align.r_max,
                "mpi_ranks": 1 if comm is None else comm.Get_size(),
            },
        },
        seed=job.seed,
        extra={
            "seconds": round(time.perf_counter() - t0, 3),
            "iterations": res.n_iterations,
            "converged": res.converged,
        },
        job=fields,
    )


def job_defaults() -> dict:
    """Field name -> default of :class:`ClassifyJob` (one source for the
    command line, the protocol form and the API)."""
    return {f.name: f.default for f in dataclasses.fields(ClassifyJob)}
