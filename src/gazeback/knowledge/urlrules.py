"""EasyPrivacy / EasyList URL rules through Brave's adblock-rust engine (PyPI ``adblock``).

Only the rules that are not plain ``||host^`` anchors live here: those are already in the
host index, which is also the fallback when the ``adblock`` binding is not installed.
Engines are built lazily (about 20 ms each) so loading the index stays fast.
"""

from __future__ import annotations

from typing import Any

adblock: Any
try:  # optional: without it, URL-path rules are skipped and host rules still apply
    import adblock
except ImportError:  # pragma: no cover - exercised only where the wheel is missing
    adblock = None

# Which category a URL-rule hit implies, per list.
LIST_CATEGORY = {"easyprivacy": "analytics", "easylist": "advertising"}
# Request types adblock-rust understands; anything else is checked as "other".
REQUEST_TYPES = frozenset(
    {"script", "image", "stylesheet", "xmlhttprequest", "ping", "sub_frame", "media", "font"}
)


class UrlRules:
    """Checks full URLs against the lists' URL rules, in list order (EasyPrivacy first)."""

    def __init__(self, rules: dict[str, list[str]]) -> None:
        self._rules = {s: rules[s] for s in LIST_CATEGORY if s in rules}
        self._engines: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"_rules": self._rules, "_engines": {}}  # engines are rebuilt when first used

    @property
    def available(self) -> bool:
        """Whether the adblock engine is installed."""
        return adblock is not None

    def _engine(self, source: str) -> Any:
        engine = self._engines.get(source)
        if engine is None:
            filters = adblock.FilterSet()
            filters.add_filters(self._rules[source])
            engine = self._engines[source] = adblock.Engine(filters, optimize=True)
        return engine

    def check(self, url: str, page_url: str = "", request_type: str = "other") -> str | None:
        """The list whose rule matches ``url`` (``"easyprivacy"``/``"easylist"``), or None.

        :param page_url: the page the request came from; rules marked ``$third-party``
            only match when it is known and on another site.
        """
        if adblock is None:
            return None
        rtype = request_type if request_type in REQUEST_TYPES else "other"
        for source in self._rules:
            try:
                matched = self._engine(source).check_network_urls(url, page_url, rtype).matched
            except ValueError:  # the engine could not parse the URL: no rule can match it
                return None
            if matched:
                return source
        return None
