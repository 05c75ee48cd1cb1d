"""Cost of one attribution alignment (student + teacher Grad-CAM, MSE, double backward) relative
to a plain forward + backward of the student, in the same run.

    python benchmarks/alignment_cost.py                       # CIFAR ResNet-18 pair, batch 128
    python benchmarks/alignment_cost.py --teacher wrn34_10 --batch 32
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _timing import median_ms

from softrank_ad import AttributionAlignmentLoss
from softrank_ad_examples import models


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default="resnet18", choices=sorted(models.MODELS))
    parser.add_argument("--teacher", default="resnet18", choices=sorted(models.MODELS))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    student = models.build(args.student).to(args.device).train()
    teacher = models.build(args.teacher).to(args.device).eval().requires_grad_(False)
    x = torch.rand(args.batch, 3, 32, 32, device=args.device)
    y = torch.randint(0, 10, (args.batch,), device=args.device)
    loss_fn = AttributionAlignmentLoss()

    def plain():
        student.zero_grad(set_to_none=True)
        F.cross_entropy(student(x), y).backward()

    def aligned():
        student.zero_grad(set_to_none=True)
        loss_fn(student, teacher, x, y).backward()

    t_plain, t_align = median_ms(plain, args.device, args.repeats), median_ms(aligned, args.device, args.repeats)
    print(
        f"{args.student} student, {args.teacher} teacher, batch {args.batch}, {args.device}: "
        f"plain fwd+bwd {t_plain:.0f} ms, alignment {t_align:.0f} ms, ratio {t_align / t_plain:.2f}"
    )
    return {"plain_ms": t_plain, "alignment_ms": t_align, "ratio": t_align / t_plain}


if __name__ == "__main__":
    main()
