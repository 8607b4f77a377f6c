"""How evalkit reaches the user's server: the API key and extra HTTP headers every request
carries, and scrubbing their values out of any text evalkit shows or keeps.

The key is taken from `--api-key`, else `EVALKIT_API_KEY`, else `OPENAI_API_KEY` (a config
file's option names its own variable instead). It lives only in this object, in memory: run
headers record that a key was sent and the names of the extra headers, never their values.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from .errors import EvalkitError

KEY_VARIABLES = ("EVALKIT_API_KEY", "OPENAI_API_KEY")
# What a scrubbed secret reads as in error text.
HIDDEN = "[hidden]"


def key_from_environment(variable: str | None = None) -> str | None:
    """The key in `variable` when named (a config option's `api_key_env`), else the usual ones."""
    if variable:
        value = os.environ.get(variable)
        if not value:
            raise EvalkitError(f"${variable} (api_key_env) is not set; export it with the server's key")
        return value
    return next((os.environ[v] for v in KEY_VARIABLES if os.environ.get(v)), None)


@dataclass(frozen=True)
class Access:
    # repr=False: a RunOptions shown in a log or a traceback shows neither.
    api_key: str | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # --header / a config option's headers

    def chat_headers(self) -> dict[str, str]:
        """The headers of a chat request: the extra ones, then the key (the key wins a clash)."""
        out = dict(self.headers)
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
        return out

    def secrets(self) -> list[str]:
        return [s for s in (self.api_key, *self.headers.values()) if s and len(s) >= 4]

    def scrub(self, text: str) -> str:
        """`text` with the key and header values replaced: a server may echo what it refused."""
        for secret in self.secrets():
            text = text.replace(secret, HIDDEN)
        return text

    def header_names(self) -> list[str] | None:
        return sorted(self.headers) or None

    def headers_digest(self) -> str | None:
        """What the headers add to a cache key: a digest, so the cache holds no value."""
        if not self.headers:
            return None
        blob = json.dumps(sorted((k.lower(), v) for k, v in self.headers.items()))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def refusal(base_url: str, detail: str, keyed: bool) -> str:
    """The one line for a server that refused evalkit's credentials (HTTP 401/403)."""
    what = ("check the key given by --api-key, $EVALKIT_API_KEY or $OPENAI_API_KEY (or the config's api_key_env)"
            if keyed else "it wants an API key: pass --api-key KEY or set EVALKIT_API_KEY")
    return f"{base_url} refused evalkit's request ({detail}); {what}; nothing was run"


def parse_header(text: str) -> tuple[str, str]:
    """`--header 'Name: value'` (argparse type)."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name or any(c.isspace() for c in name):
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {_redacted(text)!r}")
    if name.lower() == "authorization":
        raise argparse.ArgumentTypeError("the key goes in --api-key (or EVALKIT_API_KEY), not --header")
    return name, value


def _redacted(text: str) -> str:
    # The value may be a secret: a bad header is named by what comes before its value.
    return text.split(":", 1)[0][:40] + (": ..." if ":" in text else "")


# Request fields evalkit itself sets from the case and the format: an extra body may not replace them.
RESERVED_BODY_KEYS = ("model", "messages", "tools", "stream", "stream_options")


def reserved_body_keys(body: dict[str, Any]) -> list[str]:
    return [k for k in RESERVED_BODY_KEYS if k in body]


def parse_extra_body(text: str) -> dict[str, Any]:
    """`--extra-body JSON` (argparse type): a JSON object merged into every chat request."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object, e.g. '{\"top_k\": 20}'")
    reserved = reserved_body_keys(value)
    if reserved:
        raise argparse.ArgumentTypeError(f"{reserved[0]!r} is set by evalkit for every request; leave it out")
    return value
