"""MRC helpers: round trips, atomic writes and the error cases."""

import os

import mrcfile
import numpy as np
import pytest

from faml_tomo.errors import InputError
from faml_tomo.io import MRCError, atomic_path, open_mrc, read_mrc, read_mrc_header, write_mrc
from faml_tomo.tests.helpers import random_volume


def test_round_trip_keeps_data_and_voxel_size(tmp_path):
    vol = random_volume((12, 14, 16))
    path = write_mrc(tmp_path / "v.mrc", vol, 13.5, origin=(1.0, 2.0, 3.0))
    data, vs = read_mrc(path)
    assert data.shape == (12, 14, 16) and data.dtype == np.float32
    np.testing.assert_array_equal(data, vol)
    assert vs == pytest.approx(13.5)
    info = read_mrc_header(path)
    assert info.shape == (12, 14, 16) and info.voxel_size == pytest.approx(13.5)
    with mrcfile.open(path) as m:
        assert tuple(m.header.origin.tolist()) == (1.0, 2.0, 3.0)


def test_memory_mapped_read_gives_slices(tmp_path):
    vol = random_volume((20, 8, 8))
    path = write_mrc(tmp_path / "tomo.mrc", vol, 10)
    with open_mrc(path) as (data, vs):
        assert isinstance(data, np.memmap)
        np.testing.assert_array_equal(np.asarray(data[7]), vol[7])
        assert vs == pytest.approx(10)


def test_write_is_atomic_and_failure_keeps_old_file(tmp_path):
    path = tmp_path / "out.mrc"
    old = random_volume((8, 8, 8), seed=1)
    write_mrc(path, old, 5)
    bad = old.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(MRCError, match="NaN or Inf"):
        write_mrc(path, bad, 5)
    np.testing.assert_array_equal(read_mrc(path)[0], old)
    # an exception while writing leaves neither a partial target nor temp files
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "x.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert sorted(os.listdir(tmp_path)) == ["out.mrc"]


def test_missing_file_names_path(tmp_path):
    with pytest.raises(MRCError, match=r"nope\.mrc: no such file"):
        read_mrc(tmp_path / "nope.mrc")
    with pytest.raises(MRCError, match="is a folder"):
        read_mrc(tmp_path)


def test_corrupt_file(tmp_path):
    path = tmp_path / "garbage.mrc"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(MRCError, match="garbage.mrc: not a valid MRC file"):
        read_mrc(path)


def test_truncated_file(tmp_path):
    path = write_mrc(tmp_path / "cut.mrc", random_volume((16, 16, 16)), 10)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size - 4000)
    with pytest.raises(MRCError, match="cut.mrc: not a valid MRC file.*truncated"):
        read_mrc(path)
    with pytest.raises(MRCError, match="truncated"):
        with open_mrc(path):
            pass


def test_non_3d_data(tmp_path):
    path = tmp_path / "image.mrc"
    with mrcfile.new(path) as m:
        m.set_data(np.zeros((8, 8), np.float32))
    with pytest.raises(MRCError, match=r"expected a 3D volume.*\(8, 8\)"):
        read_mrc(path)
    with pytest.raises(MRCError, match="expected a 3D volume"):
        write_mrc(tmp_path / "w.mrc", np.zeros((4, 4)), 1.0)
    with pytest.raises(MRCError, match="expected a 3D volume"):
        write_mrc(tmp_path / "w.mrc", np.zeros((2, 4, 4, 4)), 1.0)


def test_non_finite_data_on_read(tmp_path):
    path = tmp_path / "nan.mrc"
    vol = np.zeros((4, 4, 4), np.float32)
    vol[1, 2, 3] = np.inf
    vol[0, 0, 0] = np.nan
    with mrcfile.new(path) as m:
        m.set_data(vol)
    with pytest.raises(MRCError, match="2 NaN or Inf"):
        read_mrc(path)
    data, _ = read_mrc(path, check_finite=False)
    assert np.isnan(data[0, 0, 0])


def test_bad_voxel_size_and_error_type(tmp_path):
    with pytest.raises(MRCError, match="voxel size must be > 0"):
        write_mrc(tmp_path / "v.mrc", np.zeros((4, 4, 4)), 0)
    assert issubclass(MRCError, InputError) and issubclass(MRCError, ValueError)
    assert not (tmp_path / "v.mrc").exists()


def test_one_tomogram_name_for_every_task():
    """Fiducial files and misalignment matching name a tomogram the same way,
    also with dots or spaces in the file name (the fiducial finder used the
    part before the first dot, so 'TS_01.rec.mrc' and 'TS_01.mrc' collided
    and detect-misalignment could not match them)."""
    from faml_tomo.io.naming import box_name, tomogram_name

    assert tomogram_name("a/TS_01.mrc") == "TS_01"
    assert tomogram_name("TS_01.rec.mrc") == "TS_01.rec"
    assert tomogram_name("TS_01.rec") == "TS_01"
    assert tomogram_name("../my tomo.st") == "my_tomo"
    assert tomogram_name(".mrc") == "_mrc"
    assert box_name("../x", 0) == "___x_0001.mrc"
