"""Benchmark of the simulator: ``python benchmarks/bench_simulation.py``.

Times, on this machine, against the issue's targets:

* 100 subtomograms of 32^3 (ring7 phantom, 20 Å/px, SNR 0.01, +-60 deg,
  CTF + MTF), target < 10 s;
* a 512 x 512 x 128 tomogram from 41 tilts (simulation of the tilt series +
  weighted back-projection), target < 60 s;

and, in the same run, simple baselines on a subset, extrapolated linearly:

* subtomograms: an unvectorised variant (three successive
  ``ndimage.rotate`` calls for the ZYZ rotation, ``ndimage.shift``, complex
  ``numpy.fft``, filters rebuilt per particle);
* tomogram: a naive voxel projector / back-projector rotating the volume with
  ``scipy.ndimage.rotate`` (order 1) for every tilt, on 16 of the 512 rows.

Options: ``--workers N`` (scipy.fft threads, default 1), ``--json PATH``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faml_tomo.geometry import matrix_to_euler  # noqa: E402
from faml_tomo.simulation import (
    AcquisitionParams,
    SlabParams,  # noqa: E402
    SubtomogramParams,
    make_phantom,
    reconstruct_wbp,
    simulate_subtomograms,
    simulate_tilt_series,
)
from faml_tomo.simulation.optics import ctf, detector_mtf, wedge_mask  # noqa: E402
from faml_tomo.simulation.reconstruct import filter_projections  # noqa: E402


from common import machine  # noqa: E402


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t, out


def baseline_subtomograms(ref, rots, shifts, params, rng):
    """Unvectorised per-particle pipeline (reference for the speed-up)."""
    n = ref.shape[0]
    out = []
    for rot, t in zip(rots, shifts):
        k = np.sqrt(
            sum(
                f**2
                for f in np.meshgrid(*[np.fft.fftfreq(n, params.pixel_size)] * 3, indexing="ij")
            )
        )
        filt = (
            ctf(k, params.ctf)
            * detector_mtf(k * params.pixel_size)
            * wedge_mask(ref.shape, params.tilt_min, params.tilt_max)
        )
        a, b, c = matrix_to_euler(rot)
        v = ndimage.rotate(ref, a, axes=(1, 2), reshape=False, order=3)
        v = ndimage.rotate(v, b, axes=(0, 2), reshape=False, order=3)
        v = ndimage.rotate(v, c, axes=(1, 2), reshape=False, order=3)
        v = ndimage.shift(v, t[::-1], order=3)
        sig = np.real(np.fft.ifftn(np.fft.fftn(v) * filt))
        noise = np.real(
            np.fft.ifftn(np.fft.fftn(rng.standard_normal(v.shape)) * wedge_mask(ref.shape, -60, 60))
        )
        out.append(sig + noise * np.sqrt(sig.var() / (params.snr * noise.var())))
    return out


def baseline_tomogram(angles, nx=512, nz=128, rows=16, seed=0):
    """Naive rotate-the-volume projector and back-projector on ``rows`` rows."""
    rng = np.random.default_rng(seed)
    vol = rng.random((nz, rows, nx)).astype(np.float32)
    t0 = time.perf_counter()
    projs = []
    for a in angles:
        projs.append(ndimage.rotate(vol, a, axes=(0, 2), reshape=False, order=1).sum(0))
    t_proj = time.perf_counter() - t0
    filt = filter_projections(np.array(projs))
    t0 = time.perf_counter()
    rec = np.zeros_like(vol)
    for a, p in zip(angles, filt):
        smear = np.broadcast_to(p, vol.shape)
        rec += ndimage.rotate(smear, -a, axes=(0, 2), reshape=False, order=1)
    t_back = time.perf_counter() - t0
    return t_proj, t_back


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=1, help="scipy.fft threads")
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    args = ap.parse_args(argv)
    info = machine()
    print(
        "machine: {cpu}, {cores} cores; Python {python}, numpy {numpy}, scipy {scipy}, "
        "faml_tomo {faml_tomo}; OMP_NUM_THREADS={OMP_NUM_THREADS}; scipy.fft workers=".format(
            **info
        )
        + str(args.workers)
    )
    rows = []

    # --- subtomograms
    params = SubtomogramParams(box=32, pixel_size=20.0, snr=0.01)
    ref = make_phantom("ring7", 32, 20.0)
    simulate_subtomograms({"ring7": ref}, 2, params, rng=0)  # warm-up
    t_sub, sset = timed(
        simulate_subtomograms, {"ring7": ref}, 100, params, rng=1, workers=args.workers
    )
    n_base = 10
    t_b, _ = timed(
        baseline_subtomograms,
        ref,
        sset.truth.rotations[:n_base],
        sset.truth.shifts[:n_base],
        params,
        np.random.default_rng(0),
    )
    t_base_sub = t_b * 100 / n_base
    rows.append(
        ("100 subtomograms 32^3", t_sub, 10.0, t_base_sub, f"unvectorised, {n_base} timed x10")
    )

    # --- tomogram
    slab = SlabParams(
        nx=512,
        ny=512,
        nz=128,
        pixel_size=15.0,
        slab_thickness=1500.0,
        bead_diameter=100.0,
        n_beads=30,
    )
    acq = AcquisitionParams(tilt_min=-60, tilt_max=60, tilt_step=3)
    t_ts, ts = timed(simulate_tilt_series, slab, acq, rng=1, workers=args.workers)
    t_rec, tomo = timed(reconstruct_wbp, ts.images, ts.angles, 128, workers=args.workers)
    assert tomo.shape == (128, 512, 512) and ts.images.shape[0] == 41
    sub_rows = 16
    t_bp, t_bb = baseline_tomogram(ts.angles, rows=sub_rows)
    scale = 512 / sub_rows
    rows.append(
        (
            "tilt series 41 x 512^2 (projection)",
            t_ts,
            None,
            t_bp * scale,
            f"ndimage.rotate projector, {sub_rows} rows x{scale:g}",
        )
    )
    rows.append(
        (
            "WBP 512x512x128 from 41 tilts",
            t_rec,
            None,
            t_bb * scale,
            f"ndimage.rotate back-projector, {sub_rows} rows x{scale:g}",
        )
    )
    rows.append(
        (
            "tomogram total (simulate + WBP)",
            t_ts + t_rec,
            60.0,
            (t_bp + t_bb) * scale,
            "sum of the two above",
        )
    )

    print()
    print(
        f"{'task':<40} {'ours s':>8} {'target s':>9} {'baseline s':>11} {'speed-up':>9}  baseline"
    )
    print("-" * 110)
    for name, t, target, base, how in rows:
        tgt = f"{target:.0f}" if target else "-"
        ok = "" if target is None else ("  ok" if t < target else "  MISSED")
        print(f"{name:<40} {t:8.2f} {tgt:>9} {base:11.1f} {base / t:8.1f}x  {how}{ok}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "workers": args.workers,
                    "rows": [
                        dict(zip(("task", "seconds", "target", "baseline", "baseline_how"), r))
                        for r in rows
                    ],
                },
                indent=2,
            )
        )
    return 0 if all(r[2] is None or r[1] < r[2] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
