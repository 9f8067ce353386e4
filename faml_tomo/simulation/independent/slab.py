"""Geometry of the ice slab and of the carbon film: local thickness and
surfaces, and the analytic path lengths of tilted rays through them (the
inelastic attenuation of the images).

The slab is laterally unbounded (it continues beyond the tomogram), centred
on ``z = nz // 2``, with thickness ``t(x) = thickness_A * (1 + gradient *
(x - cx) / nx)``. The carbon film is a layer of the slab below its top
surface, on the side ``s(x, y) > 0`` of a straight edge ``s = (x - x_e) cos
a + (y - cy) sin a``.
"""

import logging
from dataclasses import dataclass
from typing import Tuple

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["SlabGeometry"]


@dataclass(frozen=True)
class SlabGeometry:
    """Ice slab and carbon film in tomogram voxel coordinates.

    Attributes
    ----------
    shape : tuple of int
        Tomogram shape ``(nz, ny, nx)``.
    pixel_size_A : float
        Voxel size, Å.
    thickness_A : float
        Mean slab thickness, Å.
    gradient : float
        Relative thickness change across the field in x.
    carbon_coverage : float
        Fraction of the field (in x) covered by carbon, 0 for none.
    carbon_thickness_A : float
        Thickness of the carbon layer, Å.
    carbon_edge_deg : float
        Angle of the carbon edge from the y axis, degrees.
    """

    shape: Tuple[int, int, int]
    pixel_size_A: float
    thickness_A: float
    gradient: float = 0.0
    carbon_coverage: float = 0.0
    carbon_thickness_A: float = 300.0
    carbon_edge_deg: float = 0.0

    @property
    def centre(self) -> Tuple[int, int, int]:
        """``(cx, cy, cz)`` = ``n // 2`` of each axis."""
        nz, ny, nx = self.shape
        return nx // 2, ny // 2, nz // 2

    def thickness_at(self, x: "float | np.ndarray") -> np.ndarray:
        """Slab thickness in Å at voxel column(s) ``x`` (at least 10 % of
        the mean)."""
        nx = self.shape[2]
        t = self.thickness_A * (1 + self.gradient * (np.asarray(x, float) - nx // 2) / nx)
        return np.maximum(t, 0.1 * self.thickness_A)

    def bounds(self, x: "float | np.ndarray") -> Tuple[np.ndarray, np.ndarray]:
        """Bottom and top surface ``z`` (voxels) at column(s) ``x``."""
        half = 0.5 * self.thickness_at(x) / self.pixel_size_A
        cz = self.shape[0] // 2
        return cz - half, cz + half

    def carbon_distance(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Signed distance (voxels) to the carbon edge, positive on the
        carbon side; ``-inf`` without carbon."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        if self.carbon_coverage <= 0:
            return np.full(np.broadcast(x, y).shape, -np.inf)
        nz, ny, nx = self.shape
        xe = nx * (1 - self.carbon_coverage)
        a = np.radians(self.carbon_edge_deg)
        return (x - xe) * np.cos(a) + (y - ny // 2) * np.sin(a)

    def ice_path_A(self, u: np.ndarray, angle_deg: float) -> np.ndarray:
        """Path length (Å) through the slab of the ray that reaches image
        column(s) ``u`` (tomogram pixels) at a tilt."""
        th = np.radians(angle_deg)
        cx = self.shape[2] // 2
        xc = cx + (np.asarray(u, float) - cx) / np.cos(th)
        return self.thickness_at(xc) / np.cos(th)

    def carbon_path_A(self, u: np.ndarray, v: "float | np.ndarray", angle_deg: float) -> np.ndarray:
        """Path length (Å) through the carbon layer of the rays reaching
        image points ``(u, v)`` (tomogram pixels, broadcast)."""
        u, v = np.asarray(u, float), np.asarray(v, float)
        if self.carbon_coverage <= 0:
            return np.zeros(np.broadcast(u, v).shape)
        th = np.radians(angle_deg)
        nz, ny, nx = self.shape
        cx, cz = nx // 2, nz // 2
        xc = cx + (u - cx) / np.cos(th)
        z1 = self.bounds(xc)[1]
        depth = self.carbon_thickness_A / self.pixel_size_A
        z0 = z1 - depth
        s_c = self.carbon_distance(xc, v)
        b = -np.tan(th) * np.cos(np.radians(self.carbon_edge_deg))
        if abs(b) < 1e-9:
            lz = np.where(s_c > 0, depth, 0.0)
        else:
            zstar = cz - s_c / b
            if b > 0:
                lz = z1 - np.maximum(z0, zstar)
            else:
                lz = np.minimum(z1, zstar) - z0
            lz = np.clip(lz, 0.0, depth)
        return lz * self.pixel_size_A / np.cos(th)

    def log_amplitude(
        self,
        u: np.ndarray,
        v: "float | np.ndarray",
        angle_deg: float,
        ice_mfp_A: float,
        carbon_mfp_A: float,
    ) -> np.ndarray:
        """Log of the wave amplitude left by inelastic scattering (zero-loss
        filtered), ``-(L_ice / mfp_ice + L_carbon / mfp_carbon) / 2`` with the
        carbon replacing ice along its path; broadcast of ``u`` and ``v``."""
        ice = self.ice_path_A(u, angle_deg)
        carbon = self.carbon_path_A(u, v, angle_deg)
        return -0.5 * ((ice - carbon) / ice_mfp_A + carbon / carbon_mfp_A)
