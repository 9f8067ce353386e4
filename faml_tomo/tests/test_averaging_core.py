"""Known-answer tests of the FAML building blocks: wedge masks, Fourier
sampling, shell expansions, the SO(3) FFT and Voronoi weights."""

import numpy as np
import pytest
from scipy.linalg import expm
from scipy.spatial.transform import Rotation
from scipy.special import sph_harm

from faml_tomo.averaging.fourier import (
    PaddedSpectrum,
    half_frequencies,
    spectrum,
    volume_from_spectrum,
)
from faml_tomo.averaging.so3 import (
    euler_grid_angles,
    find_peaks,
    shell_inner_products,
    so3_correlation,
    wigner_d,
    wigner_d_half_pi,
)
from faml_tomo.averaging.sph import expand_shells, shell_layout
from faml_tomo.averaging.testing import phantom
from faml_tomo.averaging.voronoi import haar_rotations, voronoi_weights
from faml_tomo.averaging.wedge import (
    apply_wedge,
    check_tilt_range,
    observed_fraction,
    wedge_mask,
    wedge_observed,
)
from faml_tomo.errors import InputError
from faml_tomo.geometry import random_rotations, rotation_angle_deg, transform_volume

# --------------------------------------------------------------------------- wedge


def test_wedge_symmetric_keeps_two_thirds():
    n = 64
    full = wedge_mask(n, (-60, 60), half=False)
    k = np.fft.fftfreq(n, 1.0 / n)
    kz, ky, kx = np.meshgrid(k, k, k, indexing="ij")
    shell = (np.sqrt(kx**2 + ky**2 + kz**2) > 8) & (np.sqrt(kx**2 + ky**2 + kz**2) < 30)
    # 2/3 of the directions in the XZ plane; the fraction of 3D components
    # in a shell is the same (the wedge is a product of an angle and ky).
    assert abs(full[shell].mean() - 2 / 3) < 0.01
    assert observed_fraction((-60, 60)) == pytest.approx(2 / 3)


def test_wedge_geometry_known_points():
    obs = wedge_observed
    # On the XY plane (tilt 0): observed; along Z (beam): missing for ±60.
    assert obs(5, 0, 0, (-60, 60)) and obs(0, 5, 0, (-60, 60))
    assert not obs(0, 0, 5, (-60, 60))
    # 45 degrees in XZ observed, 75 not; point symmetry k -> -k.
    assert obs(1, 0, 1, (-60, 60)) and obs(-1, 3, -1, (-60, 60))
    assert not obs(1, 0, np.tan(np.radians(75)), (-60, 60))
    # Asymmetric range (-30, 70): +50 observed, -50 missing, -50 == +130.
    d50 = np.tan(np.radians(50))
    assert obs(1, 0, d50, (-30, 70)) and not obs(1, 0, -d50, (-30, 70))
    assert obs(-1, 0, -d50, (-30, 70))
    # Tilt axis and DC always observed, even for a range without 0.
    assert obs(0, 7, 0, (10, 50)) and obs(0, 0, 0, (10, 50))
    # Full range: everything.
    assert np.all(wedge_mask(8, (-90, 90)))


def test_wedge_mask_half_matches_full_and_is_point_symmetric():
    n = 16
    full = wedge_mask(n, (-45, 65), half=False)
    half = wedge_mask(n, (-45, 65), half=True)
    assert np.array_equal(full[:, :, : n // 2 + 1], half)
    idx = (-np.arange(n)) % n
    flipped = full[idx][:, idx][:, :, idx]
    inner = np.r_[0 : n // 2, n // 2 + 1 : n]  # -(n/2) is not on the grid
    sub = np.ix_(inner, inner, inner)
    assert np.array_equal(full[sub], flipped[sub])


def test_apply_wedge_removes_power():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(24, 24, 24))
    w = apply_wedge(v, 60)
    assert 0.6 < np.sum(w**2) / np.sum(v**2) < 0.72
    assert np.allclose(apply_wedge(w, 60), w)


@pytest.mark.parametrize(
    "bad", [(-95, 60), (-60, 91), (30, 30), (60, -60), (np.nan, 60), (1, 2, 3)]
)
def test_bad_tilt_range(bad):
    with pytest.raises(InputError, match="tilt range"):
        check_tilt_range(bad)


def test_tilt_range_scalar():
    assert check_tilt_range(60) == (-60.0, 60.0)


# --------------------------------------------------------------------------- Fourier


def _blob(n, seed=0):
    return phantom(n, seed=seed)


def test_spectrum_roundtrip_and_parseval():
    v = _blob(16)
    s = spectrum(v)
    assert np.allclose(volume_from_spectrum(s, 16), v)
    w = np.full(9, 2.0)
    w[0] = w[-1] = 1.0
    assert np.sum(w * np.abs(s) ** 2) == pytest.approx(np.sum(v**2))


def test_padded_sampling_on_grid_and_rotated():
    n = 32
    v = _blob(n, seed=3)
    s = spectrum(v)
    pad = PaddedSpectrum(v, pad=2)
    kz, ky, kx = half_frequencies(n)
    k = np.stack(np.broadcast_arrays(kx, ky, kz), -1).reshape(-1, 3)
    sel = np.linalg.norm(k, axis=1) <= n // 2 - 1
    q = k[sel]
    assert np.allclose(pad.sample(q), s.reshape(-1)[sel], atol=1e-5 * np.abs(s).max())
    assert np.allclose(pad.sample(-q), np.conj(s.reshape(-1)[sel]), atol=1e-5 * np.abs(s).max())
    # Rotation + shift in real space == sampling at R^T k times a phase.
    rot = random_rotations(1, np.random.default_rng(1))[0]
    t = np.array([1.5, -2.0, 0.7])
    moved = spectrum(transform_volume(v, rot, t, order=3)).reshape(-1)[sel]
    pred = pad.sample(q @ rot) * np.exp(-2j * np.pi * (q @ t) / n)
    low = np.linalg.norm(q, axis=1) < 12
    err = np.linalg.norm(pred[low] - moved[low]) / np.linalg.norm(moved[low])
    assert err < 0.05


# --------------------------------------------------------------------------- SH / SO(3)


def _wigner_d_expm(l, beta):
    # The reference's construction (shared/docs/so3_convention_check.py).
    m = np.arange(-l, l + 1)
    jp = np.diag(np.sqrt(l * (l + 1) - m[:-1] * (m[:-1] + 1)), -1)
    jy = (jp - jp.T) / (2j)
    return np.real(expm(-1j * beta * jy))


@pytest.mark.parametrize("l", [0, 1, 2, 7, 16])
def test_wigner_d_matches_reference(l):
    assert np.allclose(wigner_d(l, 0.7), _wigner_d_expm(l, 0.7), atol=1e-12)
    assert np.allclose(wigner_d_half_pi(l), _wigner_d_expm(l, np.pi / 2), atol=1e-12)


def _angular_cube(n, func):
    """Centred cube of func(polar, azimuth) of each frequency's direction."""
    c = n // 2
    z, y, x = np.mgrid[:n, :n, :n] - c
    r = np.sqrt(x**2 + y**2 + z**2)
    pol = np.arccos(np.clip(z / np.maximum(r, 1e-9), -1, 1))
    az = np.arctan2(y, x)
    return func(pol, az)


def test_shell_expansion_known_coefficients():
    n = 48
    layout = shell_layout(n, 12)

    def f(pol, az):
        return np.real(sph_harm(1, 2, az, pol)) + 0.5 * np.real(sph_harm(0, 4, az, pol))

    coef = expand_shells(_angular_cube(n, f), layout)
    outer = layout.radii >= 12
    c2 = coef[outer][:, layout.block(2)]
    c4 = coef[outer][:, layout.block(4)]
    # Re Y_21 = (Y_21 - Y_2,-1) / 2 with the Condon-Shortley phase.
    assert np.allclose(c2[:, 3], 0.5, atol=0.02) and np.allclose(c2[:, 1], -0.5, atol=0.02)
    assert np.allclose(c4[:, 4], 0.5, atol=0.02)
    rest = np.abs(coef[outer]).copy()
    rest[:, layout.offsets[2] + 1] = rest[:, layout.offsets[2] + 3] = 0
    rest[:, layout.offsets[4] + 4] = 0
    assert rest.max() < 0.03


def test_shell_expansion_rotation_convention():
    """g(w) = f(R^-1 w) has g_lm = sum_m' D^l_mm'(R) f_lm' with
    D = e^{-i m a} d(b) e^{-i m' g} (reference check 1)."""
    n = 48
    layout = shell_layout(n, 8)
    a0, b0, g0 = 1.1, 0.7, 2.3
    rot = Rotation.from_euler("ZYZ", [a0, b0, g0]).as_matrix()

    def f(pol, az):
        return (
            np.real(sph_harm(2, 4, az, pol))
            + 0.3 * np.imag(sph_harm(1, 2, az, pol))
            + 0.2 * np.real(sph_harm(3, 6, az, pol))
        )

    def g(pol, az):
        v = np.stack([np.sin(pol) * np.cos(az), np.sin(pol) * np.sin(az), np.cos(pol)], -1)
        u = v @ rot  # R^T v per point
        return f(np.arccos(np.clip(u[..., 2], -1, 1)), np.arctan2(u[..., 1], u[..., 0]))

    cf = expand_shells(_angular_cube(n, f), layout)
    cg = expand_shells(_angular_cube(n, g), layout)
    r = layout.radii >= 14
    for l in (2, 4, 6):
        m = np.arange(-l, l + 1)
        d = np.exp(-1j * m[:, None] * a0) * wigner_d(l, b0) * np.exp(-1j * m[None, :] * g0)
        pred = cf[r][:, layout.block(l)] @ d.T
        assert np.allclose(cg[r][:, layout.block(l)], pred, atol=0.03)


def _real_even_coeffs(rng, ls):
    out = {}
    for l in ls:
        c = rng.normal(size=2 * l + 1) + 1j * rng.normal(size=2 * l + 1)
        for i, m in enumerate(range(-l, l + 1)):
            if m < 0:
                c[i] = (-1) ** abs(m) * np.conj(c[l - m])
            elif m == 0:
                c[i] = c[i].real
        out[l] = c
    return out


def test_so3_correlation_matches_reference_formula():
    rng = np.random.default_rng(0)
    ls = [0, 2, 4, 6, 8]
    g = _real_even_coeffs(rng, ls)
    f = _real_even_coeffs(rng, ls)
    inner = {l: np.outer(g[l], np.conj(f[l]))[None] for l in ls}
    n_grid = 18
    ours = so3_correlation(inner, n_grid)[0]
    # Reference: full T with fancy-index accumulation and a complex ifftn.
    t = np.zeros((n_grid,) * 3, complex)
    for l in ls:
        m = np.arange(-l, l + 1)
        dl = _wigner_d_expm(l, np.pi / 2)
        ph = 1j ** (m[None, :] - m[:, None])
        blk = np.einsum("mn,hm,hn->mhn", ph * np.outer(g[l], np.conj(f[l])), dl, dl)
        ii = m % n_grid
        t[np.ix_(ii, ii, ii)] += blk
    ref = np.fft.ifftn(t) * n_grid**3
    assert np.abs(ref.imag).max() < 1e-9 * np.abs(ref.real).max()
    assert np.allclose(ours, ref.real, atol=1e-9 * np.abs(ref.real).max())


def test_so3_correlation_peak_at_true_rotation():
    """Rotational correlation of a volume's magnitude spectrum with a rotated
    copy peaks at the rotation (geometry convention), within a grid step."""
    n = 32
    v = phantom(n, seed=5)
    rot = random_rotations(1, np.random.default_rng(2))[0]
    moved = transform_volume(v, rot, order=3)
    layout = shell_layout(n, 15)

    def mag_cube(vol):
        return np.abs(np.fft.fftshift(np.fft.fftn(vol)))

    p = expand_shells(mag_cube(moved)[None], layout)
    q = expand_shells(mag_cube(v)[None], layout)
    corr = so3_correlation(shell_inner_products(p, q, layout), 32)[0]
    rots, vals = find_peaks(corr, max_peaks=5)
    # |F| cannot tell v(x) from v(-x): the best peak is R or R composed with
    # a point inversion, which for rotations means R itself or nothing else;
    # v has no symmetry, so the top peak is R.
    assert rotation_angle_deg(rots[0], rot) < 360 / 32
    idx = np.array(np.unravel_index(np.argmax(corr), corr.shape))
    r_grid = Rotation.from_euler("ZYZ", euler_grid_angles(idx, 32)).as_matrix()
    assert rotation_angle_deg(r_grid, rot) < 360 / 32 * 1.5


def test_find_peaks_merges_double_cover():
    n = 24
    # A score with one sharp maximum at a grid rotation and its twin.
    rng = np.random.default_rng(0)
    score = rng.uniform(0, 0.1, size=(n, n, n))
    i, j, k = 3, 5, 7
    score[i, j, k] = 1.0
    score[(i + n // 2) % n, (n - j) % n, (k + n // 2) % n] = 1.0
    rots, vals = find_peaks(score, max_peaks=50)
    assert vals[0] == 1.0 and vals[1] < 1.0  # the twin was merged
    truth = Rotation.from_euler("ZYZ", euler_grid_angles([i, j, k], n)).as_matrix()
    assert rotation_angle_deg(rots[0], truth) < 1e-6 + 360 / n
    # Candidates are pairwise separated by the merge radius.
    d = rotation_angle_deg(rots[:, None], rots[None, :])
    assert np.all(d[~np.eye(len(rots), dtype=bool)] >= 720 / n - 1e-6)
    assert len(find_peaks(score, max_peaks=3)[0]) == 3


# --------------------------------------------------------------------------- Voronoi


def test_haar_rotations_are_uniform():
    rots = haar_rotations(20000, np.random.default_rng(0))
    assert np.allclose(rots @ rots.transpose(0, 2, 1), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(rots), 1.0)
    assert np.abs(rots.mean(axis=0)).max() < 0.02
    # Haar: rotation angle density (1 - cos w) / pi -> P(w < 90 deg) = (pi/2 - 1) / pi.
    ang = rotation_angle_deg(np.eye(3), rots)
    assert abs(np.mean(ang < 90) - (np.pi / 2 - 1) / np.pi) < 0.01


def test_voronoi_weights_known_cases():
    rng = np.random.default_rng(0)
    # One candidate: weight 1.
    assert np.array_equal(voronoi_weights(np.eye(3)[None], np.zeros((1, 3))), [1.0])
    # Identity and a 180-degree rotation, same shift: two equal halves.
    r180 = Rotation.from_rotvec([np.pi, 0, 0]).as_matrix()
    w = voronoi_weights(np.stack([np.eye(3), r180]), np.zeros((2, 3)), 20000, rng=1)
    assert w.sum() == pytest.approx(1.0) and abs(w[0] - 0.5) < 0.02
    # A cluster of three close rotations shares what one isolated one gets.
    near = [Rotation.from_rotvec(v).as_matrix() for v in ([0, 0, 0], [0.1, 0, 0], [0, 0.1, 0])]
    w = voronoi_weights(np.stack(near + [r180]), np.zeros((4, 3)), 20000, rng=2)
    assert w[3] > 0.4 and np.all(w[:3] < 0.3)
    # Seeded: reproducible.
    rots = random_rotations(10, rng)
    sh = rng.normal(size=(10, 3))
    a = voronoi_weights(rots, sh, 5000, alpha_trd=1.0, rng=7)
    b = voronoi_weights(rots, sh, 5000, alpha_trd=1.0, rng=7)
    assert np.array_equal(a, b) and a.sum() == pytest.approx(1.0)


def test_voronoi_translation_term():
    # Same rotation, translations far apart: alpha_trd decides the split.
    rots = np.stack([np.eye(3)] * 3)
    sh = np.array([[0.0, 0, 0], [1.0, 0, 0], [10.0, 0, 0]])
    w = voronoi_weights(rots, sh, 20000, alpha_trd=1.0, rng=3)
    # Bounding box [0, 10] in x: cells [0, .5], [.5, 5.5], [5.5, 10].
    assert np.allclose(w, [0.05, 0.5, 0.45], atol=0.02)


def test_voronoi_bad_input():
    with pytest.raises(InputError):
        voronoi_weights(np.zeros((0, 3, 3)), np.zeros((0, 3)))
    with pytest.raises(InputError):
        voronoi_weights(np.eye(3)[None], np.zeros((1, 3)), n_samples=0)
