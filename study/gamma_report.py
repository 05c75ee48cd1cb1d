"""suggest_gamma on a real teacher's logits: the method study's committed teacher (PreActResNet-18,
width 16, fast-AT) on CIFAR-10 test images, clean and PGD-10-attacked.

    python study/gamma_report.py --data-dir /tmp/cifar10-jpeg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from softrank_ad import suggest_gamma
from softrank_ad_examples import data, models, robustness, training

TEACHER = Path(__file__).parent / "results" / "method_study_cpu" / "teachers" / "6129713a6937" / "teacher.pt"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="CIFAR-10 as an ImageFolder tree or torchvision's layout")
    p.add_argument("--n", type=int, default=1000, help="test images (a fixed shuffle)")
    args = p.parse_args(argv)
    _, test_set, classes, _ = data.load("cifar10", args.data_dir, augment=False)
    x, y = next(
        iter(torch.utils.data.DataLoader(data.first(test_set, args.n, seed=0, shuffle=True), batch_size=args.n))
    )
    teacher = models.build("preact_resnet18", classes, 16)
    training.load_weights(teacher, TEACHER)
    teacher.eval()
    x_adv = robustness.adversarial(teacher, x, y, "pgd", epsilon=8 / 255, step_size=2 / 255, steps=10)
    for name, inputs in (("clean", x), ("PGD-10", x_adv)):
        with torch.no_grad():
            logits = teacher(inputs)
        report = suggest_gamma(logits)
        spread = logits.std(1).mean().item()
        print(
            f"\n{name} images (n={args.n}, mean row std of the logits {spread:.2f}): suggested γ = {report.gamma:g}\n"
        )
        print(report.table())


if __name__ == "__main__":
    main()
