"""Files of a classification run: per-iteration and final outputs.

One folder holds a run (the CLI's ``--out``, the protocol's ``extra/run``)::

    faml_checkpoint.npz            resume point (:mod:`.em`)
    class_01.mrc ...               final class averages
    particles.star                 final per-particle results (RELION labels)
    history.json                   per-iteration log-likelihood, class sizes, ...
    iterations/it001_class01.mrc   averages of every iteration
    iterations/it001.npz           per-particle results of every iteration

Everything is written atomically (temporary file, then rename), so a run
stopped at any point leaves complete files of its finished iterations.  The
viewers read these files back with :func:`read_history` and
:func:`read_iteration`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..io.arrays import save_npz
from ..io.mrc import atomic_path, write_mrc
from ..typealiases import PathLike

if TYPE_CHECKING:
    from ..io.relion import Acquisition, ParticleStar
    from .em import ClassificationResult

__all__ = [
    "ITERATIONS_DIR",
    "HISTORY_NAME",
    "PARTICLES_NAME",
    "class_average_path",
    "fsc_kind",
    "class_resolutions",
    "crossing_shell",
    "resolution_text",
    "iteration_average_path",
    "write_iteration",
    "write_final",
    "read_history",
    "read_iteration",
    "finished_iterations",
]

ITERATIONS_DIR = "iterations"
HISTORY_NAME = "history.json"
PARTICLES_NAME = "particles.star"
_PER_PARTICLE = (
    "classes",
    "max_posterior",
    "scores",
    "n_candidates",
    "rotations",
    "shifts",
    "logliks",
    "subsets",
)
_CURVES = ("fsc", "fsc_shells", "fsc_classes")


def class_average_path(out_dir: PathLike, k: int) -> Path:
    """Final average of class ``k`` (0-based)."""
    return Path(out_dir) / f"class_{k + 1:02d}.mrc"


def iteration_average_path(out_dir: PathLike, iteration: int, k: int) -> Path:
    """Average of class ``k`` (0-based) after ``iteration`` (1-based)."""
    return Path(out_dir) / ITERATIONS_DIR / f"it{iteration:03d}_class{k + 1:02d}.mrc"


def _iteration_npz(out_dir, iteration):
    return Path(out_dir) / ITERATIONS_DIR / f"it{iteration:03d}.npz"


def finished_iterations(out_dir: PathLike) -> list[int]:
    """Iterations (1-based, ascending) whose files are complete."""
    folder = Path(out_dir) / ITERATIONS_DIR
    if not folder.is_dir():
        return []
    its = []
    for p in folder.glob("it*.npz"):
        m = re.fullmatch(r"it(\d{3,})\.npz", p.name)
        if m:
            its.append(int(m.group(1)))
    return sorted(its)


def write_iteration(out_dir: PathLike, result: ClassificationResult, voxel_size: float) -> None:
    """Save the averages and per-particle results of the iteration that
    ``result`` describes (``result.n_iterations``), then refresh the history.

    Parameters
    ----------
    out_dir : str or Path
    result : ClassificationResult
    voxel_size : float
        Å per voxel, written into the MRC headers.
    """
    it = int(result.n_iterations)
    (Path(out_dir) / ITERATIONS_DIR).mkdir(parents=True, exist_ok=True)
    for k, avg in enumerate(result.averages):
        write_mrc(iteration_average_path(out_dir, it, k), avg, voxel_size)
    arrays: dict[str, Any] = {
        name: np.asarray(getattr(result, name))
        for name in _PER_PARTICLE + _CURVES
        if getattr(result, name, None) is not None
    }
    save_npz(_iteration_npz(out_dir, it), alpha=np.asarray(result.alpha), **arrays)
    _write_history(out_dir, result)


def fsc_kind(gold_standard: bool) -> tuple[str, float]:
    """``(label, level)`` of a run's FSC: independent half-sets are read at
    0.143; even/odd halves that share the reference at 0.5 (optimistic)."""
    if gold_standard:
        return "gold-standard FSC (independent half-sets)", 0.143
    return "even/odd FSC (halves share the reference: optimistic)", 0.5


def crossing_shell(shells: np.ndarray, curve: np.ndarray, level: float) -> float | None:
    """Where an FSC curve first falls below ``level``, in shells (cycles per
    box), linearly interpolated between the two shells around the crossing,
    as a plot of the curve shows it; the last shell when it never falls
    below, None when it starts below.

    Examples
    --------
    >>> crossing_shell(np.array([1, 2, 3, 4]), np.array([0.9, 0.5, 0.1, 0.0]), 0.143)
    2.8925
    """
    shells = np.asarray(shells, dtype=float)
    curve = np.asarray(curve, dtype=float)
    below = np.flatnonzero(curve < level)
    if not len(below):
        return float(shells[-1]) if len(shells) else None
    i = int(below[0])
    if i == 0:
        return None
    f0, f1 = curve[i - 1], curve[i]
    return float(shells[i - 1] + (f0 - level) / (f0 - f1) * (shells[i] - shells[i - 1]))


def resolution_text(shell: float, box: int, voxel: float, curve: np.ndarray, level: float) -> str:
    """A resolution read from an FSC curve for a person: ``"12.3 Å"``, or
    ``"better than 12.3 Å"`` when the curve never falls below ``level`` (the
    band ends first, so the data do not say how much better)."""
    value = f"{box * voxel / shell:.1f} Å"
    return f"better than {value}" if np.all(np.asarray(curve) >= level) else value


def class_resolutions(result: ClassificationResult) -> list[int] | None:
    """Per-class resolution in shells (cycles per box) of a gold-standard
    result at FSC 0.143, or None."""
    if getattr(result, "fsc_classes", None) is None or result.fsc_shells is None:
        return None
    shells = np.asarray(result.fsc_shells)
    out = []
    for curve in np.asarray(result.fsc_classes):
        below = np.flatnonzero(curve < 0.143)
        out.append(int(shells[below[0]] - 1) if len(below) else int(shells[-1]))
    return out


def _write_history(out_dir, result, dest=None):
    sizes = {}
    k = len(result.alpha)
    for it in finished_iterations(out_dir):
        if it > result.n_iterations:
            continue
        with np.load(_iteration_npz(out_dir, it)) as z:
            sizes[it] = np.bincount(z["classes"], minlength=k).tolist()
    history = {
        "iterations": int(result.n_iterations),
        "converged": bool(result.converged),
        "mode": result.mode,
        "seed": int(result.seed),
        "start": int(getattr(result, "start", 0)),
        "start_log_likelihoods": getattr(result, "start_log_likelihoods", None),
        "n_classes": k,
        "n_particles": int(len(result.classes)),
        "box": int(result.averages.shape[-1]),
        "log_likelihood": list(result.log_likelihood),
        "mean_score": list(result.mean_score),
        "class_changes": list(result.class_changes),
        "average_change": list(result.average_change),
        "class_sizes": [sizes.get(i + 1) for i in range(int(result.n_iterations))],
        "alpha": np.asarray(result.alpha).tolist(),
        "sigma": float(result.sigma),
        "xi_voxels": float(result.xi),
        "band_radius": list(result.radius or []),
        "fsc_radius": list(result.fsc_radius or []),
        "gold_standard": bool(getattr(result, "gold_standard", False)),
        "fsc_kind": fsc_kind(getattr(result, "gold_standard", False))[0],
        "fsc_level": fsc_kind(getattr(result, "gold_standard", False))[1],
        "class_fsc_radius": class_resolutions(result),
        "join_radius": getattr(result, "join_radius", None),
        "coverage_gaps": (
            None
            if getattr(result, "coverage_gaps", None) is None
            else [float(g) for g in result.coverage_gaps]
        ),
        "reseeded": [
            {
                "iteration": int(e[0]),
                "class": int(e[1]) + 1,
                "from_class": int(e[2]) + 1,
                "subtomograms": int(e[3]),
            }
            for e in getattr(result, "reseeded", None) or []
        ],
    }
    with atomic_path(Path(dest or out_dir) / HISTORY_NAME) as tmp:
        Path(tmp).write_text(json.dumps(history, indent=1))
    return history


def write_final(
    out_dir: PathLike,
    result: ClassificationResult,
    paths: Sequence[PathLike],
    voxel_size: float,
    dest: PathLike | None = None,
    source: ParticleStar | None = None,
    extra: dict[str, Any] | None = None,
    acquisition: Acquisition | None = None,
) -> dict[str, Any]:
    """Final class averages, ``particles.star`` and ``history.json``.

    ``dest`` (default ``out_dir``): where to write them, e.g. a staging
    folder that is published into ``out_dir`` afterwards; the history is
    read from ``out_dir``'s iteration files.

    ``particles.star`` is a RELION 5 particle file of 3D subtomograms
    (:func:`faml_tomo.io.relion.write_relion5_particles`): ``source`` (the
    input :class:`~faml_tomo.io.relion.ParticleStar`) keeps its columns and
    optics table; ``extra`` adds columns it lacks; ``acquisition`` fills an
    optics table the input does not give.

    ``particles.star`` lists each subtomogram with its class
    (``rlnClassNumber``, 1-based), the best transform as RELION ZYZ Euler
    angles (``rlnAngleRot/Tilt/Psi``, degrees) and origin
    (``rlnOriginX/Y/ZAngst``), the class posterior
    (``rlnMaxValueProbDistribution``), the number of candidate transforms
    (``rlnNrOfSignificantSamples``), the best constrained correlation
    (``famlScore``), the log-likelihood (``rlnLogLikeliContribution``) and
    the half-set (``rlnRandomSubset``, 1 or 2).
    """
    from ..geometry import origin_from_shift
    from ..io.relion import write_relion5_particles

    dest = Path(dest or out_dir)
    for k, avg in enumerate(result.averages):
        write_mrc(class_average_path(dest, k), avg, voxel_size)
    eul = result.euler_angles()
    cols = {
        "rlnClassNumber": np.asarray(result.classes) + 1,
        "rlnAngleRot": eul[:, 0],
        "rlnAngleTilt": eul[:, 1],
        "rlnAnglePsi": eul[:, 2],
        **dict(
            zip(
                ("rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst"),
                origin_from_shift(result.shifts, voxel_size).T,
            )
        ),
        "rlnMaxValueProbDistribution": result.max_posterior,
        "rlnNrOfSignificantSamples": result.n_candidates,
        "famlScore": result.scores,
    }
    if result.logliks is not None:
        cols["rlnLogLikeliContribution"] = result.logliks
    if getattr(result, "gold_standard", False) and result.subsets is not None:
        # only independent half-sets are RELION's half-sets; otherwise the
        # input's split (if any) is kept
        cols["rlnRandomSubset"] = np.asarray(result.subsets)
    write_relion5_particles(
        dest / PARTICLES_NAME,
        cols,
        len(paths),
        voxel_size,
        result.averages.shape[-1],
        source=source,
        image_names=[str(p) for p in paths],
        extra=extra,
        acquisition=acquisition,
    )
    return _write_history(out_dir, result, dest)


def read_history(out_dir: PathLike) -> dict[str, Any]:
    """The run's ``history.json`` as a dict.

    Raises
    ------
    InputError
        No history in ``out_dir`` (the run has not finished an iteration).
    """
    path = Path(out_dir) / HISTORY_NAME
    if not path.is_file():
        raise InputError(f"{path}: no history (no finished iteration)")
    return json.loads(path.read_text())


def read_iteration(
    out_dir: PathLike, iteration: int | None = None, averages: bool = True
) -> dict[str, Any]:
    """Results of one finished iteration.

    Parameters
    ----------
    out_dir : str or Path
    iteration : int, optional
        1-based; default the last finished one.
    averages : bool
        Also read the class averages.

    Returns
    -------
    dict
        ``iteration``, ``alpha`` and the per-particle arrays ``classes``,
        ``max_posterior``, ``scores``, ``n_candidates``, ``rotations``,
        ``shifts``, ``logliks``, ``subsets``; the half-set FSC ``fsc`` (and
        per class ``fsc_classes``, gold standard) at Fourier shells
        ``fsc_shells``; with ``averages``, ``averages`` of shape
        ``(K, n, n, n)``.
    """
    from ..io.mrc import read_mrc

    its = finished_iterations(out_dir)
    if not its:
        raise InputError(f"{out_dir}: no finished iteration")
    it = its[-1] if iteration is None else int(iteration)
    if it not in its:
        raise InputError(f"{out_dir}: iteration {it} not found (finished: {its[0]}..{its[-1]})")
    with np.load(_iteration_npz(out_dir, it)) as z:
        out = {name: z[name] for name in z.files}
    out["iteration"] = it
    if averages:
        out["averages"] = np.stack(
            [read_mrc(iteration_average_path(out_dir, it, k))[0] for k in range(len(out["alpha"]))]
        )
    return out
