"""The consent check (#16): open a page in a fresh Chromium profile through gazeback's
proxy three ways — no choice, reject all, accept all — with the cookie banner answered by
DuckDuckGo's autoconsent rules (bundled, MPL-2.0: ``data/autoconsent/``), and read the
consent the page stored (IAB TCF v2).

Playwright drives the system's Chromium (``executable_path``, found by
``gazeback.chromium``); nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gazeback import chromium as browsers
from gazeback.timestamps import iso, now_iso

AUTOCONSENT = Path(__file__).parent.parent / "data" / "autoconsent"
# Put before autoconsent's script (which keeps the function it finds): each message it sends
# carries the page's time of sending.
STAMP_MESSAGES = """(() => {
  const send = window.autoconsentSendMessage;
  if (send && !window.autoconsentReceiveMessage && !send.gazebackStamped) {
    const stamped = (m) => send(Object.assign({}, m, {gazebackSentAt: Date.now()}));
    stamped.gazebackStamped = true;
    window.autoconsentSendMessage = stamped;
  }
})();
"""
# condition label -> autoconsent's autoAction
CONDITIONS: tuple[tuple[str, str | None], ...] = (
    ("no choice", None),
    ("reject all", "optOut"),
    ("accept all", "optIn"),
)
NO_PLAYWRIGHT = (
    "the consent check needs the Python package playwright: "
    "`pip install 'gazeback[consent]'` (it drives your own Chromium; no browser is downloaded)"
)


class ConsentCheckError(RuntimeError):
    """The check cannot run; the message says why and what to do."""


def find_chromium(given: str | None = None) -> str:
    """The Chromium to drive: --chromium, $GAZEBACK_CHROMIUM, the system's, or Playwright's."""
    try:
        return browsers.find("gazeback consent-check", given, option="--chromium")
    except browsers.NoChromium as e:
        raise ConsentCheckError(str(e)) from None


@dataclass
class RunResult:
    condition: str
    run: int
    url: str = ""
    started_at: str = ""
    ended_at: str = ""
    banner: str | None = None  # the CMP rule autoconsent matched
    click_result: str = "none"  # done, failed, banner not handled, none (no choice)
    clicked_at: str | None = None
    tcf_string: str | None = None
    messages: list[str] = field(default_factory=list)
    error: str | None = None


def _config(action: str | None) -> dict[str, Any]:
    return {
        "enabled": True,
        "autoAction": action,
        "disabledCmps": [],
        "enablePrehide": False,
        "enableCosmeticRules": False,  # hiding a banner is not answering it
        "enableGeneratedRules": True,
        "enableHeuristicDetection": False,
        "detectRetries": 20,
        "logs": {"errors": False},
    }


class _Run:
    """One page visit: autoconsent's messages answered, what it did noted."""

    def __init__(self, result: RunResult, action: str | None, rules_js: str) -> None:
        self.r, self.action, self.rules_js = result, action, rules_js
        self.finished = asyncio.Event()
        self.found = asyncio.Event()
        self.settled = asyncio.Event()  # a banner found, or autoconsent gave up looking

    async def message(self, source: Any, msg: dict[str, Any]) -> None:
        frame = source["frame"]
        kind = msg.get("type")
        self.r.messages.append(str(kind))
        try:
            if kind == "init":
                await frame.evaluate(
                    "autoconsentReceiveMessage({type: 'initResp', config: "
                    + json.dumps(_config(self.action))
                    + ", rules: "
                    + self.rules_js
                    + "})"
                )
            elif kind == "eval":
                try:
                    value = await frame.evaluate(msg.get("code", "false"))
                except Exception:  # noqa: BLE001 - a rule's check failing is a false
                    value = False
                await frame.evaluate(
                    "autoconsentReceiveMessage("
                    + json.dumps({"id": msg.get("id"), "type": "evalResp", "result": value})
                    + ")"
                )
            elif kind in ("cmpDetected", "popupFound"):
                self.r.banner = msg.get("cmp") or self.r.banner
                if kind == "popupFound" and not self.found.is_set():
                    if self.action is not None:  # autoconsent answers it from now on
                        # the page's clock when it found the banner (before it clicks): this
                        # process may take the message late on a busy machine, after the
                        # requests the click caused have already been recorded
                        sent = msg.get("gazebackSentAt")
                        self.r.clicked_at = (
                            iso(sent / 1000) if isinstance(sent, int | float) else now_iso()
                        )
                    self.found.set()
                    self.settled.set()
            elif kind == "report" and msg.get("mainFrame"):
                if (msg.get("state") or {}).get("lifecycle") == "nothingDetected":
                    self.settled.set()
            elif kind in ("optOutResult", "optInResult"):
                self.r.click_result = "done" if msg.get("result") else "failed"
                if not msg.get("result"):
                    self.r.clicked_at = None  # no choice was made
            elif kind == "autoconsentDone":
                self.finished.set()
        except Exception:  # noqa: BLE001 - the frame navigated away mid-answer
            pass


async def _visit(
    browser: Any, url: str, cond: str, action: str | None, run: int, wait: float, detect: float,
    script: str, rules_js: str,
) -> RunResult:  # fmt: skip
    result = RunResult(cond, run, url)
    state = _Run(result, action, rules_js)
    context = await browser.new_context(ignore_https_errors=True)  # a fresh, empty profile
    try:
        page = await context.new_page()
        await page.expose_binding("autoconsentSendMessage", state.message)

        async def inject(frame: Any) -> None:
            try:
                await frame.evaluate(script)
            except Exception:  # noqa: BLE001 - detached frame
                pass

        page.on("framenavigated", lambda frame: asyncio.ensure_future(inject(frame)))
        inflight: set[Any] = set()
        page.on("request", lambda r: inflight.add(r))
        page.on("requestfinished", lambda r: inflight.discard(r))
        page.on("requestfailed", lambda r: inflight.discard(r))
        result.started_at = now_iso()
        try:
            await page.goto(url, wait_until="commit", timeout=30_000)
        except Exception as e:  # noqa: BLE001 - the page did not load: say so
            result.error = f"the page did not load: {str(e).splitlines()[0]}"
        else:
            for frame in page.frames:
                await inject(frame)
            if action is None:
                await asyncio.sleep(wait)  # no choice: leave the banner alone
            else:
                try:
                    await asyncio.wait_for(state.settled.wait(), detect)
                    if state.found.is_set():
                        await asyncio.wait_for(state.finished.wait(), 20)
                except TimeoutError:
                    pass
                if not state.found.is_set():
                    result.click_result = "banner not handled"
                elif result.click_result == "none":  # found, but no result came
                    result.click_result, result.clicked_at = "failed", None
                await asyncio.sleep(wait)  # what the page sends after the choice
            # let what the page sent finish, so the proxy records it whole (5 s at most)
            for _ in range(50):
                if not inflight:
                    break
                await asyncio.sleep(0.1)
            result.tcf_string = await _tcf(page, context)
    finally:
        result.ended_at = now_iso()
        await context.close()
    return result


TCF_JS = """() => new Promise((done) => {
  if (typeof window.__tcfapi !== 'function') return done(null);
  const t = setTimeout(() => done(null), 2000);
  try {
    window.__tcfapi('getTCData', 2, (d, ok) => { clearTimeout(t); done(ok && d ? d.tcString || null : null); });
  } catch (e) { clearTimeout(t); done(null); }
})"""


async def _tcf(page: Any, context: Any) -> str | None:
    try:
        got = await page.evaluate(TCF_JS)
    except Exception:  # noqa: BLE001
        got = None
    if got:
        return str(got)
    for c in await context.cookies():
        if c.get("name") == "euconsent-v2" and c.get("value"):
            return str(c["value"])
    return None


def proxy_spki(confdir: Path) -> str:
    """base64(sha256(SubjectPublicKeyInfo)) of the proxy's CA (mitmproxy signs every
    certificate it makes with the CA's key), for Chromium's
    --ignore-certificate-errors-spki-list: this throwaway browser trusts gazeback's proxy
    and nothing else it would not trust anyway (the proxy checks the real servers)."""
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pem = (confdir / "mitmproxy-ca-cert.pem").read_bytes()
    spki = (
        x509.load_pem_x509_certificate(pem)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


async def _check(
    urls: list[str], proxy: str, runs: int, wait: float, detect: float, chromium: str, headless: bool,
    progress: Callable[[RunResult], None], spki: str | None,
) -> list[RunResult]:  # fmt: skip
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        raise ConsentCheckError(NO_PLAYWRIGHT) from None
    script = STAMP_MESSAGES + (AUTOCONSENT / "autoconsent.playwright.js").read_text()
    rules = json.loads((AUTOCONSENT / "rules.json").read_text())
    rules_js = json.dumps({"autoconsent": rules.get("autoconsent", [])})
    out: list[RunResult] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=chromium,
            headless=headless,
            proxy={"server": proxy},
            # Chromium's own calls home (sign-in, updates, safe browsing) would be counted
            # as the site's
            args=[
                *browsers.flags(),
                *([f"--ignore-certificate-errors-spki-list={spki}"] if spki else []),
            ],
        )
        try:
            for url in urls:
                for run in range(1, runs + 1):
                    for cond, action in CONDITIONS:
                        r = await _visit(
                            browser, url, cond, action, run, wait, detect, script, rules_js
                        )
                        out.append(r)
                        progress(r)
        finally:
            await browser.close()
    return out


def check(
    urls: list[str],
    proxy: str,
    runs: int = 3,
    wait: float = 10.0,
    detect: float = 10.0,
    chromium: str | None = None,
    headless: bool = True,
    progress: Callable[[RunResult], None] = lambda r: None,
    confdir: Path | None = None,
) -> list[RunResult]:
    """Visit each of ``urls`` ``runs`` times per condition through the proxy at ``proxy``
    (whose certificates are made in ``confdir``), one page after the other."""
    exe = find_chromium(chromium)
    spki = proxy_spki(confdir) if confdir else None
    return asyncio.run(_check(urls, proxy, runs, wait, detect, exe, headless, progress, spki))
