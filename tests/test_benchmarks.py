"""The benchmarks in their quick modes: they run and write what they promise."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import division_floor
import path_choice
import pytest
import soft_rank_throughput
import train_step


@pytest.mark.slow
def test_soft_rank_throughput_quick(tmp_path):
    report = soft_rank_throughput.main(["--quick", "--repeats", "2", "--out", str(tmp_path)])
    impls = {r["impl"] for r in report["rows"]}
    assert {
        "softrank_ad[auto]",
        "softrank_ad[compiled]",
        "softrank_ad[native]",
        "naive pairwise",
        "authors' loop",
    } <= impls
    files = sorted(p.suffix for p in tmp_path.iterdir())
    assert files == [".json", ".md", ".png"]
    saved = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert saved["rows"] == report["rows"]
    assert all(r["fwd_bwd_ms"] > 0 for r in report["rows"] if "error" not in r)
    assert "× vs naive" in next(tmp_path.glob("*.md")).read_text()
    # Every results file names its hardware.
    assert {"cpu", "isa", "cores", "threads", "compiler", "torch"} <= set(saved["hardware"])
    assert "Hardware: " in next(tmp_path.glob("*.md")).read_text()


def test_path_choice_quick_reports_each_cell_with_its_hardware(tmp_path):
    report = path_choice.main(["--grid", "quick", "--repeats", "1", "--out", str(tmp_path)])
    assert [(r["n"], r["batch"]) for r in report["rows"]] == [(256, 1), (2048, 1)]
    for row in report["rows"]:
        for direction in ("forward", "backward"):
            assert row[f"{direction}_path"] in ("dense", "window", "far-field")
            assert row[f"{direction}_exact_ms"] > 0 and row[f"{direction}_expansion_ms"] > 0
        assert row["backward_exact_sorted_ms"] > 0 and row["backward_loss"] > 0
        assert row["pair_loss"] >= 1  # the best combination includes the one taken
    assert report["rows"][0]["forward_path"] == "dense"  # rows under 512 entries never expand
    assert set(report["scales"]) == {"forward", "backward"}
    assert {"cpu", "isa", "cores"} <= set(report["hardware"])
    text = next(tmp_path.glob("*.md")).read_text()
    assert "Hardware: " in text and "| 2,048 | 1 | 1 |" in text and "Choices: 4, wrong" in text


def test_division_floor_times_the_forward_against_its_divisions(tmp_path):
    report = division_floor.main(["--n", "20", "--batch", "64", "--repeats", "3", "--out", str(tmp_path)])
    for row in report["rows"]:
        assert row["divisions"] == 64 * 20 * 19 // 2
        assert row["floor_ms"] > 0 and row["kernel_ms"] > 0 and row["forward_ms"] > 0
        low, high = row["forward_over_floor_quartiles"]
        assert low <= row["forward_over_floor"] <= high  # the median of the rounds' own ratios
    assert [r["threads"] for r in report["rows"]][0] == 1
    text = next(tmp_path.glob("*.md")).read_text()
    assert "Hardware: " in text and "| kernel / floor |" in text


def test_train_step_tiny(tmp_path):
    report = train_step.main(
        [
            "--device",
            "cpu",
            "--steps",
            "1",
            "--repeats",
            "2",
            "--batch",
            "4",
            "--methods",
            "adaad",
            "smaraad",
            "--out",
            str(tmp_path),
        ]
    )
    assert [r["method"] for r in report["rows"]] == ["adaad", "smaraad"]
    assert "| smaraad | fp32 |" in next(tmp_path.glob("*.md")).read_text()
    assert report["hardware"]["cpu"] and "Hardware: " in next(tmp_path.glob("*.md")).read_text()


def test_triton_tiles_times_each_warp_count_under_the_interpreter(tmp_path):
    import os
    import subprocess

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "triton_tiles.py"
    args = ["--device", "cpu", "--sizes", "10x2", "37x3", "--warps", "1", "2", "--repeats", "1", "--out", str(tmp_path)]
    # The interpreter must be on before triton is imported: a child process.
    done = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TRITON_INTERPRET": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert [(r["n"], r["B"], r["num_warps"]) for r in report["rows"]] == [
        (10, 2, 1),
        (10, 2, 2),
        (37, 3, 1),
        (37, 3, 2),
    ]
    assert all(r["fwd_ms"] > 0 and r["bwd_ms"] > 0 for r in report["rows"])
    text = next(tmp_path.glob("*.md")).read_text()
    assert "Hardware: " in text and "| 37 | 3 | 2 |" in text


def test_run_gpu_stops_with_one_clear_message_without_a_gpu():
    import os
    import subprocess

    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the precheck passes here, run_gpu.sh runs for real")
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "run_gpu.sh"
    done = subprocess.run(
        ["bash", str(script), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]},
    )
    assert done.returncode == 2
    assert (
        "cannot run the GPU checks here; missing:" in done.stderr
        and "torch.cuda.is_available() is False" in done.stderr
    )
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_run_gpu_dry_run_goes_through_every_stage_and_sums_up(tmp_path):
    """As the GPU machine runs it: python3 from an environment where softrank_ad is not installed
    (torch borrowed through a plain path entry), no grad-cam, results packed into $OUT."""
    import os
    import subprocess
    import sysconfig
    import tarfile
    import venv

    env_dir = tmp_path / "bare"
    venv.create(env_dir, with_pip=False)
    site = next((env_dir / "lib").glob("python3*/site-packages"))
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # its .pth files are not run
    out = tmp_path / "out"
    out.mkdir()
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "run_gpu.sh"
    env = {"OUT": str(out), "PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    done = subprocess.run(
        ["bash", str(script), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["gpu_run.tgz", "gpu_summary_cpu.md"]  # the device returns <= 8
    summary = (out / "gpu_summary_cpu.md").read_text()
    assert summary.strip() in done.stdout  # the table is printed, not only written
    # The Triton kernel's check comes first, and heads the summary.
    assert done.stdout.startswith("ok: the Triton kernel checked out on cpu"), done.stdout[:300]
    assert summary.startswith("Triton kernel check: ok: the Triton kernel checked out on cpu")
    for stage in ("tests", "throughput", "train_step"):
        assert f"| {stage} | ok |" in summary
    assert "softrank_ad[triton]" in summary and "| 100 | 16 | 1 |" in summary
    for method in ("adaad", "smaraad"):
        for precision in ("fp32", "bf16"):
            assert f"| {method} | {precision} |" in summary
    with tarfile.open(out / "gpu_run.tgz") as archive:
        names = archive.getnames()
    assert {"./gpu_stages.tsv", "./gpu_tests.log", "./gpu_train_step.log"} <= set(names)
    assert any(n.endswith("_cpu.json") and "train_step" in n for n in names)
    assert not any(n.endswith(".partial.jsonl") for n in names)  # finished stages leave full reports


def test_a_stage_cut_short_keeps_its_rows_in_the_summary(tmp_path):
    import _partial
    import gpu_summary

    (tmp_path / "gpu_stages.tsv").write_text("train_step\t124\t120\t120\n")
    cut = tmp_path / "train_step_2026-12-02_cuda.partial.jsonl"
    _partial.start(
        cut, {"card": "H200", "config": {"student": "resnet18", "teacher": "wrn34_10", "batch": 128, "pgd_steps": 10}}
    )
    _partial.add_row(cut, {"method": "adaad", "precision": "fp32", "step_ms": 100.0, "peak_mb": 1.0})
    _partial.add_row(cut, {"method": "smaraad", "precision": "fp32", "step_ms": 110.0, "peak_mb": 1.0})
    summary = gpu_summary.main([str(tmp_path), "cuda"])
    assert "| train_step | timed out |" in summary
    assert "| smaraad | fp32 | 110.0 | 1.10 |" in summary and "partial: the stage was cut" in summary


def test_missing_peers_are_named_with_their_install_command(monkeypatch, capsys):
    monkeypatch.setattr(soft_rank_throughput, "missing_peers", lambda: ["torchsort"])
    report = soft_rank_throughput.run(
        type(
            "Args",
            (),
            {
                "grid": "quick",
                "device": "cpu",
                "only": ["naive"],
                "gamma": 1.0,
                "gamma_long": 100.0,
                "repeats": 1,
                "command": "test",
            },
        )()
    )
    assert "not installed, so not compared: torchsort (pip install torchsort)" in capsys.readouterr().out
    assert "torchsort (`pip install torchsort`)" in soft_rank_throughput.markdown(report)


@pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or shutil.which("cc") is None,
    reason="cc_march.sh wraps an x86 compiler's -march",
)
def test_reports_name_the_target_the_kernels_were_built_for(tmp_path):
    """The same CPU runs other code under another -march: the hardware line says which. Built
    here as x86-64-v3 (AVX2 + FMA, no AVX-512) through cc_march.sh, in a child with its own cache."""
    import _timing

    from softrank_ad._kernels import native

    cpu_flags = set(_timing.hardware("cpu")["isa"])
    own = native.build_target()
    assert own is not None and ("avx2" in own.split(", ")[0].split()) == ("avx2" in cpu_flags)
    assert f"kernels built for {own}" in _timing.hardware_line(_timing.hardware("cpu"))
    wrapper = Path(__file__).resolve().parents[1] / "benchmarks" / "cc_march.sh"
    env = {**os.environ, "CC": str(wrapper), "MARCH": "x86-64-v3", "SOFTRANK_AD_CACHE": str(tmp_path)}
    child = "from softrank_ad._kernels import native; print(native.build_target(), native.build_error())"
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "avx2 fma avx sse4_2, 32-byte vectors None"
    without = subprocess.run(
        ["sh", str(wrapper), "--version"], capture_output=True, text=True, env={**env, "MARCH": ""}, timeout=30
    )
    assert without.returncode != 0 and "set MARCH" in without.stderr
