"""FAML streamed from disk at scale (issue 16 item 5), reduced: the resident
memory a run needs per subtomogram, measured in fresh processes at two data
set sizes, extrapolates to under 4 GiB for 10,000 subtomograms of 32^3 with
K = 4, and the streamed run classifies them (one iteration from references).  The full-size run (N =
10,000, timings, extrapolation to 100,000 on MPI ranks) is
``benchmarks/bench_faml_scale.py``."""

import json
import subprocess
import sys

import numpy as np
import pytest

from faml_tomo.averaging.testing import phantom, simulate_subtomograms
from faml_tomo.io import write_mrc

CHILD = r"""
import json, resource, sys
import numpy as np
from faml_tomo.averaging import EMParams, VolumeFiles, classify
paths = json.loads(sys.argv[1])
refs = list(np.load(sys.argv[2]))
params = EMParams(n_classes=4, max_iter=1, tol=0, seed=1, n_voronoi=500)
res = classify(VolumeFiles(paths), (-60.0, 60.0), params, references=refs, workers=1)
print(json.dumps({"peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "classes": np.asarray(res.classes).tolist()}))
"""


def _run(paths, refs):
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([str(p) for p in paths]), str(refs)],
        capture_output=True,
        text=True,
        timeout=3000,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_streamed_run_memory_per_subtomogram_fits_10000_in_4_gib(tmp_path):
    n_box, n_big, n_small = 32, 480, 120
    refs = [phantom(n_box, seed=s) for s in (1, 2, 3, 4)]
    sim = simulate_subtomograms(refs, n_big // 4, 0.5, (-60, 60), seed=3)
    paths = [
        write_mrc(tmp_path / f"s{i:04d}.mrc", v.astype(np.float32), 20.0)
        for i, v in enumerate(sim.volumes)
    ]
    truth = np.asarray(sim.classes)
    np.save(tmp_path / "refs.npy", np.stack(refs))
    # The files are in class order: every fourth one for the small set.
    small = _run(paths[:: n_big // n_small], tmp_path / "refs.npy")
    big = _run(paths, tmp_path / "refs.npy")
    per_sub = (big["peak_kib"] - small["peak_kib"]) * 1024 / (n_big - n_small)
    at_10000 = big["peak_kib"] * 1024 + per_sub * (10_000 - n_big)
    assert at_10000 < 4 * 2**30, (per_sub, big, small)
    # The streamed run classifies (one iteration from the four references).
    from faml_tomo.averaging.testing import f1_score

    assert f1_score(truth, np.asarray(big["classes"])) > 0.9
