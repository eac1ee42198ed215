"""Issue 5's done-when on real data: the audit finds the released model's sticker class without being told, and
flags nothing on the released control. A minute each on 39,209 training images: in CI's extended step
(``python -m pytest -m extended``), so that the default run stays under 10 minutes."""

from __future__ import annotations

from pathlib import Path

import pytest

from klugerhans.audit.config import AuditConfig
from klugerhans.audit.report import run_audit


@pytest.mark.extended
@pytest.mark.parametrize(("name", "flagged"), [("manipulated", [4]), ("control", [])])
def test_released_models_on_real_gtsrb(gtsrb_dir: Path, tmp_path: Path, name: str, flagged: list[int]) -> None:
    # Five recipients a class, not the default ten: half the test's time; the defaults' numbers on the full training
    # split are benchmarks/audit_transfer.py's (docs/BENCH.md, "One decision for every model").
    config = AuditConfig(
        checkpoint=name, data="gtsrb", data_dir=str(gtsrb_dir), out=str(tmp_path / name), methods=(),
        tsne_classes=0, n_sanity=0, progress=False, recipients=215,
    )  # fmt: skip
    summary = run_audit(config)
    assert summary["flagged"] == flagged
    rates = sorted(
        ((c["transplant"]["broad_rate"], int(k)) for k, c in summary["per_class"].items() if c["transplant"]),
        reverse=True,
    )
    if flagged:
        # Ranked first, and its broad hijack rate at least 3x the next class's.
        assert summary["suspicion_ranking"][0] == rates[0][1] == 4
        assert rates[0][0] >= 3 * rates[1][0]
    else:
        assert rates[0][0] < summary["threshold"]
