"""Speed of misalignment detection end to end: ``python benchmarks/bench_misalignment_speed.py``.

A 1024 x 1024 x 256 float32 tomogram (15 Å/px, 40 gold beads of 10 nm,
simulated by :mod:`faml_tomo.simulation`, written as MRC) goes through the
two commands a user runs, each in a fresh process as from a shell:

1. ``faml-tomo peak-high-contrast`` (fiducials);
2. ``faml-tomo detect-misalignment`` on the coordinates found (boxes, both
   shipped networks on the CPU, decision).

Target (issue 14): fiducials + decision <= 60 s on 2 cores.  Baseline,
measured in the same run: one pass that reads every voxel of the same file
in a fresh process (the I/O floor of any tool that looks at the whole
tomogram); the table gives the ratio to it.

Options: ``--threads N`` (default 2), ``--repeats N`` (default 2, the
fastest is reported), ``--quick`` (512 x 512 x 128, 20 beads),
``--misalignment KIND MAGNITUDE`` (e.g. ``birds 300``: a strongly
misaligned tilt series, the finder's slowest case: every smeared-bead
search runs).  Writes ``benchmarks/results/misalignment_speed[_KIND].{json,md}``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
READ_ALL = (
    "import sys, numpy as np, mrcfile\n"
    "with mrcfile.mmap(sys.argv[1], mode='r') as m:\n"
    "    d = m.data\n"
    "    s = sum(float(np.sum(d[z], dtype=np.float64)) for z in range(d.shape[0]))\n"
    "print(s)\n"
)


def timed(cmd, env):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{r.stderr[-2000:]}")
    return wall, r.stdout


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--misalignment",
        nargs=2,
        metavar=("KIND", "MAGNITUDE"),
        help="misalign the tilt series (simulation.misalignment_preset)",
    )
    args = p.parse_args(argv)
    from faml_tomo import simulation as sim
    from faml_tomo.io import write_mrc
    from faml_tomo.io.star import read_star

    shape = (128, 512, 512) if args.quick else (256, 1024, 1024)
    n_beads, px = (20 if args.quick else 40), 15.0
    nz, ny, nx = shape
    t = time.perf_counter()
    slab = sim.SlabParams(
        nx=nx,
        ny=ny,
        nz=nz,
        pixel_size=px,
        slab_thickness=min(0.8 * nz * px, 2500.0),
        n_beads=n_beads,
        bead_diameter=100.0,
    )
    acq = sim.AcquisitionParams()
    model = (
        sim.misalignment_preset(
            args.misalignment[0], float(args.misalignment[1]), len(acq.angles())
        )
        if args.misalignment
        else None
    )
    ts = sim.simulate_tilt_series(slab, acq, model, rng=3, workers=args.threads)
    tomo = sim.reconstruct_wbp(ts.images, ts.angles, nz, workers=args.threads)
    t_sim = time.perf_counter() - t
    env = dict(
        os.environ, OMP_NUM_THREADS=str(args.threads), TF_NUM_INTRAOP_THREADS=str(args.threads)
    )
    cli = [sys.executable, "-m", "faml_tomo.cli"]
    rows = {"read": [], "fiducials": [], "decision": []}
    with tempfile.TemporaryDirectory(prefix="bench_misalignment_speed_") as tmp:
        tmp = Path(tmp)
        path = write_mrc(tmp / "TS_01.mrc", tomo, px)
        del tomo
        for rep in range(args.repeats):
            rows["read"].append(timed([sys.executable, "-c", READ_ALL, str(path)], env)[0])
            fid = tmp / f"fid{rep}"
            rows["fiducials"].append(
                timed(
                    cli
                    + [
                        "peak-high-contrast",
                        str(path),
                        "--bead-size-nm",
                        "10",
                        "--threads",
                        str(args.threads),
                        "--out",
                        str(fid),
                    ],
                    env,
                )[0]
            )
            rows["decision"].append(
                timed(
                    cli
                    + [
                        "detect-misalignment",
                        str(path),
                        "--coords",
                        str(fid / "TS_01.star"),
                        "--bead-size-nm",
                        "10",
                        "--out",
                        str(tmp / f"mis{rep}"),
                    ],
                    env,
                )[0]
            )
        star = tmp / "fid0" / "TS_01.star"
        found = len(read_star(star).get("rlnCoordinateX", [])) if star.is_file() else 0
        label = read_star(tmp / "mis0" / "tomograms.star", dtypes={"famlMisalignment": str})[
            "famlMisalignment"
        ][0]
    best = {k: min(v) for k, v in rows.items()}
    total = best["fiducials"] + best["decision"]
    info = machine("tensorflow", "mrcfile")
    res = {
        "machine": info,
        "shape": shape,
        "pixel_size": px,
        "beads": n_beads,
        "misalignment": args.misalignment,
        "beads_found": found,
        "label": str(label),
        "simulation_s": t_sim,
        "threads": args.threads,
        "runs": rows,
        "best": best,
        "total_s": total,
        "ratio_to_read": total / best["read"],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    lines = [
        f"# Misalignment detection speed ({res['date']})",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores; Python {info['python']}, "
        f"numpy {info['numpy']}, scipy {info['scipy']}, TensorFlow {info['tensorflow']}, "
        f"faml_tomo {info['faml_tomo']}; {args.threads} threads.",
        "",
        f"Tomogram {shape[2]} x {shape[1]} x {shape[0]} float32 "
        f"({nz * ny * nx * 4 / 2**30:.2f} GiB) at {px:g} Å/px, {n_beads} beads of 10 nm "
        f"{'aligned' if not args.misalignment else 'misaligned: ' + ' '.join(args.misalignment)}"
        f" (found {found}; decision: {label}). Each step a fresh process, as from a shell; "
        f"fastest of {args.repeats}.",
        "",
        "| step | wall (s) |",
        "|---|---|",
        f"| read every voxel once (baseline) | {best['read']:.1f} |",
        f"| `faml-tomo peak-high-contrast` | {best['fiducials']:.1f} |",
        f"| `faml-tomo detect-misalignment` | {best['decision']:.1f} |",
        f"| **fiducials + decision** | **{total:.1f}** (target ≤ 60; "
        f"{res['ratio_to_read']:.1f}× the baseline) |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        stem = "misalignment_speed" + (f"_{args.misalignment[0]}" if args.misalignment else "")
        (RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=1) + "\n")
        (RESULTS / f"{stem}.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
