"""The compiled alignment kernels against the numpy / scipy expressions they
replace (known answers: the same numbers to rounding), and the pruned
translation correlation against a full inverse FFT for even and odd boxes."""

import numpy as np
import pytest
from scipy import fft as sfft
from scipy import ndimage

from faml_tomo.averaging import AlignParams, kernels, prepare_reference, prepare_subtomogram
from faml_tomo.averaging.align import band_geometry, rotation_scores, translation_search
from faml_tomo.averaging.fourier import PaddedSpectrum, oversampled_spectrum, sample_spectrum
from faml_tomo.averaging.so3 import shell_inner_products, so3_correlation
from faml_tomo.averaging.testing import phantom
from faml_tomo.averaging.translation import (
    _centring_signs,
    _freq_index,
    _shift_window,
    _windowed_correlation,
)
from faml_tomo.averaging.voronoi import haar_rotations


def _numpy_trilinear(ps, q):
    """The pre-kernel numpy sampler (8 gathers weighted in double precision)."""
    q = np.asarray(q, dtype=float)
    flip = q[:, 0] < 0
    sgn = np.where(flip, -float(ps.pad), float(ps.pad))
    shape = ps.data.shape
    flat = ps.data.reshape(-1)
    sy = shape[1] * shape[2]
    base = np.zeros(len(q), dtype=np.intp)
    weights = []
    for axis, comp, stride, centre in (
        (0, 2, sy, shape[0] // 2),
        (1, 1, shape[2], shape[0] // 2),
        (2, 0, 1, 0),
    ):
        c = q[:, comp] * sgn + centre
        i = np.clip(np.floor(c), 0, shape[axis] - 2)
        weights.append(np.clip(c - i, 0.0, 1.0))
        base += i.astype(np.intp) * stride
    wz, wy, wx = weights
    out = np.zeros(len(q), dtype=complex)
    for dz, az in ((0, 1 - wz), (sy, wz)):
        for dy, ay in ((0, 1 - wy), (shape[2], wy)):
            o = base + dz + dy
            out += (az * ay) * ((1 - wx) * flat[o] + wx * flat[o + 1])
    np.conjugate(out, out=out, where=flip)
    return out


@pytest.fixture(scope="module")
def spectrum_and_points():
    n = 24
    vol = phantom(n, seed=2)
    ps = PaddedSpectrum(vol, pad=2)
    geom = band_geometry(n, 1, n // 2 - 1)
    rots = haar_rotations(5, np.random.default_rng(3))
    return vol, ps, np.ascontiguousarray(geom.freq), rots


def test_sampling_equals_the_numpy_sampler_and_map_coordinates(spectrum_and_points):
    vol, ps, freq, rots = spectrum_and_points
    q = np.concatenate([freq @ r for r in rots])
    ours = ps.sample(q)
    assert np.array_equal(ours, _numpy_trilinear(ps, q))  # same operations, same order
    ref = sample_spectrum(oversampled_spectrum(vol, 2), 2, q)
    assert np.allclose(ours, ref, atol=1e-5 * np.abs(ref).max())
    turned = ps.sample_rotated(freq, rots)  # (k pad) R instead of (k R) pad: rounding
    assert np.allclose(turned, ours.reshape(len(rots), -1), rtol=0, atol=1e-12)


def test_correlation_spectra_and_rotated_inner(spectrum_and_points):
    vol, ps, freq, rots = spectrum_and_points
    n = vol.shape[0]
    rng = np.random.default_rng(0)
    m = len(freq)
    x = rng.normal(size=m) + 1j * rng.normal(size=m)
    herm = rng.choice([1.0, 2.0], size=m)
    sign = rng.choice([-1.0, 1.0], size=m).astype(np.float32)
    flat_idx = np.sort(rng.choice(n * n * (n // 2 + 1), size=m, replace=False))
    h = np.zeros((len(rots), n * n * (n // 2 + 1)), np.complex64)
    prod, r2 = kernels.correlation_spectra(ps.data, 2.0, freq, rots, x, herm, sign, flat_idx, h)
    ra = ps.sample_rotated(freq, rots)
    assert np.allclose(prod, x * np.conj(ra), rtol=1e-14, atol=0)
    assert np.allclose(r2, (herm * np.abs(ra) ** 2).sum(axis=1), rtol=1e-12)
    assert np.allclose(h[:, flat_idx], (prod * sign).astype(np.complex64))
    assert np.count_nonzero(h) <= h.shape[0] * m
    num, den = kernels.rotated_inner(ps.data, 2.0, freq, rots, x, herm)
    assert np.allclose(num, (herm * (x * np.conj(ra)).real).sum(axis=1), rtol=1e-12)
    assert np.allclose(den, r2, rtol=1e-12)


def test_shifted_real_sums_equal_explicit_phases(spectrum_and_points):
    _, ps, freq, rots = spectrum_and_points
    n = 24
    rng = np.random.default_rng(1)
    prod = ps.sample_rotated(freq, rots)
    herm = rng.choice([1.0, 2.0], size=len(freq))
    t = rng.uniform(-3, 3, size=(len(rots), 3))
    ours = kernels.shifted_real_sums(prod, t, _freq_index(freq, n), herm, n)
    ref = (herm * (prod * np.exp(2j * np.pi * (t @ freq.T) / n)).real).sum(axis=1)
    assert np.allclose(ours, ref, rtol=1e-10)


def test_local_maxima_equal_the_maximum_filter():
    rng = np.random.default_rng(4)
    score = ndimage.gaussian_filter(rng.normal(size=(20, 20, 20)), 1.5, mode="wrap")
    score = np.round(score, 2)  # plateaus: ties count as maxima in both
    ref = ndimage.maximum_filter(score, size=3, mode="wrap") == score
    ref[:, 11:, :] = False
    for dtype in (np.float64, np.float32):
        ours = kernels.local_maxima_mask(score.astype(dtype), 10)
        assert np.array_equal(ours, ref)
    assert ref.sum() > 10


@pytest.mark.parametrize("n", [16, 17])
def test_windowed_correlation_is_the_full_inverse_fft_in_the_window(n):
    rng = np.random.default_rng(n)
    spec = sfft.rfftn(rng.normal(size=(2, n, n, n)), axes=(1, 2, 3))
    full = sfft.irfftn(spec, s=(n, n, n), axes=(1, 2, 3), norm="forward")
    axis_index, _ = _shift_window(n, 3.0)
    kz, ky, kx = np.meshgrid(
        np.fft.fftfreq(n, 1 / n), np.fft.fftfreq(n, 1 / n), np.arange(n // 2 + 1), indexing="ij"
    )
    k = np.stack([kx.ravel(), ky.ravel(), kz.ravel()], axis=1)
    sign = _centring_signs(_freq_index(k, n), n).reshape(kz.shape)
    cc = _windowed_correlation((spec * sign).astype(np.complex64), n, axis_index)
    ix = np.ix_(range(2), axis_index, axis_index, axis_index)
    assert np.allclose(cc, full[ix], atol=1e-5 * np.abs(full).max())


def test_single_precision_rotation_grid_ranks_like_double():
    n = 24
    params = AlignParams(lmax=12)
    vol = phantom(n, seed=5)
    part = prepare_subtomogram(np.roll(vol, 1, axis=0), (-60, 60), params)
    ref = prepare_reference(vol, params)
    from faml_tomo.averaging.sph import shell_layout

    layout = shell_layout(n, params.lmax, *params.band(n))
    inner = shell_inner_products(part.coeffs, ref.coeffs, layout)
    double = so3_correlation(inner, params.euler_grid())
    single = so3_correlation(inner, params.euler_grid(), dtype=np.float32)
    assert single.dtype == np.float32
    assert np.allclose(single, double, atol=1e-5 * np.abs(double).max())
    score = rotation_scores(part, ref, params)
    exact = double[0] / np.sqrt(double[1] * part.norm2)
    assert np.allclose(score, exact, atol=1e-5)
    assert exact.ravel()[np.argmax(score)] == pytest.approx(exact.max(), abs=1e-5)


def test_translation_search_finds_a_known_shift_in_odd_and_even_boxes():
    for n in (24, 25):
        params = AlignParams(lmax=12)
        vol = phantom(n, seed=6)
        t = np.array([1.0, -2.0, 3.0])
        moved = ndimage.shift(vol, t[::-1], order=3, mode="constant")
        part = prepare_subtomogram(moved, (-60, 60), params)
        ref = prepare_reference(vol, params)
        shifts, scores, _, _ = translation_search(part, ref, np.eye(3)[None], params)
        assert np.allclose(shifts[0], t, atol=0.15), (n, shifts[0])
        assert scores[0] > 0.95
