"""study/method_study.py: a tiny grid end to end on generated data, and its statistics."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import method_study
import pytest
import torch
from torch import nn

from softrank_ad_examples import data

STUDY = Path(__file__).resolve().parent.parent / "study"


@pytest.mark.slow
def test_tiny_grid_runs_resumes_and_summarises(tmp_path, capsys):
    root = data.write_fake_cifar(tmp_path / "data", "imagefolder", per_class=12)
    out = tmp_path / "study"
    grid = [
        "--preset",
        "test",
        "--data-dir",
        str(root),
        "--out",
        str(out),
        "--configs",
        "adaad",
        "smaraad",
        "smaraad-k3",
        "--seeds",
        "0",
        "1",
        "--no-progress",
    ]
    method_study.main(grid)
    runs = method_study.load_runs(out)
    assert sorted((r["config"], r["seed"]) for r in runs) == [
        ("adaad", 0),
        ("adaad", 1),
        ("smaraad", 0),
        ("smaraad", 1),
        ("smaraad-k3", 0),
        ("smaraad-k3", 1),
    ]
    for r in runs:
        assert 0 <= r["results"]["pgd"] <= r["results"]["clean"] <= 1
        assert [int(h["epoch"]) for h in r["history"]] == [1, 2]
        assert {"grad_norm", "val_pgd", "agree_top1", "hard_rho"} <= set(r["history"][0])
        assert r["teacher_sha256"] == runs[0]["teacher_sha256"]  # one teacher for every run
    assert runs[0]["hparams"]["steps"] == 1 and runs[0]["hparams"]["epsilon"] == pytest.approx(8 / 255)
    capsys.readouterr()
    method_study.main(grid)  # everything is finished: nothing is retrained
    assert "6 of 6 runs already finished; 0 to go" in capsys.readouterr().out
    summary = (out / "summary.md").read_text()
    assert "| smaraad-k3 | 2 |" in summary and (out / "summary.png").stat().st_size > 10_000
    method_study.main([*grid[:-5], "--configs", "adaad", "--seeds", "0", "--autoattack", "4", "--no-progress"])
    aa = json.loads((out / "runs" / "adaad-s0.json").read_text())["results"]
    assert aa["autoattack_n"] == 4 and aa["autoattack"] in (0.0, 0.25, 0.5, 0.75, 1.0)  # on the first 4 images
    # A run kept as JSON only (as the committed results are) is skipped with a message, not a crash.
    shutil.rmtree(out / "runs" / "smaraad-s0")
    capsys.readouterr()
    method_study.main([*grid[:-5], "--configs", "smaraad", "--seeds", "0", "--autoattack", "4", "--no-progress"])
    assert "smaraad-s0: no student weights" in capsys.readouterr().out
    assert json.loads((out / "runs" / "smaraad-s0.json").read_text())["results"]["autoattack"] is None


def test_same_seed_same_batches_other_seed_other_batches():
    images, labels = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8), torch.arange(40)
    first = [y for _, y in data.TensorLoader(images, labels, 8, seed=3)]
    again = [y for _, y in data.TensorLoader(images, labels, 8, seed=3)]
    other = [y for _, y in data.TensorLoader(images, labels, 8, seed=4)]
    assert all(torch.equal(a, b) for a, b in zip(first, again)) and not all(
        torch.equal(a, b) for a, b in zip(first, other)
    )
    x, _ = next(iter(data.TensorLoader(images, labels, 8, seed=3)))
    assert x.shape == (8, 3, 32, 32) and 0 <= x.min() and x.max() <= 1


def test_study_batches_are_those_the_committed_runs_trained_on():
    # A checksum of the batches TensorLoader drew when it lived in method_study.py, where the
    # committed runs were trained: moving the augmentation into one shared function kept them.
    g = torch.Generator().manual_seed(5)
    images = torch.randint(0, 256, (40, 3, 32, 32), generator=g, dtype=torch.uint8)
    loader = data.TensorLoader(images, torch.arange(40) % 10, 16, seed=3)
    loader.set_epoch(2)
    total = 0.0
    for i, (x, y) in enumerate(loader):
        weights = torch.arange(x.numel(), dtype=torch.float64).reshape(x.shape).remainder(97)
        total += float((x.double() * weights).sum()) + float((y * (i + 1)).sum())
    assert total == 2073059.0727108233


def test_the_dataset_transform_is_the_same_augmentation():
    image = torch.rand(3, 32, 32)
    torch.manual_seed(11)
    one = data.CropAndFlip()(image)
    torch.manual_seed(11)
    assert torch.equal(one, data.crop_and_flip(image[None])[0])
    padded = torch.nn.functional.pad(image, (4, 4, 4, 4))
    crops = {padded[:, b : b + 32, a : a + 32] for a in range(9) for b in range(9)}
    assert any(torch.equal(one, c) or torch.equal(one, c.flip(2)) for c in crops)


def test_paired_statistics_against_a_hand_computed_case():
    def run(config, seed, clean, pgd):
        return {"config": config, "seed": seed, "results": {"clean": clean, "pgd": pgd, "cw": pgd, "autoattack": None}}

    runs = [run("adaad", s, 0.60, p) for s, p in enumerate((0.30, 0.32, 0.34))]
    runs += [run("smaraad", s, 0.62, p) for s, p in enumerate((0.31, 0.35, 0.36))]
    runs += [run("smaraad-c0.0", 0, 0.5, 0.2)]
    rows = {r["config"]: r for r in method_study.summarise(runs)}
    mean, interval, n = rows["smaraad"]["diff_pgd"]
    # Differences 0.01, 0.03, 0.02: mean 0.02, sd 0.01, t(0.975, 2) = 4.302653.
    half = 4.302653 * 0.01 / math.sqrt(3)
    assert n == 3 and mean == pytest.approx(0.02)
    assert interval[1] == pytest.approx(0.02 - half, abs=1e-6) and interval[2] == pytest.approx(0.02 + half, abs=1e-6)
    assert rows["smaraad"]["pgd"][0] == pytest.approx(1.02 / 3) and rows["smaraad"]["pgd"][1] == pytest.approx(
        torch.tensor([0.31, 0.35, 0.36]).std().item(), abs=1e-6
    )
    assert rows["smaraad-c0.0"]["diff_pgd"] == (pytest.approx(-0.1), None, 1)  # one pair: no interval
    table = method_study.markdown(list(rows.values()))
    assert "| smaraad | 3 | 62.0 ± 0.0 | 34.0 ± 2.6 |" in table and "+2.0 [-0.5, +4.5]" in table
    assert "-10.0 (1 pair)" in table


def test_autoattack_column_counts_the_seeds_it_ran_on():
    def run(seed, aa):
        return {
            "config": "adaad",
            "seed": seed,
            "results": {"clean": 0.6, "pgd": 0.3, "cw": 0.3, "autoattack": aa, "autoattack_n": 500 if aa else 0},
        }

    one = method_study.markdown(method_study.summarise([run(0, 0.2), run(1, None), run(2, None)]))
    two = method_study.markdown(method_study.summarise([run(0, 0.2), run(1, 0.3), run(2, None)]))
    assert "(n=500, 1 seed)" in one and "(n=500, 2 seeds)" in two


def test_unknown_configuration_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        method_study.parse_args(["--data-dir", "x", "--configs", "smarad"])
    assert "unknown configuration(s) ['smarad']" in capsys.readouterr().err


@pytest.mark.slow
def test_teacher_only_trains_the_teacher_and_no_student(tmp_path, capsys):
    root = data.write_fake_cifar(tmp_path / "data", "imagefolder", per_class=12)
    out = tmp_path / "study"
    info = json.loads(
        method_study.main(
            ["--preset", "test", "--data-dir", str(root), "--out", str(out), "--teacher-only", "--no-progress"]
        )
    )
    assert info["key"] == method_study.teacher_key(method_study.PRESETS["test"])
    assert (out / "teachers" / info["key"] / "teacher.pt").exists() and not (out / "runs").exists()
    assert "mean top probability" in capsys.readouterr().out


def test_confidence_of_a_uniform_and_of_a_certain_model():
    x = torch.randn(4, 3)
    model = nn.Linear(3, 10)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    uniform = method_study.confidence(model, x)
    assert uniform["top_probability"] == pytest.approx(0.1) and uniform["entropy"] == pytest.approx(math.log(10))
    with torch.no_grad():
        model.bias[0] = 50.0
    sure = method_study.confidence(model, x)
    assert sure["top_probability"] == pytest.approx(1.0) and sure["entropy"] == pytest.approx(0.0, abs=1e-15)


def test_committed_teacher_keys_stay_put():
    # The committed teacher A is found by this hash; a recipe change must change it, nothing else may.
    assert method_study.teacher_key(method_study.PRESETS["cpu"]) == "6129713a6937"
    assert method_study.teacher_key(method_study.PRESETS["cpu-strong"]) == "8956f8a4844d"
    assert method_study.teacher_key(method_study.PRESETS["cpu-narrow"]) == "6129713a6937"
    for preset, folder in (("cpu", "method_study_cpu"), ("cpu-strong", "method_study_cpu_strong")):
        committed = STUDY / "results" / folder / "teachers" / method_study.teacher_key(method_study.PRESETS[preset])
        assert (committed / "teacher.json").exists() and (committed / "teacher.pt").exists()


@pytest.mark.parametrize("folder", ["method_study_cpu", "method_study_cpu_strong", "method_study_cpu_narrow"])
def test_every_committed_result_loads_and_summarises_as_committed(folder):
    out = STUDY / "results" / folder
    runs = method_study.load_runs(out)
    assert len(runs) == len(list((out / "runs").glob("*.json"))) > 0
    assert method_study.summary_text(out) == (out / "summary.md").read_text()


def test_torchrun_is_refused_with_directions(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit, match="does not support torchrun; on several GPUs, start one study per GPU"):
        method_study.main(["--summary"])


@pytest.mark.slow
def test_relational_configurations_run_and_record_their_terms(tmp_path):
    root = data.write_fake_cifar(tmp_path / "data", "imagefolder", per_class=12)
    out = tmp_path / "study"
    method_study.main(
        [
            "--preset",
            "test",
            "--data-dir",
            str(root),
            "--out",
            str(out),
            "--groups",
            "relational",
            "--seeds",
            "0",
            "--no-progress",
        ]
    )
    runs = {r["config"]: r for r in method_study.load_runs(out)}
    assert set(runs) == {n for n, c in method_study.CONFIGS.items() if c.group == "relational"}
    assert runs["adaad-dist"]["loss"] == ["dist"] and runs["adaad+igdm"]["add"] == ["igdm"]
    history = runs["adaad+dist"]["history"][0]
    assert float(history["dist_adv"]) > 0 and float(history["kl_adv"]) > 0  # both terms were trained on
    assert "kl_adv" not in runs["adaad-dist"]["history"][0]
    assert "| smaraad-both | 1 |" in (out / "summary.md").read_text()


def test_interaction_summary_on_fixture_runs_with_a_known_answer(tmp_path):
    import study_interaction

    def write(cell, config, seed, pgd, aa=None):
        folder = tmp_path / cell / "runs"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{config}-s{seed}.json").write_text(
            json.dumps(
                {
                    "config": config,
                    "seed": seed,
                    "results": {"pgd": pgd, "clean": pgd + 0.25, "autoattack": aa},
                    "history": [{"agree_top1": "0.1"}, {"agree_top1": str(pgd), "hard_rho": str(2 * pgd)}],
                }
            )
        )

    for seed, (a_base, a_sm, b_base, b_sm) in enumerate(
        [(0.20, 0.18, 0.30, 0.31), (0.22, 0.19, 0.31, 0.33), (0.21, 0.19, 0.30, 0.32)]
    ):
        write("A", "adaad", seed, a_base)
        write("A", "smaraad", seed, a_sm)
        write("B", "adaad", seed, b_base)
        write("B", "smaraad", seed, b_sm)
    write("B", "adaad+dist", 0, 0.35)  # one pair, and nothing in the reference cell
    write("A", "smaraad-x5", 0, 0.19)  # a probe of the reference cell only: no change to report
    text = study_interaction.main(
        ["--cell", f"A={tmp_path / 'A'}", "--cell", f"B={tmp_path / 'B'}", "--out", str(tmp_path / "out")]
    )
    # Δ_A = (−2, −3, −2) points, Δ_B = (+1, +2, +2); the change (+3, +5, +4): mean 4, sd 1,
    # t(0.975, 2) · 1 / √3 = 2.48.
    assert "| smaraad | -2.3 [-3.8, -0.9] * (n=3) | +1.7 [+0.2, +3.1] * (n=3) | +4.0 [+1.5, +6.5] * (n=3) |" in text
    assert "| adaad+dist | – | +5.0 (1 pair) | – |" in text
    pgd_table, clean_table = text.split("## clean accuracy")[0], text.split("## clean accuracy")[1].split("##")[0]
    assert clean_table.count("+4.0 [+1.5, +6.5] *") == 1 and pgd_table.count("+4.0 [+1.5, +6.5] *") == 1
    assert "smaraad-x5" not in text
    # Agreement: the last epoch's values, averaged over seeds (A's AdaAD: 0.20, 0.22, 0.21).
    assert "| adaad | 0.21 (n=3) | 0.42 (n=3) | 0.30 (n=3) | 0.61 (n=3) |" in text
    chosen = study_interaction.main(
        [
            "--cell",
            f"A={tmp_path / 'A'}",
            "--cell",
            f"B={tmp_path / 'B'}",
            "--out",
            str(tmp_path / "out"),
            "--configs",
            "smaraad-x5",
        ]
    )
    assert "| smaraad-x5 | -1.0 (1 pair) | – | – |" in chosen and "adaad+dist" not in chosen
    assert (tmp_path / "out" / "interaction.png").stat().st_size > 5_000
    with pytest.raises(SystemExit):
        study_interaction.main(["--cell", f"A={tmp_path / 'A'}"])


def test_interaction_figure_moves_one_factor_per_panel():
    import study_interaction

    assert study_interaction.panels(["A/8", "B/8", "A/4"]) == [
        ("teacher strength (students of width 8)", ["A/8", "B/8"], ["A", "B"]),
        ("student width (teacher A)", ["A/8", "A/4"], ["8", "4"]),
    ]
    assert study_interaction.panels(["A/8", "B/8"]) == [
        ("teacher strength (students of width 8)", ["A/8", "B/8"], ["A", "B"])
    ]
    assert study_interaction.panels(["A", "B"]) == [("cells", ["A", "B"], ["A", "B"])]
