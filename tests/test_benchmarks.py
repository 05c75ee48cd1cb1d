"""The benchmarks in their quick modes: they run and write what they promise."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import soft_rank_throughput  # noqa: E402
import train_step  # noqa: E402


@pytest.mark.slow
def test_soft_rank_throughput_quick(tmp_path):
    report = soft_rank_throughput.main(["--quick", "--repeats", "2", "--out", str(tmp_path)])
    impls = {r["impl"] for r in report["rows"]}
    assert {"softrank_ad[auto]", "softrank_ad[compiled]", "softrank_ad[native]", "naive pairwise", "authors' loop"} <= impls
    files = sorted(p.suffix for p in tmp_path.iterdir())
    assert files == [".json", ".md", ".png"]
    saved = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert saved["rows"] == report["rows"]
    assert all(r["fwd_bwd_ms"] > 0 for r in report["rows"] if "error" not in r)
    assert "× vs naive" in next(tmp_path.glob("*.md")).read_text()


def test_train_step_tiny(tmp_path):
    report = train_step.main(["--device", "cpu", "--steps", "1", "--repeats", "2", "--batch", "4",
                              "--methods", "adaad", "smaraad", "--out", str(tmp_path)])
    assert [r["method"] for r in report["rows"]] == ["adaad", "smaraad"]
    assert "| smaraad | fp32 |" in next(tmp_path.glob("*.md")).read_text()


def test_run_gpu_stops_with_one_clear_message_without_a_gpu():
    import os
    import subprocess

    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the precheck passes here, run_gpu.sh runs for real")
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "run_gpu.sh"
    done = subprocess.run(["bash", str(script), "--check"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]})
    assert done.returncode == 2
    assert "cannot run the GPU checks here; missing:" in done.stderr and "torch.cuda.is_available() is False" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_run_gpu_dry_run_goes_through_every_stage_and_sums_up(tmp_path):
    import os
    import subprocess

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "run_gpu.sh"
    env = {**os.environ, "OUT": str(tmp_path), "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]}
    done = subprocess.run(["bash", str(script), "--dry-run"], capture_output=True, text=True, timeout=600, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = (tmp_path / "gpu_summary_cpu.md").read_text()
    assert summary.strip() in done.stdout  # the table is printed, not only written
    for stage in ("tests", "throughput", "train_step"):
        assert f"| {stage} | ok |" in summary
    assert "softrank_ad[triton]" in summary and "| 100 | 16 | 1 |" in summary
    for method in ("adaad", "smaraad"):
        for precision in ("fp32", "bf16"):
            assert f"| {method} | {precision} |" in summary


def test_missing_peers_are_named_with_their_install_command(monkeypatch, capsys):
    monkeypatch.setattr(soft_rank_throughput, "missing_peers", lambda: ["torchsort"])
    report = soft_rank_throughput.run(type("Args", (), {"grid": "quick", "device": "cpu", "only": ["naive"],
                                                       "gamma": 1.0, "gamma_long": 100.0, "repeats": 1,
                                                       "command": "test"})())
    assert "not installed, so not compared: torchsort (pip install torchsort)" in capsys.readouterr().out
    assert "torchsort (`pip install torchsort`)" in soft_rank_throughput.markdown(report)
