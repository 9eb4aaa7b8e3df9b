"""The build flavours and the run-time choice between compiled modules and their twins."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(args: list[str], env_extra: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "MTA_NO_EXTENSIONS"}
    env.update(env_extra)
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_pure_build_compiles_nothing_and_says_so(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(
        REPO / "hotpath", source / "hotpath", ignore=shutil.ignore_patterns("*.so", "*.c")
    )
    result = _run(
        [sys.executable, "setup.py", "build_ext", "--build-lib", "out", "--build-temp", "tmp"],
        {"MTA_NO_EXTENSIONS": "1"},
        source,
    )
    assert result.returncode == 0, result.stderr
    assert "built the pure (MTA_NO_EXTENSIONS=1) package; compiled modules: none" in result.stderr
    assert not list(source.rglob("*.so"))


def test_runtime_switch_selects_the_twins() -> None:
    probe = "from hotpath import parser, queue; print(parser.ACCELERATED, queue.ACCELERATED)"
    result = _run([sys.executable, "-c", probe], {"MTA_NO_EXTENSIONS": "1"}, REPO)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_compiled_modules_are_selected_by_default() -> None:
    probe = "from hotpath import parser, queue; print(parser.ACCELERATED, queue.ACCELERATED)"
    result = _run([sys.executable, "-c", probe], {}, REPO)
    assert result.stdout.split() == ["True", "True"], result.stderr


def test_version_says_which_hotpath_runs() -> None:
    result = _run([sys.executable, "-m", "mta", "--version"], {"MTA_NO_EXTENSIONS": "1"}, REPO)
    assert result.returncode == 0
    assert result.stdout.strip() == "mta 0.1.0 (pure-Python hotpath)"
