"""Reading a settings file (YAML, or JSON by its ``.json`` suffix) into a mapping: the ``--config``
layer of ``gtalign serve`` and ``gtalign eval`` (defaults < file < command line)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["read_settings_file"]


def read_settings_file(path: str | Path, error: type[Exception] = ValueError) -> dict[str, Any]:
    """The file's settings; an unreadable file, bad YAML/JSON or a non-mapping raises ``error``
    with the path and the reason. An empty file is no settings."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text: {exc}") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise error(f"{path}: not valid JSON: {exc}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except (yaml.YAMLError, RecursionError) as exc:
            raise error(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return {str(key): value for key, value in data.items()}
