"""The subtle class pair of the classification tests and benchmarks: a map and
the same map without a subunit at its surface (:func:`cut_surface`,
:func:`subtle_pair`)."""

from pathlib import Path

import numpy as np

from ..typealiases import PathLike

__all__ = ["cut_surface", "subtle_pair"]


def cut_surface(
    volume: np.ndarray, fraction: float, level: float = 0.05, edge_sigma: float = 1.0
) -> tuple[np.ndarray, float, float]:
    """The map without a region at its surface holding ``fraction`` of its mass.

    The region is the density nearest (a ball) to the occupied voxel farthest
    along +x (occupied: above ``level`` times the maximum), removed with a
    Gaussian soft edge of ``edge_sigma`` voxels: a subunit present in one
    class and absent in the other, for classification tests.

    Parameters
    ----------
    volume : numpy.ndarray, shape (n, n, n)
        Non-negative density ``[z, y, x]``.
    fraction : float
        Share of the total mass to remove, in (0, 1).

    Returns
    -------
    cut : numpy.ndarray, shape (n, n, n)
    removed : float
        Mass fraction actually removed (the soft edge changes it a little).
    radius : float
        Radius of the removed ball in voxels.
    """
    from scipy.ndimage import gaussian_filter

    vol = np.clip(np.asarray(volume, float), 0, None)
    z, y, x = np.indices(vol.shape)
    occupied = vol > level * vol.max()
    tip = np.array(np.unravel_index(np.argmax(np.where(occupied, x, -1)), vol.shape), float)
    dist = np.sqrt((z - tip[0]) ** 2 + (y - tip[1]) ** 2 + (x - tip[2]) ** 2)
    order = np.argsort(dist, axis=None)
    mass = np.cumsum(vol.ravel()[order])
    radius = float(dist.ravel()[order][np.searchsorted(mass, fraction * vol.sum())])
    cut = vol * (1.0 - gaussian_filter((dist <= radius).astype(float), edge_sigma))
    return cut, float(1.0 - cut.sum() / vol.sum()), radius


def subtle_pair(
    structures_dir: PathLike, folder: PathLike, base: str = "4v4r", fraction: float = 0.09
) -> float:
    """Write ``<base>.mrc`` and ``<base>_cut.mrc`` (the map without ``fraction``
    of its mass, :func:`cut_surface`; source voxel size) into ``folder``,
    once; returns the removed mass fraction.  The pair of
    ``benchmarks/bench_faml_classify_snr.py``."""
    import json

    from ..io.mrc import read_mrc, require_voxel_size, write_mrc

    folder = Path(folder)
    cut_path = folder / f"{base}_cut.mrc"
    info = folder / "pair.json"
    if cut_path.is_file() and info.is_file():
        return json.loads(info.read_text())["removed_mass_fraction"]
    source = Path(structures_dir) / f"{base}.mrc"
    vol, header_voxel = read_mrc(source)
    voxel = require_voxel_size(header_voxel, source)
    vol = np.clip(np.asarray(vol, float), 0, None)
    cut, removed, radius = cut_surface(vol, fraction)
    folder.mkdir(parents=True, exist_ok=True)
    write_mrc(folder / f"{base}.mrc", vol.astype(np.float32), voxel)
    write_mrc(cut_path, cut.astype(np.float32), voxel)
    info.write_text(
        json.dumps(
            {
                "removed_mass_fraction": removed,
                "radius_voxels": radius,
                "source_voxel": float(voxel),
            }
        )
    )
    return removed
