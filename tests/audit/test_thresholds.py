"""The shipped flag thresholds: set on the benchmark's clean models, one per placement, and reported by the audit."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from conftest import SHORTCUT_CLASS

from klugerhans.audit.config import AuditConfig
from klugerhans.audit.run import audit_classifier
from klugerhans.audit.thresholds import SHIPPED_FILE, load_thresholds, shipped_threshold, thresholds_payload
from klugerhans.errors import KlugerhansError

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> dict:
    def entry(value: float, top: float) -> dict:
        return {"value": value, "fpr": 0.05, "n_clean": 12, "clean_max": top, "rationale": f"just above {top}"}

    thresholds = {"klugerhans": entry(0.0850001, 0.085), "klugerhans@same": entry(0.21, 0.2)}
    return {"suite": "small", "thresholds": thresholds}


def test_the_shipped_file_holds_one_threshold_for_every_placement_above_its_clean_models() -> None:
    table = load_thresholds()
    assert set(table) == {"random", "same"}
    assert len({t.value for t in table.values()}) == 1  # the broad hijack rate does not depend on the placement
    for placement, t in table.items():
        assert t.placement == placement and t.detector == "klugerhans" and t.n_clean >= 4
        assert 0.0 < t.value <= 1.0 and t.clean_max >= 0.0
        assert "clean" in t.rationale and "audit_transfer.py" in t.command
    with pytest.raises(KlugerhansError, match="placement"):
        shipped_threshold("auto")


def test_thresholds_payload_and_the_ship_tool(tmp_path: Path) -> None:
    payload = thresholds_payload(_bench(), {"random": "klugerhans", "same": "klugerhans@same"}, "klugerhans bench x")
    assert payload["random"]["value"] == 0.0850001 and payload["same"]["clean_max"] == 0.2
    with pytest.raises(KlugerhansError, match="no threshold for detector"):
        thresholds_payload(_bench(), {"random": "strip"}, "x")
    (tmp_path / "bench.json").write_text(json.dumps(_bench()))
    spec = importlib.util.spec_from_file_location("ship", ROOT / "tools" / "ship_thresholds.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / "thresholds.json"
    assert tool.main([str(tmp_path), "--out", str(out), "--command", "klugerhans bench --suite small"]) == 0
    written = load_thresholds(str(out))
    assert written["same"].value == written["random"].value == 0.0850001 and written["same"].detector == "klugerhans"
    assert tool.main([str(tmp_path / "missing")]) == 2
    assert SHIPPED_FILE.exists()


def test_the_audit_flags_with_the_shipped_threshold_and_says_where_it_comes_from(
    shortcut_classifier, squares_with_patch
) -> None:
    config = AuditConfig(
        checkpoint="hand-built", recipients=48, methods=(), tsne_classes=0, progress=False, probes=("window",)
    )
    result = audit_classifier(shortcut_classifier, squares_with_patch, config)
    shipped = shipped_threshold("random")
    assert result.discovery.placement == "random"
    assert result.ranking.threshold == shipped.value
    assert result.threshold_source == shipped and result.info["threshold_source"] == shipped.to_dict()
    assert result.ranking.flagged == (SHORTCUT_CLASS,)
    text = result.to_json()["threshold_rationale"]
    assert f"{shipped.n_clean} clean models" in text and "probes (window;" in text
    mine = audit_classifier(
        shortcut_classifier, squares_with_patch, AuditConfig(**{**config.__dict__, "threshold": 0.5})
    )
    assert mine.ranking.threshold == 0.5 and mine.threshold_source is None
    assert mine.to_json()["threshold_source"] == {"set_by": "the user (--threshold)"}
    assert "set by the user" in mine.to_json()["threshold_rationale"]
