"""An installed wheel works on its own: the card template ships, the commands are declared."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "cervix-app": "cervix_hf.app:main",
    "cervix-train": "cervix_hf.cli.train:main",
    "cervix-evaluate": "cervix_hf.cli.evaluate:main",
    "cervix-extract": "cervix_hf.cli.extract:main",
    "cervix-prepare": "cervix_hf.cli.prepare:main",
    "cervix-synthetic": "cervix_hf.cli.synthetic:main",
    "cervix-evaluate-locator": "cervix_hf.cli.evaluate_locator:main",
    "cervix-deploy-space": "cervix_hf.space:main",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (path,) = out.glob("cervix_hf-*.whl")
    return path


def test_the_wheel_ships_the_card_template_and_declares_the_commands(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        declared = zf.read(entry_points).decode()
    assert "cervix_hf/templates/model_card.md" in names
    assert not [n for n in names if n.startswith(("tests/", "scripts/", "benchmarks/"))]
    for command, target in COMMANDS.items():
        assert f"{command} = {target}" in declared
        module, _, func = target.partition(":")
        assert callable(getattr(__import__(module, fromlist=[func]), func))


def test_an_installed_copy_renders_a_card_away_from_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    code = (
        "import cervix_hf, cervix_hf.card as card\n"
        "from cervix_hf.config import CervixConfig\n"
        "cfg = CervixConfig(backbone='test_resnet', pretrained=False, weights_sha256='ab' * 32,"
        " feature_dim=96, init_seed=0, data_config={'input_size': [3, 160, 160],"
        " 'mean': [0.5] * 3, 'std': [0.5] * 3})\n"
        "text = card.render_model_card(cfg, repo_id='someone/model')\n"
        "assert '## How to use' in text and 'someone/model' in text\n"
        "print(cervix_hf.__file__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)  # the installed copy first, not the checkout
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().startswith(str(target))
