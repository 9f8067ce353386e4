"""FAML vs FA classification of a subtle pair over SNR (issue 16, item 1).

The pair: the 4v4r ribosome map and the same map without a ~9 %-mass region
at its surface (the density nearest to its most distant point along +x,
removed with a soft edge), both simulated by :mod:`faml_tomo.simulation`
(CTF at -6 µm, MTF, ±60° wedge, white noise at the SNR over the box) at
32^3 and 12 Å/px, 100 + 100 subtomograms in random orientations.  SNR 0.05,
0.02, 0.01, 0.005, 0.002, three data seeds each.  Per data set: the F1 of
FAML and of FA (reference-free, K = 2, 20 iterations at most) and of the
*oracle*: each subtomogram classified at its true pose against the two
true-pose class averages without itself (leave-one-out, wedge-compensated),
by the smaller squared distance over its observed Fourier components inside
the alignment band -- what a method that knew every pose would reach.

Targets: FAML never below FA; the lowest SNR where each keeps F1 >= 0.9;
where FAML falls below 0.9, FAML >= 90 % of the oracle's F1.

Each data set is cached as JSON under ``--runs`` (committed: resumable
across sessions on a fresh clone; the pair of maps is rebuilt, seeded, in
``--cache``); the table is rebuilt from those files.  About 3 h on 2 cores.
A run cached with an older FAML (``FAML_VERSION``) is rerun for FAML only
(FA and the oracle do not change; about 1 h for the 15 data sets), the
older F1 kept beside the new one.
Run::

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/bench_faml_classify_snr.py

Writes ``benchmarks/results/faml_classify_snr.{json,md}``.
"""

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import benchmark_parser, cached_json, start, write_atomic  # noqa: E402

STRUCTURES = ROOT.parent / "shared" / "data" / "structures"
BASE = "4v4r"
CUT_FRACTION = 0.09
SNRS = (0.05, 0.02, 0.01, 0.005, 0.002)
SEEDS = 3
BOX, VOXEL, COUNT = 32, 12.0, 100


def make_pair(folder):
    """Write ``4v4r.mrc`` and ``4v4r_cut.mrc`` (source voxel size) into
    ``folder``; returns the removed mass fraction."""
    from faml_tomo.averaging.cases import subtle_pair

    return subtle_pair(STRUCTURES, folder, BASE, CUT_FRACTION)


def cases(quick=False):
    from faml_tomo.averaging.cases import AccuracyCase

    out = []
    for rep in range(SEEDS):
        for snr in SNRS:
            c = AccuracyCase(
                f"pair_snr{snr:g}_s{rep}",
                (BASE, f"{BASE}_cut"),
                (COUNT, COUNT),
                snr,
                (-60.0, 60.0),
                "uniform",
                BOX,
                VOXEL,
                data_seed=200 + rep,
                run_seed=1,
                max_iter=20,
            )
            if quick:
                c = replace(
                    c,
                    name=c.name + "_quick",
                    counts=(12, 12),
                    box=24,
                    pixel_size=VOXEL * BOX / 24,
                    max_iter=3,
                    n_voronoi=2000,
                )
            out.append(c)
    return out


def oracle_f1(sims, case):
    """F1 of classifying each subtomogram at its true pose against the
    leave-one-out true-pose class averages (squared distance over its
    observed components inside the alignment band)."""
    from faml_tomo.averaging.testing import f1_score
    from faml_tomo.averaging.wedge import wedge_mask
    from faml_tomo.geometry import transform_volume

    vols = sims.volumes
    truth = sims.truth
    n = vols.shape[1]
    r_max = case.align.band(n)[1]
    k = np.fft.fftfreq(n, 1.0 / n)
    band = (k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2) <= r_max**2
    wedge = np.fft.fftshift(wedge_mask(n, case.tilt, half=False).astype(float))
    backs, weights = [], []
    for vol, rot, t in zip(vols, truth.rotations, truth.shifts):
        rot = np.asarray(rot, float)
        back = transform_volume(vol, rot.T, -rot.T @ np.asarray(t, float), order=3)
        w = (np.fft.ifftshift(transform_volume(wedge, rot.T, order=1)) > 0.5) & band
        backs.append(np.fft.fftn(back) * w)
        weights.append(w.astype(float))
    labels = np.asarray(truth.class_index)
    nc = int(labels.max()) + 1
    num = [np.sum([b for b, lab in zip(backs, labels) if lab == c], axis=0) for c in range(nc)]
    den = [np.sum([w for w, lab in zip(weights, labels) if lab == c], axis=0) for c in range(nc)]
    pred = []
    for b, w, lab in zip(backs, weights, labels):
        dist = []
        for c in range(nc):
            nn = num[c] - (b if lab == c else 0)
            dd = den[c] - (w if lab == c else 0)
            avg = np.where(dd > 0, nn / np.maximum(dd, 1e-9), 0)
            dist.append(float(np.sum(w * np.abs(b - avg) ** 2)))
        pred.append(int(np.argmin(dist)))
    return f1_score(labels, np.asarray(pred))


# FAML as of the consensus start, shared candidates and the classes marching again
# from the start radius after the split (2026-12-06); runs
# cached with an older FAML are rerun for FAML only (FA and the oracle do
# not change), the older value kept as "faml_previous".
FAML_VERSION = "consensus-march-1"


def refresh_faml(case, maps, runs, workers, res, version=FAML_VERSION):
    """``res`` with FAML rerun when it was cached with another FAML
    ``version`` (FA and the oracle do not change), the older value kept as
    ``"faml_previous"``; written back to ``runs``."""
    from faml_tomo.averaging.cases import run_case

    if res.get("faml", {}).get("version") == version:
        return res
    t0 = time.perf_counter()
    faml = run_case(case, maps, modes=("faml",), workers=workers)["faml"]
    faml["version"] = version
    res = dict(res, faml=faml, faml_previous=res["faml"])
    res["seconds_faml"] = round(time.perf_counter() - t0, 1)
    write_atomic(Path(runs) / f"{case.name}.json", json.dumps(res))
    return res


def _cached(case, cache, runs, workers):
    def compute():
        from faml_tomo.averaging.cases import run_case, simulate_case

        maps = Path(cache) / "maps"
        t0 = time.perf_counter()
        res = run_case(case, maps, workers=workers)
        res["faml"]["version"] = FAML_VERSION
        sims, _ = simulate_case(case, maps)
        res["oracle"] = {"value": float(oracle_f1(sims, case))}
        res["seconds"] = round(time.perf_counter() - t0, 1)
        res["case"] = {
            "snr": case.snr,
            "box": case.box,
            "pixel_size": case.pixel_size,
            "counts": list(case.counts),
            "data_seed": case.data_seed,
        }
        return res

    res = cached_json(Path(runs) / f"{case.name}.json", compute)
    return refresh_faml(case, Path(cache) / "maps", runs, workers, res)


def summarise(results):
    groups = {}
    for r in results.values():
        groups.setdefault(r["case"]["snr"], []).append(r)
    rows = []
    for snr in sorted(groups, reverse=True):
        rs = groups[snr]

        def mean(key, rs=rs):
            return float(np.mean([r[key]["value"] for r in rs]))

        faml, fa, oracle = mean("faml"), mean("fa"), mean("oracle")
        previous = mean("faml_previous") if all("faml_previous" in r for r in rs) else None
        rows.append(
            {
                "snr": snr,
                "seeds": len(rs),
                "faml": faml,
                "fa": fa,
                "oracle": oracle,
                "faml_ge_fa": faml >= fa,
                "of_oracle": faml / oracle if oracle else None,
                "faml_previous": previous,
                "faml_per_seed": [r["faml"]["value"] for r in rs],
            }
        )
    lowest = {
        m: min((r["snr"] for r in rows if r[m] >= 0.9), default=None)
        for m in ("faml", "fa", "oracle")
    }
    return rows, lowest


def table(rows, lowest):
    lines = [
        "| SNR | seeds | FAML F1 | per seed | FA F1 | FAML − FA | oracle F1 | "
        "FAML / oracle | FAML before (the previous FAML of the cached runs) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        prev = "–" if r.get("faml_previous") is None else f"{r['faml_previous']:.3f}"
        seeds = " / ".join(f"{v:.2f}" for v in r["faml_per_seed"])
        lines.append(
            f"| {r['snr']:g} | {r['seeds']} | {r['faml']:.3f} | {seeds} | "
            f"{r['fa']:.3f} | {r['faml'] - r['fa']:+.3f} | {r['oracle']:.3f} | "
            f"{100 * r['of_oracle']:.0f} % | {prev} |"
        )
    lines.append("")
    lines.append(
        "Lowest SNR with F1 >= 0.9: "
        + ", ".join(f"{m} {v:g}" if v is not None else f"{m} none" for m, v in lowest.items())
    )
    return lines


def main(argv=None):
    args = benchmark_parser(__doc__, "faml_classify_snr").parse_args(argv)
    info = start(STRUCTURES)
    if info is None:
        return 0
    cache = args.cache.with_name(args.cache.name + ("_quick" if args.quick else ""))
    runs = args.runs.with_name(args.runs.name + ("_quick" if args.quick else ""))
    fraction = make_pair(cache / "maps")
    print(f"removed mass {100 * fraction:.1f} %", flush=True)
    results, new = {}, 0
    all_cases = cases(args.quick)
    for case in all_cases:
        path = runs / f"{case.name}.json"
        done = path.is_file()
        fresh = done and (
            json.loads(path.read_text()).get("faml", {}).get("version") == FAML_VERSION
        )
        if not fresh and (args.report or (args.limit is not None and new >= args.limit)):
            if done:  # an older FAML's result, reported as it is
                results[case.name] = json.loads(path.read_text())
            continue
        results[case.name] = _cached(case, cache, runs, args.workers)
        if not fresh:
            new += 1
            r = results[case.name]
            print(
                f"{case.name}: FAML {r['faml']['value']:.3f}, FA {r['fa']['value']:.3f}, "
                f"oracle {r['oracle']['value']:.3f} ({r['seconds']:.0f} s)",
                flush=True,
            )
    rows, lowest = summarise(results)
    lines = table(rows, lowest)
    print("\n".join(lines))
    out = args.out.with_name(args.out.name + ("_quick" if args.quick else ""))
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, text in (
        (
            out.with_suffix(".json"),
            json.dumps(
                {
                    "machine": info,
                    "removed_mass_fraction": fraction,
                    "rows": rows,
                    "lowest_snr_f1_0.9": lowest,
                    "runs": results,
                },
                indent=1,
            ),
        ),
        (
            out.with_suffix(".md"),
            f"# FAML vs FA classification over SNR "
            f"(benchmarks/bench_faml_classify_snr.py)\n\n{BASE} with and without "
            f"{100 * fraction:.1f} % of its mass, {len(results)} of "
            f"{len(all_cases)} data sets. Machine: "
            f"{', '.join(f'{k} {v}' for k, v in info.items())}.\n\n" + "\n".join(lines) + "\n",
        ),
    ):
        write_atomic(path, text)
    print(f"wrote {out}.{{json,md}} ({len(results)} of {len(all_cases)} data sets)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
