"""RobustBench teachers without a network: a checkpoint in RobustBench's model_dir layout for a
real zoo entry (its architecture, with weights made here, in the formats RobustBench ships),
loaded by softrank_ad and by RobustBench's own loader; broken downloads; files that would run
code; one distillation step with the teacher."""

from __future__ import annotations

import pickle
import warnings

import pytest
import torch

from softrank_ad.teachers import CheckpointError, _robustbench, listed, robustbench_teacher

NAME = "Wong2020Fast"  # PreActResNet-18, fast adversarial training; the zoo's smallest CIFAR-10 Linf entry


@pytest.fixture(scope="module")
def zoo_model():
    _, model_dicts, BenchmarkDataset, ThreatModel = _robustbench()
    torch.manual_seed(0)
    model = model_dicts[BenchmarkDataset("cifar10")][ThreatModel("Linf")][NAME]["model"]()
    with torch.no_grad():  # weights of our own, not the published ones
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


def _place(model_dir, state) -> object:
    path = model_dir / "cifar10" / "Linf" / f"{NAME}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def test_a_zoo_checkpoint_loads_frozen_and_matches_robustbenchs_own_loader(tmp_path, zoo_model):
    # As RobustBench's files often are: wrapped in {"state_dict": ...} with DataParallel's prefix.
    _place(tmp_path, {"state_dict": {f"module.{k}": v for k, v in zoo_model.state_dict().items()}})
    teacher, info = robustbench_teacher(NAME, model_dir=tmp_path, download=False)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert info.architecture == "PreActResNet-18" and (info.clean_acc, info.autoattack_acc) == (83.34, 43.21)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        expected = zoo_model(x)
        torch.testing.assert_close(teacher(x), expected)
        utils, *_ = _robustbench()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = utils.load_model(NAME, model_dir=str(tmp_path), dataset="cifar10", threat_model="Linf")
        torch.testing.assert_close(theirs.eval()(x), expected)


def test_listed_accuracies_come_from_the_bundled_table():
    assert listed("Chen2021LTD_WRN34_20")["autoattack_acc"] == 57.71  # model_info as of the commit cited in the table
    assert listed("no such model") is None


def test_an_html_page_saved_as_the_checkpoint_is_named(tmp_path):
    path = tmp_path / "cifar10" / "Linf" / f"{NAME}.pt"
    path.parent.mkdir(parents=True)
    path.write_text("<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head></html>")
    with pytest.raises(CheckpointError, match=r"is an HTML page, not a checkpoint.*Delete .*Wong2020Fast.pt"):
        robustbench_teacher(NAME, model_dir=tmp_path, download=False)


def test_a_truncated_checkpoint_is_named(tmp_path, zoo_model):
    path = _place(tmp_path, zoo_model.state_dict())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match=r"truncated or corrupt.*Delete "):
        robustbench_teacher(NAME, model_dir=tmp_path, download=False)


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch ran.txt",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "cifar10" / "Linf" / f"{NAME}.pt"
    path.parent.mkdir(parents=True)
    with open(path, "wb") as f:
        torch.save({"state_dict": _Payload()}, f, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="other than tensors"):
        robustbench_teacher(NAME, model_dir=tmp_path, download=False)
    assert not (tmp_path / "ran.txt").exists()


def test_unknown_names_and_missing_files_are_named(tmp_path):
    with pytest.raises(
        ValueError, match=r"'Wong2020Fats' is not in RobustBench's cifar10 Linf zoo; closest: \['Wong2020Fast'"
    ):
        robustbench_teacher("Wong2020Fats", model_dir=tmp_path, download=False)
    with pytest.raises(ValueError, match="no checkpoint at"):
        robustbench_teacher(NAME, model_dir=tmp_path, download=False)
    with pytest.raises(ValueError, match="no zoo for dataset='cifar11'"):
        robustbench_teacher(NAME, model_dir=tmp_path, dataset="cifar11", download=False)


@pytest.mark.slow
def test_one_distillation_step_with_a_robustbench_teacher(tmp_path, zoo_model):
    import distill_cifar

    from softrank_ad_examples import data

    _place(tmp_path / "models", zoo_model.state_dict())
    root = data.write_fake_cifar(tmp_path / "data", "imagefolder", per_class=4)
    result = distill_cifar.main(
        [
            "--preset",
            "smoke",
            "--data-dir",
            str(root),
            "--out",
            str(tmp_path / "run"),
            "--method",
            "adaad",
            "--teacher",
            f"robustbench:{NAME}",
            "--model-dir",
            str(tmp_path / "models"),
            "--epochs",
            "1",
            "--train-subset",
            "32",
            "--test-subset",
            "8",
            "--autoattack-n",
            "0",
            "--eval-pgd-steps",
            "1",
            "--eval-cw-steps",
            "1",
            "--no-progress",
        ]
    )
    assert result["teacher_listed"]["name"] == NAME and result["teacher_listed"]["autoattack_acc"] == 43.21
    text = (tmp_path / "run" / "results.md").read_text()
    assert "RobustBench lists clean 83.34% and AutoAttack 43.21%" in text
