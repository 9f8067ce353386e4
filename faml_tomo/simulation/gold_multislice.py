"""Gold-bead exit waves and reference images from first principles (abTEM
multislice through atomic gold spheres): makes the table in
``faml_tomo/simulation/data/gold_table.npz``.

Run with the ``gold`` extra installed (abTEM is not a runtime dependency)::

    pip install -e '.[gold]'
    python -m faml_tomo.simulation.gold_multislice --out faml_tomo/simulation/data/gold_table.npz

What is computed, per bead diameter and voltage
-----------------------------------------------
* An fcc gold lattice (a = 4.078 Å) in a random orientation, cut to a
  sphere; the multislice exit wave of a plane wave through it (abTEM,
  Lobato potentials, infinite projection, 0.2 Å sampling, 2 Å slices).
  Averaged over ``n_orientations`` random lattice orientations (beads are
  polycrystalline and randomly oriented; a zone axis would channel).
* ``wave_orient``: the exit wave band-limited to ``|k| <= 0.25 / Å`` (4 Å)
  and averaged over azimuth, as a function of the radius (Å), per lattice
  orientation; ``wave`` their geometric mean (mean log-amplitude and
  unwrapped phase). A sphere's outline looks the same from every tilt, so
  one profile serves every image of a series.
* ``lost``: the part of the beam scattered out of the objective aperture
  (20 mrad), and ``band_power``: the part scattered between 0.25 / Å and
  the aperture, per 0.01 / Å ring of ``band_k`` (mostly Bragg reflections
  of the lattice, 111 and 200 near 0.45 / Å; it reaches the detector,
  delocalised by the defocus into a ring or halo around the bead); both in
  Å² (intensity x area); ``band_power_orient`` per lattice orientation:
  crystalline beads scatter more or less into Bragg beams as their
  orientation changes (they "blink" along a tilt series).
* ``ref_profile``: reference images of an isolated bead for three defoci
  and five pixel sizes: the whole (not band-limited) exit wave in a 840 Å
  field, abTEM's CTF (Cs 2.7 mm, 20 mrad aperture), intensity, averaged over
  the pixel area (binning), radial profile about the bead centre, relative
  to the vacuum intensity. The simulators' gold is tested against them.

About 10 minutes on 2 cores.
"""

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["DIAMETERS", "VOLTAGES", "REF_DEFOCUS", "REF_PIXEL", "make_table", "main"]

DIAMETERS = (50.0, 100.0, 150.0, 200.0)  # Å
VOLTAGES = (200.0, 300.0)  # kV
REF_DEFOCUS = (1.0, 3.0, 6.0)  # µm underfocus
REF_PIXEL = (5.0, 7.0, 10.0, 15.0, 20.0)  # Å/px
LATTICE = 4.078  # Å, fcc gold
SAMPLING = 0.2  # Å, multislice grid
SLICE = 2.0  # Å
MARGIN = 30.0  # Å of vacuum around the sphere
WAVE_KMAX = 0.25  # 1/Å, band of the stored exit wave
WAVE_DR = 0.5  # Å, radial step of the stored wave
APERTURE = 20.0  # mrad
CS = 2.7  # mm
FIELD = 4200  # samples (840 Å) for reference images
REF_RMAX = 300.0  # Å, extent of the reference profiles
BAND_K = np.arange(WAVE_KMAX, 1.2, 0.01)  # 1/Å, ring edges of band_power


def _gold_sphere(diameter, rng):
    from ase.build import bulk

    size = diameter + 2 * MARGIN
    unit = bulk("Au", "fcc", a=LATTICE, cubic=True)
    n = int(np.ceil(0.9 * diameter / LATTICE)) * 2 + 2
    atoms = unit.repeat((n, n, n))
    pos = atoms.positions - atoms.positions.mean(axis=0)
    from scipy.spatial.transform import Rotation

    pos = pos @ Rotation.random(random_state=rng).as_matrix().T
    keep = np.linalg.norm(pos, axis=1) <= diameter / 2
    atoms = atoms[keep]
    atoms.positions = pos[keep] + size / 2
    atoms.cell = [size, size, size]
    atoms.pbc = True
    return atoms


def _radial_mean(values, r, edges):
    idx = np.digitize(r.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < len(edges) - 1)
    n = np.bincount(idx[ok], minlength=len(edges) - 1)
    re = np.bincount(idx[ok], weights=values.real.ravel()[ok], minlength=len(edges) - 1)
    out = re / np.maximum(n, 1)
    if np.iscomplexobj(values):
        im = np.bincount(idx[ok], weights=values.imag.ravel()[ok], minlength=len(edges) - 1)
        out = out + 1j * im / np.maximum(n, 1)
    return np.where(n > 0, out, np.nan)


def _exit_wave(atoms, voltage):
    import abtem

    pot = abtem.Potential(
        atoms,
        sampling=SAMPLING,
        slice_thickness=SLICE,
        projection="infinite",
        parametrization="lobato",
    )
    wave = abtem.PlaneWave(energy=voltage * 1e3).multislice(pot)
    return np.asarray(wave.compute(progress_bar=False).array, np.complex128)


def _reference_images(psi, voltage):
    """Binned intensity profiles of one bead's exit wave for every reference
    defocus and pixel size: array (n_defocus, n_pixel, n_radii)."""
    import abtem

    n = psi.shape[0]
    big = np.ones((FIELD, FIELD), np.complex64)
    c0 = FIELD // 2 - n // 2
    big[c0 : c0 + n, c0 : c0 + n] = psi
    cidx = c0 + n // 2  # bead centre (sample i lies at i * s)
    centre = cidx * SAMPLING
    out = np.full((len(REF_DEFOCUS), len(REF_PIXEL), int(REF_RMAX / 2.5) + 1), np.nan)
    for i, df in enumerate(REF_DEFOCUS):
        waves = abtem.Waves(big, energy=voltage * 1e3, sampling=SAMPLING)
        ctf = abtem.CTF(
            defocus=df * 1e4, Cs=CS * 1e7, semiangle_cutoff=APERTURE, energy=voltage * 1e3
        )
        inten = np.asarray(
            waves.apply_ctf(ctf).intensity().compute(progress_bar=False).array, np.float64
        )
        for j, px in enumerate(REF_PIXEL):
            b = int(round(px / SAMPLING))
            start = (cidx - (b - 1) // 2) % b  # a pixel centred on the bead
            m = (FIELD - start) // b
            crop = inten[start : start + m * b, start : start + m * b]
            binned = crop.reshape(m, b, m, b).mean(axis=(1, 3))
            pos = (start + np.arange(m) * b + (b - 1) / 2) * SAMPLING  # centres, Å
            r = np.hypot(pos[:, None] - centre, pos[None, :] - centre)
            edges = np.arange(0, REF_RMAX + px / 2, px / 2) - px / 4
            edges[0] = 0
            prof = _radial_mean(binned, r, edges)
            out[i, j, : len(prof)] = prof
    return out


def _scattering(
    psi: np.ndarray, voltage: float, wave_r: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Of one exit wave: the power scattered out of the aperture (Å²), the
    power per ``BAND_K`` ring between the stored band and the aperture (Å²),
    and the band-limited wave's radial profile at ``wave_r``."""
    n = psi.shape[0]
    k = np.fft.fftfreq(n, SAMPLING)
    kk = np.hypot(k[:, None], k[None, :])
    f = np.fft.fft2(psi)
    lam = 12.2642598 / np.sqrt(voltage * 1e3 * (1 + voltage * 1e3 / (2 * 510998.95)))
    k_ap = APERTURE * 1e-3 / lam
    to_area = SAMPLING**2 / psi.size
    lost = np.sum(np.abs(f[kk > k_ap]) ** 2) * to_area
    inband = (kk > WAVE_KMAX) & (kk <= k_ap)
    ring, _ = np.histogram(kk[inband], BAND_K, weights=np.abs(f[inband]) ** 2 * to_area)
    lp = np.fft.ifft2(np.where(kk <= WAVE_KMAX, f, 0))
    pos = np.arange(n) * SAMPLING - (n // 2) * SAMPLING
    r = np.hypot(pos[:, None], pos[None, :])
    edges = np.append(wave_r - WAVE_DR / 2, wave_r[-1] + WAVE_DR / 2)
    prof = _radial_mean(lp, r, edges)
    prof = np.where(np.isnan(prof), 1.0, prof)  # beyond the cell: vacuum
    return lost, ring, prof


def make_table(
    diameters: Sequence[float] = DIAMETERS,
    voltages: Sequence[float] = VOLTAGES,
    n_orientations: int = 6,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Compute the gold table (see the module docstring).

    Returns
    -------
    dict of numpy arrays, ready for :func:`numpy.savez_compressed`.
    """
    rng = np.random.default_rng(seed)
    rmax = max(diameters) / 2 + MARGIN
    wave_r = np.arange(0, rmax, WAVE_DR) + WAVE_DR / 2
    nd, nv = len(diameters), len(voltages)
    wave_o = np.zeros((nd, nv, n_orientations, len(wave_r)), np.complex128)
    lost = np.zeros((nd, nv))
    band_o = np.zeros((nd, nv, n_orientations, len(BAND_K) - 1))
    ref = None
    for a, d in enumerate(diameters):
        for o in range(n_orientations):
            t0 = time.perf_counter()
            atoms = _gold_sphere(d, rng)
            for b, v in enumerate(voltages):
                psi = _exit_wave(atoms, v)
                lost_ab, band_o[a, b, o], wave_o[a, b, o] = _scattering(psi, v, wave_r)
                lost[a, b] += lost_ab / n_orientations
                refs = _reference_images(psi, v)
                if ref is None:
                    ref = np.zeros((nd, nv) + refs.shape)
                ref[a, b] += refs / n_orientations
            logger.info(
                "bead %g Å, orientation %d: %d atoms, %.0f s",
                d,
                o + 1,
                len(atoms),
                time.perf_counter() - t0,
            )
    import abtem

    # the typical bead: geometric mean over orientations (a plain mean of
    # complex waves with different phases would be too dark)
    amp = np.log(np.abs(wave_o)).mean(axis=2)
    ph = np.unwrap(np.angle(wave_o)[..., ::-1], axis=-1)[..., ::-1]
    wave = np.exp(amp + 1j * (ph - ph[..., -1:]).mean(axis=2))
    return {
        "diameters": np.asarray(diameters, float),
        "voltages": np.asarray(voltages, float),
        "wave_r": wave_r,
        "wave": wave,
        "wave_orient": wave_o.astype(np.complex64),
        "wave_kmax": np.float64(WAVE_KMAX),
        "lost": lost,
        "band_k": 0.5 * (BAND_K[1:] + BAND_K[:-1]),
        "band_power": band_o.mean(axis=2),
        "band_power_orient": band_o,
        "aperture": np.float64(APERTURE),
        "ref_defocus": np.asarray(REF_DEFOCUS, float),
        "ref_pixel": np.asarray(REF_PIXEL),
        "ref_profile": ref,
        "ref_cs": np.float64(CS),
        "ref_aperture": np.float64(APERTURE),
        "n_orientations": np.int64(n_orientations),
        "seed": np.int64(seed),
        "provenance": np.array(
            f"abTEM {abtem.__version__} multislice, lobato potentials, sampling {SAMPLING} Å, "
            f"slices {SLICE} Å, fcc Au a={LATTICE} Å, {n_orientations} random orientations "
            f"(seed {seed}); python -m faml_tomo.simulation.gold_multislice"
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the table atomically; returns an exit code."""
    ap = argparse.ArgumentParser(
        prog="python -m faml_tomo.simulation.gold_multislice", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--out", type=Path, required=True, help="output .npz")
    ap.add_argument(
        "--orientations",
        type=int,
        default=6,
        help="random lattice orientations averaged per bead (default 6)",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the orientations")
    ap.add_argument(
        "--diameters",
        type=float,
        nargs="+",
        default=list(DIAMETERS),
        help="bead diameters in Å (default 50 100 150 200)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        import abtem  # noqa: F401
    except ImportError:
        print("error: abTEM is not installed; pip install -e '.[gold]'", file=sys.stderr)
        return 2
    table = make_table(tuple(args.diameters), n_orientations=args.orientations, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".part.npz")
    np.savez_compressed(tmp, **table)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
