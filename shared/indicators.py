"""The indicator sets' files (`shared/indicator_sets/*.toml`): data both the assessment service (which scores
with them, `services.assessment.sets`) and the reporting service (which names the indicators of the MPI
decomposition) read. Here only the names: each set's indicators in their order, with their dimension and their
Thai and English labels, from the newest version of each set."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SETS_DIR = Path(__file__).parent / "indicator_sets"


@dataclass(frozen=True)
class IndicatorName:
    code: str
    dimension: str
    name_th: str
    name_en: str


@cache
def indicator_names(directory: Path = SETS_DIR) -> dict[str, tuple[IndicatorName, ...]]:
    """Set id → its indicators in the file's order (the newest version of each set id)."""
    newest: dict[str, tuple[int, tuple[IndicatorName, ...]]] = {}
    for path in sorted(directory.glob("*.toml")):
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        version = int(raw.get("version", 0))
        if raw["id"] in newest and newest[raw["id"]][0] >= version:
            continue
        newest[raw["id"]] = (version, tuple(
            IndicatorName(i["code"], i["dimension"], i["label_th"], i["label_en"]) for i in raw["indicators"]))
    return {set_id: indicators for set_id, (_, indicators) in newest.items()}
