"""``gazeback consent-check URL``: does "Reject all" change what a site sends? (#16)"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import click

from gazeback.cli.options import DbCommand, db_option, open_existing_db
from gazeback.cli.recording import proxy_args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(
                "gazeback's proxy did not start:\n" + log.read_text(errors="replace")[-2000:]
            )
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise click.ClickException(f"gazeback's proxy did not listen on 127.0.0.1:{port} in time")


@click.command(name="consent-check", cls=DbCommand)
@db_option
@click.argument("url")
@click.option("--and", "more", multiple=True, metavar="URL",
              help="Check this page too (repeatable): one browser and proxy for all.")  # fmt: skip
@click.option("--runs", type=click.IntRange(1, 20), default=3, show_default=True,
              help="Visits per condition (repeat runs show the noise).")  # fmt: skip
@click.option("--wait", type=click.FloatRange(0.5, 300), default=10.0, show_default=True,
              help="Seconds to watch the page (after the choice, or with no choice).")  # fmt: skip
@click.option("--experiment", "name", metavar="NAME",
              help="Experiment name (default: consent <host> <date and time>); with --and, "
              "each page's experiment is NAME <host><path>.")  # fmt: skip
@click.option("--detect-timeout", type=click.FloatRange(0.5, 120), default=10.0, show_default=True,
              help="Seconds to wait at most for autoconsent to find a banner it knows.")  # fmt: skip
@click.option("--chromium", metavar="PATH", help="The Chromium to drive (default: found).")
@click.option("--show-browser", is_flag=True, help="Show the browser window.")
@click.argument("mitmproxy_args", nargs=-1, type=click.UNPROCESSED)
def consent_check(
    db_path: Path,
    url: str,
    more: tuple[str, ...],
    runs: int,
    wait: float,
    name: str | None,
    detect_timeout: float,
    chromium: str | None,
    show_browser: bool,
    mitmproxy_args: tuple[str, ...],
) -> None:
    """Open URL in a fresh Chromium profile through gazeback's proxy three ways — no
    choice, "reject all", "accept all" — and compare what the site sent to trackers.

    Cookie banners are answered with DuckDuckGo's autoconsent rules (bundled); a banner
    no rule knows is reported as "banner not handled". The result is an experiment
    (`gazeback experiment compare NAME`, and the experiment dashboard), plus trackers that
    fired before any choice, trackers still sent data after "reject all", and whether the
    consent the site passed to vendors (TCF string, Google Consent Mode) matches the click.

    Example:

        gazeback consent-check https://www.example.com/ --runs 3

        gazeback consent-check https://news.example/ --and https://shop.example/
    """
    from gazeback.capture import consent
    from gazeback.db import experiments as ex
    from gazeback.knowledge.consent import decode_tcf
    from gazeback.timestamps import now_iso

    urls = list(dict.fromkeys([url, *more]))
    for u in urls:
        parts = urlsplit(u)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise click.ClickException(
                f"{u!r} is not a web address: give one like https://www.example.com/"
            )
    try:
        exe = consent.find_chromium(chromium)
    except consent.ConsentCheckError as e:
        raise click.ClickException(str(e)) from None
    db = open_existing_db(db_path)
    names = _names(urls, name)
    for n in names.values():
        if list(db.query("select 1 from experiments where name = ?", [n])):
            raise click.ClickException(f"an experiment called {n!r} exists; give --experiment")
    db.close()
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="gazeback-consent-") as tmp:
        log = Path(tmp) / "proxy.log"
        t0 = now_iso()
        args = [*proxy_args(db_path, "127.0.0.1", port), *mitmproxy_args]
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-c", "from mitmproxy.tools.main import mitmdump; mitmdump()",
                 *args], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            _wait_port(port, proc, log)
            click.echo(
                f"Checking {', '.join(urls)}: {runs} run(s) of no choice, reject all, "
                f"accept all (Chromium: {exe})"
            )
            results = consent.check(
                urls, f"http://127.0.0.1:{port}", runs, wait, detect_timeout, chromium=exe,
                headless=not show_browser, progress=_progress, confdir=_confdir(args),
            )  # fmt: skip
        except consent.ConsentCheckError as e:
            raise click.ClickException(str(e)) from None
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    db = open_existing_db(db_path)
    cap = next(
        db.query(
            "select max(id) as id from captures where source = 'proxy' and started_at >= ?", [t0]
        )
    )["id"]
    if cap is None:
        raise click.ClickException("the proxy recorded nothing (no capture was written)")
    for r in results:
        tcf = None
        if r.tcf_string:
            try:
                tcf = json.dumps(decode_tcf(r.tcf_string))
            except ValueError as e:
                tcf = json.dumps({"error": str(e)})
        ex.add_capture(
            db, names[r.url], r.condition, int(cap), source="consent-check", url=r.url,
            started_at=r.started_at, ended_at=r.ended_at, banner=r.banner,
            click_result=r.click_result, clicked_at=r.clicked_at, tcf_string=r.tcf_string,
            tcf_summary=tcf,
        )  # fmt: skip
    for u in urls:
        if len(urls) > 1:
            click.echo(f"\n== {u}")
        _report(db, names[u])


def _names(urls: list[str], name: str | None) -> dict[str, str]:
    """Each page's experiment name."""
    if len(urls) == 1:
        host = urlsplit(urls[0]).hostname
        return {urls[0]: name or f"consent {host} {datetime.now(UTC):%Y-%m-%d %H:%M}"}
    out = {}
    for u in urls:
        parts = urlsplit(u)
        page = f"{parts.hostname}{parts.path}"
        out[u] = f"{name} {page}" if name else f"consent {page} {datetime.now(UTC):%Y-%m-%d %H:%M}"
    return out


def _confdir(args: list[str]) -> Path:
    """mitmproxy's confdir (its CA) as the proxy was started with it."""
    found = Path("~/.mitmproxy")
    for i, a in enumerate(args):
        if a == "--set" and i + 1 < len(args) and args[i + 1].startswith("confdir="):
            found = Path(args[i + 1].split("=", 1)[1])
    return found.expanduser()


def _progress(r: object) -> None:
    from gazeback.capture.consent import RunResult

    assert isinstance(r, RunResult)
    what = r.click_result if r.condition != "no choice" else "banner left alone"
    banner = f" (banner: {r.banner})" if r.banner else ""
    click.echo(
        f"  run {r.run}, {r.condition}: {what}{banner}" + (f"; {r.error}" if r.error else "")
    )


def _report(db, name: str) -> None:  # type: ignore[no-untyped-def]
    from gazeback.db import experiments as ex

    rep = ex.consent_report(db, name)
    click.echo("")
    if rep["not_handled"]:
        click.echo(
            "Banner not handled (no autoconsent rule matched) for: "
            + ", ".join(rep["not_handled"])
            + ". Those runs show the site without a choice."
        )
    before = rep["fired_before_choice"]
    click.echo(
        f"Fired before any choice: {len(before)} tracking companies"
        + (f" ({', '.join(before)})" if before else "")
    )
    after = rep["still_after_reject"]
    click.echo(
        f"Still sent after reject: {len(after)} tracking companies"
        + (f" ({', '.join(after)})" if after else "")
    )
    for cond, words in sorted(rep["consent_mode"].items()):
        click.echo(
            f"Google Consent Mode after {cond!r}: "
            + ", ".join(f"{n} requests say {w}" for w, n in sorted(words.items()))
        )
    for m in rep["mismatches"]:
        click.secho(f"Does not match the click: {m}", fg="red")
    try:
        c = ex.compare(db, name, "accept all", "reject all")
        click.echo(c.headline())
    except ex.ExperimentError:
        pass
    click.echo(
        f"Experiment {name!r}: `gazeback experiment compare {name!r}`, or the experiment dashboard."
    )
