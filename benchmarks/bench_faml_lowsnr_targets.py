"""FAML's low-SNR classification targets of issue 16 (item 1), on stand-in sets.

The issue sets its targets on two sets whose maps this repository does not
have (TRiC vs capped proteasome; GroEL vs GroEL-GroES).  The stand-ins are
made the same way from maps of ``../shared/data/structures``:

* ``complexes``: two different ring complexes of similar size, the 20S
  proteasome (3j9i, ~0.7 MDa) and p97 (3cf3, ~0.5 MDa), 100 + 100
  subtomograms, box 40 at 14 Å/px, SNR 0.005, asymmetric tilt range
  -50...70°;
* ``complexes_low``: the same at SNR 0.002, beyond the issue's sets (where
  alignment alone stops classifying them);
* ``cap``: a complex with and without a ~9 %-mass region at its surface
  (the 4v4r ribosome, :func:`faml_tomo.averaging.cases.subtle_pair`),
  200 + 200, box 32 at 12 Å/px, SNR 0.015, ±65°.

Random orientations, reference-free K = 2, 20 iterations at most, three
data seeds each.  Per data set: F1 of FAML, FA and the *oracle* (each
subtomogram classified at its true pose against the leave-one-out true-pose
class averages; ``bench_faml_classify_snr.oracle_f1``).  Targets: FAML
F1 >= 0.9 and >= FA + 0.1; where out of reach, FAML >= 90 % of the oracle.

Each data set is cached as JSON under ``--runs`` (resumable across
sessions); a run cached with an older FAML (``FAML_VERSION``) is rerun for
FAML only, the older F1 kept beside the new one.  About 1.5 h on 2 cores.  Run::

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/bench_faml_lowsnr_targets.py

Writes ``benchmarks/results/faml_lowsnr_targets.{json,md}``.
"""

import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_faml_classify_snr import oracle_f1, refresh_faml  # noqa: E402
from common import benchmark_parser, cached_json, start, write_atomic  # noqa: E402

STRUCTURES = ROOT.parent / "shared" / "data" / "structures"
SEEDS = 3
# the targets, per set: (name, what it stands in for)
SETS = {
    "complexes": dict(
        structures=("3j9i", "3cf3"),
        counts=(100, 100),
        snr=0.005,
        tilt=(-50.0, 70.0),
        box=40,
        pixel_size=14.0,
        seed=300,
        stands_for="TRiC vs capped proteasome (issue: FAML 0.744, FA 0.742)",
    ),
    # the same pair 2.5x lower, where alignment alone no longer classifies
    "complexes_low": dict(
        structures=("3j9i", "3cf3"),
        counts=(100, 100),
        snr=0.002,
        tilt=(-50.0, 70.0),
        box=40,
        pixel_size=14.0,
        seed=300,
        stands_for="the set above at SNR 0.002 (beyond the issue's)",
    ),
    "cap": dict(
        structures=("4v4r", "4v4r_cut"),
        counts=(200, 200),
        snr=0.015,
        tilt=(-65.0, 65.0),
        box=32,
        pixel_size=12.0,
        seed=400,
        stands_for="GroEL vs GroEL-GroES (issue: FAML 0.529, FA 0.417)",
    ),
}


def prepare_maps(folder):
    """The maps of every set in ``folder``: the cut pair (seeded, once) and
    copies of the complexes; returns the cap's removed mass fraction."""
    from faml_tomo.averaging.cases import subtle_pair

    fraction = subtle_pair(STRUCTURES, folder, "4v4r", 0.09)
    for name in SETS["complexes"]["structures"]:
        if not (folder / f"{name}.mrc").is_file():
            shutil.copyfile(STRUCTURES / f"{name}.mrc", folder / f"{name}.mrc")
    return fraction


def cases(quick=False):
    from faml_tomo.averaging.cases import AccuracyCase

    out = []
    for rep in range(SEEDS):  # seed outermost: --limit 2 gives one of each
        for set_name, s in SETS.items():
            c = AccuracyCase(
                f"{set_name}_s{rep}",
                s["structures"],
                s["counts"],
                s["snr"],
                s["tilt"],
                "uniform",
                s["box"],
                s["pixel_size"],
                data_seed=s["seed"] + rep,
                run_seed=1,
                max_iter=20,
            )
            if quick:
                c = replace(
                    c,
                    name=c.name + "_quick",
                    counts=(12, 12),
                    box=24,
                    pixel_size=c.pixel_size * c.box / 24,
                    max_iter=3,
                    n_voronoi=2000,
                )
            out.append((set_name, c))
    return out


# FAML as of the classes marching again after the consensus split
# (2026-12-06); runs cached with an older FAML are rerun for FAML only (FA and
# the oracle do not change), the older value kept as "faml_previous".
FAML_VERSION = "consensus-march-1"


def _run(case, maps, workers):
    from faml_tomo.averaging.cases import run_case, simulate_case

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
        "tilt": list(case.tilt),
        "structures": list(case.structures),
        "data_seed": case.data_seed,
    }
    return res


def summarise(results):
    rows = []
    for set_name, s in SETS.items():
        rs = [
            r
            for name, r in results.items()
            if name.removesuffix("_quick").rsplit("_s", 1)[0] == set_name
        ]
        if not rs:
            continue

        def mean(key, rs=rs):
            return float(np.mean([r[key]["value"] for r in rs]))

        faml, fa, oracle = mean("faml"), mean("fa"), mean("oracle")
        previous = mean("faml_previous") if all("faml_previous" in r for r in rs) else None
        rows.append(
            {
                "set": set_name,
                "stands_for": s["stands_for"],
                "seeds": len(rs),
                "faml": faml,
                "fa": fa,
                "oracle": oracle,
                "faml_previous": previous,
                "faml_per_seed": [r["faml"]["value"] for r in rs],
                "fa_per_seed": [r["fa"]["value"] for r in rs],
                "target_met": faml >= 0.9 and faml >= fa + 0.1,
                "of_oracle": faml / oracle if oracle else None,
            }
        )
    return rows


def table(rows):
    lines = [
        "| set | data | stands for | seeds | FAML F1 (per seed) | FA F1 (per seed) | "
        "oracle F1 | FAML / oracle | F1 >= 0.9 and >= FA + 0.1 | FAML before |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = SETS[r["set"]]
        data = (
            f"{' vs '.join(s['structures'])}, {'+'.join(map(str, s['counts']))}, "
            f"{s['box']}³ at {s['pixel_size']:g} Å/px, SNR {s['snr']:g}, "
            f"{s['tilt'][0]:g}…{s['tilt'][1]:g}°"
        )
        faml = " / ".join(f"{v:.2f}" for v in r["faml_per_seed"])
        fa = " / ".join(f"{v:.2f}" for v in r["fa_per_seed"])
        prev = "–" if r["faml_previous"] is None else f"{r['faml_previous']:.3f}"
        lines.append(
            f"| {r['set']} | {data} | {r['stands_for']} | {r['seeds']} | "
            f"{r['faml']:.3f} ({faml}) | {r['fa']:.3f} ({fa}) | {r['oracle']:.3f} | "
            f"{100 * r['of_oracle']:.0f} % | {'yes' if r['target_met'] else 'no'} | "
            f"{prev} |"
        )
    return lines


def main(argv=None):
    args = benchmark_parser(__doc__, "faml_lowsnr_targets").parse_args(argv)
    info = start(STRUCTURES)
    if info is None:
        return 0
    suffix = "_quick" if args.quick else ""
    cache = args.cache.with_name(args.cache.name + suffix)
    runs = args.runs.with_name(args.runs.name + suffix)
    maps = cache / "maps"
    maps.mkdir(parents=True, exist_ok=True)
    fraction = prepare_maps(maps)
    results, new = {}, 0
    all_cases = cases(args.quick)
    for _, case in all_cases:
        path = runs / f"{case.name}.json"
        done = path.is_file()
        current = done and (
            json.loads(path.read_text()).get("faml", {}).get("version") == FAML_VERSION
        )
        if not current and (args.report or (args.limit is not None and new >= args.limit)):
            if done:  # an older FAML's result, reported as it is
                results[case.name] = json.loads(path.read_text())
            continue
        r = cached_json(path, lambda c=case: _run(c, maps, args.workers))
        results[case.name] = r = refresh_faml(case, maps, runs, args.workers, r, FAML_VERSION)
        if not current:
            new += 1
            print(
                f"{case.name}: FAML {r['faml']['value']:.3f}, FA {r['fa']['value']:.3f}, "
                f"oracle {r['oracle']['value']:.3f}",
                flush=True,
            )
    rows = summarise(results)
    lines = table(rows)
    print("\n".join(lines))
    out = args.out.with_name(args.out.name + suffix)
    machine_line = ", ".join(f"{k} {v}" for k, v in info.items())
    write_atomic(
        out.with_suffix(".json"),
        json.dumps(
            {"machine": info, "cap_removed_mass_fraction": fraction, "rows": rows, "runs": results},
            indent=1,
        ),
    )
    write_atomic(
        out.with_suffix(".md"),
        f"# FAML low-SNR classification targets (benchmarks/"
        f"bench_faml_lowsnr_targets.py)\n\n{len(results)} of {len(all_cases)} data "
        f"sets; the cap removes {100 * fraction:.1f} % of the mass. Machine: "
        f"{machine_line}.\n\n" + "\n".join(lines) + "\n",
    )
    print(f"wrote {out}.{{json,md}} ({len(results)} of {len(all_cases)} data sets)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
