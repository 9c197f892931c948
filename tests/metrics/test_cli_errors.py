"""gtalign metrics and report: a missing optional package is a clear error, not a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from gtalign.cli import main  # noqa: E402
from tests.report._runs import write_run  # noqa: E402


@pytest.mark.parametrize("command", ["metrics", "report"])
def test_comparing_runs_without_moocore_says_what_to_install(command: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    a = write_run(tmp_path / "a", "a", preset="paper", steer=False, seed=1)
    b = write_run(tmp_path / "b", "b", preset="paper", steer=True, seed=2)
    monkeypatch.setitem(sys.modules, "moocore", None)  # import moocore now raises ImportError
    extra = ["--out", str(tmp_path / "out")] if command == "report" else []
    assert main([command, str(a), str(b), *extra]) == 1
    err = capsys.readouterr().err
    assert "pip install 'gtalign[eval]'" in err and "Traceback" not in err
