"""Which app sent a request: inferred from what the request itself says (pure), and app names.

Live traffic does not say which app sent it; many requests do, though:

- iOS apps' user agents start with the app: ``Instagram/312.0 CFNetwork/1494.0.7 Darwin/23.4.0``;
  Meta's in-app browsers carry ``FBAN/…`` and often the Android package as ``FBPN/…``.
- Android apps name their package in Google API headers (``X-Android-Package``), WebViews
  in ``X-Requested-With``, and SDKs in parameters (Meta Graph's
  ``application_package_name``, ad requests' ``bundle``/``msid``) of the query or body.
- Smart TVs and game consoles name their platform in the user agent (Roku, Tizen, webOS,
  PlayStation, Xbox, …): the "app" is then the platform.

What is found here is stored with ``app_source = 'inferred'``; what a capture file states
per connection (PCAPdroid, TrackerControl, App Privacy Report) is ``'reported'``.
"""

from __future__ import annotations

import json
import re
from functools import cache, lru_cache
from importlib import resources
from urllib.parse import unquote

# A bundle ID / package name: reverse-DNS, two parts or more, no '@', no spaces.
_PACKAGE = re.compile(r"[A-Za-z][\w-]*(?:\.[\w-]+)+")
# Headers whose value is the sending app's package or bundle ID.
APP_HEADERS = ("x-android-package", "x-ios-bundle-identifier", "x-requested-with")
# Query or body parameters that carry the sending app's package or bundle ID.
APP_PARAMS = (
    "application_package_name", "package_name", "packageName", "bundle_id", "bundleId",
    "bundleid", "app_bundle", "bundle", "msid", "app_id",
)  # fmt: skip
_KEYS = frozenset(p.encode() for p in APP_PARAMS)
_FRAGMENTS = (b"ackage", b"undle", b"msid", b"app_id")  # each name holds one of these
MAX_CANDIDATES = 32
# what follows a parameter's name in JSON or a form: quote, separator, the package
_AFTER_KEY = re.compile(rb"""["']?\s*[:=]\s*["']?([A-Za-z][\w-]*(?:\.[\w-]+)+)""")
_WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
MAX_BODY_SCAN = 64 * 1024  # bytes of a body searched for an app parameter
_CFNETWORK = re.compile(r"^([^/\s][^/]{0,60})/[^\s]+ CFNetwork/")
_FBPN = re.compile(r"FBPN/([\w.]+)")
_FBAN = re.compile(r"FBAN/(\w+)")
_ANDROID_APP = re.compile(r"^(Instagram|Barcelona|Threads) [\d.]+ Android \(")
# user-agent fragment → platform (TVs, consoles, streaming sticks), checked in order
PLATFORMS = (
    ("Roku", "Roku"), ("Tizen", "Samsung Smart TV (Tizen)"), ("Web0S", "LG Smart TV (webOS)"),
    ("WebOS", "LG Smart TV (webOS)"), ("PlayStation", "PlayStation"), ("Xbox", "Xbox"),
    ("Nintendo", "Nintendo console"), ("AppleTV", "Apple TV"), ("CrKey", "Chromecast"),
    ("BRAVIA", "Sony BRAVIA TV"), ("AFT", "Fire TV"), ("SMART-TV", "Smart TV"),
    ("SmartTV", "Smart TV"), ("HbbTV", "Smart TV (HbbTV)"),
)  # fmt: skip
FBAN_APPS = {"FBIOS": "com.facebook.Facebook", "MessengerForiOS": "com.facebook.Messenger",
             "FB4A": "com.facebook.katana", "Orca-Android": "com.facebook.orca"}  # fmt: skip
# CFNetwork clients that are the system, not an app
SYSTEM_CLIENTS = {"com.apple.WebKit.Networking", "nsurlsessiond", "trustd", "mobileassetd",
                  "akd", "apsd", "cloudd", "itunesstored", "appstored"}  # fmt: skip


def infer_app(
    user_agent: str | None,
    headers: tuple[tuple[str, str], ...] = (),
    query: tuple[tuple[str, str], ...] = (),
    body: bytes | None = None,
) -> str | None:
    """The app (bundle ID, package name, name or platform) a request says it came from, or None."""
    for name, value in headers:
        if name.lower() in APP_HEADERS and _PACKAGE.fullmatch(value.strip()[:200]):
            return value.strip()
    for name, value in query:
        if name in APP_PARAMS and _PACKAGE.fullmatch(value[:200]):
            return value
    if body and (found := _body_app(body[:MAX_BODY_SCAN])):
        return found
    return app_from_user_agent(user_agent) if user_agent else None


def _body_app(body: bytes) -> str | None:
    """A package after one of ``APP_PARAMS`` in a JSON or form body.

    Four ``bytes.find`` calls (C speed) for fragments every name contains; only where one
    is found is the whole word read and matched. A regex over the whole body cost about
    20 times more. At most ``MAX_CANDIDATES`` places per fragment are looked at.
    """
    for fragment in _FRAGMENTS:
        i, seen = body.find(fragment), 0
        while i != -1 and seen < MAX_CANDIDATES:
            seen += 1
            start = i
            while start > 0 and body[start - 1] in _WORD:
                start -= 1
            end = i + len(fragment)
            while end < len(body) and body[end] in _WORD:
                end += 1
            if body[start:end] in _KEYS:
                m = _AFTER_KEY.match(body, end)
                if m and len(m.group(1)) <= 200:
                    return m.group(1).decode()
            i = body.find(fragment, end)
    return None


@lru_cache(maxsize=4096)
def app_from_user_agent(user_agent: str) -> str | None:
    if m := _FBPN.search(user_agent):
        return m.group(1)
    if (m := _FBAN.search(user_agent)) and m.group(1) in FBAN_APPS:
        return FBAN_APPS[m.group(1)]
    if m := _CFNETWORK.match(user_agent):
        client = unquote(m.group(1)).strip()
        return None if client in SYSTEM_CLIENTS else client
    if m := _ANDROID_APP.match(user_agent):
        return m.group(1)
    for fragment, platform in PLATFORMS:
        if fragment in user_agent:
            return platform
    return None


@cache
def app_names() -> dict[str, str]:
    """Bundle IDs and package names of common apps → the name people know (bundled data)."""
    text = resources.files("gazeback").joinpath("data/app-names.json").read_text("utf-8")
    return dict(json.loads(text)["apps"])


def app_name(app: str | None) -> str | None:
    """The name to show for an app: its known name, else the app as stored."""
    if not app:
        return None
    return app_names().get(app, app)
