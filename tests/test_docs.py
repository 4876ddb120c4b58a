"""The docs stay true: every command is documented, generated blocks are current, links resolve,
the README stays short, and the documentation site builds without a warning."""

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from gazeback.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").rglob("*.md"))
GENERATED = ["docs/cli.md", "docs/schema.md", "docs/guide/your-data.md"]


def commands(group: click.Group, prefix=""):
    for name, cmd in group.commands.items():
        if cmd.hidden:  # deprecated names kept for one release
            continue
        yield prefix + name, cmd
        if isinstance(cmd, click.Group):
            yield from commands(cmd, prefix + name + " ")


@pytest.mark.parametrize("name,cmd", list(commands(cli)), ids=lambda v: str(v))
def test_every_command_is_documented(name, cmd):
    assert f"gazeback {name}" in README, f"README's command table lacks `gazeback {name}`"
    assert f"## gazeback {name}\n" in (ROOT / "docs" / "cli.md").read_text()
    assert cmd.help
    if not isinstance(cmd, click.Group):
        assert "Example" in cmd.help


@pytest.mark.parametrize("path", GENERATED)
def test_generated_blocks_are_current(path):
    result = subprocess.run(
        [sys.executable, "-m", "cogapp", "--check", path], cwd=ROOT, capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, f"{path} is stale: run `cog -r {path}`\n" + result.stderr


def test_quick_start_comes_first():
    quick = README.split("## Quick start", 1)[1]
    blocks = [b.split("```", 1)[0] for b in quick.split("```bash\n")[1:3]]
    assert "pip install -e ." in blocks[0] and "gazeback run" in blocks[0]
    assert "pip install -e '.[test]'" in blocks[1] and "pytest" in blocks[1]


def test_readme_is_the_front_door_not_the_manual():
    assert len(README.splitlines()) <= 300


LINK = re.compile(r"\]\((?!https?:|mailto:|#)([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("path", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_relative_links_resolve(path):
    missing = [
        target for target in LINK.findall(path.read_text())
        if not (path.parent / target).exists()
    ]  # fmt: skip
    assert not missing, f"{path.relative_to(ROOT)} links to missing files: {missing}"


def test_no_module_cites_a_document_that_is_not_here():
    here = {p.name for p in ROOT.rglob("*.md")} | {"SOURCE.md", "ATTRIBUTION.md", "datasheet.md"}
    here |= {"export.db.md"}  # written beside an export
    missing = [
        f"{py.relative_to(ROOT)}: {doc}"
        for py in (ROOT / "src").rglob("*.py")
        for doc in re.findall(r"([\w./-]+\.md)\b", py.read_text())
        if Path(doc).name not in here or (doc.startswith("docs/") and not (ROOT / doc).exists())
    ]
    assert not missing


def test_documentation_site_builds_without_warnings(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(ROOT / "docs"), str(tmp_path / "html")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    page = (tmp_path / "html" / "guide" / "devices.html").read_text()
    assert "WireGuard" in page
