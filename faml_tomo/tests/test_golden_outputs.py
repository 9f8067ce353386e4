"""Refactors keep results: small runs compared byte for byte with recorded
outputs (:mod:`faml_tomo.tests.golden`)."""

import os

import numpy as np
import pytest

from faml_tomo.tests.golden import DATA, TASKS, flatten

# their last bits depend on the number of BLAS / TensorFlow threads; recorded
# with one, as `make test` (and so CI) runs
THREAD_SENSITIVE = {"simulation", "misalignment", "training_data"}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_outputs_equal_the_recording(task):
    if task in THREAD_SENSITIVE and os.environ.get("OMP_NUM_THREADS") != "1":
        pytest.skip("recorded with OMP_NUM_THREADS=1 (make test sets it)")
    path = DATA / f"golden_{task}.npz"
    with np.load(path) as z:
        recorded = {k: z[k] for k in z.files}
    fresh = flatten(TASKS[task]())
    assert sorted(fresh) == sorted(recorded)
    differ = [
        k
        for k in fresh
        if not (fresh[k].shape == recorded[k].shape and np.array_equal(fresh[k], recorded[k]))
    ]
    assert not differ, f"outputs differ from {path.name}: {differ}"
