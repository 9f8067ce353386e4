"""Running a classification job (:func:`run`): read the inputs, classify with
per-iteration files and checkpoint, publish the final files and ``job.json``,
and the closing lines of the run (:func:`summary`).  Imported from
:mod:`.job` by every caller."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..io.jobjson import write_job_json
from ..jobs import job_to_json
from ..typealiases import PathLike

if TYPE_CHECKING:
    from .em import ClassificationResult
    from .job import ClassifyJob

# progress lines go to the log under the job module's name, as they always have
logger = logging.getLogger("faml_tomo.averaging.job")

__all__ = ["run", "summary"]


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
            f"{self.params.mode.upper()} iteration {state.iteration}/{self.params.max_iter}: "
            f"log-likelihood "
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
    out: PathLike,
    progress: Callable[[str], None] | None = None,
    comm: Any = None,
    restart: bool = False,
    summarize: bool = True,
) -> ClassificationResult | None:
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
    summarize : bool
        Finish with the run's summary lines (a protocol running one
        iteration per step says them once, at the end).

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
        for name in (CHECKPOINT_NAME, CONSENSUS_CHECKPOINT_NAME):
            # with the checkpoints of further independent starts
            for path in out.glob(f"{Path(name).stem}*{Path(name).suffix}"):
                path.unlink(missing_ok=True)
        shutil.rmtree(out / ITERATIONS_DIR, ignore_errors=True)
    callback = _Progress(
        out, params, info.box, info.voxel_size, root, say, (out / CHECKPOINT_NAME).is_file(), t0
    )
    kw: dict[str, Any] = dict(
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
    if summarize:
        for line in summary(job, res, out, info.box, info.voxel_size, time.perf_counter() - t0):
            say(line)
    return res


def summary(
    job: ClassifyJob,
    res: ClassificationResult,
    out: PathLike,
    box: int,
    voxel: float,
    seconds: float,
) -> list[str]:
    """Closing lines of a run: size, convergence, the gold-standard
    resolution of each class, unfilled missing wedge."""
    from .coverage import gap_message
    from .outputs import class_resolutions, crossing_shell, resolution_text

    lines = [
        f"{job.mode.upper()}: {len(res.classes)} subtomograms, {len(res.averages)} "
        f"classes, {res.n_iterations} iterations "
        f"({'converged' if res.converged else 'not converged'}) in {seconds:.1f} s; "
        f"wrote {out}"
    ]
    if res.start_log_likelihoods:
        lines.append(
            f"independent starts: start {res.start + 1} of {len(res.start_log_likelihoods)} "
            f"kept (final log-likelihoods "
            f"{_lls(res.start_log_likelihoods)})"
        )
    for k, shell in enumerate(class_resolutions(res) or []):
        # per-class FSCs (gold-standard runs only) come with their shells and join radius
        if res.join_radius is None or res.fsc_shells is None or res.fsc_classes is None:
            raise RuntimeError("per-class resolutions without their curves")
        # where the plotted curve crosses 0.143 (between shells), as the viewer shows it
        r = crossing_shell(res.fsc_shells, res.fsc_classes[k], 0.143) or float(shell)
        where = (
            resolution_text(r, box, voxel, res.fsc_classes[k], 0.143)
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
            "start": res.start,
            "start_log_likelihoods": res.start_log_likelihoods,
        },
        job=fields,
    )


def _lls(values: list) -> str:
    """Log-likelihoods of the starts, ``–`` for a start without one."""
    return ", ".join("–" if v is None else f"{v:.6g}" for v in values)
