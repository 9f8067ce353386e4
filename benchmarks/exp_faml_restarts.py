"""Experiment (issue 16): FAML K = 1 on single-structure sets of the SNR sweep with
the frequency marching started at fewer shells, more iterations and several run
seeds; is the run with the best final log-likelihood the one closest to the
truth?  One JSON line per run appended to
``benchmarks/results/faml_restarts_4v4r_snr0.003.jsonl``.

Usage::

    python benchmarks/exp_faml_restarts.py 4v4r_wedge60_snr0.003_s1 1,2 3 40

(data sets of ``bench_faml_snr.py``, run seeds, start radius in shells or
``default``, iterations;
2 worker processes, ~2-5 min per run on a 2-core EPYC).
"""

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_faml_snr import STRUCTURES, cases  # noqa: E402

from common import print_and_append  # noqa: E402

from faml_tomo.averaging.cases import simulate_case  # noqa: E402
from faml_tomo.averaging.em import EMParams, classify, result_from_state  # noqa: E402
from faml_tomo.averaging.testing import aligned_correlation  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "faml_restarts_4v4r_snr0.003.jsonl"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    names = argv[0].split(",")
    run_seeds = [int(s) for s in argv[1].split(",")]
    # "default": the marching's own start radius (box / 8 shells)
    r_start = None if argv[2] == "default" else int(argv[2])
    iters = int(argv[3])
    for c in cases():
        if c.name not in names:
            continue
        sims, expected = simulate_case(c, STRUCTURES)
        for rs in run_seeds:
            t0 = time.perf_counter()
            r_by_it = {}

            def track(state, c=c, expected=expected, r_by_it=r_by_it):
                # the correlation with the truth every 10 iterations
                if state.iteration % 10 == 0:
                    avg = result_from_state(state, params, c.box).averages[0]
                    r_by_it[state.iteration] = round(
                        float(aligned_correlation(avg, expected[0], c.align)[0]), 4
                    )

            params = EMParams(
                n_classes=1,
                mode="faml",
                max_iter=iters,
                seed=rs,
                align=c.align,
                n_voronoi=c.n_voronoi,
                r_start=r_start,
            )
            res = classify(
                sims.volumes,
                c.tilt,
                params,
                workers=2,
                callback=track,
            )
            r = aligned_correlation(res.averages[0], expected[0], c.align)[0]
            rec = {
                "name": c.name,
                "run_seed": rs,
                "r_start": r_start,
                "iters": iters,
                "r": float(r),
                "loglik": float(res.log_likelihood[-1]),
                "n_it": res.n_iterations,
                "s": round(time.perf_counter() - t0, 1),
                "r_by_it": r_by_it,
            }
            print_and_append(OUT, rec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
