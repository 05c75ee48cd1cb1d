"""The package as users install it: a wheel built from the repository, installed (not editable)
into a fresh virtual environment, used from a folder outside the repository."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

import softrank_ad

REPO = Path(__file__).resolve().parent.parent

USE = """
import pathlib, sys, torch
import softrank_ad
from softrank_ad import make_objective, soft_rank
from softrank_ad._kernels import native
site = pathlib.Path(sys.argv[1]).resolve()
assert site in pathlib.Path(softrank_ad.__file__).resolve().parents, softrank_ad.__file__
assert native.available(), native.build_error()  # the C kernel, built from the installed sources
x = torch.randn(4, 10, requires_grad=True)
soft_rank(x, backend="native").sum().backward()
student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
objective = make_objective("adaad", student, teacher, steps=1)
objective(torch.rand(8, 3, 2, 2), torch.randint(0, 3, (8,))).backward()
print("ok", softrank_ad.__version__, sorted(p.name for p in pathlib.Path(sys.argv[2]).iterdir()))
"""


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_runs_outside_the_repo(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = dist.glob("softrank_ad-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith("dist-info/licenses/LICENSE") for n in names), names
    assert "softrank_ad/_kernels/native.c" in names
    # The library and its metadata, nothing else: no examples' package, tests or conftest.
    info = f"softrank_ad-{softrank_ad.__version__}.dist-info/"
    strays = [n for n in names if not (n.startswith("softrank_ad/") or n.startswith(info))]
    assert not strays, strays
    assert not any("conftest" in n or "softrank_ad_examples" in n for n in names)

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # torch (5 GB) is borrowed from the test's own environment through a plain path entry: a .pth
    # line adds the folder to the import path without running the .pth files in it, so the editable
    # install of the repository there stays invisible.
    (site / "borrowed_torch.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)], check=True
    )
    cache = tmp_path / "kernel-cache"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    done = subprocess.run(
        [str(python), "-c", USE, str(site), str(cache)],
        cwd=outside,
        capture_output=True,
        text=True,
        env={"SOFTRANK_AD_CACHE": str(cache), "PATH": "/usr/bin:/bin"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith(f"ok {softrank_ad.__version__}") and "softrank_native" in done.stdout
