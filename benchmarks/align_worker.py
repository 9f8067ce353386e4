"""Times the fast alignment of saved pairs with the faml_tomo found under
``--root`` (a checkout of any commit): ``python align_worker.py --root DIR
--pairs PAIRS.npz --json OUT.json``.

bench_faml.py runs it for the current tree and for a baseline commit on the
same pairs, alternately, so that both are measured in one run on one
machine.  Only functions present in every version since issue 4 are used
(``AlignParams``, ``prepare_subtomogram``, ``prepare_reference``, ``align``).
"""

import argparse
import json
import sys
import time


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args(argv)
    sys.path.insert(0, args.root)
    import numpy as np
    from faml_tomo.averaging import AlignParams, align, prepare_reference, prepare_subtomogram

    data = np.load(args.pairs)
    ref, vols = data["reference"], data["volumes"]
    params = AlignParams()
    t0 = time.perf_counter()
    prep = prepare_reference(ref, params)
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    parts = [prepare_subtomogram(v, (-60, 60), params, index=i) for i, v in enumerate(vols)]
    t_prep = (time.perf_counter() - t0) / len(vols)
    align(parts[0], prep, params)  # compile / warm caches, not timed
    times = []
    for _ in range(max(args.repeats, 1)):
        t0 = time.perf_counter()
        res = [align(p, prep, params) for p in parts]
        times.append((time.perf_counter() - t0) / len(parts))
    import faml_tomo

    out = {
        "root": args.root,
        "faml_tomo": faml_tomo.__version__,
        "s_per_pair": min(times),
        "s_per_pair_all": times,
        "s_expand_subtomogram": t_prep,
        "s_expand_average": t_ref,
        "candidates_mean": float(np.mean([len(r) for r in res])),
        "best_rotations": [r.rotations[0].tolist() for r in res],
        "best_shifts": [r.shifts[0].tolist() for r in res],
    }
    with open(args.json, "w") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    main()
