"""Scipion protocol ProtPeakHighContrast and its viewer, headless, on
simulated tomograms (one aligned, one strongly misaligned)."""

import numpy as np

from faml_tomo.fiducials import box_inside, match_points
from faml_tomo.io import write_mrc
from faml_tomo.tests.protocol_base import FamlTomoProtocolTest

PIXEL = 15.0
SHAPE = (96, 256, 256)


def simulate(kind, magnitude, seed):
    from faml_tomo import simulation as sim

    nz, ny, nx = SHAPE
    slab = sim.SlabParams(nx=nx, ny=ny, nz=nz, pixel_size=PIXEL, slab_thickness=1200.0, n_beads=25)
    acq = sim.AcquisitionParams()
    model = None if kind == "none" else sim.misalignment_preset(kind, magnitude, len(acq.angles()))
    ts = sim.simulate_tilt_series(slab, acq, model, rng=seed, workers=1)
    return sim.reconstruct_wbp(ts.images, ts.angles, nz, workers=1), ts.beads


class TestPeakHighContrast(FamlTomoProtocolTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from faml_tomo.protocols import ProtPeakHighContrast

        folder = cls.dataDir / "fiducial_tomos"
        cls.truth = {}
        for name, kind, mag, seed in [("TS_01", "none", 0, 1), ("TS_02", "birds", 100, 2)]:
            tomo, beads = simulate(kind, mag, seed)
            write_mrc(folder / f"{name}.mrc", tomo, PIXEL)
            cls.truth[name] = beads
        cls.importProt = cls.importTomograms(folder, "TS_*.mrc", samplingRate=PIXEL)
        cls.prot = cls.newProtocol(
            ProtPeakHighContrast,
            inputTomograms=cls.importProt.Tomograms,
            fiducialSize=10.0,
            boxSize=32,
            eraseBeads=True,
        )
        cls.launchProtocol(cls.prot)

    def _coordinates(self):
        import tomo.constants as const

        out = self.prot.Coordinates3D
        per = {}
        for tomo in self.importProt.Tomograms.iterItems():
            xyz, sc = [], []
            for c in out.iterCoordinates(tomo.clone()):
                xyz.append(c.getPosition(const.BOTTOM_LEFT_CORNER))
                sc.append(c.getScore())
            per[tomo.getTsId()] = (np.array(xyz).reshape(-1, 3), np.array(sc))
        return per

    def test_erased_tomograms_and_bead_masks(self):
        """Optional outputs: each tomogram without its beads (voxels near a
        found bead replaced, within noise of their surroundings; the rest
        unchanged) and the mask of what was erased."""
        from faml_tomo.io import read_mrc

        erased = {t.getTsId(): t.getFileName() for t in self.prot.TomogramsBeadsErased.iterItems()}
        masks = {t.getTsId(): t.getFileName() for t in self.prot.BeadMasks.iterItems()}
        self.assertEqual(set(erased), {"TS_01", "TS_02"})
        self.assertEqual(set(masks), {"TS_01", "TS_02"})
        self.assertAlmostEqual(self.prot.TomogramsBeadsErased.getSamplingRate(), PIXEL)
        before, _ = read_mrc(self.dataDir / "fiducial_tomos" / "TS_01.mrc")
        after, _ = read_mrc(erased["TS_01"])
        mask, _ = read_mrc(masks["TS_01"])
        np.testing.assert_array_equal(after[mask == 0], before[mask == 0])
        xyz, _ = self._coordinates()["TS_01"]
        self.assertGreater(mask.sum(), 0)
        for x, y, z in np.round(xyz).astype(int):
            self.assertTrue(mask[z, y, x])  # every found bead erased
        sd = np.std(before[mask == 0])
        self.assertLess(abs(after[mask > 0].mean() - before[mask == 0].mean()), 0.5 * sd)
        self.assertLess(np.abs(after[mask > 0] - before[mask == 0].mean()).max(), 6 * sd)

    def test_output_set_and_positions(self):
        out = self.prot.Coordinates3D
        self.assertAlmostEqual(out.getSamplingRate(), PIXEL)
        self.assertEqual(out.getBoxSize(), 32)
        self.assertEqual(out.getPrecedents().getSize(), 2)
        per = self._coordinates()
        self.assertEqual(set(per), {"TS_01", "TS_02"})
        self.assertEqual(out.getSize(), sum(len(v[0]) for v in per.values()))
        xyz, scores = per["TS_01"]
        beads = self.truth["TS_01"]
        valid = box_inside(beads, SHAPE, 32)
        m = match_points(xyz, beads, 100.0 / PIXEL / 2, valid)
        self.assertGreaterEqual(m["recall"], 0.9, m)
        self.assertLessEqual(m["fp"], 0.02 * len(xyz), m)
        self.assertLessEqual(m["rms"], 1.0, m)
        self.assertTrue(np.all((scores > 0.5) & (scores <= 1)))
        # Misaligned: coordinates are still returned, near the smeared beads.
        xyz2, _ = per["TS_02"]
        self.assertGreater(len(xyz2), 5)
        d = np.min(np.linalg.norm(xyz2[:, None] - self.truth["TS_02"][None], axis=2), axis=1)
        self.assertTrue(np.all(d < 16))

    def test_summary_and_methods(self):
        summary = "\n".join(self.prot.summary())
        per = self._coordinates()
        self.assertIn(f"TS_01: {len(per['TS_01'][0])}", summary)
        # the smeared beads of the strongly misaligned tomogram are counted;
        # whether the finder needed relaxed mode for them depends on the noise
        # realisation, but the aligned tomogram never does, and the summary
        # names the tomogram when it was used
        self.assertIn(f"TS_02: {len(per['TS_02'][0])}", summary)
        relaxed = [line for line in summary.splitlines() if "Relaxed mode used" in line]
        self.assertTrue(all("TS_02" in line and "TS_01" not in line for line in relaxed), summary)
        self.assertNotIn("TS_01: " + f"{len(per['TS_01'][0])} (", summary)
        methods = "\n".join(self.prot.methods())
        self.assertIn("deIsidroGomez2024", methods)
        self.assertIn("10 nm", methods)
        self.assertEqual(list(self.prot.getCitations()), ["deIsidroGomez2024"])

    def test_validate_rejects_impossible_sizes(self):
        from faml_tomo.protocols import ProtPeakHighContrast

        cases = [
            ({"fiducialSize": 4.0}, "under the minimum of 3"),  # 2.7 px
            ({"fiducialSize": 60.0}, "larger than the box"),  # 40 px
            ({"boxSize": 128}, "larger than the tomogram"),  # nz = 96
            ({"sdThr": -1.0}, "SD threshold"),
        ]
        for kwargs, message in cases:
            prot = self.newProtocol(
                ProtPeakHighContrast, inputTomograms=self.importProt.Tomograms, **kwargs
            )
            errors = prot.validate()
            self.assertTrue(any(message in e for e in errors), (kwargs, errors))
        ok = self.newProtocol(ProtPeakHighContrast, inputTomograms=self.importProt.Tomograms)
        self.assertEqual(ok.validate(), [])

    def test_viewer_figures(self):
        from matplotlib.patches import Circle

        from faml_tomo.viewers.viewer_peak_high_contrast import ProtPeakHighContrastViewer

        viewer = ProtPeakHighContrastViewer(project=self.proj)
        viewer.setProtocol(self.prot)
        per = self._coordinates()
        outdir = self.dataDir / "viewer"
        outdir.mkdir(exist_ok=True)
        for number, name in [(1, "TS_01"), (2, "TS_02")]:
            viewer.tomoNumber.set(number)
            xyz, scores = per[name]
            slab = viewer._showSlab()[0].getFigure()
            slab.savefig(outdir / f"{name}_slab.png")
            ax = slab.axes[0]
            circles = [p for p in ax.patches if isinstance(p, Circle)]
            z_lo, z_hi = (int(v) for v in ax.get_title().split("slices z ")[1].split("-"))
            r = 100.0 / PIXEL / 2
            in_slab = np.sum((xyz[:, 2] >= z_lo - r) & (xyz[:, 2] <= z_hi + r))
            self.assertEqual(len(circles), in_slab)
            self.assertTrue(ax.get_title().startswith(name))
            self.assertIn(f"{in_slab} of {len(xyz)} fiducials", ax.get_title())
            self.assertEqual(ax.images[0].get_array().shape, SHAPE[1:])
            hist = viewer._showScores()[0].getFigure()
            hist.savefig(outdir / f"{name}_scores.png")
            bars = hist.axes[0].patches
            self.assertEqual(sum(b.get_height() for b in bars), len(scores))
            self.assertGreater((outdir / f"{name}_slab.png").stat().st_size, 10000)
        import matplotlib.pyplot as plt

        plt.close("all")
