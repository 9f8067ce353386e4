"""Rigid-body geometry shared by all faml_tomo packages.

Conventions (used everywhere in the package; see the README):

* Volumes are numpy arrays indexed ``[z, y, x]``; the rotation centre of a
  box of size ``n`` is voxel ``n // 2`` on each axis (the RELION/Scipion
  centre).  Vectors and matrices act on ``(x, y, z)`` coordinates.
* A rigid transform ``(R, t)`` maps a reference onto a particle::

      particle(x) = reference(R^T (x - c - t) + c)

  i.e. the reference is rotated actively by ``R`` about the centre ``c`` and
  then shifted by ``t`` (in voxels).
* Euler angles are ZYZ in the RELION convention ``(rot, tilt, psi)`` in
  degrees.  RELION's matrix is ``A = Rz(psi) Ry(tilt) Rz(rot)`` with
  ``Rz(a) = [[cos a, sin a, 0], [-sin a, cos a, 0], [0, 0, 1]]``
  (``src/euler.cpp``, ``Euler_angles2matrix``) and RELION predicts a particle
  by sampling the reference at ``A^-1 k`` (``src/projector.cpp``, ``project``
  and ``rotate3D``: ``Ainv = A.inv()``): the particle is the reference
  rotated actively by ``A``, so ``R = A`` (the inverse of scipy's intrinsic
  ``"ZYZ"`` with the same three angles).  RELION translates the particle by
  its origin to centre it (``ml_optimiser.cpp``: ``selfTranslate(img,
  offset)``; the centre is the coordinate minus the origin), so
  ``rlnOriginX/Y/ZAngst = -t`` times the voxel size.
* Scipion stores ``M`` with ``particle(r) = reference(M r)``
  (``tomo.objects.convertMatrix``), i.e. ``M = [[R, t], [0, 1]]^-1``.
"""

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage
from scipy.spatial.transform import Rotation

__all__ = [
    "euler_to_matrix",
    "matrix_to_euler",
    "origin_from_shift",
    "shift_from_origin",
    "random_rotations",
    "rotation_angle_deg",
    "transform_volume",
    "box_center",
    "rigid_matrix4",
]


def euler_to_matrix(angles: ArrayLike) -> np.ndarray:
    """Active rotation matrices from RELION ZYZ Euler angles.

    Parameters
    ----------
    angles : array_like, shape (3,) or (n, 3)
        ``(rot, tilt, psi)`` in degrees.

    Returns
    -------
    numpy.ndarray, shape (3, 3) or (n, 3, 3)
        ``R`` acting on ``(x, y, z)`` column vectors, reference to particle
        (RELION's matrix ``A``).
    """
    return Rotation.from_euler("ZYZ", angles, degrees=True).inv().as_matrix()


def matrix_to_euler(matrices: ArrayLike) -> np.ndarray:
    """RELION ZYZ Euler angles ``(rot, tilt, psi)`` in degrees of active
    rotation matrices (inverse of :func:`euler_to_matrix`); tilt in [0, 180]."""
    return Rotation.from_matrix(matrices).inv().as_euler("ZYZ", degrees=True)


def origin_from_shift(shifts: ArrayLike, voxel_size: float) -> np.ndarray:
    """RELION's ``rlnOriginX/Y/ZAngst`` of shifts ``t`` in voxels: ``-t``
    times the voxel size (RELION moves the particle by its origin onto the
    reference)."""
    return -np.asarray(shifts, dtype=float) * float(voxel_size)


def shift_from_origin(origins: ArrayLike, voxel_size: float) -> np.ndarray:
    """Shifts ``t`` in voxels from RELION's ``rlnOriginX/Y/ZAngst``
    (inverse of :func:`origin_from_shift`)."""
    return -np.asarray(origins, dtype=float) / float(voxel_size)


def random_rotations(n: int, rng: np.random.Generator, axis: str | None = None) -> np.ndarray:
    """Rotations drawn uniformly (Haar measure on SO(3)).

    Parameters
    ----------
    n : int
        Number of rotations.
    rng : numpy.random.Generator
        Source of randomness.
    axis : {None, "x", "y", "z"}
        If given, uniform rotations about that axis only (preferred
        orientation).

    Returns
    -------
    numpy.ndarray, shape (n, 3, 3)
    """
    if axis is None:
        return Rotation.random(n, random_state=rng).as_matrix()
    vec = {"x": (1, 0, 0), "y": (0, 1, 0), "z": (0, 0, 1)}[axis]
    ang = rng.uniform(0, 2 * np.pi, size=n)
    return Rotation.from_rotvec(np.outer(ang, vec)).as_matrix()


def rotation_angle_deg(r1: ArrayLike, r2: ArrayLike) -> np.ndarray:
    """Angle in degrees of the rotation ``r1^T r2`` (geodesic distance on
    SO(3)); broadcasts over leading dimensions."""
    r1 = np.asarray(r1)
    r2 = np.asarray(r2)
    tr = np.einsum("...ji,...ji->...", r1, r2)
    return np.degrees(np.arccos(np.clip((tr - 1) / 2, -1, 1)))


def box_center(shape: Sequence[int]) -> np.ndarray:
    """Rotation centre ``(x, y, z)`` in voxels of a ``[z, y, x]`` box."""
    nz, ny, nx = shape
    return np.array([nx // 2, ny // 2, nz // 2], dtype=float)


def transform_volume(
    vol: ArrayLike,
    rotation: ArrayLike | None = None,
    shift: ArrayLike | None = None,
    order: int = 3,
    mode: str = "constant",
    cval: float = 0.0,
    output_shape: Sequence[int] | None = None,
) -> np.ndarray:
    """Apply a rigid transform to a volume, as in the module convention.

    Parameters
    ----------
    vol : numpy.ndarray, shape (nz, ny, nx)
        Reference volume.
    rotation : array_like, shape (3, 3), optional
        Active rotation ``R`` on ``(x, y, z)``; identity when omitted.
    shift : array_like, shape (3,), optional
        Shift ``t = (tx, ty, tz)`` in voxels applied after the rotation.
    order : int
        Spline interpolation order (scipy.ndimage).
    mode, cval
        Boundary handling (scipy.ndimage).
    output_shape : tuple, optional
        Shape of the output box; same centre convention.

    Returns
    -------
    numpy.ndarray
        ``particle(x) = vol(R^T (x - c_out - t) + c_in)``.
    """
    vol = np.asarray(vol)
    rot = np.eye(3) if rotation is None else np.asarray(rotation, float)
    t = np.zeros(3) if shift is None else np.asarray(shift, float)
    out_shape = vol.shape if output_shape is None else tuple(output_shape)
    c_in = box_center(vol.shape)[::-1]  # (z, y, x)
    c_out = box_center(out_shape)[::-1]
    m = rot.T[::-1, ::-1]  # R^T in (z, y, x) order
    offset = c_in - m @ (c_out + t[::-1])
    return ndimage.affine_transform(
        vol,
        m,
        offset=offset,
        order=order,
        mode=mode,
        cval=cval,
        output_shape=out_shape,
        prefilter=order > 1,
    )


def rigid_matrix4(rotation: ArrayLike, shift: ArrayLike) -> np.ndarray:
    """4x4 homogeneous matrix ``[[R, t], [0, 1]]`` (shift in the unit given)."""
    m = np.eye(4)
    m[:3, :3] = rotation
    m[:3, 3] = shift
    return m
