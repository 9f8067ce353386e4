"""The simulator's jobs: subtomograms with known transforms
(:class:`SubtomogramSimJob`) and a misaligned tilt series with its tomogram
(:class:`TomogramSimJob`); every setting once (default, unit, help), their
checks and ``run(job, out, progress=None)``, the entry points of
``faml-tomo simulate`` and of ``faml-tomo run job.json``.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from ..jobs import coerce_fields, job_to_json, option
from ..typealiases import PathLike

if TYPE_CHECKING:  # the simulator is imported when a job runs
    from .misalignment_model import MisalignmentModel
    from .optics import CTFParams
    from .tiltparams import AcquisitionParams, SlabParams
    from .tiltseries import TiltSeries

__all__ = ["SubtomogramSimJob", "TomogramSimJob", "run_subtomograms", "run_tomogram"]

_PRESETS = ("none", "bananas", "twisters", "birds")


def _ctf(job: "SubtomogramSimJob | TomogramSimJob") -> "CTFParams | None":
    from . import CTFParams

    if not job.ctf:
        return None
    return CTFParams(job.voltage, job.cs, job.defocus, job.amp_contrast).validate()


def _write_record(
    path: Path, command: str, job: "_Acquisition", extra: dict, resolved: dict
) -> None:
    from ..io.jobjson import write_job_json

    fields = job_to_json(job)
    write_job_json(
        path, command, {**fields["fields"], **resolved}, seed=job.seed, extra=extra, job=fields
    )


@dataclass(frozen=True)
class _Acquisition:
    """The settings both simulations share: seed, optics, tilt range."""

    seed: int = option(0, "random seed")
    voltage: float = option(300.0, "acceleration voltage", unit="kV")
    cs: float = option(2.7, "spherical aberration", unit="mm")
    amp_contrast: float = option(0.07, "amplitude contrast fraction")
    ctf: bool = option(True, "no CTF", flag="--no-ctf")
    mtf: bool = option(True, "no detector MTF", flag="--no-mtf")
    tilt_range: tuple[float, float] = option(
        (-60.0, 60.0), "tilt range about Y (asymmetric allowed)", unit="deg", metavar=("MIN", "MAX")
    )


@dataclass(frozen=True)
class SubtomogramSimJob(_Acquisition):
    """Subtomograms of one or more structures (one class each) with rotations
    uniform on SO(3) or about Y, shifts, CTF, MTF, missing wedge and noise at
    a target SNR."""

    TASK = "simulate subtomograms"
    SCHEMA = 1

    structure: tuple[str, ...] = option(
        ("ring7",),
        "phantom names (ring7, ring7_cap, twolobe, lshape) or density MRC files, one class each",
        nargs="+",
    )
    count: tuple[int, ...] = option(
        (100,), "total number of particles, or one count per structure", nargs="+"
    )
    box: int = option(32, "box size", unit="voxels")
    pixel_size: float = option(20.0, "voxel size", unit="Å")
    snr: float = option(0.01, "var(signal)/var(noise) per subtomogram")
    max_shift: float = option(2.0, "largest shift", unit="voxels")
    orientations: str = option(
        "uniform",
        "uniform on SO(3) or about Y only (preferred orientation)",
        choices=("uniform", "y"),
    )
    defocus: float = option(-6.0, "defocus, negative = underfocus", unit="µm")
    defocus_spread: float = option(0.0, "per-particle defocus spread +-", unit="µm")
    phantom_diameter: float = option(240.0, "diameter of procedural phantoms", unit="Å")
    invert: bool = option(False, "protein bright instead of cryo-ET contrast (dark)")
    write_clean: bool = option(False, "also write the noise-free subtomograms in clean/")
    prefix: str = option("subtomo", "file name prefix")

    def __post_init__(self) -> None:
        coerce_fields(self)

    def problems(self) -> list[str]:
        """Readable messages for settings that cannot run (empty: fine; the
        simulator's own checks name the rest when it starts)."""
        return [] if self.structure else ["give at least one structure"]


def run_subtomograms(
    job: SubtomogramSimJob, out: PathLike, progress: Callable[[str], None] | None = None
) -> dict:
    """Simulate and write the subtomograms of ``job`` (one MRC per particle,
    the noise-free references, ``particles.star`` with the ground truth and
    ``job.json``); returns the written paths."""
    from . import SubtomogramParams, get_structure, simulate_subtomograms, write_subtomograms

    say = progress or (lambda line: None)
    t0 = time.perf_counter()
    params = SubtomogramParams(
        box=job.box,
        pixel_size=job.pixel_size,
        snr=job.snr,
        tilt_min=job.tilt_range[0],
        tilt_max=job.tilt_range[1],
        max_shift=job.max_shift,
        orientations=job.orientations,
        ctf=_ctf(job),
        defocus_spread=job.defocus_spread,
        mtf=job.mtf,
        invert=job.invert,
    ).validate()
    names = []
    structures = {}
    for spec in job.structure:
        name = Path(spec).stem if spec.endswith(".mrc") else spec
        if name in structures:
            raise InputError(f"--structure: {spec!r} given twice")
        structures[name] = get_structure(spec, job.box, job.pixel_size, job.phantom_diameter)
        names.append(name)
    counts = job.count[0] if len(job.count) == 1 else list(job.count)
    sset = simulate_subtomograms(
        structures, counts, params, rng=job.seed, keep_clean=job.write_clean
    )
    paths = write_subtomograms(out, sset, job.prefix, write_clean=job.write_clean)
    elapsed = time.perf_counter() - t0
    _write_record(
        Path(out) / "job.json",
        "simulate subtomograms",
        job,
        {
            "n": len(sset),
            "classes": names,
            "counts": np.bincount(sset.truth.class_index, minlength=len(names)),
            "star": paths["star"],
            "seconds": round(elapsed, 3),
        },
        {"resolved": params.as_dict()},
    )
    say(
        f"wrote {len(sset)} subtomograms ({', '.join(names)}) and {paths['star']} "
        f"in {elapsed:.1f} s"
    )
    return paths


@dataclass(frozen=True)
class TomogramSimJob(_Acquisition):
    """A slab with gold beads, protein-like blobs and vesicles; its tilt
    series with dose-dependent noise and optional misalignment; the weighted
    back-projection."""

    TASK = "simulate tomogram"
    SCHEMA = 1

    size: tuple[int, int] = option(
        (512, 512), "image / tomogram size", unit="pixels", metavar=("NX", "NY")
    )
    thickness: int = option(128, "tomogram thickness nz", unit="pixels")
    pixel_size: float = option(15.0, "pixel size", unit="Å")
    slab_thickness: float = option(1500.0, "ice thickness", unit="Å")
    bead_diameter: float = option(100.0, "gold bead diameter", unit="Å")
    beads: int = option(30, "number of beads")
    bead_min_distance: float | None = option(
        None, "smallest bead centre distance (default 3 diameters)", unit="Å"
    )
    bead_layout: str = option(
        "uniform", "beads anywhere in the slab or on its surfaces", choices=("uniform", "surfaces")
    )
    protein_fraction: float = option(0.15, "volume fraction of protein-like blobs")
    vesicles: int = option(4, "number of vesicles")
    tilt_step: float = option(3.0, "tilt step", unit="deg")
    dose: float = option(120.0, "total exposure", unit="e/Å²")
    order: str = option(
        "dose-symmetric",
        "acquisition order",
        choices=("dose-symmetric", "sequential", "bidirectional"),
    )
    defocus: float = option(-4.0, "defocus, negative = underfocus", unit="µm")
    exposure_filter: bool = option(
        True, "no radiation damage of the protein", flag="--no-exposure-filter"
    )
    noise: bool = option(True, "expected counts, no noise", flag="--no-noise")
    misalignment: str = option("none", "preset misalignment kind", choices=_PRESETS)
    magnitude: float = option(
        0.0,
        "bananas: constant X offset in Å; birds: largest Y "
        "shift in Å (linear -M..M across the series); twisters: "
        "in-plane rotation in degrees",
    )
    misalign_x: tuple[float, ...] | None = option(
        None,
        "general model p0..p6 for x (Å): d_i = p0 + p1 i + p2|sin((i+p3)/S pi)| + "
        "p4 sin((i+p5)/S 2pi) + N(0,p6)",
        nargs=7,
        metavar="P",
    )
    misalign_y: tuple[float, ...] | None = option(
        None, "general model p0..p6 for y (Å)", nargs=7, metavar="P"
    )
    misalign_angle: tuple[float, ...] | None = option(
        None, "general model p0..p6 for the in-plane angle (degrees)", nargs=7, metavar="P"
    )
    binning: int = option(1, "binning of the reconstructed tomogram")
    tomogram: bool = option(True, "skip the whole-tomogram reconstruction", flag="--no-tomogram")
    bead_boxes: int = option(
        0,
        "also reconstruct a BOX^3 local box around every bead (fast path) into beads/; 0: none",
        metavar="BOX",
    )
    bead_box_scale: float = option(1.0, "voxel size of the bead boxes", unit="pixels")
    name: str = option("TS_01", "base name of the files")

    def __post_init__(self) -> None:
        coerce_fields(self)

    def problems(self) -> list[str]:
        """Readable messages for settings that cannot run (empty: fine)."""
        out = []
        general = (self.misalign_x, self.misalign_y, self.misalign_angle)
        if any(g is not None for g in general) and self.misalignment != "none":
            out.append(
                "--misalignment presets and --misalign-x/y/angle (general model) are exclusive"
            )
        elif self.misalignment != "none" and self.magnitude == 0:
            out.append(f"--misalignment {self.misalignment} needs a non-zero --magnitude")
        nx, ny = self.size
        if self.binning < 1 or self.binning > min(nx, ny) // 2:
            out.append(f"--binning must be between 1 and {min(nx, ny) // 2}, got {self.binning}")
        if self.bead_boxes < 0 or self.bead_boxes == 1:
            out.append(f"--bead-boxes must be 0 (none) or a box size >= 2, got {self.bead_boxes}")
        return out


def _misalignment_model(job: TomogramSimJob, n_img: int) -> "MisalignmentModel":
    from . import MisalignmentModel, misalignment_preset

    general = [job.misalign_x, job.misalign_y, job.misalign_angle]
    if any(g is not None for g in general):
        zero = (0.0,) * 7
        x, y, angle = (tuple(g) if g is not None else zero for g in general)
        return MisalignmentModel(x, y, angle, kind="general").validate()
    return misalignment_preset(job.misalignment, job.magnitude, n_img)


def _slab_params(job: TomogramSimJob) -> "SlabParams":
    """The validated specimen settings of ``job``."""
    from . import SlabParams

    nx, ny = job.size
    return SlabParams(
        nx=nx,
        ny=ny,
        nz=job.thickness,
        pixel_size=job.pixel_size,
        slab_thickness=job.slab_thickness,
        bead_diameter=job.bead_diameter,
        n_beads=job.beads,
        bead_min_distance=job.bead_min_distance,
        bead_layout=job.bead_layout,
        protein_fraction=job.protein_fraction,
        n_vesicles=job.vesicles,
    ).validate()


def _acquisition_params(job: TomogramSimJob) -> "AcquisitionParams":
    """The validated acquisition settings of ``job``."""
    from . import AcquisitionParams

    return AcquisitionParams(
        tilt_min=job.tilt_range[0],
        tilt_max=job.tilt_range[1],
        tilt_step=job.tilt_step,
        dose=job.dose,
        order=job.order,
        ctf=_ctf(job),
        mtf=job.mtf,
        exposure_filter=job.exposure_filter,
        noise=job.noise,
    ).validate()


def _write_bead_boxes(job: TomogramSimJob, ts: "TiltSeries", nz: int, out: PathLike) -> None:
    """Reconstruct a local box around every true bead into ``out/beads/``
    (none when ``job.bead_boxes`` is 0)."""
    from ..io.mrc import write_mrc
    from . import reconstruct_local

    for i, c in enumerate(ts.beads if job.bead_boxes else ()):
        box = reconstruct_local(
            ts.images, ts.angles, c, job.bead_boxes, nz, scale=job.bead_box_scale
        )
        write_mrc(
            Path(out) / "beads" / f"{job.name}_bead_{i + 1:03d}.mrc",
            box,
            job.pixel_size * job.bead_box_scale,
        )


def run_tomogram(
    job: TomogramSimJob, out: PathLike, progress: Callable[[str], None] | None = None
) -> "TiltSeries":
    """Simulate and write the tilt series of ``job`` (.mrcs, .tlt, per-image
    STAR), its tomogram, the true bead coordinates in the tomogram's voxel
    frame and ``job.json``; returns the simulated tilt series."""
    from . import reconstruct_wbp, simulate_tilt_series, write_tilt_series

    say = progress or (lambda line: None)
    problems = job.problems()
    if problems:
        raise InputError(problems[0])
    t0 = time.perf_counter()
    slab_p = _slab_params(job)
    acq = _acquisition_params(job)
    n_img = acq.angles().size
    model = _misalignment_model(job, n_img)
    ts = simulate_tilt_series(slab_p, acq, model, rng=job.seed)
    t_sim = time.perf_counter() - t0
    tomo = None
    if job.tomogram:
        tomo = reconstruct_wbp(ts.images, ts.angles, slab_p.nz, binning=job.binning)
    paths = write_tilt_series(out, ts, job.name, tomo, job.binning)
    _write_bead_boxes(job, ts, slab_p.nz, out)
    elapsed = time.perf_counter() - t0
    _write_record(
        Path(out) / "job.json",
        "simulate tomogram",
        job,
        {
            "n_tilts": n_img,
            "angles": ts.angles,
            "rank": ts.rank,
            "misalign_x_angst": ts.shift_x,
            "misalign_y_angst": ts.shift_y,
            "misalign_rot_deg": ts.rotation,
            "beads_full_res_xyz": ts.beads,
            "files": {k: str(v) for k, v in paths.items()},
            "seconds_simulation": round(t_sim, 3),
            "seconds": round(elapsed, 3),
        },
        {
            "slab": slab_p.as_dict(),
            "acquisition": acq.as_dict(),
            "misalignment_model": model.as_dict(),
        },
    )
    say(
        f"wrote tilt series {job.name} ({n_img} tilts, {len(ts.beads)} beads, "
        f"misalignment {model.kind}) in {out} in {elapsed:.1f} s"
    )
    return ts
