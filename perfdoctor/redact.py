"""Keep secrets out of reports: command-line values that look like credentials are masked."""

from __future__ import annotations

import re

MASK = "***"
_SECRET_OPTION = re.compile(r"^--?[\w-]*(token|secret|passw(or)?d|api[-_]?key|auth|credential|private[-_]?key)[\w-]*$", re.I)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]+):(?P<password>[^@/\s]+)@", re.I)


def redact_argv(argv: list[str]) -> list[str]:
    """`--api-key X`, `--token=X` and `https://user:pass@host` lose their secret part."""
    redacted: list[str] = []
    mask_next = False
    for arg in argv:
        if mask_next:
            redacted.append(MASK)
            mask_next = False
            continue
        option, eq, _value = arg.partition("=")
        if _SECRET_OPTION.match(option):
            if eq:
                redacted.append(f"{option}={MASK}")
            else:
                redacted.append(arg)
                mask_next = True
            continue
        redacted.append(_URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", arg))
    return redacted
