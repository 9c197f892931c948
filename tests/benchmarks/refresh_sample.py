"""Rebuild the stored prompt of every row of the shipped `sample` with gtalign's prompt builder.

Run after a change to `gtalign.protocol.build_messages`: ``python -m tests.benchmarks.refresh_sample``.
The questions and ground truths in the file are left as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gtalign.benchmarks._specs import SAMPLE
from gtalign.protocol import build_messages


def refreshed(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its prompt built from ``extra_info.single_turn_prompt``."""
    return {**row, "prompt": build_messages(row["extra_info"]["single_turn_prompt"])}


def main(path: Path | None = None) -> int:
    path = path or Path(str(SAMPLE.path))
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = [refreshed(json.loads(line)) for line in lines if line.strip()]
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    print(f"rebuilt the prompts of {len(rows)} rows in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
