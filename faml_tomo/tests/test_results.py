"""The results modules of the fiducial and misalignment tasks: what is written
is read back unchanged, by name from inside the files, and the protocol's
records of earlier versions still read."""

import json

import numpy as np
import pytest

from faml_tomo.fiducials.params import PeakHighContrastResult
from faml_tomo.fiducials.results import (
    TomogramFiducials,
    read_all,
    read_coordinates_star,
    read_tomogram,
    summary_row,
    write_coordinates_star,
    write_tomogram,
)
from faml_tomo.misalignment.decision import decide
from faml_tomo.misalignment.detect import TomogramResult
from faml_tomo.misalignment.results import read_results, write_boxes, write_results


def _fiducials(name, n, rng):
    return TomogramFiducials(
        name=name,
        coordinates=rng.uniform(0, 200, (n, 3)),
        scores=rng.uniform(0.5, 1, n),
        relaxed_mode=n < 3,
        warnings=["few beads"] if n < 3 else [],
        stats={"search": "smeared" if n == 2 else "peak", "bead_scale": 1.5 if n == 2 else 1.0},
        file_name=f"{name}.mrc",
        obj_id=7,
    )


def test_fiducial_records_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    records = [_fiducials("TS_01.rec", 5, rng), _fiducials("TS_02", 2, rng)]
    for r in records:
        paths = write_tomogram(tmp_path, r)
        assert [p.name for p in paths] == [
            f"{r.name}_fiducials.json",
            f"{r.name}.star",
            f"{r.name}.txt",
        ]
    write_coordinates_star(tmp_path / "coordinates.star", records)
    back = read_all(tmp_path, ["TS_01.rec", "missing", "TS_02"])
    assert [b.name for b in back] == ["TS_01.rec", "TS_02"]
    for a, b in zip(records, back):
        np.testing.assert_array_equal(a.coordinates, b.coordinates)
        np.testing.assert_array_equal(a.scores, b.scores)
        assert (a.relaxed_mode, a.warnings, a.stats, a.file_name, a.obj_id) == (
            b.relaxed_mode,
            b.warnings,
            b.stats,
            b.file_name,
            b.obj_id,
        )
    assert back[1].smeared and not back[0].smeared
    assert summary_row(back[1])["bead_scale"] == 1.5
    table = read_coordinates_star(tmp_path / "coordinates.star")
    assert list(table) == ["TS_01.rec", "TS_02"]
    for r in records:
        np.testing.assert_allclose(table[r.name][:, :3], r.coordinates, atol=1e-5)
        np.testing.assert_allclose(table[r.name][:, 3], r.scores, atol=1e-5)
    text = (tmp_path / "TS_02.txt").read_text().split()
    np.testing.assert_allclose(
        np.reshape(text, (-1, 3)).astype(float), records[1].coordinates, atol=0.01
    )


def test_a_record_of_the_earlier_protocol_reads(tmp_path):
    """Projects made before the results module wrote this record (no file name)."""
    old = {
        "tomogram": "tomo_3",
        "objId": 3,
        "coordinates": [[1.0, 2.0, 3.0]],
        "scores": [0.9],
        "relaxed_mode": False,
        "warnings": [],
        "stats": {"search": "peak", "bead_scale": 1.0},
    }
    (tmp_path / "tomo_3_fiducials.json").write_text(json.dumps(old))
    rec = read_tomogram(tmp_path, "tomo_3")
    assert rec.obj_id == 3 and len(rec) == 1 and rec.file_name == ""
    assert rec.to_json() == old


def test_fiducial_record_from_a_search_result():
    res = PeakHighContrastResult(
        coordinates=np.array([[1.0, 2.0, 3.0]]),
        scores=np.array([0.8]),
        relaxed_mode_used=True,
        warnings=["relaxed"],
        stats={"search": "peak", "time_s": 0.5, "array": np.zeros(2)},
    )
    rec = TomogramFiducials.from_result("TS", res, file_name="TS.mrc")
    assert rec.relaxed_mode and rec.warnings == ["relaxed"]
    assert rec.stats == {"search": "peak"}  # neither arrays nor timings are kept


def _scores(name, n, rng, boxes=True):
    strong, weak = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    return TomogramResult(
        name=name,
        coords=rng.uniform(0, 100, (n, 3)),
        strong=strong,
        weak=weak,
        outside_fraction=np.zeros(n),
        decision=decide(strong, weak, "mean", 0.5, 0.5),
        boxes=rng.normal(size=(n, 32, 32, 32)).astype(np.float32) if boxes else None,
        box_sampling=6.25,
        verdict=["aligned"] * n,
        excluded=[""] * n,
    )


def test_misalignment_results_round_trip(tmp_path):
    from faml_tomo.io.star import read_star

    rng = np.random.default_rng(1)
    results = [_scores("TS_01", 4, rng), _scores("../odd name", 3, rng), _scores("empty", 0, rng)]
    assert read_results(tmp_path) is None
    names = [p.name for p in write_results(tmp_path, results)]
    assert names == ["scores.star", "tomograms.star", "misalignment_results.json"]
    back = read_results(tmp_path)
    assert list(back) == ["TS_01", "../odd name", "empty"]
    for r in results:
        rec = back[r.name]
        assert rec["label"] == r.decision.label and rec["n_beads"] == r.decision.n_beads
        np.testing.assert_allclose(rec["strong"], r.strong)
        np.testing.assert_allclose(np.reshape(rec["coords"], (-1, 3)), r.coords)
    tomos = read_star(tmp_path / "tomograms.star", dtypes={"rlnTomoName": str})
    assert list(tomos["rlnTomoName"]) == ["TS_01", "../odd name", "empty"]
    scores = read_star(tmp_path / "scores.star", dtypes={"rlnTomoName": str})
    assert len(scores["rlnTomoName"]) == 7


def test_bead_boxes_get_safe_names(tmp_path):
    from faml_tomo.io.mrc import read_mrc
    from faml_tomo.io.naming import box_name

    res = _scores("../odd name", 2, np.random.default_rng(2))
    paths = write_boxes(tmp_path / "boxes", res)
    assert [p.name for p in paths] == [box_name("../odd name", i) for i in range(2)]
    assert all(p.parent == tmp_path / "boxes" for p in paths)
    data, voxel = read_mrc(paths[1])
    np.testing.assert_array_equal(data, res.boxes[1])
    assert voxel == pytest.approx(6.25)
    assert write_boxes(tmp_path / "none", _scores("x", 2, np.random.default_rng(3), False)) == []


def test_numpy_statistics_are_kept_as_numbers_and_no_beads_write_an_empty_table(tmp_path):
    res = PeakHighContrastResult(
        coordinates=np.zeros((0, 3)),
        scores=np.zeros(0),
        relaxed_mode_used=False,
        warnings=[],
        stats={"final": np.int64(0), "bead_scale": np.float32(1.5), "shape": (np.int64(4), 5)},
    )
    rec = TomogramFiducials.from_result("TS", res)
    write_tomogram(tmp_path, rec)
    assert read_tomogram(tmp_path, "TS").stats == {"final": 0, "bead_scale": 1.5, "shape": [4, 5]}
    write_coordinates_star(tmp_path / "none.star", [])
    assert read_coordinates_star(tmp_path / "none.star") == {}


def test_a_run_made_before_streaming_is_adopted_on_continue(tmp_path):
    """A run saved before the streaming ledger existed: on Continue its items
    with results count as processed, and as published when its outputs exist
    (nothing lost, redone or appended twice)."""
    from faml_tomo.protocols.streaming import ItemStreaming

    class Item:
        def __init__(self, i):
            self.i = i

        def getObjId(self):
            return self.i

    class OldRun(ItemStreaming):
        outputs = True

        def _getExtraPath(self, *parts):
            return str(tmp_path.joinpath(*parts))

        def _itemHasResult(self, item):
            return item.i in (1, 2)

        def _hasOutputs(self):
            return self.outputs

    run = OldRun()
    run._adoptEarlierRun([Item(1), Item(2), Item(3)])
    ledger = run._streamLedger()
    assert [ledger.is_done(i) for i in (1, 2, 3)] == [True, True, False]
    assert ledger.published() == [1, 2]
    run._adoptEarlierRun([Item(3)])  # a ledger now exists: nothing changes
    assert ledger.published() == [1, 2] and not ledger.is_done(3)
    stopped = OldRun()  # stopped before its outputs: processed, not yet published
    stopped.outputs = False
    tmp_path = tmp_path / "stopped"
    stopped._adoptEarlierRun([Item(1), Item(2)])
    assert stopped._streamLedger().published() == []
    assert stopped._streamLedger().is_done(2)
