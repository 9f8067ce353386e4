"""``faml-tomo classify``: FAML (or FA) subtomogram averaging and classification.

Examples
--------
Two classes from a RELION-style particle STAR file, 20 iterations::

    faml-tomo classify --star particles.star --classes 2 --tilt-range -60 60 \\
        --out results/faml --seed 1

All MRC files of a folder, alignment-only comparator, four processes::

    faml-tomo classify --folder subtomos/ --mode fa --workers 4 --out results/fa

Across MPI ranks (the same command on every rank; rank 0 writes)::

    mpirun -n 16 faml-tomo classify --star particles.star --classes 2 --out results/mpi
    # SLURM: srun -n 16 faml-tomo classify ...

Per-particle tilt ranges (subtomograms from tomograms with different tilt
ranges) come from the optional STAR columns ``famlTiltMin`` / ``famlTiltMax``
(degrees); rows without them use ``--tilt-range``.

Outputs in ``--out``: ``class_NN.mrc`` (averages), ``particles.star``
(per-particle class, max posterior, number of candidates, log-likelihood and
the best transform as RELION ZYZ Euler angles ``rlnAngleRot/Tilt/Psi`` in
degrees and ``rlnOriginX/Y/ZAngst``: the transform maps the class average
onto the particle, ``particle(x) = average(R^T (x - c - t) + c)``, ``R`` =
RELION's matrix, ``t = -origin / voxel size``; a RELION 5 file with the input
table's columns kept, see :mod:`faml_tomo.io.relion`), ``history.json``
(log-likelihood, class sizes and more per iteration), ``iterations/`` (the
averages and per-particle results of every iteration), ``job.json``
(version, parameters, seed), the run marker ``faml_run.json`` ("complete"
once the final files are published; see :mod:`faml_tomo.io.publish`) and the
checkpoint ``faml_checkpoint.npz``:
running the same command again resumes after the last finished iteration,
and a larger ``--iterations`` continues a finished run.
"""
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.jobjson import write_job_json

logger = logging.getLogger(__name__)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "classify", help="FAML subtomogram averaging and classification",
        description="Reference-free (or reference-started) averaging and classification "
                    "of subtomograms by FAML: fast rotational alignment gives candidate "
                    "transforms, maximum likelihood integrates over them (Zhao et al.). "
                    "--mode fa runs the alignment-only comparator.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--star", type=Path, help="particle STAR file (rlnImageName or "
                     "rlnSubtomogramName; paths relative to the STAR file)")
    src.add_argument("--folder", type=Path, help="folder of subtomogram MRC files")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--tilt-range", nargs=2, type=float, default=None,
                   metavar=("MIN", "MAX"), help="tilt range about Y in degrees "
                   "(default: per subtomogram from the STAR file or --tomograms, else "
                   "-60 60; asymmetric allowed)")
    p.add_argument("--tomograms", type=Path, default=None,
                   help="RELION 5 tomograms.star: the tilt range of each subtomogram's "
                        "tomogram (rlnTomoName) from its tilt-series table")
    p.add_argument("--classes", type=int, default=1, help="number of classes K (default 1)")
    p.add_argument("--iterations", type=int, default=20,
                   help="largest number of iterations (default 20)")
    p.add_argument("--mode", choices=("faml", "fa"), default="faml",
                   help="faml (maximum likelihood, default) or fa (alignment only)")
    p.add_argument("--references", nargs="+", type=Path, default=None,
                   help="K initial averages (MRC) instead of a random split, or one map to "
                        "start all --classes from (random subsets of the subtomograms at "
                        "their transforms against it, as RELION starts classes from one "
                        "reference; with --focus-mask, focused classification of a "
                        "consensus map)")
    p.add_argument("--mask", type=Path, default=None,
                   help="reference mask (MRC, values 0..1, soft edge recommended, box of "
                        "the subtomograms): only the masked region of the averages drives "
                        "alignment and likelihood")
    p.add_argument("--focus-mask", type=Path, default=None,
                   help="classification mask (MRC, values 0..1, box of the subtomograms, in "
                        "the frame of the --references): the classes are told apart only "
                        "inside it, poses still come from the whole particle (focused "
                        "classification)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--tolerance", type=float, default=0.01,
                   help="converged when every class average changes by less than this "
                        "fraction (and at most 0.5%% of the particles change class; "
                        "default 0.01)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes on this machine (default 1)")
    p.add_argument("--voxel-size", type=float, default=None,
                   help="Å per voxel of the subtomograms (default: from their headers; "
                        "required when a header gives none)")
    p.add_argument("--resolution", type=float, default=None,
                   help="low-pass limit in Å for alignment and likelihood (default "
                        "Nyquist); helps at very low SNR")
    p.add_argument("--max-candidates", type=int, default=50,
                   help="candidate transforms per particle and class (default 50)")
    p.add_argument("--lmax", type=int, default=35,
                   help="spherical-harmonic degree; Euler grid 2 lmax + 2 (default 35: "
                        "5 degrees)")
    p.add_argument("--voronoi-samples", type=int, default=10000,
                   help="Monte-Carlo samples for the Voronoi weights (default 10000)")
    p.add_argument("--alpha-trd", type=float, default=1.0,
                   help="translation weight of the transform distance (default 1)")
    p.add_argument("--no-normalize", action="store_true",
                   help="do not scale subtomograms to mean 0 / SD 1")
    p.add_argument("--init", choices=("auto", "consensus", "random", "kmeans"),
                   default="auto",
                   help="initial split for K > 1 without references: consensus (align all "
                        "to one average first, then split by the principal components of "
                        "the wedge-masked differences), the paper's random split, or "
                        "k-means of rotation-invariant shell-power descriptors; auto "
                        "(default): consensus for FAML without --gold-standard, else random")
    p.add_argument("--consensus-iterations", type=int, default=20,
                   help="--init consensus: iterations of the one-class consensus run "
                        "(default 20; it stops earlier once converged)")
    p.add_argument("--shared-candidates", type=int, default=10,
                   help="FAML, K > 1: score every class at the best N candidate rotations "
                        "of every class, so that classes are compared on the same poses "
                        "(default 10; 0: each class on its own candidates, as the paper)")
    p.add_argument("--full-band", action="store_true",
                   help="the paper's behaviour: no frequency marching and no FSC weighting "
                        "(whole band from the first iteration)")
    p.add_argument("--start-resolution", type=float, default=None,
                   help="frequency marching: first low-pass limit in Å (default box/8 "
                        "shells, i.e. 8 voxels)")
    p.add_argument("--min-class-size", type=float, default=3.0,
                   help="K > 1 without references: re-seed (once) a class left with fewer "
                        "subtomograms than this, from the worst-fitting half of the largest "
                        "class (default 3; 0: never)")
    from ..averaging.symmetry import SYMMETRY_HELP
    p.add_argument("--symmetry", default="C1",
                   help=SYMMETRY_HELP + " (default C1)"
                        "; imposed on the averages and taken into account in the search")
    p.add_argument("--c1-iterations", type=int, default=10,
                   help="with --symmetry and no --references: iterations without symmetry "
                        "before each average is turned into its symmetry frame and the "
                        "symmetry imposed (default 10)")
    p.add_argument("--gold-standard", action="store_true",
                   help="independent half-sets: split the subtomograms at random before "
                        "the first iteration and refine each half against its own "
                        "averages (shared only up to the start resolution); the resolution "
                        "is where their FSC falls below 0.143, per class")
    p.add_argument("--restart", action="store_true",
                   help="ignore an existing checkpoint in --out (and remove its "
                        "per-iteration files)")
    p.set_defaults(func=run)
    return p


def _mpi_comm():
    """COMM_WORLD when running under an MPI launcher with several ranks."""
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    comm = MPI.COMM_WORLD
    return comm if comm.Get_size() > 1 else None




def _inputs(args):
    """Paths of the subtomograms, their tilt ranges and the input particle
    table (None for a folder)."""
    source = None
    if args.star is not None:
        from ..io.relion import read_particle_star
        source = read_particle_star(args.star)
        paths = source.paths
    else:
        if not args.folder.is_dir():
            raise InputError(f"{args.folder}: not a folder")
        paths = sorted(args.folder.glob("*.mrc"))
        if not paths:
            raise InputError(f"{args.folder}: no .mrc files")
    return [Path(p) for p in paths], _tilt_ranges(args, source), source


def _tilt_ranges(args, source):
    """One tilt range, or one per subtomogram: --tilt-range, else the STAR
    file's columns, else --tomograms, else -60..60 (with a warning for
    files from other programs, which do not record it)."""
    if args.tilt_range is not None:
        return tuple(args.tilt_range)
    if source is not None and source.tilt_ranges is not None:
        return source.tilt_ranges
    if args.tomograms is not None:
        from ..io.relion import tomogram_tilt_ranges
        if source is None or source.tomo_names is None:
            raise InputError("--tomograms needs a --star file with rlnTomoName")
        ranges = tomogram_tilt_ranges(args.tomograms, set(source.tomo_names))
        missing = sorted(set(source.tomo_names) - set(ranges))
        if missing:
            raise InputError(f"{args.tomograms}: no tomogram {missing[0]!r} (of "
                             f"{len(missing)} missing) that {args.star} refers to")
        return [ranges[t] for t in source.tomo_names]
    if source is not None and source.flavour != "faml":
        logger.warning("%s (%s) does not record tilt ranges: assuming -60..60 degrees; "
                       "give --tilt-range or --tomograms", source.path, source.flavour)
    return (-60.0, 60.0)


def check_inputs(args):
    """Every check that needs no computation, before any work: options,
    particle headers (box, voxel size), references, mask, output folder.

    Returns
    -------
    paths, tilt, info
        Subtomogram paths, tilt range(s) and their
        :class:`~faml_tomo.averaging.checks.ParticleSetInfo`.
    """
    from ..averaging.checks import check_particles
    from ..averaging.outputs import ITERATIONS_DIR
    from ..io.publish import check_output_folder
    for name in ("workers", "classes", "iterations"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be >= 1, got {getattr(args, name)}")
    paths, tilt, source = _inputs(args)
    voxel = args.voxel_size
    if voxel is None and source is not None and source.voxel_size:
        voxel = source.voxel_size           # stated by the file; headers may round
    info = check_particles(paths, voxel, args.references or (), args.mask)
    inputs = [args.star, args.folder, args.mask, args.focus_mask, args.tomograms,
              *(args.references or ()), *paths]
    check_output_folder(args.out, inputs, managed=[ITERATIONS_DIR])
    return paths, tilt, info, source


def run(args):
    from ..averaging import AlignParams, EMParams, VolumeFiles, classify
    from ..averaging.symmetry import check_symmetry
    from ..averaging.coverage import gap_message
    from ..averaging.em import CHECKPOINT_NAME, CONSENSUS_CHECKPOINT_NAME, result_from_state
    from ..averaging.outputs import (ITERATIONS_DIR, class_resolutions, finished_iterations,
                                     write_final, write_iteration)
    from ..io.mrc import read_mrc
    from ..io.publish import Publication
    comm = _mpi_comm()
    root = comm is None or comm.Get_rank() == 0
    t0 = time.perf_counter()
    paths, tilt, info, source = check_inputs(args)
    n_box, voxel = info.box, info.voxel_size
    r_max = None
    if args.resolution is not None:
        if args.resolution <= 2 * voxel:
            raise InputError(f"--resolution {args.resolution:g} Å is beyond Nyquist "
                             f"({2 * voxel:g} Å at {voxel:g} Å/px)")
        r_max = max(2, min(n_box // 2 - 1, int(n_box * voxel / args.resolution)))
    r_start = None
    if args.start_resolution is not None:
        if args.start_resolution <= 2 * voxel:
            raise InputError(f"--start-resolution {args.start_resolution:g} Å is beyond "
                             f"Nyquist ({2 * voxel:g} Å at {voxel:g} Å/px)")
        r_start = max(1, int(n_box * voxel / args.start_resolution))
    params = EMParams(n_classes=args.classes, mode=args.mode, max_iter=args.iterations,
                      tol=args.tolerance,
                      init=args.init, consensus_iterations=args.consensus_iterations,
                      shared_candidates=args.shared_candidates, marching=not args.full_band,
                      fsc_weight=not args.full_band, r_start=r_start,
                      n_voronoi=args.voronoi_samples, alpha_trd=args.alpha_trd,
                      seed=args.seed, normalize=not args.no_normalize,
                      min_class_size=args.min_class_size,
                      c1_iterations=args.c1_iterations,
                      gold_standard=args.gold_standard,
                      align=AlignParams(lmax=args.lmax, r_max=r_max,
                                        max_candidates=args.max_candidates,
                                        symmetry=check_symmetry(args.symmetry)))
    refs = None
    if args.references:
        refs = [read_mrc(p)[0] for p in args.references]
    mask = read_mrc(args.mask)[0] if args.mask is not None else None
    focus = read_mrc(args.focus_mask)[0] if args.focus_mask is not None else None
    out = Path(args.out)
    if root and args.restart:
        (out / CHECKPOINT_NAME).unlink(missing_ok=True)
        (out / CONSENSUS_CHECKPOINT_NAME).unlink(missing_ok=True)
        shutil.rmtree(out / ITERATIONS_DIR, ignore_errors=True)
    resuming = [(out / CHECKPOINT_NAME).is_file()]

    def progress(state):
        if resuming[0]:
            # the restored state: complete its files if a kill fell between
            # the checkpoint and them (history.json would lack the iteration)
            resuming[0] = False
            if root and state.iteration not in finished_iterations(out):
                write_iteration(out, result_from_state(state, params, n_box), voxel)
                print(f"iteration {state.iteration}: files restored from the checkpoint",
                      flush=True)
            return
        if root:
            write_iteration(out, result_from_state(state, params, n_box), voxel)
            print(f"iteration {state.iteration}/{params.max_iter}: log-likelihood "
                  f"{state.log_likelihood[-1]:.6g}, mean score {state.mean_score[-1]:.4f}, "
                  f"class changes {state.class_changes[-1]}, average change "
                  f"{state.average_change[-1]:.4f}, sizes "
                  f"{np.bincount(state.classes, minlength=len(state.alpha)).tolist()}, "
                  f"band {state.radius[-1]} shells (FSC {state.fsc_radius[-1]}), "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
            for e in state.reseeded:
                if e[0] == state.iteration:
                    print(f"  class {e[1] + 1} had lost its subtomograms: re-seeded before "
                          f"this iteration from the {e[3]} worst-fitting of class {e[2] + 1}",
                          flush=True)

    if not root:
        classify(VolumeFiles(paths), tilt, params, references=refs, checkpoint_dir=out,
                 callback=progress, workers=args.workers, comm=comm, mask=mask,
                 focus_mask=focus)
        return 0
    with Publication(out, "classify", in_place=True) as stage:
        res = classify(VolumeFiles(paths), tilt, params, references=refs,
                       checkpoint_dir=out, callback=progress, workers=args.workers,
                       comm=comm, mask=mask, focus_mask=focus)
        write_final(out, res, paths, voxel, dest=stage, source=source)
        _write_job(stage, args, voxel, paths, n_box, r_max, comm, res, t0)
    elapsed = time.perf_counter() - t0
    print(f"{args.mode.upper()}: {len(paths)} subtomograms, {len(res.averages)} classes, "
          f"{res.n_iterations} iterations ({'converged' if res.converged else 'not converged'})"
          f" in {elapsed:.1f} s; wrote {out}")
    for k, r in enumerate(class_resolutions(res) or []):
        where = (f"{n_box * voxel / r:.1f} Å" if r > res.join_radius + 1 else
                 f"not resolved beyond the shared start resolution "
                 f"({n_box * voxel / res.join_radius:.0f} Å)")
        print(f"class {k + 1}: gold-standard resolution (FSC 0.143) {where}")
    gaps = gap_message(res.coverage_gaps) if res.coverage_gaps is not None else None
    if gaps:
        print(f"warning: {gaps}")
    return 0


def _write_job(folder, args, voxel, paths, n_box, r_max, comm, res, t0):
    elapsed = time.perf_counter() - t0
    write_job_json(folder / "job.json", "classify",
                   {**{k: v for k, v in vars(args).items() if k != "func"},
                    "resolved": {"voxel_size": voxel, "n_particles": len(paths),
                                 "box": n_box, "r_max": r_max, "mpi_ranks":
                                 1 if comm is None else comm.Get_size()}},
                   seed=args.seed, extra={"seconds": round(elapsed, 3),
                                          "iterations": res.n_iterations,
                                          "converged": res.converged})
