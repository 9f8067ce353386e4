"""Experiment (issue 16): FAML classification with gold-standard half-sets, on the
low-SNR target sets of ``bench_faml_lowsnr_targets.py``: F1 with the initial split
``init`` given (``random`` was the only start with half-sets; ``consensus`` the
per-half consensus start).  One JSON line per run appended to
``benchmarks/results/faml_gold_consensus.jsonl``.

Usage::

    python benchmarks/exp_faml_gold_consensus.py cap_s0,complexes_low_s0 random,consensus

(data sets of ``bench_faml_lowsnr_targets.py``, initial splits; 2 worker
processes, ~3-6 min per run on a 2-core EPYC).
"""

import sys
import time

import numpy as np
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_faml_lowsnr_targets import cases, prepare_maps  # noqa: E402

from common import print_and_append  # noqa: E402

from faml_tomo.averaging.cases import simulate_case  # noqa: E402
from faml_tomo.averaging.em import classify  # noqa: E402
from faml_tomo.averaging.testing import f1_score  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "faml_gold_consensus.jsonl"
MAPS = ROOT / ".cache" / "bench_faml_lowsnr_targets" / "maps"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    names = argv[0].split(",")
    inits = argv[1].split(",")
    MAPS.mkdir(parents=True, exist_ok=True)
    prepare_maps(MAPS)
    for _, c in cases():
        if c.name not in names:
            continue
        sims, _ = simulate_case(c, MAPS)
        for init in inits:
            t0 = time.perf_counter()
            res = classify(
                sims.volumes,
                c.tilt,
                n_classes=2,
                mode="faml",
                max_iter=c.max_iter,
                seed=c.run_seed,
                align=c.align,
                n_voronoi=c.n_voronoi,
                workers=2,
                gold_standard=True,
                init=init,
            )
            rec = {
                "name": c.name,
                "init": init,
                "f1": float(f1_score(sims.truth.class_index, res.classes)),
                "sizes": [int(v) for v in np.bincount(res.classes, minlength=2)],
                "fsc_radius": [int(v) for v in res.fsc_radius],
                "n_it": int(res.n_iterations),
                "s": round(time.perf_counter() - t0, 1),
            }
            print_and_append(OUT, rec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
