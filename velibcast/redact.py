"""Credentials never reach a record or a log: `scheme://user:secret@host` loses its userinfo.

Config validation keeps credentials out of `store.s3` keys, but a URL can still carry them
(`endpoint_url: http://KEY:SECRET@host`, botocore echoing that URL in an error). Every
record goes through run_records.dumps and every storage error through here.
"""

from __future__ import annotations

import re

# userinfo: `user:password@`, the password running to the next "@" whatever it holds, because AWS
# secrets and session tokens hold "/", "+" and "=" (a URL that should percent-encode them rarely
# does); without a ":", a name up to an "@" before the first "/", so `s3://bucket/key@v` is a path.
# A URL with a port and an "@" later in its path loses its host as well: too much is the safe side.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)"
                       r"(?P<userinfo>[^/@\s\"'<>:]*:[^@\s\"'<>]*|[^/@\s\"'<>]+)@")
MASK = "***"


def redact_text(text: str) -> str:
    return _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
