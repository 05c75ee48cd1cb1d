"""examples/training.py: weights-only checkpoints, RNG round trip, the history CSV."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from softrank_ad_examples import training


class Payload:
    """Unpickling this would create a marker file: a stand-in for code hidden in a checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    model = torch.nn.Linear(2, 2)
    torch.save({"state_dict": model.state_dict(), "extra": Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(training.CheckpointError, match="evil.pt: not loaded.*weights-only"):
        training.load_weights(model, tmp_path / "evil.pt")
    assert not marker.exists()


def test_weights_load_from_plain_wrapped_and_ddp_state_dicts(tmp_path):
    source = torch.nn.Linear(3, 2)
    for i, obj in enumerate(
        [
            source.state_dict(),
            {"state_dict": source.state_dict()},
            {"model": {f"module.{k}": v for k, v in source.state_dict().items()}},
        ]
    ):
        training.save_checkpoint(obj, tmp_path / f"{i}.pt")
        target = torch.nn.Linear(3, 2)
        training.load_weights(target, tmp_path / f"{i}.pt")
        assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))


def test_rng_state_survives_a_weights_only_round_trip(tmp_path):
    training.seed_everything(7)
    training.save_checkpoint({"rng": training.rng_state()}, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    training.seed_everything(99)
    training.set_rng_state(training.load_checkpoint(tmp_path / "rng.pt")["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_history_csv_keeps_every_column_and_no_temporary_file(tmp_path):
    path = tmp_path / "history.csv"
    training.append_csv(path, {"stage": "teacher", "epoch": 1, "loss": 0.5, "val_pgd": 0.25})
    training.append_csv(path, {"stage": "student", "epoch": 1, "loss": 0.25, "hard_rho": 0.9})
    rows = training.read_csv(path)
    assert rows == [
        {"stage": "teacher", "epoch": "1", "loss": "0.5", "val_pgd": "0.25", "hard_rho": ""},
        {"stage": "student", "epoch": "1", "loss": "0.25", "val_pgd": "", "hard_rho": "0.9"},
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.csv"]


def test_resume_writes_the_row_lost_between_checkpoint_and_csv(tmp_path):
    model = torch.nn.Linear(2, 2)
    data = [(torch.randn(4, 2), torch.randint(0, 2, (4,)))]

    def loss_fn(x, y, epoch):
        return {"loss": torch.nn.functional.cross_entropy(model(x), y)}

    schedule = training.Schedule(epochs=2, lr=0.1)
    training.fit("student", model, loss_fn, data, schedule, tmp_path, device=torch.device("cpu"), progress=False)
    rows = training.read_csv(tmp_path / "history.csv")
    training.append_csv(tmp_path / "kept.csv", rows[0])  # as if killed after epoch 2's checkpoint
    (tmp_path / "kept.csv").replace(tmp_path / "history.csv")
    training.fit(
        "student", model, loss_fn, data, schedule, tmp_path, device=torch.device("cpu"), resume=True, progress=False
    )
    assert [r["epoch"] for r in training.read_csv(tmp_path / "history.csv")] == ["1", "2"]


def test_the_shared_recipes():
    assert training.teacher_milestones(5) == [2, 3] and training.teacher_milestones(15) == [7, 11]
    assert training.teacher_milestones(10) == [int(10 * 0.5), int(10 * 0.75)]  # distill_cifar's old spelling
    assert training.attack_step(8 / 255, 10) == pytest.approx(2 / 255)


def test_keep_best_keeps_the_best_epoch_and_stops_on_a_collapse():
    model = torch.nn.Linear(2, 2)
    scores = iter([0.3, 0.5, 0.5, 0.4, 0.25])
    hook = training.KeepBest(model, lambda m: next(scores), stop_drop=0.2)
    extra, stops = {}, []
    for epoch in range(5):
        with torch.no_grad():
            model.weight.fill_(epoch)
        row = {}
        stops.append(hook(epoch, row, extra))
        assert row["val_pgd"] is not None
    assert stops == [False, False, False, False, True]  # 0.25 < 0.5 - 0.2
    assert extra["best_pgd"] == 0.5 and float(extra["best_state"]["weight"][0, 0]) == 2  # ties go to the later epoch
    fresh = torch.nn.Linear(2, 2)
    training.KeepBest.best(fresh, extra)
    assert torch.equal(fresh.weight, torch.full((2, 2), 2.0))
