"""``faml-tomo simulate``: simulated subtomograms and fiducial tomograms with
known ground truth.

Examples
--------
Two similar classes, 50 particles each, at the FAML paper's defaults::

    faml-tomo simulate subtomograms --structure ring7 ring7_cap --count 50 50 \\
        --snr 0.01 --out results/sim_subtomos --seed 1

A 512 x 512 x 128 tomogram with 10 nm beads and a bananas misalignment::

    faml-tomo simulate tomogram --size 512 512 --thickness 128 --pixel-size 15 \\
        --misalignment bananas --magnitude 80 --out results/sim_tomo --seed 1
"""
import logging
import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.jobjson import write_job_json

logger = logging.getLogger(__name__)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "simulate", help="simulate subtomograms or tomograms with known ground truth",
        description="Simulate cryo-ET data with known ground truth: subtomograms of "
                    "phantoms or density maps (random rigid transforms, CTF, MTF, missing "
                    "wedge, noise at a target SNR), or tilt series of a slab with gold "
                    "beads and their weighted back-projection, optionally misaligned.")
    sub = p.add_subparsers(dest="simulate_what", metavar="WHAT")
    sub.required = True
    _add_subtomograms(sub)
    _add_tomogram(sub)
    return p


def _common(q):
    q.add_argument("--out", required=True, type=Path, help="output folder")
    q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    q.add_argument("--voltage", type=float, default=300.0, help="kV (default 300)")
    q.add_argument("--cs", type=float, default=2.7, help="spherical aberration, mm")
    q.add_argument("--amp-contrast", type=float, default=0.07,
                   help="amplitude contrast fraction (default 0.07)")
    q.add_argument("--no-ctf", action="store_true", help="no CTF")
    q.add_argument("--no-mtf", action="store_true", help="no detector MTF")
    q.add_argument("--tilt-range", nargs=2, type=float, default=(-60.0, 60.0),
                   metavar=("MIN", "MAX"), help="tilt range about Y in degrees "
                   "(default -60 60; asymmetric allowed)")


def _add_subtomograms(sub):
    q = sub.add_parser("subtomograms", help="subtomograms with random rigid transforms",
                       description="Subtomograms of one or more structures (one class "
                                   "each) with rotations uniform on SO(3) or about Y, "
                                   "shifts, CTF, MTF, missing wedge and noise at a target "
                                   "SNR. Writes one MRC per particle, the noise-free "
                                   "references, particles.star (RELION labels plus the "
                                   "ground truth) and job.json.")
    q.add_argument("--structure", nargs="+", default=["ring7"],
                   help="phantom names (ring7, ring7_cap, twolobe, lshape) or density "
                        "MRC files, one class each (default ring7)")
    q.add_argument("--count", nargs="+", type=int, default=[100],
                   help="total number of particles, or one count per structure "
                        "(default 100)")
    q.add_argument("--box", type=int, default=32, help="box size in voxels (default 32)")
    q.add_argument("--pixel-size", type=float, default=20.0, help="Å/voxel (default 20)")
    q.add_argument("--snr", type=float, default=0.01,
                   help="var(signal)/var(noise) per subtomogram (default 0.01)")
    q.add_argument("--max-shift", type=float, default=2.0,
                   help="largest shift in voxels (default 2)")
    q.add_argument("--orientations", choices=("uniform", "y"), default="uniform",
                   help="uniform on SO(3) or about Y only (preferred orientation)")
    q.add_argument("--defocus", type=float, default=-6.0,
                   help="defocus in µm, negative = underfocus (default -6)")
    q.add_argument("--defocus-spread", type=float, default=0.0,
                   help="per-particle defocus spread +- µm (default 0)")
    q.add_argument("--phantom-diameter", type=float, default=240.0,
                   help="diameter of procedural phantoms in Å (default 240)")
    q.add_argument("--invert", action="store_true",
                   help="protein bright instead of cryo-ET contrast (dark)")
    q.add_argument("--write-clean", action="store_true",
                   help="also write the noise-free subtomograms in clean/")
    q.add_argument("--prefix", default="subtomo", help="file name prefix")
    _common(q)
    q.set_defaults(func=run, simulate_what="subtomograms")


def _add_tomogram(sub):
    q = sub.add_parser("tomogram", help="tilt series of a slab with gold beads + WBP",
                       description="A slab with gold beads, protein-like blobs and "
                                   "vesicles; its tilt series with dose-dependent noise "
                                   "and optional misalignment; the weighted "
                                   "back-projection. Writes the tilt series (.mrcs, .tlt, "
                                   "per-image STAR), the tomogram, true bead coordinates "
                                   "in the tomogram's voxel frame and job.json.")
    q.add_argument("--size", nargs=2, type=int, default=(512, 512), metavar=("NX", "NY"),
                   help="image / tomogram size in pixels (default 512 512)")
    q.add_argument("--thickness", type=int, default=128,
                   help="tomogram thickness nz in pixels (default 128)")
    q.add_argument("--pixel-size", type=float, default=15.0, help="Å/px (default 15)")
    q.add_argument("--slab-thickness", type=float, default=1500.0,
                   help="ice thickness in Å (default 1500)")
    q.add_argument("--bead-diameter", type=float, default=100.0,
                   help="gold bead diameter in Å (default 100)")
    q.add_argument("--beads", type=int, default=30, help="number of beads (default 30)")
    q.add_argument("--bead-min-distance", type=float, default=None,
                   help="smallest bead centre distance in Å (default 3 diameters)")
    q.add_argument("--bead-layout", choices=("uniform", "surfaces"), default="uniform")
    q.add_argument("--protein-fraction", type=float, default=0.15,
                   help="volume fraction of protein-like blobs (default 0.15)")
    q.add_argument("--vesicles", type=int, default=4, help="number of vesicles")
    q.add_argument("--tilt-step", type=float, default=3.0, help="degrees (default 3)")
    q.add_argument("--dose", type=float, default=120.0,
                   help="total exposure in e/Å² (default 120)")
    q.add_argument("--order", choices=("dose-symmetric", "sequential", "bidirectional"),
                   default="dose-symmetric", help="acquisition order")
    q.add_argument("--defocus", type=float, default=-4.0,
                   help="defocus in µm, negative = underfocus (default -4)")
    q.add_argument("--no-exposure-filter", action="store_true",
                   help="no radiation damage of the protein")
    q.add_argument("--no-noise", action="store_true", help="expected counts, no noise")
    q.add_argument("--misalignment", choices=("none", "bananas", "twisters", "birds"),
                   default="none", help="preset misalignment kind")
    q.add_argument("--magnitude", type=float, default=0.0,
                   help="bananas: constant X offset in Å; birds: largest Y shift in Å "
                        "(linear -M..M across the series); twisters: in-plane rotation "
                        "in degrees")
    for ax, unit in (("x", "Å"), ("y", "Å"), ("angle", "degrees")):
        q.add_argument(f"--misalign-{ax}", nargs=7, type=float, default=None,
                       metavar="P", help=f"general model p0..p6 for {ax} ({unit}): d_i = "
                       "p0 + p1 i + p2|sin((i+p3)/S pi)| + p4 sin((i+p5)/S 2pi) + N(0,p6)")
    q.add_argument("--binning", type=int, default=1,
                   help="binning of the reconstructed tomogram (default 1)")
    q.add_argument("--no-tomogram", action="store_true",
                   help="skip the whole-tomogram reconstruction")
    q.add_argument("--bead-boxes", type=int, default=0, metavar="BOX",
                   help="also reconstruct a BOX^3 local box around every bead "
                        "(fast path) into beads/")
    q.add_argument("--bead-box-scale", type=float, default=1.0,
                   help="voxel size of the bead boxes in pixels (default 1)")
    q.add_argument("--name", default="TS_01", help="base name of the files")
    _common(q)
    q.set_defaults(func=run, simulate_what="tomogram")


def _ctf(args):
    from ..simulation import CTFParams
    if args.no_ctf:
        return None
    return CTFParams(args.voltage, args.cs, args.defocus, args.amp_contrast).validate()


def run(args):
    if args.simulate_what == "subtomograms":
        return _run_subtomograms(args)
    return _run_tomogram(args)


def _params_dict(args):
    return {k: v for k, v in vars(args).items() if k not in ("func",)}


def _run_subtomograms(args):
    from ..simulation import (SubtomogramParams, get_structure, simulate_subtomograms,
                              write_subtomograms)
    t0 = time.perf_counter()
    params = SubtomogramParams(
        box=args.box, pixel_size=args.pixel_size, snr=args.snr,
        tilt_min=args.tilt_range[0], tilt_max=args.tilt_range[1],
        max_shift=args.max_shift, orientations=args.orientations, ctf=_ctf(args),
        defocus_spread=args.defocus_spread, mtf=not args.no_mtf,
        invert=args.invert).validate()
    names = []
    structures = {}
    for spec in args.structure:
        name = Path(spec).stem if spec.endswith(".mrc") else spec
        if name in structures:
            raise InputError(f"--structure: {spec!r} given twice")
        structures[name] = get_structure(spec, args.box, args.pixel_size,
                                         args.phantom_diameter)
        names.append(name)
    counts = args.count[0] if len(args.count) == 1 else args.count
    sset = simulate_subtomograms(structures, counts, params, rng=args.seed,
                                 keep_clean=args.write_clean)
    paths = write_subtomograms(args.out, sset, args.prefix, write_clean=args.write_clean)
    elapsed = time.perf_counter() - t0
    write_job_json(Path(args.out) / "job.json", "simulate subtomograms",
                   {**_params_dict(args), "resolved": params.as_dict()}, seed=args.seed,
                   extra={"n": len(sset), "classes": names,
                          "counts": np.bincount(sset.truth.class_index,
                                                minlength=len(names)),
                          "star": paths["star"], "seconds": round(elapsed, 3)})
    print(f"wrote {len(sset)} subtomograms ({', '.join(names)}) and {paths['star']} "
          f"in {elapsed:.1f} s")
    return 0


def _run_tomogram(args):
    from ..simulation import (AcquisitionParams, MisalignmentModel, SlabParams,
                              misalignment_preset, reconstruct_local, reconstruct_wbp,
                              simulate_tilt_series, write_tilt_series)
    from ..io.mrc import write_mrc
    t0 = time.perf_counter()
    nx, ny = args.size
    slab_p = SlabParams(nx=nx, ny=ny, nz=args.thickness, pixel_size=args.pixel_size,
                        slab_thickness=args.slab_thickness,
                        bead_diameter=args.bead_diameter, n_beads=args.beads,
                        bead_min_distance=args.bead_min_distance,
                        bead_layout=args.bead_layout,
                        protein_fraction=args.protein_fraction,
                        n_vesicles=args.vesicles).validate()
    acq = AcquisitionParams(tilt_min=args.tilt_range[0], tilt_max=args.tilt_range[1],
                            tilt_step=args.tilt_step, dose=args.dose, order=args.order,
                            ctf=_ctf(args), mtf=not args.no_mtf,
                            exposure_filter=not args.no_exposure_filter,
                            noise=not args.no_noise).validate()
    n_img = acq.angles().size
    general = [args.misalign_x, args.misalign_y, args.misalign_angle]
    if any(g is not None for g in general):
        if args.misalignment != "none":
            raise InputError("--misalignment presets and --misalign-x/y/angle (general "
                             "model) are exclusive")
        zero = (0.0,) * 7
        model = MisalignmentModel(*(tuple(g) if g is not None else zero for g in general),
                                  kind="general").validate()
    else:
        if args.misalignment != "none" and args.magnitude == 0:
            raise InputError(f"--misalignment {args.misalignment} needs a non-zero "
                             f"--magnitude")
        model = misalignment_preset(args.misalignment, args.magnitude, n_img)
    if args.binning < 1 or args.binning > min(nx, ny) // 2:
        raise InputError(f"--binning must be between 1 and {min(nx, ny) // 2}, got "
                         f"{args.binning}")
    if args.bead_boxes < 0 or args.bead_boxes == 1:
        raise InputError(f"--bead-boxes must be 0 (none) or a box size >= 2, got "
                         f"{args.bead_boxes}")
    ts = simulate_tilt_series(slab_p, acq, model, rng=args.seed)
    t_sim = time.perf_counter() - t0
    tomo = None
    if not args.no_tomogram:
        tomo = reconstruct_wbp(ts.images, ts.angles, slab_p.nz, binning=args.binning)
    paths = write_tilt_series(args.out, ts, args.name, tomo, args.binning)
    if args.bead_boxes:
        for i, c in enumerate(ts.beads):
            box = reconstruct_local(ts.images, ts.angles, c, args.bead_boxes, slab_p.nz,
                                    scale=args.bead_box_scale)
            write_mrc(Path(args.out) / "beads" / f"{args.name}_bead_{i + 1:03d}.mrc", box,
                      args.pixel_size * args.bead_box_scale)
    elapsed = time.perf_counter() - t0
    write_job_json(Path(args.out) / "job.json", "simulate tomogram",
                   {**_params_dict(args), "slab": slab_p.as_dict(),
                    "acquisition": acq.as_dict(), "misalignment_model": model.as_dict()},
                   seed=args.seed,
                   extra={"n_tilts": n_img, "angles": ts.angles, "rank": ts.rank,
                          "misalign_x_angst": ts.shift_x, "misalign_y_angst": ts.shift_y,
                          "misalign_rot_deg": ts.rotation, "beads_full_res_xyz": ts.beads,
                          "files": {k: str(v) for k, v in paths.items()},
                          "seconds_simulation": round(t_sim, 3),
                          "seconds": round(elapsed, 3)})
    print(f"wrote tilt series {args.name} ({n_img} tilts, {len(ts.beads)} beads, "
          f"misalignment {model.kind}) in {args.out} in {elapsed:.1f} s")
    return 0
