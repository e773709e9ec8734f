import json
import subprocess
import sys

import pytest

from pipeline.cli import EXIT_UNREADABLE, build_parser, main
from tests.datapaths import REPO_ROOT
from tests.pipeline.conftest import FakeModels


def test_info_text(shared_data, capsys):
    assert main(["info", str(shared_data / "slides" / "cmu-1-small-region.svs")]) == 0
    output = capsys.readouterr().out
    assert "format:        aperio-svs (read with openslide)" in output
    assert "dimensions:    2220 x 2967 px" in output
    assert "resolution:    0.4990 x 0.4990 um/px" in output
    assert "associated:    label, macro, thumbnail" in output


def test_info_json(shared_data, capsys):
    assert main(["info", "--json", str(shared_data / "slides" / "boxes.tiff")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["width"], info["height"], info["level_count"]) == (300, 250, 4)


@pytest.mark.parametrize("name", ["bad/random-bytes.svs", "bad/corrupt-jpeg-tile.svs",
                                  "slides/striped-16bit.tif", "absent.svs"])
def test_unreadable_input_exit_code(shared_data, capsys, name):
    assert main(["info", str(shared_data / name)]) == EXIT_UNREADABLE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("inkremove: error: cannot read slide")
    assert captured.err.count("\n") == 1


def test_run_command(shared_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("pipeline.run.load_default_models", lambda device: FakeModels())
    status = main(["run", str(shared_data / "ink" / "tcga-green-pen.png"), "-o",
                   str(tmp_path / "out")])
    assert status == 0
    output = capsys.readouterr().out
    assert output.startswith("tcga-green-pen.png: ink found,")
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "ink-mask.tiff", "report.json", "restored.tiff"]


def test_run_rejects_bad_tile_size(shared_data, tmp_path, capsys):
    status = main(["run", str(shared_data / "ink" / "tile-clean-lung.png"), "-o",
                   str(tmp_path), "--tile-size", "100"])
    assert status == 1
    assert "multiple of 16" in capsys.readouterr().err


def test_run_unreadable_input(shared_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("pipeline.run.load_default_models", lambda device: FakeModels())
    status = main(["run", str(shared_data / "bad" / "random-bytes.svs"), "-o", str(tmp_path)])
    assert status == EXIT_UNREADABLE
    assert list(tmp_path.iterdir()) == []


def test_run_unwritable_output(shared_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("pipeline.run.load_default_models", lambda device: FakeModels())
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    status = main(["run", str(shared_data / "ink" / "tile-clean-lung.png"), "-o",
                   str(blocker / "out")])
    error = capsys.readouterr().err

    assert status == 1
    assert error.startswith("inkremove: error:")
    assert "Traceback" not in error
    assert len(error.strip().splitlines()) == 1


def test_subcommands_registered():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert {"run", "info"} <= set(commands)


def test_module_entry_point(shared_data):
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "info", str(shared_data / "bad" / "random-bytes.svs")],
        capture_output=True, text=True, cwd=REPO_ROOT, check=False, timeout=120)
    assert result.returncode == EXIT_UNREADABLE
    assert result.stderr.startswith("inkremove: error: cannot read slide 'random-bytes.svs'")
    assert len(result.stderr.strip().splitlines()) == 1
