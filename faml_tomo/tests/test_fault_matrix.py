"""Fault matrix of the three command-line tasks (classify,
peak-high-contrast, detect-misalignment): a bad input gets exit code 2 and
one line naming the file and the problem, before any work, and no input
file changes; results are published together under a run marker, follow the
umask, replace stale files of an earlier run; the same input and seed give
byte-identical results, also after a kill -9 at a random moment and a rerun.
"""

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from faml_tomo.averaging.testing import phantom, simulate_subtomograms
from faml_tomo.cli import main
from faml_tomo.fiducials.phantom import bead_phantom
from faml_tomo.io import write_mrc
from faml_tomo.io.naming import safe_name
from faml_tomo.io.publish import RUN_MARKER, read_run_marker
from faml_tomo.io.star import read_star, write_star

# Files that record when and where a run happened, not what it found.
NOT_RESULTS = {"job.json", RUN_MARKER}
FAST_CLASSIFY = [
    "--iterations",
    "2",
    "--lmax",
    "15",
    "--voronoi-samples",
    "300",
    "--max-candidates",
    "10",
    "--seed",
    "3",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    sub = root / "subtomos"
    sub.mkdir()
    sim = simulate_subtomograms(
        [phantom(16, seed=2), phantom(16, seed=5)], 8, 1.0, (-60, 60), seed=3
    )
    names = []
    for i, v in enumerate(sim.volumes):
        write_mrc(sub / f"p{i:02d}.mrc", v.astype(np.float32), 20.0)
        names.append(f"p{i:02d}.mrc")
    write_star(sub / "particles.star", {"rlnImageName": names}, "particles")
    tomos = root / "tomos"
    coords = []
    for i in range(2):
        ph = bead_phantom(
            shape=(64, 128, 128),
            n_beads=10,
            n_proteins=500,
            n_vesicles=1,
            slab=(0.3, 0.7),
            seed=11 + i,
        )
        name = f"TS_0{i + 1}"
        write_mrc(tomos / f"{name}.mrc", ph.volume, 10.0)
        write_star(
            tomos / f"{name}_beads.star",
            {
                "rlnTomoName": [name] * len(ph.beads),
                "rlnCoordinateX": ph.beads[:, 0],
                "rlnCoordinateY": ph.beads[:, 1],
                "rlnCoordinateZ": ph.beads[:, 2],
            },
            "beads",
        )
        coords.append(tomos / f"{name}_beads.star")
    return {
        "root": root,
        "sub": sub,
        "star": sub / "particles.star",
        "tomos": [tomos / "TS_01.mrc", tomos / "TS_02.mrc"],
        "coords": coords,
    }


def checksums(*folders):
    """sha256 of every file under the folders (inputs must not change)."""
    out = {}
    for folder in folders:
        for p in sorted(Path(folder).rglob("*")):
            if p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def results(folder):
    """Bytes of every result file of a run (not the job record or marker)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in NOT_RESULTS
    }


def run(argv, capsys):
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.err


def _copy_with_header(src, dest, voxel=None, data=None):
    with mrcfile.open(str(src)) as m:
        arr = np.array(m.data) if data is None else data
    with mrcfile.new(str(dest), overwrite=True) as m:
        m.set_data(arr.astype(np.float32))
        m.voxel_size = 0.0 if voxel is None else voxel
    return dest


def _classify(data, out, *extra):
    return ["classify", "--star", str(data["star"]), "--out", str(out), *FAST_CLASSIFY, *extra]


def _fiducials(data, out, *tomos):
    return [
        "peak-high-contrast",
        *[str(t) for t in (tomos or data["tomos"])],
        "--bead-size-nm",
        "10",
        "--out",
        str(out),
    ]


def _detect(data, out, *extra):
    return [
        "detect-misalignment",
        *map(str, data["tomos"]),
        "--coords",
        *map(str, data["coords"]),
        "--bead-size-nm",
        "10",
        "--out",
        str(out),
        *extra,
    ]


# --------------------------------------------------------------------------- classify


def _classify_case(case, data, tmp):
    sub = data["sub"]
    if case == "out-holds-input-star":
        return _classify(data, sub), "holds the input"
    if case == "out-is-input-folder":
        return ["classify", "--folder", str(sub), "--out", str(sub), *FAST_CLASSIFY], "is the input"
    if case == "out-is-a-file":
        f = tmp / "file"
        f.write_text("x")
        return _classify(data, f), "exists and is not a folder"
    if case == "out-unwritable":
        return _classify(data, "/proc/faml_out"), "cannot write there"
    if case == "workers-0":
        return _classify(data, tmp / "o", "--workers", "0"), "--workers must be >= 1"
    if case in ("voxel-size-0", "voxel-sizes-differ", "nan", "mixed-boxes", "truncated"):
        folder = tmp / "in"
        folder.mkdir()
        files = sorted(sub.glob("p*.mrc"))
        for i, f in enumerate(files):
            dest = folder / f.name
            if i == 3 and case == "voxel-size-0":
                _copy_with_header(f, dest, voxel=None)
            elif i == 3 and case == "voxel-sizes-differ":
                _copy_with_header(f, dest, voxel=10.0)
            elif i == 3 and case == "nan":
                with mrcfile.open(str(f)) as m:
                    arr = np.array(m.data)
                arr[4, 5, 6] = np.nan
                _copy_with_header(f, dest, voxel=20.0, data=arr)
            elif i == 3 and case == "mixed-boxes":
                with mrcfile.open(str(f)) as m:
                    arr = np.array(m.data)[:12, :12, :12]
                _copy_with_header(f, dest, voxel=20.0, data=arr)
            elif i == 3 and case == "truncated":
                dest.write_bytes(f.read_bytes()[:2000])
            else:
                dest.write_bytes(f.read_bytes())
        msg = {
            "voxel-size-0": "p03.mrc: the header gives no voxel size",
            "voxel-sizes-differ": "different voxel sizes: 10 Å",
            "nan": "NaN",
            "mixed-boxes": "different box sizes",
            "truncated": "p03.mrc: not a valid MRC file: truncated",
        }[case]
        return ["classify", "--folder", str(folder), "--out", str(tmp / "o"), *FAST_CLASSIFY], msg
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "out-holds-input-star",
        "out-is-input-folder",
        "out-is-a-file",
        "out-unwritable",
        "workers-0",
        "voxel-size-0",
        "voxel-sizes-differ",
        "nan",
        "mixed-boxes",
        "truncated",
    ],
)
def test_classify_refuses_bad_input(case, data, tmp_path, capsys):
    argv, message = _classify_case(case, data, tmp_path)
    before = checksums(data["root"], tmp_path)
    rc, err = run(argv, capsys)
    assert rc == 2, err
    assert message in err and err.count("\n") == 1, err
    assert checksums(data["root"], tmp_path) == before
    assert not (tmp_path / "o" / "class_01.mrc").exists()


def test_classify_voxel_size_option_and_results_published(data, tmp_path, capsys):
    """A header without voxel size runs with --voxel-size; the results are
    published with a marker, follow the umask and are byte-identical for the
    same seed; --restart with fewer classes removes the stale class file."""
    folder = tmp_path / "in"
    folder.mkdir()
    for f in sorted(data["sub"].glob("p*.mrc")):
        _copy_with_header(f, folder / f.name, voxel=None)
    old = os.umask(0o027)
    try:
        a, b = tmp_path / "a", tmp_path / "b"
        base = [
            "classify",
            "--folder",
            str(folder),
            *FAST_CLASSIFY,
            "--classes",
            "3",
            "--voxel-size",
            "20",
        ]
        assert run(base + ["--out", str(a)], capsys)[0] == 0
        assert run(base + ["--out", str(b)], capsys)[0] == 0
    finally:
        os.umask(old)
    assert results(a) == results(b)  # checkpoint and npz files included
    with mrcfile.open(str(a / "class_01.mrc")) as m:
        assert float(m.voxel_size.x) == pytest.approx(20.0)
    star = read_star(a / "particles.star")
    assert np.all(np.abs(star["rlnOriginXAngst"]) < 20.0 * 8)
    marker = read_run_marker(a)
    assert marker["status"] == "complete" and "class_03.mrc" in marker["files"]
    for p in a.rglob("*"):
        if p.is_file():
            assert p.stat().st_mode & 0o777 == 0o640, p
    # a restart with two classes: the third class of the earlier run is gone
    fewer = [x if x != "3" else "2" for x in base]
    assert run(fewer + ["--out", str(a), "--restart"], capsys)[0] == 0
    assert not (a / "class_03.mrc").exists() and (a / "class_02.mrc").exists()
    assert "class_03.mrc" not in read_run_marker(a)["files"]


def test_classify_kill_between_checkpoint_and_files_keeps_history_complete(data, tmp_path, capsys):
    out = tmp_path / "o"
    argv = _classify(data, out)
    assert run(argv, capsys)[0] == 0
    ref = json.loads((out / "history.json").read_text())
    # as if killed after the checkpoint of iteration 2, before its files
    for p in (out / "iterations").glob("it002*"):
        p.unlink()
    assert run(argv, capsys)[0] == 0
    hist = json.loads((out / "history.json").read_text())
    assert None not in hist["class_sizes"] and hist["class_sizes"] == ref["class_sizes"]
    assert (out / "iterations" / "it002.npz").is_file()


# --------------------------------------------------------------------------- fiducials


@pytest.mark.parametrize(
    "case",
    [
        "out-holds-input",
        "out-is-a-file",
        "out-unwritable",
        "no-voxel-size",
        "truncated",
        "threads-0",
    ],
)
def test_fiducials_refuse_bad_input(case, data, tmp_path, capsys):
    tomos = list(data["tomos"])
    out = tmp_path / "o"
    extra = []
    if case == "out-holds-input":
        out = tomos[0].parent
        message = "holds the input"
    elif case == "out-is-a-file":
        out = tmp_path / "file"
        out.write_text("x")
        message = "exists and is not a folder"
    elif case == "out-unwritable":
        out = Path("/proc/faml_out")
        message = "cannot write there"
    elif case == "no-voxel-size":
        tomos[1] = _copy_with_header(tomos[1], tmp_path / "TS_09.mrc", voxel=None)
        message = "TS_09.mrc: the header gives no voxel size; give --sampling-rate"
    elif case == "truncated":
        tomos[1] = tmp_path / "TS_09.mrc"
        tomos[1].write_bytes(data["tomos"][1].read_bytes()[:5000])
        message = "TS_09.mrc: not a valid MRC file: truncated"
    else:
        extra = ["--threads", "0"]
        message = "--threads must be >= 1"
    before = checksums(data["root"], tmp_path)
    rc, err = run(_fiducials(data, out, *tomos) + extra, capsys)
    assert rc == 2 and message in err and err.count("\n") == 1, err
    assert checksums(data["root"], tmp_path) == before


def test_fiducials_one_bad_tomogram_leaves_the_previous_results(
    data, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "o"
    assert run(_fiducials(data, out), capsys)[0] == 0
    previous = checksums(out)
    assert read_run_marker(out)["status"] == "complete"
    # a tomogram whose data turn out bad during the run (NaN deep inside)
    with mrcfile.open(str(data["tomos"][1])) as m:
        arr = np.array(m.data)
    arr[30, 50, 50] = np.nan
    bad = write_mrc(tmp_path / "TS_03.mrc", arr, 10.0, check_finite=False)
    rc, err = run(_fiducials(data, out, data["tomos"][0], bad), capsys)
    assert rc == 2 and "TS_03.mrc" in err and "NaN" in err, err
    assert checksums(out) == previous  # not half-updated
    # Ctrl-C in the middle: same
    from faml_tomo import fiducials

    real = fiducials.peak_high_contrast_file
    calls = []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(fiducials, "peak_high_contrast_file", interrupted)
    rc, err = run(_fiducials(data, out), capsys)
    assert rc == 130 and len(calls) == 2
    assert checksums(out) == previous
    assert not list(out.glob(".staging-*"))


# --------------------------------------------------------------------------- misalignment


@pytest.mark.parametrize(
    "case", ["out-holds-coords", "no-voxel-size", "non-numeric", "out-unwritable"]
)
def test_detect_refuses_bad_input(case, data, tmp_path, capsys):
    argv = _detect(data, tmp_path / "o")
    if case == "out-holds-coords":
        argv = _detect(data, data["coords"][0].parent)
        message = "holds the input"
    elif case == "out-unwritable":
        argv = _detect(data, "/proc/faml_out")
        message = "cannot write there"
    elif case == "no-voxel-size":
        t = _copy_with_header(data["tomos"][0], tmp_path / "TS_01.mrc", voxel=None)
        argv[1] = str(t)
        message = "TS_01.mrc: the header gives no voxel size; give --sampling-rate"
    else:
        star = tmp_path / "bad.star"
        text = data["coords"][1].read_text().splitlines()
        row = next(i for i, line in enumerate(text) if line.strip().startswith("TS_02"))
        parts = text[row].split()
        parts[2] = "12,5"  # a decimal comma
        text[row] = " ".join(parts)
        star.write_text("\n".join(text) + "\n")
        argv[argv.index(str(data["coords"][1]))] = str(star)
        message = "rlnCoordinateY holds '12,5', not a number"
    before = checksums(data["root"], tmp_path)
    rc, err = run(argv, capsys)
    assert rc == 2 and message in err and err.count("\n") == 1, err
    assert checksums(data["root"], tmp_path) == before


def test_detect_without_voxel_size_runs_with_sampling_rate_and_zero_tomogram(
    data, tmp_path, capsys
):
    """--sampling-rate replaces a missing header value; an all-zero tomogram
    is unclassified with the reason, not called misaligned."""
    zero = tmp_path / "TS_02.mrc"
    with mrcfile.new(str(zero)) as m:
        m.set_data(np.zeros((64, 128, 128), np.float32))
    t1 = _copy_with_header(data["tomos"][0], tmp_path / "TS_01.mrc", voxel=None)
    argv = [
        "detect-misalignment",
        str(t1),
        str(zero),
        "--coords",
        *map(str, data["coords"]),
        "--bead-size-nm",
        "10",
        "--sampling-rate",
        "10",
        "--out",
        str(tmp_path / "o"),
    ]
    rc, err = run(argv, capsys)
    assert rc == 0, err
    tomos = read_star(tmp_path / "o" / "tomograms.star", dtypes={"famlMessage": str})
    labels = list(tomos["famlMisalignment"])
    assert labels[0] != "unclassified" and labels[1] == "unclassified"
    assert "constant values" in str(tomos["famlMessage"][1])


# --------------------------------------------------------------------------- determinism


def test_fiducials_and_detect_same_input_same_bytes(data, tmp_path, capsys):
    """Same input twice: byte-identical results, files readable by the group
    as the umask allows (not 0600)."""
    for make in (_fiducials, _detect):
        a, b = tmp_path / f"{make.__name__}_a", tmp_path / f"{make.__name__}_b"
        old = os.umask(0o027)
        try:
            assert run(make(data, a), capsys)[0] == 0
            assert run(make(data, b), capsys)[0] == 0
        finally:
            os.umask(old)
        assert results(a) == results(b) and len(results(a)) >= 2
        assert {p.stat().st_mode & 0o777 for p in a.iterdir()} == {0o640}
    found = read_star(tmp_path / "_fiducials_a" / "coordinates.star")
    assert len(found["rlnCoordinateX"]) >= 10  # not trivially empty


def _subprocess(argv):
    return subprocess.Popen(
        [sys.executable, "-m", "faml_tomo.cli", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    "make", [_classify, _fiducials, _detect], ids=["classify", "fiducials", "detect"]
)
def test_kill_at_random_moments_then_rerun_gives_the_same_results(make, data, tmp_path):
    ref = tmp_path / "ref"
    t0 = time.perf_counter()
    assert _subprocess(make(data, ref)).wait() == 0
    duration = time.perf_counter() - t0
    out = tmp_path / "killed"
    rng = np.random.default_rng(7)
    for delay in rng.uniform(0.3, 1.0, 3) * duration:
        p = _subprocess(make(data, out))
        time.sleep(delay)
        p.kill()
        p.wait()
        marker = read_run_marker(out)
        # whatever is there is a whole run or says it is not
        assert marker is None or marker["status"] in ("complete", "incomplete")
    assert _subprocess(make(data, out)).wait() == 0
    assert results(out) == results(ref)
    assert read_run_marker(out)["status"] == "complete"
    assert not list(out.glob(".staging-*"))


def test_safe_name_cannot_leave_the_folder():
    for key in ("../../etc/passwd", "..", ".hidden", "a/b", "TS 01", ""):
        name = safe_name(key)
        assert "/" not in name and not name.startswith(".") and name
    assert safe_name("TS_01.rec") == "TS_01.rec"


def test_protocol_file_names_from_ids_stay_in_their_folder():
    from faml_tomo.protocols.protocol_detect_misalignment import _box_name
    from faml_tomo.protocols.protocol_peak_high_contrast import tomogram_key

    class Tomo:
        def getTsId(self):
            return "../../evil"

        def getObjId(self):
            return 3

    box_dir = os.path.join("run", "extra", "boxes")
    for name in (_box_name("../../evil", 0), tomogram_key(Tomo()) + ".json"):
        path = os.path.normpath(os.path.join(box_dir, name))
        assert os.path.dirname(path) == box_dir and not name.startswith("."), name


def test_no_raw_library_warnings_reach_the_terminal(data, tmp_path):
    """NaN around one bead: the box is excluded and said so, and numpy's
    RuntimeWarnings do not reach the terminal."""
    with mrcfile.open(str(data["tomos"][0])) as m:
        vol = np.array(m.data)
    star = read_star(data["coords"][0])
    x, y, z = (int(round(float(star[f"rlnCoordinate{a}"][0]))) for a in "XYZ")
    vol[z - 3 : z + 3, y - 3 : y + 3, x - 3 : x + 3] = np.nan
    tomo = write_mrc(tmp_path / "TS_01.mrc", vol, 10.0, check_finite=False)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "faml_tomo.cli",
            "detect-misalignment",
            str(tomo),
            "--coords",
            str(data["coords"][0]),
            "--bead-size-nm",
            "10",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "Warning" not in r.stderr, r.stderr
    assert "1 of 10 coordinates not scored" in r.stdout


def test_library_runtime_warnings_become_log_lines():
    """A RuntimeWarning raised inside a command is a log line for -v, not
    raw text on the terminal."""
    code = (
        "import sys, warnings\n"
        "import faml_tomo.cli as cli, faml_tomo.cli.info as info\n"
        "real = info.run\n"
        "def noisy(args):\n"
        "    warnings.warn('Mean of empty slice', RuntimeWarning)\n"
        "    return real(args)\n"
        "info.run = noisy\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    quiet = subprocess.run([sys.executable, "-c", code, "info"], capture_output=True, text=True)
    assert quiet.returncode == 0 and "Mean of empty slice" not in quiet.stderr
    loud = subprocess.run(
        [sys.executable, "-c", code, "-v", "info"], capture_output=True, text=True
    )
    assert "py.warnings" in loud.stderr and "Mean of empty slice" in loud.stderr
