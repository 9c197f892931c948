"""The README's Python examples run as written (executable docs), and what it says about the setup is true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_python_examples_run():
    blocks = python_blocks()
    assert blocks, "the README has no Python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})


@pytest.mark.parametrize("module", ["gtalign.integrations.trl", "gtalign.integrations.verl"])
def test_each_rl_engine_has_a_running_example(module: str) -> None:
    assert any(f"from {module} import" in block for block in python_blocks()), f"no README example uses {module}"


def test_the_torch_pin_is_described_as_what_it_is() -> None:
    text = README.read_text(encoding="utf-8")
    [version] = re.findall(r"^torch==(\S+)$", (ROOT / "constraints.txt").read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert f"pip install torch=={version} --index-url https://download.pytorch.org/whl/cpu" in text
    for path in (README, ROOT / "scripts" / "setup.sh"):
        claim = re.sub(r"[\s#]+", " ", path.read_text(encoding="utf-8"))
        assert "pinned to the CPU build" not in claim, f"{path} says constraints.txt pins the CPU build; it pins the version"


def test_the_model_cache_location_in_the_readme_is_where_the_code_puts_it(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from gtalign.backends._model_store import converted_path

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + bytes(64))
    monkeypatch.setenv("GTALIGN_CACHE_DIR", str(tmp_path / "moved"))
    assert converted_path(gguf).parent == tmp_path / "moved" / "models"
    monkeypatch.delenv("GTALIGN_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert converted_path(gguf).parent == tmp_path / "home" / ".cache" / "gtalign" / "models"
    text = README.read_text(encoding="utf-8")
    for where in ("`$GTALIGN_CACHE_DIR/models/`", "`~/.cache/gtalign/models/`", "`$XDG_CACHE_HOME/gtalign/models/`"):
        assert where in text
