"""The README stays true: every command is documented, and generated blocks are current."""

import subprocess
import sys
from pathlib import Path

import click
import pytest

from gazeback.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def commands(group: click.Group, prefix=""):
    for name, cmd in group.commands.items():
        yield prefix + name, cmd
        if isinstance(cmd, click.Group):
            yield from commands(cmd, prefix + name + " ")


@pytest.mark.parametrize("name,cmd", list(commands(cli)), ids=lambda v: str(v))
def test_every_command_is_documented(name, cmd):
    assert f"gazeback {name}" in README
    assert cmd.help
    if not isinstance(cmd, click.Group):
        assert "Example" in cmd.help


def test_generated_blocks_are_current():
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "cogapp", "--check", "README.md"], cwd=root, capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, "README.md is stale: run `cog -r README.md`\n" + result.stderr


def test_quick_start_comes_first():
    quick = README.split("## Quick start", 1)[1]
    blocks = [b.split("```", 1)[0] for b in quick.split("```bash\n")[1:3]]
    assert "pip install -e ." in blocks[0] and "gazeback run" in blocks[0]
    assert "pip install -e '.[test]'" in blocks[1] and "pytest" in blocks[1]
