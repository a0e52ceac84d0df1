"""Credentials never reach a record or a log: `scheme://user:secret@host` loses its userinfo.

Config validation keeps credentials out of `store.s3` keys, but a URL can still carry them
(`endpoint_url: http://KEY:SECRET@host`, botocore echoing that URL in an error). Every
record goes through run_records.dumps and every storage error through here.
"""

from __future__ import annotations

import re

# userinfo = anything up to an "@" that comes before the first "/" of the authority
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\s\"'<>]+)@")
MASK = "***"


def redact_text(text: str) -> str:
    return _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
