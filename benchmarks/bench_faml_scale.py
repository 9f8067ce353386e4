"""FAML at scale: N = 10,000 subtomograms of 32^3, K = 4, streamed from disk
(issue 16, item 5).

Four maps of ``../shared/data/structures`` (4v4r, 3j9i, 1qvr, 1bxn) at
20 Å/px, 2,500 subtomograms each, simulated by :mod:`faml_tomo.simulation`
(CTF, MTF, ±60° wedge, SNR ``--snr``) and written once as MRC files under
``--cache``; FAML (K = 4, reference-free) reads them through
:class:`faml_tomo.averaging.VolumeFiles` with ``--workers`` processes and a
checkpoint, so a run spread over sessions resumes after its last finished
iteration.  Measured: the expansion time, the time of each iteration, the
peak resident memory of the run (this process and its workers together,
sampled every second from /proc), the F1 of the classes reached, and the
per-pair time of :func:`faml_tomo.averaging.align` at 32^3 and 64^3 in the
same run; printed with an extrapolation of the iteration time to 100,000
subtomograms on MPI ranks (compute, plus the statistics rank 0 receives per
iteration, which grow with the number of chunks).

Run (about 25 min per iteration on 2 cores)::

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/bench_faml_scale.py --iterations 2

Writes ``benchmarks/results/faml_scale.{json,md}``.
"""

import json
import os
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import benchmark_parser, start, write_atomic  # noqa: E402

STRUCTURES = ROOT.parent / "shared" / "data" / "structures"
MAPS = ("4v4r", "3j9i", "1qvr", "1bxn")
BOX, VOXEL = 32, 20.0


class PeakRSS:
    """Peak resident memory of this process and all its descendants (bytes),
    sampled every ``interval`` seconds from /proc."""

    def __init__(self, interval=1.0):
        self.interval, self.peak, self.peak_main = interval, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss(pid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    @staticmethod
    def _children(pid):
        out = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                out += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
        return out

    def _run(self):
        me = os.getpid()
        while not self._stop.is_set():
            todo, total = [me], 0
            while todo:
                pid = todo.pop()
                total += self._rss(pid)
                todo += self._children(pid)
            self.peak = max(self.peak, total)
            self.peak_main = max(self.peak_main, self._rss(me))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


def write_data(folder, n_per_class, snr, batch=250):
    """Simulate and write the subtomograms (once); returns paths, classes."""
    from faml_tomo.averaging.cases import AccuracyCase, simulate_case
    from faml_tomo.io.mrc import write_mrc

    folder = Path(folder)
    done = folder / "classes.npy"
    paths = [folder / f"sub_{i:06d}.mrc" for i in range(n_per_class * len(MAPS))]
    if done.is_file():
        return paths, np.load(done)
    folder.mkdir(parents=True, exist_ok=True)
    classes = np.empty(len(paths), int)
    per = max(1, batch // len(MAPS))
    i = 0
    for b, first in enumerate(range(0, n_per_class, per)):
        count = min(per, n_per_class - first)
        case = AccuracyCase(
            "scale",
            MAPS,
            (count,) * len(MAPS),
            snr,
            (-60.0, 60.0),
            "uniform",
            BOX,
            VOXEL,
            data_seed=1000 + b,
        )
        sims, _ = simulate_case(case, STRUCTURES)
        for vol, cls in zip(sims.volumes, sims.truth.class_index):
            write_mrc(paths[i], vol.astype(np.float32), VOXEL)
            classes[i] = cls
            i += 1
    np.save(done, classes)
    return paths, classes


def pair_times(n_pairs=10):
    """Seconds per align() call with expansions reused, at 32^3 and 64^3."""
    from faml_tomo.averaging import AlignParams, align, prepare_reference, prepare_subtomogram
    from faml_tomo.averaging.testing import phantom, simulate_subtomograms

    out = {}
    for n in (32, 64):
        ref = phantom(n, seed=0)
        sim = simulate_subtomograms([ref], n_pairs, 0.1, seed=1)
        p = AlignParams()
        parts = [prepare_subtomogram(v, (-60, 60), p) for v in sim.volumes]
        pr = prepare_reference(ref, p)
        align(parts[0], pr, p)
        t0 = time.perf_counter()
        for q in parts:
            align(q, pr, p)
        out[n] = (time.perf_counter() - t0) / n_pairs
    return out


def main(argv=None):
    ap = benchmark_parser(__doc__, "faml_scale", sweep=False)
    ap.add_argument("--n-per-class", type=int, default=2500)
    ap.add_argument("--snr", type=float, default=0.05)
    ap.add_argument(
        "--iterations",
        type=int,
        default=2,
        help="iterations to have finished (resumes the checkpoint)",
    )
    args = ap.parse_args(argv)
    info = start(STRUCTURES)
    if info is None:
        return 0
    from faml_tomo.averaging import EMParams, VolumeFiles, classify
    from faml_tomo.averaging.testing import f1_score

    n_total = args.n_per_class * len(MAPS)
    tag = f"n{n_total}_snr{args.snr:g}"
    t0 = time.perf_counter()
    paths, classes = write_data(args.cache / f"data_{tag}", args.n_per_class, args.snr)
    print(f"data: {len(paths)} subtomograms ({time.perf_counter() - t0:.0f} s)", flush=True)
    stamps = []

    def progress(state):
        stamps.append((state.iteration, time.perf_counter()))
        print(
            f"iteration {state.iteration}: {time.perf_counter() - t_run:.0f} s since start, "
            f"sizes {np.bincount(state.classes, minlength=4).tolist()}",
            flush=True,
        )

    params = replace(EMParams(), n_classes=len(MAPS), max_iter=args.iterations, seed=1)
    with PeakRSS() as mem:
        t_run = time.perf_counter()
        res = classify(
            VolumeFiles(paths),
            (-60.0, 60.0),
            params,
            workers=args.workers,
            checkpoint_dir=args.cache / f"run_{tag}",
            callback=progress,
        )
        total = time.perf_counter() - t_run
    new = [s for s in stamps if s[0] > 0]
    its = [(b[0], b[1] - a[1]) for a, b in zip(new, new[1:])]
    first = (new[0][0], new[0][1] - t_run) if new else None
    pairs = pair_times()
    f1 = f1_score(classes, res.classes)
    per_iter = [s for _, s in its] or ([first[1]] if first else [])
    t_iter = float(np.median(per_iter)) if per_iter else float("nan")
    t_pair_em = t_iter * args.workers / (n_total * len(MAPS))
    chunk_bytes = len(MAPS) * 4 * 16 * 7000  # ~K x 4 band arrays per chunk, 32^3
    rows = {
        "n": n_total,
        "k": len(MAPS),
        "box": BOX,
        "workers": args.workers,
        "iterations_finished": int(res.n_iterations),
        "run_seconds": round(total, 1),
        "first_call_seconds_incl_expansion": round(first[1], 1) if first else None,
        "seconds_per_iteration": [round(s, 1) for _, s in its],
        "peak_rss_gib": round(mem.peak / 2**30, 2),
        "peak_rss_main_gib": round(mem.peak_main / 2**30, 2),
        "f1": round(f1, 3),
        "align_seconds_per_pair": {str(k): round(v, 4) for k, v in pairs.items()},
        "em_seconds_per_particle_class": round(t_pair_em, 4),
    }
    extrap = {ranks: round(100_000 * len(MAPS) * t_pair_em / ranks, 0) for ranks in (16, 64, 256)}
    lines = [
        f"N {n_total}, K {len(MAPS)}, {BOX}^3, {args.workers} workers: "
        f"{rows['iterations_finished']} iterations; seconds per iteration "
        f"{rows['seconds_per_iteration'] or [rows['first_call_seconds_incl_expansion']]}; "
        f"peak resident memory {rows['peak_rss_gib']} GiB (main process "
        f"{rows['peak_rss_main_gib']} GiB); F1 {rows['f1']}",
        f"align() per pair: {pairs[32]:.4f} s at 32^3, {pairs[64]:.4f} s at 64^3 "
        f"(targets 0.025 / 0.1 s)",
        f"EM time per subtomogram and class: {t_pair_em:.4f} s (x workers); 100,000 "
        f"subtomograms, compute only: "
        + ", ".join(f"{r} ranks ~{s:.0f} s" for r, s in extrap.items())
        + f" per iteration; plus the reduction: rank 0 receives every chunk's "
        f"statistics in chunk order (~{100_000 / 8 * chunk_bytes / 2**30:.0f} GiB per "
        f"iteration at 100,000, one chunk in memory at a time) and broadcasts the sum",
    ]
    print("\n".join(lines))
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, text in (
        (
            out.with_suffix(".json"),
            json.dumps(
                {"machine": info, "results": rows, "extrapolation_100k_seconds": extrap}, indent=1
            ),
        ),
        (
            out.with_suffix(".md"),
            "# FAML at scale (benchmarks/"
            "bench_faml_scale.py)\n\nMachine: "
            + ", ".join(f"{k} {v}" for k, v in info.items())
            + ".\n\n"
            + "\n\n".join(lines)
            + "\n",
        ),
    ):
        write_atomic(path, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
