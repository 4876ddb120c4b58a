"""User-agent → (client family, OS family), by ua-parser (uap-core's patterns) (pure).

uap-core knows browsers, operating systems and many apps and libraries (okhttp, CFNetwork
apps such as Instagram, Roku, curl). For the rest it says "Other": then the client is the
user agent's first product name (``MyApp/1.2 …`` → ``MyApp``) and the OS is unknown.
"""

from __future__ import annotations

from functools import lru_cache

from ua_parser import parse


@lru_cache(maxsize=4096)
def families(user_agent: str) -> tuple[str, str | None]:
    """``Mozilla/5.0 (X11; Linux x86_64) … Firefox/128.0`` → ``("Firefox", "Linux")``."""
    parsed = parse(user_agent)
    client = parsed.user_agent.family if parsed.user_agent else None
    os_family = parsed.os.family if parsed.os else None
    if not client or client == "Other":
        client = user_agent.split("/", 1)[0].split(" ", 1)[0][:40] or "unknown"
    if os_family == "Other":
        os_family = None
    return client, os_family
