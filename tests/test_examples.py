"""The example scripts at reduced size: they run, and write what they promise."""

from __future__ import annotations

import json

import gamma_curve
import minimal_loop
import numpy as np
import pytest
import torch
import toy_distill


def test_toy_demo_writes_table_and_figure(tmp_path, capsys):
    result = toy_distill.main(
        [
            "--out",
            str(tmp_path),
            "--seeds",
            "2",
            "--points",
            "12",
            "--teacher-iterations",
            "150",
            "--student-iterations",
            "80",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert "| Teacher (PGD-AT, 256 wide) |" in out and "| SmaraAD student" in out and "| AdaAD student" in out
    assert "2 seeds, mean ± std" in out and "agrees with the teacher" in out
    assert (tmp_path / "toy_decision_regions.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "toy_results.json").read_text())
    assert saved["per_seed"] == result["per_seed"] and len(result["per_seed"]) == 2
    for rows in result["per_seed"]:
        assert all(0 <= r["robust"] <= r["clean"] <= 1 for r in rows.values())
        assert all(0 <= rows[c][k] <= 1 for c in ("smaraad", "adaad") for k in ("agree_grid", "agree_boxes"))
        # A trained teacher fits its 12 points far better than chance (25% with 4 classes).
        assert rows[toy_distill.TEACHER]["clean"] >= 0.75


def test_toy_demo_gives_the_same_table_in_parallel_processes_as_in_one(tmp_path):
    small = [
        "--seeds",
        "2",
        "--points",
        "8",
        "--teacher-iterations",
        "40",
        "--student-iterations",
        "20",
        "--no-progress",
    ]
    one = toy_distill.main(["--out", str(tmp_path / "one"), "--workers", "1", *small])
    two = toy_distill.main(["--out", str(tmp_path / "two"), "--workers", "2", *small])
    assert one["per_seed"] == two["per_seed"]
    assert (tmp_path / "one" / "toy_results.md").read_text() == (tmp_path / "two" / "toy_results.md").read_text()


def test_toy_agreement_is_one_for_the_teacher_itself_and_counts_box_points():
    torch.manual_seed(0)
    model = toy_distill.mlp(8, 3)
    assert toy_distill.agreement(model, model, toy_distill.grid(20)) == 1.0
    x = torch.tensor([[0.5, 0.5], [0.2, 0.8]])
    boxes = toy_distill.box_points(x, 0.03, per_side=5)
    assert boxes.shape == (50, 2) and (boxes[:25] - x[0]).abs().max() <= 0.03 + 1e-7


def test_toy_rejects_unknown_configurations(capsys):
    with pytest.raises(SystemExit):
        toy_distill.parse_args(["--configs", "smarad"])
    assert "unknown configuration(s) ['smarad']" in capsys.readouterr().err


def test_toy_points_are_separated():
    x, y = toy_distill.make_points(20, 4, 0.03, seed=0)
    gaps = (x[:, None] - x[None]).abs().amax(-1) + 10 * torch.eye(20)
    assert gaps.min() > 2.5 * 0.03 and set(y.tolist()) <= {0, 1, 2, 3}


def test_gamma_curve_converges_to_hard_spearman(tmp_path):
    out = gamma_curve.main(["--out", str(tmp_path / "g.png")])
    assert out.stat().st_size > 10_000
    results = gamma_curve.curves(gamma_curve.data_pairs(0), np.array([0.001, 1e4]))
    for r in results.values():
        assert abs(r["soft"][0] - 1) < 1e-3  # γ → 0: ρ → 1 whatever the data
        assert abs(r["soft"][1] - r["hard"]) < 1e-6


def test_minimal_loop_runs():
    assert minimal_loop.train_plain(minimal_loop.models.build("resnet18", width=4), steps=1) > 0
    teacher = minimal_loop.models.build("resnet18", width=4).eval()
    assert minimal_loop.train_smaraad(minimal_loop.models.build("resnet18", width=4), teacher, steps=1) >= 0
