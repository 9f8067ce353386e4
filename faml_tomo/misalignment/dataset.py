"""Training and validation boxes for the misalignment networks, simulated.

Each *specimen* (a slab with gold beads, drawn at random with its own seed)
is imaged three times with the same specimen and the same image noise: once
aligned, once weakly and once strongly misaligned.  Boxes around its beads
go through exactly the inference path: a local weighted back-projection at
the tomogram's pixel size (:func:`faml_tomo.simulation.reconstruct_local`,
``scale=1``), large enough to hold the box footprint, then
:func:`faml_tomo.misalignment.extract_boxes` (resampling so the bead spans
16 voxels, background z-score).

What makes a tomogram weakly or strongly misaligned
---------------------------------------------------
A per-image alignment error moves each bead's projections by ``(du_i, dv_i)``
(pixels).  Part of that is the projection of a rigid 3D displacement of the
bead, ``du_i = ax cos(theta_i) + az sin(theta_i)``, ``dv_i = ay``: the
reconstruction just shows the bead elsewhere, with no artefact (e.g. a
linear X ramp across the series, the ``bananas`` preset, is almost a pure Z
shift).  The rest, the **residual** after a least-squares fit of
``(ax, ay, az)``, is what smears the bead.  Its RMS over the images, in
tomogram pixels, defines the classes:

* aligned: residual RMS <= 0.35 px (jitter of a good alignment);
* weak: 0.6-1.3 px ("a few pixels" peak-to-peak);
* strong: 1.7-12 px.

The error shape is drawn from the four kinds (bananas: X ramp; birds: Y
ramp; twisters: in-plane rotation, about a centre that may lie off the
simulated field of view, as for beads far from the centre of a large
tomogram; general: random terms of the Scipion model) and scaled so the
median bead residual hits a target drawn in the class range.  Beads whose
own residual falls outside the class (a twister's beads near the rotation
centre) are left out of the class's boxes, so labels stay clean.

Box centres mimic fiducial coordinates as a user has them: the apparent
bead centre in the reconstruction (predicted from the fitted displacement,
refined on the darkest blob) plus a small random error.  The boxes are cut
in :mod:`.simulated_boxes`; this module draws the three series of a
specimen and stores their boxes.

Shards
------
One compressed ``.npz`` per specimen in ``<cache>/<set>/spec_<index>.npz``
(boxes as float16), written atomically; existing shards are reused, so an
interrupted generation resumes.  Specimen ``i`` of set ``s`` is seeded with
``(seed, SET_ID[s], i)``: training and validation never share a specimen.
"""

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.mrc import atomic_path
from ..simulation import MisalignmentModel, Slab, TiltSeries, simulate_tilt_series
from ..typealiases import PathLike
from .boxes import BEAD_SPAN_PX
from .simulated_boxes import (
    bead_box_volume,
    boxes_at_apparent_centres,
    preprocessed_series,
    series_boxes,
)
from .specimens import (
    ALIGNED_ID,
    BEAD_RANGES,
    CLASSES,
    DATA_VERSION,
    IMAGE_SIZE,
    KINDS,
    N_BEADS,
    RESIDUAL_RANGES,
    SET_ID,
    STRONG_ID,
    WEAK_ID,
    bead_errors,
    draw_error_shape,
    draw_specimen,
    Processing,
    scaled_model,
    SpecimenSpec,
    _make_slab_fitting,
    _misalign_seed,
    _specimen_rng,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CLASSES",
    "ALIGNED_ID",
    "WEAK_ID",
    "STRONG_ID",
    "KINDS",
    "RESIDUAL_RANGES",
    "SET_ID",
    "DATA_VERSION",
    "Processing",
    "preprocessed_series",
    "SpecimenSpec",
    "draw_specimen",
    "bead_errors",
    "draw_error_shape",
    "scaled_model",
    "bead_box_volume",
    "series_boxes",
    "simulate_specimen",
    "generate_shards",
    "load_shards",
    "BoxData",
]


def _class_model(
    cls: str,
    rng: np.random.Generator,
    mis_kinds: Sequence[str],
    slab: Slab,
    angles: np.ndarray,
    msd: int,
) -> tuple[str, MisalignmentModel]:
    """The error kind of one class's tilt series and its model, scaled so the
    median bead residual hits a target drawn in the class range."""
    lo, hi = RESIDUAL_RANGES[cls]
    if cls == "aligned":
        kind = "none"
        target = rng.uniform(0.0, hi)
    else:
        kind = str(rng.choice(mis_kinds))
        target = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    p = slab.params
    model = (
        scaled_model(kind, target, rng, slab.beads, angles, p.shape, p.pixel_size, msd)
        if target > 0.01
        else MisalignmentModel(kind="none")
    )
    return kind, model


def _concatenated(out: dict[str, list]) -> dict:
    """The per-class arrays of a specimen in one array each (empty ones when
    no class kept a bead)."""
    return {
        k: (
            np.concatenate(v)
            if v
            else np.zeros((0,) + ((32, 32, 32) if k == "boxes" else ()), np.float16)
        )
        for k, v in out.items()
    }


def simulate_specimen(
    seed: int,
    set_name: str,
    index: int,
    kinds: Sequence[str] | None = None,
    filter_beads: bool = True,
    image_size: int = IMAGE_SIZE,
    n_beads: int = N_BEADS,
    series_callback: Callable[[int, str, TiltSeries], object] | None = None,
) -> dict:
    """Simulate one specimen's aligned, weak and strong tilt series and their
    bead boxes.

    ``filter_beads=False`` keeps every bead of each tomogram (for
    tomogram-level tests) instead of only those whose own residual lies in
    the class range.  ``image_size`` and ``n_beads`` shrink the field of
    view for tests.  ``series_callback(class_id, kind, tilt_series)``, if
    given, sees each simulated tilt series (e.g. to reconstruct the whole
    tomogram); it must not use the generator.

    Returns
    -------
    dict of numpy arrays
        ``boxes`` (m, 32, 32, 32) float16, ``label`` (0 aligned, 1 weak,
        2 strong), ``kind`` (index into :data:`KINDS`), ``residual``
        (bead residual, px), ``tomo`` (0, 1, 2: which series), ``pixel_size``,
        ``bead_diameter``, ``specimen``, ``tomo_residual``, ``n_images``,
        ``tilt_min``, ``tilt_max``, ``seconds``.
    """
    t0 = time.perf_counter()
    rng = _specimen_rng(seed, set_name, index)
    spec = draw_specimen(rng, image_size=image_size, n_beads=n_beads, fine=set_name == "fine")
    slab = _make_slab_fitting(spec, np.random.default_rng(spec.seed ^ 0x5EED))
    acq = spec.acquisition.validate()
    angles = acq.angles()
    p = slab.params
    shape = p.shape
    msd = _misalign_seed(spec.seed)
    out: dict[str, list] = {k: [] for k in ("boxes", "label", "kind", "residual", "tomo")}
    tomo_res = []
    mis_kinds = kinds or ("bananas", "twisters", "birds", "general")
    for cls_id, cls in enumerate(CLASSES):
        kind, model = _class_model(cls, rng, mis_kinds, slab, angles, msd)
        ts = simulate_tilt_series(
            acquisition=acq, misalignment=model, rng=spec.seed, slab=slab, workers=1
        )
        if series_callback is not None:
            series_callback(cls_id, kind, ts)
        ts = preprocessed_series(ts, spec.processing)
        disp, res = bead_errors(
            slab.beads,
            angles,
            ts.shift_x / p.pixel_size,
            ts.shift_y / p.pixel_size,
            ts.rotation,
            shape,
        )
        tomo_res.append(float(np.median(res)))
        blo, bhi = BEAD_RANGES[cls] if filter_beads else (-np.inf, np.inf)
        keep = (res >= blo) & (res <= bhi)
        # apparent centres stay inside the tomogram
        guess = slab.beads + disp
        keep &= np.all((guess >= 0) & (guess <= np.array(shape[::-1]) - 1), axis=1)
        if not keep.any():
            continue
        b, _ = boxes_at_apparent_centres(
            ts, guess[keep], p.bead_diameter, p.nz, rng, spec.processing
        )
        out["boxes"].append(b.astype(np.float16))
        n = len(b)
        out["label"].append(np.full(n, cls_id, np.int8))
        out["kind"].append(np.full(n, KINDS.index(kind), np.int8))
        out["residual"].append(res[keep].astype(np.float32))
        out["tomo"].append(np.full(n, cls_id, np.int8))
    data = _concatenated(out)
    data.update(
        pixel_size=np.float32(p.pixel_size),
        bead_diameter=np.float32(p.bead_diameter),
        specimen=np.int32(index),
        tomo_residual=np.asarray(tomo_res, np.float32),
        n_images=np.int16(len(angles)),
        tilt_min=np.float32(acq.tilt_min),
        tilt_max=np.float32(acq.tilt_max),
        seconds=np.float32(time.perf_counter() - t0),
    )
    return data


def _shard_path(cache, set_name, index):
    # cache is already versioned by the caller (see train_misalignment)
    return Path(cache) / set_name / f"spec_{index:05d}.npz"


def _make_shard(job):
    cache, seed, set_name, index = job
    path = _shard_path(cache, set_name, index)
    if path.is_file():
        return index, 0.0
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    data = simulate_specimen(seed, set_name, index)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **data)
    return index, float(data["seconds"])


def generate_shards(
    cache: PathLike,
    seed: int,
    set_name: str,
    count: int,
    workers: int = 1,
    log: Callable[[str], object] | None = None,
) -> float:
    """Make (or reuse) the shards of specimens ``0 .. count - 1`` of a set.

    Parameters
    ----------
    cache : str or Path
    seed : int
    set_name : {"train", "val", "test"}
    count : int
    workers : int
        Processes (each single-threaded).
    log : callable, optional
        Called with progress lines.
    """
    if set_name not in SET_ID:
        raise InputError(f"set must be one of {', '.join(SET_ID)}, got {set_name!r}")
    (Path(cache) / set_name).mkdir(parents=True, exist_ok=True)
    todo = [
        (str(cache), int(seed), set_name, i)
        for i in range(int(count))
        if not _shard_path(cache, set_name, i).is_file()
    ]
    log = log or logger.info
    log(
        f"{set_name}: {count - len(todo)} of {count} specimens cached, "
        f"{len(todo)} to simulate with {workers} worker(s)"
    )
    t0 = time.perf_counter()
    done = 0
    results: Iterable
    if workers <= 1:
        results = map(_make_shard, todo)
    else:
        pool = ProcessPoolExecutor(max_workers=int(workers))
        results = pool.map(_make_shard, todo, chunksize=1)
    try:
        for _index, _sec in results:
            done += 1
            if done % 10 == 0 or done == len(todo):
                el = time.perf_counter() - t0
                log(
                    f"{set_name}: {done}/{len(todo)} specimens in {el:.0f} s "
                    f"({el / done:.1f} s each)"
                )
    finally:
        if workers > 1:
            pool.shutdown()
    return time.perf_counter() - t0


@dataclass
class BoxData:
    """Boxes of many specimens (see :func:`simulate_specimen`), with a
    ``tomogram`` id unique across specimens (specimen * 3 + series)."""

    boxes: np.ndarray
    label: np.ndarray
    kind: np.ndarray
    residual: np.ndarray
    tomogram: np.ndarray
    pixel_size: np.ndarray
    bead_diameter: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    @property
    def scale(self) -> np.ndarray:
        """Box voxel size in tomogram pixels, per box (bead diameter in
        pixels / 16, as :func:`extract_boxes` samples)."""
        return self.bead_diameter.astype(np.float64) / self.pixel_size / BEAD_SPAN_PX

    def select(self, mask: np.ndarray) -> "BoxData":
        return BoxData(*(getattr(self, f)[mask] for f in _BOX_FIELDS))

    def extend(self, other: "BoxData") -> "BoxData":
        """Both sets in one; ``other``'s tomogram ids are shifted past ours."""
        shift = int(self.tomogram.max()) + 1 if len(self) else 0
        parts = {f: (getattr(self, f), getattr(other, f)) for f in _BOX_FIELDS}
        parts["tomogram"] = (self.tomogram, other.tomogram + shift)
        return BoxData(*(np.concatenate(parts[f]) for f in _BOX_FIELDS))


_BOX_FIELDS = ("boxes", "label", "kind", "residual", "tomogram", "pixel_size", "bead_diameter")


def load_shards(cache: PathLike, set_name: str, count: int) -> "BoxData":
    """Concatenate the shards of specimens ``0 .. count - 1``."""
    parts = []
    for i in range(int(count)):
        path = _shard_path(cache, set_name, i)
        if not path.is_file():
            raise InputError(f"{path}: shard missing (generate it first)")
        with np.load(path) as z:
            n = len(z["label"])
            parts.append(
                dict(
                    boxes=z["boxes"],
                    label=z["label"],
                    kind=z["kind"],
                    residual=z["residual"],
                    tomogram=i * 3 + z["tomo"].astype(np.int64),
                    pixel_size=np.full(n, z["pixel_size"], np.float32),
                    bead_diameter=np.full(n, z["bead_diameter"], np.float32),
                )
            )
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return BoxData(**cat)
