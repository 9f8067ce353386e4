"""Fast alignment: known answers and the acceptance criterion of issue 4
(SNR 0.1, ±60° wedge, box 32: best candidate within two Euler grid steps and
1 px of the truth for >= 95% of pairs)."""

import numpy as np
import pytest

from faml_tomo.averaging.align import (
    AlignParams,
    align,
    fast_align,
    prepare_reference,
    prepare_subtomogram,
)
from faml_tomo.averaging.testing import phantom, simulate_subtomograms
from faml_tomo.errors import InputError
from faml_tomo.geometry import rotation_angle_deg


def _run_pairs(n, n_pairs, snr, tilt=(-60, 60), seed=2, params=None):
    params = params or AlignParams()
    ref = phantom(n, seed=0)
    sim = simulate_subtomograms([ref], n_pairs, snr, tilt, seed=seed, max_shift=3)
    prepared = prepare_reference(ref, params)
    ang, shift, ncand = [], [], []
    for i in range(n_pairs):
        part = prepare_subtomogram(sim.volumes[i], tilt, params, index=i)
        res = align(part, prepared, params)
        ang.append(rotation_angle_deg(res.rotations[0], sim.rotations[i]))
        shift.append(np.linalg.norm(res.shifts[0] - sim.shifts[i]))
        ncand.append(len(res))
    return np.array(ang), np.array(shift), np.array(ncand)


def test_noise_free_pair_is_exact():
    ang, shift, _ = _run_pairs(32, 4, np.inf)
    assert ang.max() < 1.5 and shift.max() < 0.3


def test_full_range_pair_no_wedge():
    ang, shift, _ = _run_pairs(24, 3, 1.0, tilt=(-90, 90), seed=5)
    assert ang.max() < 3.0 and shift.max() < 0.5


def test_result_is_sorted_and_consistent():
    ref = phantom(24, seed=1)
    sim = simulate_subtomograms([ref], 1, 0.5, (-50, 70), seed=4)
    res = fast_align(sim.volumes[0], ref, (-50, 70))
    assert 1 <= len(res) <= 50
    assert np.all(np.diff(res.scores) <= 0)
    assert np.allclose(res.rotations @ res.rotations.transpose(0, 2, 1), np.eye(3), atol=1e-9)
    assert np.all(np.abs(res.shifts) <= 24 / 4 + 1e-9)
    assert np.all(res.scores <= 1 + 1e-9)
    # Squared distance and score come from the same correlation.
    part = prepare_subtomogram(sim.volumes[0], (-50, 70))
    cc = 0.5 * (part.norm2 + res.ref_norm2 - res.sq_dist)
    assert np.allclose(cc / np.sqrt(part.norm2 * res.ref_norm2), res.scores)


def test_candidate_cap_and_separation():
    ref = phantom(24, seed=1)
    sim = simulate_subtomograms([ref], 1, 0.05, (-60, 60), seed=6)
    params = AlignParams(max_candidates=7, refine=0)
    res = fast_align(sim.volumes[0], ref, (-60, 60), params)
    assert len(res) == 7
    d = rotation_angle_deg(res.rotations[:, None], res.rotations[None, :])
    assert np.all(d[~np.eye(7, dtype=bool)] >= 2 * params.grid_step_deg() - 1e-6)


def test_acceptance_snr01_wedge60_box32():
    """Issue 4 acceptance (40 pairs here; 200 in the slow variant): grid step
    5 degrees (lmax 35, 72^3 Euler grid)."""
    params = AlignParams()
    assert params.grid_step_deg() == 5.0
    ang, shift, ncand = _run_pairs(32, 40, 0.1, seed=11, params=params)
    ok = (ang <= 2 * params.grid_step_deg()) & (shift <= 1.0)
    assert ok.mean() >= 0.95, (np.sort(ang)[-5:], np.sort(shift)[-5:])
    assert np.median(ang) < 3.0 and np.median(shift) < 0.5


@pytest.mark.slow
def test_acceptance_snr01_wedge60_box32_200_pairs():
    params = AlignParams()
    ang, shift, _ = _run_pairs(32, 200, 0.1, seed=12, params=params)
    ok = (ang <= 2 * params.grid_step_deg()) & (shift <= 1.0)
    assert ok.mean() >= 0.95
    assert np.median(ang) < 3.0


@pytest.mark.slow
def test_acceptance_box64():
    ang, shift, _ = _run_pairs(64, 20, 0.1, seed=13)
    assert np.mean((ang <= 10) & (shift <= 1)) >= 0.95 and np.median(ang) < 2.0


def test_bad_inputs():
    v = phantom(16)
    with pytest.raises(InputError, match="differs"):
        fast_align(v, phantom(20), (-60, 60))
    with pytest.raises(InputError, match="not cubic"):
        fast_align(v[:, :, :12], v, (-60, 60))
    with pytest.raises(InputError, match="constant"):
        fast_align(np.ones((16, 16, 16)), v, (-60, 60))
    bad = v.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fast_align(bad, v, (-60, 60))
    with pytest.raises(InputError, match="tilt range"):
        fast_align(v, v, (-100, 60))
