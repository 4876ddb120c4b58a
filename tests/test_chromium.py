"""gazeback.chromium: which Chromium runs, in which order, and the sentence without one."""

import pytest

from gazeback import chromium


@pytest.fixture
def path_of(tmp_path, monkeypatch):
    """A PATH holding only the programs named (small shell scripts), and no playwright build."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path / "no-browsers"))
    monkeypatch.delenv(chromium.ENV, raising=False)

    def make(*names):
        for name in names:
            program = bin_dir / name
            program.write_text("#!/bin/sh\nexit 0\n")
            program.chmod(0o755)
        return bin_dir

    return make


@pytest.mark.parametrize(
    "installed,found",
    [
        (["google-chrome-stable", "chromium-browser"], "chromium-browser"),
        (["google-chrome", "chromium"], "chromium"),
        (["google-chrome-stable"], "google-chrome-stable"),
    ],
)
def test_the_first_name_on_the_path_wins(path_of, installed, found):
    bin_dir = path_of(*installed)
    assert chromium.which() == str(bin_dir / found)


def test_the_environment_names_the_one_and_only(path_of, monkeypatch, tmp_path):
    path_of("chromium")
    mine = tmp_path / "my-chrome"
    mine.write_text("#!/bin/sh\n")
    mine.chmod(0o755)
    monkeypatch.setenv(chromium.ENV, str(mine))
    assert chromium.find("x") == str(mine)
    monkeypatch.setenv(chromium.ENV, str(tmp_path / "gone"))  # named, missing: not another one
    with pytest.raises(chromium.NoChromium) as e:
        chromium.find("gazeback summary --out me.png")
    assert str(e.value).startswith(
        f"gazeback summary --out me.png needs Chromium, and GAZEBACK_CHROMIUM={tmp_path / 'gone'}"
        " is not a program that can be run"
    )


def test_without_chromium_one_sentence_says_how_to_install_it(path_of):
    path_of()
    with pytest.raises(chromium.NoChromium) as e:
        chromium.find("gazeback consent-check", option="--chromium")
    assert str(e.value) == (
        "gazeback consent-check needs Chromium: install it with `sudo apt install chromium` "
        "(Debian, Ubuntu) or `sudo dnf install chromium` (Fedora), or name one with "
        "--chromium PATH"
    )


def test_the_flags_keep_it_quiet_and_headless_only_when_asked():
    assert "--headless" not in chromium.flags()
    assert chromium.flags(headless=True)[:3] == ["--headless", "--no-sandbox", "--disable-gpu"]
    for quiet in ("--disable-background-networking", "--disable-component-update", "--no-pings"):
        assert quiet in chromium.flags() and quiet in chromium.flags(headless=True)
