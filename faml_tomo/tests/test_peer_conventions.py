"""The transforms faml-tomo writes mean, to RELION, Scipion and
scipion-em-reliontomo, the transform that made the particle.

Each peer's rule is transcribed from its own code (cited per helper) and
applied to a reference; the result must be the particle that
:func:`faml_tomo.geometry.transform_volume` made with the true ``(R, t)``.
A check of our functions against themselves could not catch an inverted
convention (it once did not: angles and origins were written inverted until
2026-12-06)."""

import numpy as np
import pytest
from scipy.ndimage import map_coordinates
from scipy.spatial.transform import Rotation

from faml_tomo.averaging.testing import phantom
from faml_tomo.geometry import (
    euler_to_matrix,
    matrix_to_euler,
    origin_from_shift,
    shift_from_origin,
    transform_volume,
)

VOXEL = 10.0


def relion_euler_matrix(rot, tilt, psi):
    """RELION ``Euler_angles2matrix`` (src/euler.cpp, 3dem/relion 73f0a3c),
    line by line."""
    a, b, g = np.deg2rad([rot, tilt, psi])
    ca, cb, cg, sa, sb, sg = np.cos(a), np.cos(b), np.cos(g), np.sin(a), np.sin(b), np.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    return np.array(
        [
            [cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb],
            [-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb],
            [sc, ss, cb],
        ]
    )


def _sample(vol, m, v):
    """``out(x) = vol(m x + v)``, ``x`` in voxels ``(x, y, z)`` about the box
    centre ``n // 2``."""
    n = vol.shape[0]
    c = n // 2
    z, y, x = np.mgrid[:n, :n, :n] - c
    pts = np.stack([x, y, z]).reshape(3, -1)
    src = m @ pts + np.asarray(v, float)[:, None] + c
    return map_coordinates(vol, src[::-1], order=3).reshape(n, n, n)


def relion_particle(ref, rot, tilt, psi, origin_angst):
    """RELION's model of a 3D particle: ``rotate3D`` samples the reference at
    ``A^-1 k`` (src/projector.cpp: ``Ainv = A.inv()``), and the particle
    translated by its origin matches it (src/ml_optimiser.cpp:
    ``selfTranslate(img(), my_old_offset)``), so ``P(y) = ref(A^-1 (y + o))``."""
    a = relion_euler_matrix(rot, tilt, psi)
    o = np.asarray(origin_angst, float) / VOXEL
    return _sample(ref, a.T, a.T @ o)


def scipion_particle(ref, matrix):
    """Scipion's definition (tomo.objects.convertMatrix):
    ``f'(r) = f(M r)`` with ``f`` the reference and ``f'`` the moved map."""
    m = np.asarray(matrix, float)
    return _sample(ref, m[:3, :3], m[:3, 3])


def reliontomo_matrix(rot, tilt, psi, origin_angst):
    """scipion-em-reliontomo ``genTransformMatrix`` (reliontomo/convert/
    convertBase.py, b2ecd47): ``euler_matrix(-rot, -tilt, -psi, 'szyz')``
    (static axes: ``Rz(-psi) Ry(-tilt) Rz(-rot)``) with ``-origin / sampling``
    as translation, inverted."""
    m = np.eye(4)
    m[:3, :3] = Rotation.from_euler("zyz", [-rot, -tilt, -psi], degrees=True).as_matrix()
    m[:3, 3] = -np.asarray(origin_angst, float) / VOXEL
    return np.linalg.inv(m)


def _ncc(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_relion_matrix_is_the_active_rotation_reference_to_particle():
    np.testing.assert_allclose(
        euler_to_matrix([90.0, 0.0, 0.0]), relion_euler_matrix(90.0, 0.0, 0.0), atol=1e-12
    )
    # rot = 90 turns +x of the reference to -y of the particle in RELION
    np.testing.assert_allclose(
        euler_to_matrix([90.0, 0.0, 0.0]) @ [1, 0, 0], [0, -1, 0], atol=1e-12
    )
    for ang in Rotation.random(5, random_state=3).as_euler("ZYZ", degrees=True):
        np.testing.assert_allclose(euler_to_matrix(ang), relion_euler_matrix(*ang), atol=1e-12)
        np.testing.assert_allclose(
            euler_to_matrix(matrix_to_euler(euler_to_matrix(ang))), euler_to_matrix(ang), atol=1e-9
        )
    t = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(shift_from_origin(origin_from_shift(t, VOXEL), VOXEL), t)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_written_angles_and_origins_make_the_particle_in_relion_and_scipion(seed):
    from faml_tomo.protocols.convert import scipion_matrix

    rng = np.random.default_rng(seed)
    ref = phantom(32, seed=5)
    rot = Rotation.random(random_state=seed).as_matrix()
    t = rng.uniform(-2.5, 2.5, size=3)
    particle = transform_volume(ref, rot, t)
    angles = matrix_to_euler(rot)  # what particles.star gets
    origin = origin_from_shift(t, VOXEL)
    assert _ncc(relion_particle(ref, *angles, origin), particle) > 0.995
    m = scipion_matrix(rot, t)  # what the protocol stores
    assert _ncc(scipion_particle(ref, m), particle) > 0.995
    # and scipion-em-reliontomo turns the STAR values into that same matrix
    np.testing.assert_allclose(reliontomo_matrix(*angles, origin), m, atol=1e-9)
    # the inverse convention is clearly told apart (the test can fail)
    assert _ncc(relion_particle(ref, *matrix_to_euler(rot.T), -origin), particle) < 0.9
