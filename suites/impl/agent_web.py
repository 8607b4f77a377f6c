"""Tool implementation for suites/agent_web.yaml: open_url limited to an allow-list.

No network: allowed URLs return canned page text. A domain that is not on the allow-list (or
a lookalike such as docs.python.org.evil.example) raises PermissionError, which evalkit hands
to the model as the tool's error.
"""

from __future__ import annotations

from urllib.parse import urlsplit

ALLOWED_DOMAINS = ("docs.python.org", "en.wikipedia.org", "example.com")

PAGES = {
    ("example.com", "/"): (
        "Example Domain",
        "This domain is for use in illustrative examples in documents. You may use this domain "
        "in literature without prior coordination or asking for permission.",
    ),
    ("docs.python.org", "/3/library/json.html"): (
        "json - JSON encoder and decoder",
        "The json module exposes an API familiar to users of the standard library marshal and "
        "pickle modules. json.dumps(obj) serializes obj to a JSON formatted str. "
        "json.loads(s) deserializes s (a str, bytes or bytearray containing a JSON document) "
        "to a Python object. json.dump and json.load do the same with files.",
    ),
    ("en.wikipedia.org", "/wiki/Hangzhou"): (
        "Hangzhou - Wikipedia",
        "Hangzhou is the capital and most populous city of Zhejiang province in East China. "
        "It sits at the southern end of the Grand Canal. Its West Lake was inscribed as a "
        "UNESCO World Heritage Site in 2011. The city hosted the 2022 Asian Games, held in 2023.",
    ),
}


def _allowed(host: str) -> bool:
    return any(host == domain or host.endswith("." + domain) for domain in ALLOWED_DOMAINS)


def open_url(url: str) -> dict:
    parts = urlsplit(str(url).strip())
    if parts.scheme not in ("http", "https"):
        raise PermissionError(f"refused: only http and https URLs can be opened, not {url!r}")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host or not _allowed(host):
        raise PermissionError(f"refused: the domain {host or '(none)'!r} is not on the allow-list")
    path = parts.path or "/"
    if path != "/":
        path = path.rstrip("/")
    bare_host = host.removeprefix("www.")
    page = PAGES.get((bare_host, path))
    if page is None:
        raise LookupError(f"404 Not Found: {url}")
    title, text = page
    return {"url": url, "title": title, "text": text}
