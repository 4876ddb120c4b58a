"""The one place that finds the Chromium to run and says how to start it quietly.

`gazeback summary` (PDF, PNG), `gazeback consent-check`, the screenshot script and the
browser tests all run the person's own Chromium (or Chrome); none downloads a browser.
It is looked for, in order: ``$GAZEBACK_CHROMIUM`` (or a path the command was given),
then ``chromium``, ``chromium-browser``, ``google-chrome``, ``google-chrome-stable`` on the
PATH, then the build that ``playwright install chromium`` put in place (when the
``playwright`` package is there). Without one: :class:`NoChromium`, whose message is one
sentence that names the command and how to install Chromium.

This module imports nothing of gazeback, so every layer may use it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ENV = "GAZEBACK_CHROMIUM"
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL = (
    "install it with `sudo apt install chromium` (Debian, Ubuntu) or `sudo dnf install "
    "chromium` (Fedora)"
)
# No calls home: Chromium's own sign-in, updates, safe browsing, field trials and
# component downloads would reach the internet (and be counted as the page's traffic
# by the consent check).
QUIET_FLAGS = (
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--no-pings",
    "--disable-features=OptimizationHints,MediaRouter,AutofillServerCommunication",
)
# Without a window, as root in a container too (playwright adds these itself).
HEADLESS_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu")


class NoChromium(RuntimeError):
    """No Chromium to run; the message is the sentence to show."""


def flags(headless: bool = False) -> list[str]:
    """The command-line flags every gazeback Chromium runs with; ``headless`` adds the ones a
    bare ``chromium`` subprocess needs (playwright sets those itself)."""
    return [*(HEADLESS_FLAGS if headless else ()), *QUIET_FLAGS]


def _program(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    path = Path(name).expanduser()
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def _playwrights() -> str | None:
    """The Chromium ``playwright install chromium`` downloaded, if playwright is here."""
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            path = p.chromium.executable_path
    except Exception:  # noqa: BLE001 - no playwright, no driver, or called inside an event loop
        return None
    return path if path and Path(path).is_file() else None


def which(given: str | None = None) -> str | None:
    """The Chromium to run, or None: ``given`` (or ``$GAZEBACK_CHROMIUM``) if set — and
    then only that one — else the first of :data:`NAMES` on the PATH, else playwright's."""
    given = given or os.environ.get(ENV) or None
    if given:
        return _program(given)
    for name in NAMES:
        if found := shutil.which(name):
            return found
    return _playwrights()


def find(needed_for: str, given: str | None = None, *, option: str | None = None) -> str:
    """:func:`which`, or :class:`NoChromium` with one sentence: ``needed_for`` (e.g.
    ``gazeback summary --out me.pdf``) needs Chromium, and how to get it; ``option`` (e.g.
    ``--chromium``) is the command's own way to name one."""
    found = which(given)
    if found:
        return found
    named = given or os.environ.get(ENV)
    if named:
        source = f"{option} {named}" if given and option else f"{ENV}={named}"
        raise NoChromium(
            f"{needed_for} needs Chromium, and {source} is not a program that can be run: "
            f"give the path of a Chromium or Chrome, or {INSTALL}"
        )
    also = f" or name one with {option} PATH" if option else f" or set {ENV} to its path"
    raise NoChromium(f"{needed_for} needs Chromium: {INSTALL},{also}")
