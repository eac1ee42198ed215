"""`klugerhans bench --suite smoke`: two models end to end, bench.json's keys, resume, the job list, errors."""

from __future__ import annotations

import json

import pytest

from klugerhans.bench.grid import make_suite
from klugerhans.bench.metrics import METRIC_KEYS
from klugerhans.cli import main

TOP_KEYS = {*METRIC_KEYS, "by_axis", "baselines", "variants"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "smoke"
    assert main(["bench", "--suite", "smoke", "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    return out


def test_bench_json_has_every_metric_for_the_audit_and_each_baseline(smoke):
    bench = json.loads((smoke / "bench.json").read_text())
    assert set(bench) >= TOP_KEYS
    assert bench["n_manipulated"] == 1 and bench["n_clean"] == 1 and bench["n_finished"] == 2
    assert set(bench["baselines"]) == {"activation_clustering", "spectral_signatures", "strip", "neural_cleanse"}
    assert set(bench["seconds_per_model"]) == {"klugerhans", *bench["baselines"], *bench["variants"]}
    assert all(seconds > 0 for seconds in bench["seconds_per_model"].values())
    lo, hi = bench["auroc_ci"]  # one model a side: every resample is that pair
    assert lo == hi == bench["auroc"] and bench["baselines"]["neural_cleanse"]["auroc"] is not None
    assert bench["held_out_false_positive_rate"] is None  # one clean control leaves none to set a threshold on
    assert set(bench["variants"]) == {"klugerhans@window", "klugerhans+pixels"}
    for numbers in [*bench["baselines"].values(), *bench["variants"].values()]:
        assert {*METRIC_KEYS, "by_axis"} <= set(numbers)
    assert set(bench["by_axis"]) >= {"artefact", "size", "position", "fraction", "label", "arch", "data", "learned"}
    assert 0.0 <= bench["auroc"] <= 1.0


def test_thresholds_come_from_the_clean_model_only(smoke):
    bench = json.loads((smoke / "bench.json").read_text())
    clean = json.loads((smoke / "jobs" / "c00" / "result.json").read_text())
    top_clean = max(v for v in clean["detectors"]["klugerhans"]["scores"].values() if v is not None)
    threshold = bench["thresholds"]["klugerhans"]
    assert threshold["n_clean"] == 1 and threshold["value"] > top_clean == threshold["clean_max"]
    assert "clean" in threshold["rationale"] and bench["false_positive_rate"] == 0.0


def test_each_manipulated_model_is_localised_and_repaired(smoke):
    (job,) = [j for j in make_suite("smoke") if j.manipulated]
    result = json.loads((smoke / "jobs" / job.id / "result.json").read_text())
    assert result["target"] == job.target and result["axes"] == job.axes
    assert set(result["localisation"]) >= {"n", "epsilon_plus_flat", "epsilon_gamma_box"}
    assert {"before", "after", "class_id"} <= set(result["fix"])
    report = (smoke / "report.html").read_text()
    assert "data:image/png;base64," in report and "Thresholds (set on clean models only)" in report


def test_rescore_audits_again_and_keeps_the_rest(smoke, tmp_path, capsys):
    import shutil

    copy = tmp_path / "smoke"
    shutil.copytree(smoke, copy)
    path = copy / "jobs" / "c00" / "result.json"
    before = json.loads(path.read_text())
    stale = {**before, "detectors": {**before["detectors"], "klugerhans": {"scores": {}, "flagged": [], "order": []}}}
    path.write_text(json.dumps(stale))
    assert main(["bench", "--suite", "smoke", "--out", str(copy), "--no-progress", "--device", "cpu", "--rescore"]) == 0
    after = json.loads(path.read_text())
    assert after["detectors"]["klugerhans"]["scores"] == before["detectors"]["klugerhans"]["scores"]  # seeded
    assert after["detectors"]["strip"] == before["detectors"]["strip"] and after["evaluation"] == before["evaluation"]
    assert (copy / "jobs" / "c00" / "run" / "best.safetensors").stat().st_mtime_ns == (
        smoke / "jobs" / "c00" / "run" / "best.safetensors"
    ).stat().st_mtime_ns


def test_a_baseline_a_finished_job_lacks_is_added_and_the_rest_kept(smoke, tmp_path, capsys):
    import shutil

    copy = tmp_path / "smoke"
    shutil.copytree(smoke, copy)
    path = copy / "jobs" / "c00" / "result.json"
    before = json.loads(path.read_text())
    lacking = {**before, "detectors": {k: v for k, v in before["detectors"].items() if k != "spectral_signatures"}}
    path.write_text(json.dumps(lacking))
    args = ["bench", "--suite", "smoke", "--out", str(copy), "--no-progress", "--device", "cpu"]
    # a pass without baselines leaves the job as it is; the next pass that asks for one adds it
    assert main([*args, "--baselines", ""]) == 0
    assert json.loads(path.read_text()) == lacking
    assert main([*args, "--baselines", "spectral_signatures,strip"]) == 0
    after = json.loads(path.read_text())
    assert after["detectors"]["spectral_signatures"]["scores"] == before["detectors"]["spectral_signatures"]["scores"]
    assert after["detectors"]["strip"] == before["detectors"]["strip"]  # there already: not run again
    assert after["detectors"]["klugerhans"] == before["detectors"]["klugerhans"]
    assert after["timings"]["total"] > lacking["timings"]["total"]
    assert (copy / "jobs" / "c00" / "run" / "best.safetensors").stat().st_mtime_ns == (
        smoke / "jobs" / "c00" / "run" / "best.safetensors"
    ).stat().st_mtime_ns


def test_a_finished_suite_is_reused_not_retrained(smoke, capsys):
    before = {p: p.stat().st_mtime_ns for p in smoke.glob("jobs/*/result.json")}
    assert main(["bench", "--suite", "smoke", "--out", str(smoke), "--no-progress", "--device", "cpu"]) == 0
    assert {p: p.stat().st_mtime_ns for p in smoke.glob("jobs/*/result.json")} == before
    assert "AUROC" in capsys.readouterr().out


def test_the_job_list_and_one_job(smoke, tmp_path, capsys):
    assert main(["bench", "--suite", "smoke", "--out", str(tmp_path), "--list"]) == 0
    jobs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [j["id"] for j in jobs] == [j.id for j in make_suite("smoke")]
    assert all("recipe" in j and "axes" in j for j in jobs)
    code = main(["bench", "--suite", "smoke", "--out", str(tmp_path), "--job", "m99-nothing"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "no job 'm99-nothing'" in err and len(err.splitlines()) == 1


def test_unknown_suite_and_baseline_are_one_line_errors(tmp_path, capsys):
    for extra, words in ((["--suite", "smok"], "did you mean smoke"), (["--baselines", "strp"], "did you mean strip")):
        code = main(["bench", "--out", str(tmp_path), *extra])
        err = capsys.readouterr().err.strip()
        assert code != 0 and words in err and len(err.splitlines()) == 1
