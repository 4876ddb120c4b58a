"""User-agent → (client family, OS family), from a small ordered table of patterns (pure)."""

from __future__ import annotations

import re
from functools import lru_cache

# First match wins: more specific products before the ones they imitate.
CLIENT_PATTERNS: list[tuple[str, str]] = [
    (r"\bEdg(?:e|A|iOS)?/", "Edge"),
    (r"\bOPR/|\bOpera\b", "Opera"),
    (r"\bSamsungBrowser/", "Samsung Internet"),
    (r"\bFirefox/|\bFxiOS/", "Firefox"),
    (r"\bChrome/|\bCriOS/|\bChromium/", "Chrome"),
    (r"\bVersion/[\d.]+.*Safari/", "Safari"),
    (r"\bokhttp/", "okhttp (Android app)"),
    (r"\bDalvik/", "Android app"),
    (r"\bCFNetwork/", "iOS/macOS app"),
    (r"^curl/", "curl"),
    (r"^Wget/", "Wget"),
    (r"python-httpx|python-requests|Python-urllib|aiohttp", "Python"),
    (r"\bRoku\b|\bTizen\b|\bWebOS\b|SMART-TV|SmartTV|\bBRAVIA\b|AppleTV|\bAFT[A-Z]", "Smart TV"),
]
OS_PATTERNS: list[tuple[str, str]] = [
    (r"\bAndroid\b|\bDalvik/", "Android"),
    (r"\biPhone\b|\biPad\b|\biOS\b|CPU (?:iPhone )?OS ", "iOS"),
    (r"\bWindows\b", "Windows"),
    (r"\bMac OS X\b|\bMacintosh\b|\bDarwin/", "macOS"),
    (r"\bCrOS\b", "ChromeOS"),
    (r"\bTizen\b|\bWebOS\b|\bRoku\b", "TV OS"),
    (r"\bLinux\b|\bX11\b", "Linux"),
]
_CLIENTS = [(re.compile(p), name) for p, name in CLIENT_PATTERNS]
_OSES = [(re.compile(p), name) for p, name in OS_PATTERNS]


@lru_cache(maxsize=4096)
def families(user_agent: str) -> tuple[str, str | None]:
    """``Mozilla/5.0 (X11; Linux x86_64) … Firefox/128.0`` → ``("Firefox", "Linux")``."""
    client = next((name for rx, name in _CLIENTS if rx.search(user_agent)), None)
    if client is None:
        client = user_agent.split("/", 1)[0].split(" ", 1)[0][:40] or "unknown"
    os_family = next((name for rx, name in _OSES if rx.search(user_agent)), None)
    return client, os_family
