"""The ``faml-tomo`` command line frame: version, info, exit codes."""

import json
import subprocess
import sys

import pytest

from faml_tomo import __version__
from faml_tomo.cli import main
from faml_tomo.errors import InputError


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"faml-tomo {__version__}"


def test_console_script_version():
    out = subprocess.run(
        [sys.executable, "-m", "faml_tomo.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"faml-tomo {__version__}"


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: faml-tomo" in capsys.readouterr().out


def test_unknown_command_is_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_info_reports_discovery_and_versions(capsys):
    assert main(["info", "--json", "--no-tensorflow"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["faml_tomo"] == __version__
    assert info["scipion"]["discovered"] is True
    assert info["dependencies"]["numpy"].startswith("1.26")
    assert info["dependencies"]["mrcfile"] is not None


def test_info_text_lists_tensorflow_devices(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "plugin faml_tomo discovered" in out
    assert "tensorflow devices: " in out and "CPU" in out


def test_input_error_becomes_exit_code_2(capsys, monkeypatch):
    from faml_tomo.cli import info

    def fail(args):
        raise InputError("tilt range -100..60 is outside [-90, 90]")

    monkeypatch.setattr(info, "run", fail)
    assert main(["info"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "faml-tomo info: error: tilt range -100..60 is outside [-90, 90]"
