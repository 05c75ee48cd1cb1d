"""examples/distill_cifar.py on tiny data written in each supported on-disk layout."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import distill_cifar
import pytest
import torch

from softrank_ad_examples import data, training

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TINY = [
    "--preset",
    "smoke",
    "--train-subset",
    "64",
    "--test-subset",
    "16",
    "--batch-size",
    "32",
    "--eval-pgd-steps",
    "2",
    "--eval-cw-steps",
    "2",
    "--autoattack-n",
    "0",
    "--no-progress",
]


def history(out: Path) -> list[dict]:
    with open(out / "history.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["torchvision", "imagefolder"])
def test_smoke_preset_writes_every_artefact(tmp_path, layout):
    root = data.write_fake_cifar(tmp_path / "data", layout, per_class=8)
    out = tmp_path / "run"
    args = [
        "--data-dir",
        str(root),
        "--out",
        str(out),
        "--method",
        "smaraad++",
        "--weights-from-epoch",
        "1",
        "--autoattack-n",
        "4",
        *TINY[:-3],
        "--no-progress",
    ]
    result = distill_cifar.main(args)
    for name in (
        "results.json",
        "results.md",
        "history.csv",
        "curves.png",
        "teacher.pt",
        "student.pt",
        "student_ckpt.pt",
        "teacher_ckpt.pt",
    ):
        assert (out / name).is_file(), name
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["results"]) == {"teacher", "smaraad++"}
    for scores in saved["results"].values():
        assert 0 <= scores["pgd2"] <= scores["clean"] <= 1 and scores["autoattack"] is not None
    assert saved["results"] == result["results"]
    stages = [(r["stage"], r["epoch"]) for r in history(out)]
    assert stages == [("teacher", "1"), ("teacher", "2"), ("student", "1"), ("student", "2")]
    assert "| smaraad++ |" in (out / "results.md").read_text()
    assert (out / "curves.png").stat().st_size > 5_000


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path):
    root = data.write_fake_cifar(tmp_path / "data", "imagefolder", per_class=8)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    distill_cifar.main(["--data-dir", str(root), "--out", str(straight), "--epochs", "2", *TINY])
    distill_cifar.main(["--data-dir", str(root), "--out", str(resumed), "--epochs", "1", *TINY])
    distill_cifar.main(["--data-dir", str(root), "--out", str(resumed), "--epochs", "2", "--resume", *TINY])
    assert [r["stage"] + r["epoch"] for r in history(resumed)] == ["teacher1", "teacher2", "student1", "student2"]
    a = torch.load(straight / "student.pt")
    b = torch.load(resumed / "student.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_teacher_checkpoint_formats(tmp_path):
    from softrank_ad_examples import models

    teacher = models.build("resnet18", 10, 4)
    wrapped = {"state_dict": {f"module.{k}": v for k, v in teacher.state_dict().items()}}
    torch.save(wrapped, tmp_path / "t.pt")
    fresh = models.build("resnet18", 10, 4)
    training.load_weights(fresh, tmp_path / "t.pt")
    for k, v in teacher.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)


def test_missing_data_message_and_exit_code(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        distill_cifar.main(["--data-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "o"), *TINY])
    assert exit_info.value.code == 2
    assert not (tmp_path / "o").exists()  # a failed start leaves no empty output folder behind
    err = capsys.readouterr().err
    assert "No cifar10 data found" in err and "cifar-10-batches-py" in err and "ImageFolder" in err
    assert "Traceback" not in err


def _torchrun(args: list[str]) -> list[str]:
    with socket.socket() as sock:  # a free port, so parallel runs on one machine do not collide
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={port}",
        str(EXAMPLES / "distill_cifar.py"),
        *args,
    ]


@pytest.mark.slow
def test_two_process_ddp_on_cpu_writes_from_rank_0_and_resumes_after_a_kill(tmp_path):
    import signal
    import time

    root = data.write_fake_cifar(tmp_path / "data", "imagefolder", per_class=8)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "ddp"
    run = ["--data-dir", str(root), "--out", str(out), "--epochs", "5", "--teacher-epochs", "1", *TINY]
    # Killed (SIGKILL to torchrun and both workers) once the first student epoch is checkpointed,
    # four epochs before the end.
    started = subprocess.Popen(
        _torchrun(run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 300
    while not (out / "student_ckpt.pt").exists() and started.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    # torchrun starts its workers in sessions of their own: kill every process of this run.
    os.killpg(started.pid, signal.SIGKILL)
    subprocess.run(["pkill", "-KILL", "-f", str(out)], check=False)
    started.wait()
    assert (out / "student_ckpt.pt").exists() and not (out / "results.json").exists()

    done = subprocess.run(_torchrun([*run, "--resume"]), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "world 2" in done.stdout and "--resume: continuing from" in done.stdout
    stages = [(r["stage"], int(r["epoch"])) for r in history(out)]
    assert stages == [("teacher", 1)] + [("student", e) for e in range(1, 6)]  # each epoch once
    result = json.loads((out / "results.json").read_text())
    assert result["world_size"] == 2 and result["results"]["smaraad"]["clean"] >= 0
    assert "world size 2" in (out / "results.md").read_text()
    # Rank 1 wrote nothing of its own: the folder holds one run's artefacts and nothing else.
    assert {p.name for p in out.iterdir()} == set(distill_cifar.ARTEFACTS)


@pytest.mark.parametrize("wrong", ["parent", "train"])
def test_wrong_data_dir_suggests_the_right_one(tmp_path, capsys, wrong):
    root = data.write_fake_cifar(tmp_path / "cifar" / "cifar10-jpeg", "imagefolder", per_class=2)
    given = root.parent if wrong == "parent" else root / "train"
    with pytest.raises(SystemExit):
        distill_cifar.main(["--data-dir", str(given), "--out", str(tmp_path / "o"), *TINY])
    assert f"Did you mean --data-dir {root}?" in capsys.readouterr().err


def test_method_flags_are_case_insensitive_and_checked_against_the_method(capsys):
    assert distill_cifar.parse_args(["--method", "SmaraAD"]).method == "smaraad"
    with pytest.raises(SystemExit):
        distill_cifar.parse_args(["--method", "adaad", "--gamma", "2"])
    assert "--gamma does not apply to --method adaad" in capsys.readouterr().err
    args = distill_cifar.parse_args(["--method", "ard", "--kl-reduction", "mean", "--attack-mode", "train"])
    # The training attack's step is the study's convention, 2.5 ε / steps (smoke: 2 steps).
    assert distill_cifar.method_hparams(args) == {
        "epsilon": 8 / 255,
        "step_size": 2.5 * (8 / 255) / 2,
        "steps": 2,
        "kl_reduction": "mean",
        "attack_mode": "train",
    }
    assert distill_cifar.parse_args(["--steps", "10"]).step_size == pytest.approx(2 / 255)
    assert distill_cifar.parse_args(["--step-size", "0.01"]).step_size == 0.01


@pytest.mark.slow
def test_out_is_never_overwritten_silently_and_resume_says_what_it_does(tmp_path, capsys):
    root = data.write_fake_cifar(tmp_path / "data", "imagefolder", per_class=8)
    out = tmp_path / "run"
    args = ["--data-dir", str(root), "--out", str(out), "--epochs", "1", "--teacher-epochs", "1", *TINY]
    distill_cifar.main(["--resume", *args])
    assert f"--resume: no checkpoint in {out}; starting from scratch" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="holds a previous run .*pass --resume to continue it, --overwrite"):
        distill_cifar.main(args)
    saved = (out / "results.json").read_text()
    assert distill_cifar.main(["--resume", *args])["results"] == json.loads(saved)["results"]
    assert "holds a finished run" in capsys.readouterr().out
    distill_cifar.main(["--overwrite", *args])
    assert "--overwrite: removed the previous run's history.csv" in capsys.readouterr().out
    assert [r["stage"] for r in history(out)] == ["teacher", "student"]
    text = (out / "results.md").read_text()
    assert "Preset smoke" in text and "wall-clock" in text and "only show that the pipeline runs" in text


@pytest.mark.parametrize("damage", ["empty class folder", "missing test class", "empty file", "truncated png"])
def test_a_damaged_image_tree_is_reported_by_name(tmp_path, capsys, damage):
    root = data.write_fake_cifar(tmp_path / "data", "imagefolder", per_class=8)
    if damage == "empty class folder":
        for f in (root / "train" / "class_03").iterdir():
            f.unlink()
        expected = f"{root / 'train' / 'class_03'}: an empty class folder"
    elif damage == "missing test class":
        import shutil

        shutil.rmtree(root / "test" / "class_07")
        expected = "only in train/ ['class_07'], only in test/ []"
    elif damage == "empty file":
        (root / "train" / "class_01" / "0002.png").write_bytes(b"")
        expected = f"{root / 'train' / 'class_01' / '0002.png'}: an empty image file"
    else:
        target = root / "train" / "class_05" / "0001.png"
        target.write_bytes(target.read_bytes()[:60])
        expected = f"{target}: cannot read this image"
    with pytest.raises(SystemExit) as exit_info:
        distill_cifar.main(
            ["--data-dir", str(root), "--out", str(tmp_path / "o"), "--epochs", "1", "--teacher-epochs", "1", *TINY]
        )
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and expected in err and "Traceback" not in err


class Killed(BaseException):
    """Stands in for kill -9: nothing in the script may catch it."""


@pytest.mark.slow
def test_resume_is_exact_after_a_kill_before_any_write(tmp_path, monkeypatch):
    root = data.write_fake_cifar(tmp_path / "data", "imagefolder", per_class=8)
    run = ["--data-dir", str(root), "--epochs", "2", "--teacher-epochs", "1", *TINY]
    straight = tmp_path / "straight"
    writes = []
    originals = {"checkpoint": training.save_checkpoint, "csv": training.append_csv}

    def counting(kind, kill_at):
        def write(*args, **kwargs):
            writes.append(kind)
            if len(writes) == kill_at:
                raise Killed
            return originals[kind](*args, **kwargs)

        return write

    def patch(kill_at):
        writes.clear()
        monkeypatch.setattr(training, "save_checkpoint", counting("checkpoint", kill_at))
        monkeypatch.setattr(distill_cifar, "save_checkpoint", training.save_checkpoint)
        monkeypatch.setattr(training, "append_csv", counting("csv", kill_at))

    patch(kill_at=0)
    distill_cifar.main(["--out", str(straight), *run])
    total = len(writes)
    assert total >= 7  # teacher: checkpoint, row, weights; student: 2 × (checkpoint, row), weights
    expected = torch.load(straight / "student.pt")
    for kill_at in range(1, total + 1):
        out = tmp_path / f"killed-{kill_at}"
        patch(kill_at)
        with pytest.raises(Killed):
            distill_cifar.main(["--out", str(out), *run])
        patch(kill_at=0)
        distill_cifar.main(["--out", str(out), "--resume", *run])
        got = torch.load(out / "student.pt")
        assert all(torch.equal(got[k], expected[k]) for k in expected), f"killed before write {kill_at}"
        stages = [(r["stage"], r["epoch"]) for r in history(out)]
        assert stages == [("teacher", "1"), ("student", "1"), ("student", "2")], f"killed before write {kill_at}"


def test_a_protocol_sets_the_published_recipe_and_the_flags_still_win(capsys):
    args = distill_cifar.parse_args(["--preset", "paper", "--protocol", "SAAD"])
    assert (args.method, args.epochs, args.milestones, args.weight_decay) == ("saad", 200, [100, 150], 2e-4)
    assert args.teacher == "robustbench:Bartoldson2024Adversarial_WRN-94-16"
    assert (args.steps, args.step_size) == (10, 2 / 255)
    kwargs = distill_cifar.objective_kwargs(args)
    assert kwargs["student_forwards"] == ("adv", "reflected", "clean") and kwargs["clip_start"] is False
    assert kwargs["ramp_epochs"] == 200 and kwargs["add"] is None
    # The smoke preset keeps its short schedule and trains its own teacher; the ramps follow it.
    args = distill_cifar.parse_args(["--preset", "smoke", "--protocol", "adaiad", "--epochs", "5"])
    assert (args.epochs, args.teacher, args.steps) == (5, None, 2)
    assert distill_cifar.objective_kwargs(args)["introspection_from_epoch"] == round(60 * 5 / 200)
    args = distill_cifar.parse_args(["--preset", "paper", "--protocol", "adaad+igdm", "--teacher-ckpt", "t.pt"])
    assert args.teacher is None and distill_cifar.objective_kwargs(args)["add"].ramp_epochs == 200
    with pytest.raises(SystemExit):
        distill_cifar.parse_args(["--protocol", "iad", "--method", "ard"])
    assert "not both" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["saad"])
def test_a_protocol_runs_end_to_end_on_the_smoke_preset(tmp_path, protocol):
    root = data.write_fake_cifar(tmp_path / "data", "imagefolder", per_class=8)
    out = tmp_path / "run"
    result = distill_cifar.main(["--data-dir", str(root), "--out", str(out), "--protocol", protocol, *TINY])
    scores = result["results"][distill_cifar.PROTOCOLS[protocol].method]
    assert 0 <= scores["pgd2"] <= scores["clean"] <= 1
