"""Keep secrets out of everything perfdoctor writes: the script's argv, and exception messages.

Secrets are recognised by shape and by context, not by a list of option names:

- by *context*: the value of anything whose name says it is secret, however it is written
  (``--api-key X``, ``--pass=X``, ``-p X``, ``password=X``, ``"Authorization": "Bearer X"``,
  ``Cookie: a=b; c=d``, ``aws_secret_access_key: X``, ``Pwd=X;``). A name is split into words
  (``hfToken``, ``HF_TOKEN``, ``hf-token`` are all ``hf`` + ``token``) and is secret when a word
  is one of :data:`SECRET_WORDS` (or ends in one of :data:`SECRET_SUFFIXES`), unless another
  word says the value is only about a secret (``--max-token-len``, ``--key-file``, ``KeyError``);
- in *URLs*: the password of ``scheme://user:password@host`` (and a user name that is itself a
  token), every query and fragment value (presigned URLs carry signatures and tokens under many
  names), and the path of webhook URLs (``https://hooks.slack.com/services/***``);
- by *format*: tokens whose issuers give them a recognisable shape (AWS, Google, Azure, GitHub,
  GitLab, Slack, OpenAI- and Anthropic-style ``sk-`` keys, Stripe, Hugging Face, npm, PyPI,
  JWTs, private key blocks...), wherever they appear;
- and, last, any long run of letters and digits that is random enough to be a key.

Ordinary arguments stay as they are: ``--lr 3e-4``, paths, model names, run ids, hashes.
A bare secret of no known shape given as a positional argument cannot be told from a file name
and is not masked (docs/contracts.md says so).
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

#: Words that make a name secret (``--api-key``, ``hf_token``, ``Authorization``...).
SECRET_WORDS = frozenset({
    "key", "apikey", "token", "secret", "secrets", "password", "passwd", "passphrase", "pass", "pwd",
    "auth", "authorization", "credential", "credentials", "creds", "cookie", "cookies", "sig", "signature",
    "bearer", "jwt", "sas", "webhook", "dsn", "otp", "pin",
})
#: Words run together: ``accesstoken``, ``xapikey``, ``clientsecret``, ``dbpassword``.
SECRET_SUFFIXES = ("apikey", "token", "secret", "password", "passwd", "accesskey", "secretkey", "privatekey", "authkey")
#: Names that are secret as a whole (web session cookies).
SECRET_NAMES = frozenset({"session", "sessionid", "session_id", "sid", "phpsessid", "jsessionid", "connect.sid"})
#: Words that say a name is about a secret, not the secret itself: --max-token-len, --key-file, KeyError.
NOT_SECRET_WORDS = frozenset({
    "error", "errors", "exception", "warning", "type", "types", "kind", "size", "length", "len", "max", "min",
    "num", "number", "count", "limit", "dim", "dims", "file", "path", "dir", "name", "names", "id", "ids",
    "format", "fn", "func", "column", "col", "field", "index", "idx", "prefix", "suffix", "env", "var",
    "frame", "frames", "stride", "padding", "embed", "embedding", "vocab", "budget", "bits", "map",
})
#: Short options whose value is a secret by common convention (mysql -p, many CLIs).
SECRET_SHORT_OPTIONS = frozenset({"-p"})

# Known token formats, after the published formats and the rule sets of gitleaks and detect-secrets.
# Each is (what it is, pattern); the whole match is masked.
TOKEN_FORMATS: tuple[tuple[str, str], ...] = (
    ("private key block", r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|\Z)"),
    ("AWS access key id", r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA|A3T[A-Z0-9])[A-Z0-9]{16}\b"),
    ("Google API key", r"\bAIza[0-9A-Za-z_-]{35}"),
    ("Google OAuth access token", r"\bya29\.[0-9A-Za-z_-]{20,}"),
    ("Google OAuth client secret", r"\bGOCSPX-[0-9A-Za-z_-]{20,}"),
    ("Azure AD client secret", r"(?<![A-Za-z0-9_~.])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}"),
    ("GitHub token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),
    ("GitLab token", r"\bgl(?:pat|dt|ptt|rt|cbt|oas)-[A-Za-z0-9_-]{20,}"),
    ("Slack token", r"\bxox[abposre]-[A-Za-z0-9-]{10,}|\bxapp-\d-[A-Za-z0-9-]{10,}"),
    ("OpenAI/Anthropic-style key", r"\bsk-(?:[a-z0-9]+-){0,2}[A-Za-z0-9_-]{20,}"),
    ("Stripe-style key", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"),
    ("Hugging Face token", r"\bhf_[A-Za-z0-9]{30,}"),
    ("npm token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    ("PyPI token", r"\bpypi-AgE[A-Za-z0-9_-]{50,}"),
    ("Databricks token", r"\bdapi[0-9a-f]{32}\b"),
    ("Replicate token", r"\br8_[A-Za-z0-9]{30,}"),
    ("Groq key", r"\bgsk_[A-Za-z0-9]{40,}"),
    ("SendGrid key", r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"),
    ("Telegram bot token", r"\b\d{8,10}:AA[A-Za-z0-9_-]{30,}"),
    ("JWT", r"\beyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*"),
)
_FORMATS = re.compile("|".join(f"(?:{pattern})" for _, pattern in TOKEN_FORMATS), re.DOTALL)
# Formats whose prefix is an ordinary word: the rest must look random before it is masked.
_LOOSE_PREFIXES = ("sk-",)

_URL = re.compile(r"\b[a-z][a-z0-9+.-]{1,30}://[^\s\"'<>`]+", re.IGNORECASE)
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_NAME = r"[A-Za-z_][A-Za-z0-9_.-]*"
_SCHEME = r"(?:Bearer|Basic|Token|Digest|Bot|Negotiate|NTLM|AWS4-HMAC-SHA256|Key)\s+"
# Where a named value starts: name [quote] (= | : | =>), the name not inside a longer word.
_NAMED = re.compile(rf"(?<![A-Za-z0-9_.-])(?P<q>[\"']?)(?P<name>{_NAME})(?P=q)\s*(?:=>|[:=])\s*")
# A named value: a quoted string, or an optional auth scheme and a word.
_VALUE = re.compile(rf"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|(?:{_SCHEME})?[^\s,;&'\"(){{}}\[\]<>]+")
# --name value, in free text (a command line quoted inside an error message).
_OPTION_NAMED = re.compile(rf"(?<![\w-])(?P<name>--{_NAME})(?:\s+|=)")
_OPTION_VALUE = re.compile(r"[^\s'\"]+")
# Everything after "Cookie:" to the end of the line or the closing quote (cookies are lists).
_COOKIE = re.compile(r"(?P<head>\b(?:set-)?cookies?[\"']?\s*[:=]\s*)(?P<q>[\"']?)(?P<value>[^\r\n\"']+)", re.IGNORECASE)
_BEARER = re.compile(r"\b(?P<head>Bearer\s+)(?P<value>[A-Za-z0-9._~+/=-]+)")
_RANDOM_RUN = re.compile(r"[A-Za-z0-9+/_=-]{20,}")
_LONG_OPTION_LIKE = re.compile(r"^--[A-Za-z][\w.-]*(=.*)?$")  # a value may start with a single dash

RANDOM_MIN_CHARS = 20  # letters and digits in a run before it can be taken for a key
RANDOM_MIN_PIECE = 7  # mean length of the pieces between separators (names join short words)
RANDOM_MIN_SWITCHES = 0.4  # share of neighbours of different classes (random base62: ~0.62)
_SEPARATORS = re.compile(r"[-_/+=.~]")


def name_words(name: str) -> list[str]:
    """`--hfToken`, `HF_TOKEN`, `hf-token` -> ["hf", "token"]."""
    return [word.lower() for word in _WORDS.findall(name)]


def is_secret_name(name: str) -> bool:
    """Whether the value of an option, key or header with this name is a secret."""
    bare = name.lstrip("-").strip("\"'").lower()
    if bare in SECRET_NAMES:
        return True
    words = name_words(name)
    if not words or any(word in NOT_SECRET_WORDS for word in words):
        return False
    return any(word in SECRET_WORDS or word.endswith(SECRET_SUFFIXES) for word in words)


def looks_random(text: str, min_chars: int = RANDOM_MIN_CHARS) -> bool:
    """Whether text looks generated rather than named: at least min_chars letters and digits, of
    both cases and digits, switching between those classes often (words and CamelCase names
    switch rarely), in long runs between separators (names are short words joined by - _ / .).
    Catches ~98% of random 32-character base64 strings and ~99% of base62 ones (fewer when
    shorter); misses those without upper-case letters or digits (hex), which only a name around
    them can reveal."""
    pieces = [piece for piece in _SEPARATORS.split(text) if piece]
    chars = "".join(pieces)
    if len(chars) < min_chars or len(chars) / max(1, len(pieces)) < RANDOM_MIN_PIECE:
        return False
    if not (any(c.isupper() for c in chars) and any(c.islower() for c in chars) and any(c.isdigit() for c in chars)):
        return False
    classes = [0 if c.isdigit() else 1 if c.isupper() else 2 for c in chars]
    switches = sum(a != b for a, b in zip(classes, classes[1:]))
    return switches / (len(classes) - 1) >= RANDOM_MIN_SWITCHES


def redact_text(text: str) -> str:
    """Free text (an exception message, a header, one argument) with every secret in it masked."""
    if not text:
        return text
    text = _FORMATS.sub(_mask_format, text)
    text = _URL.sub(lambda m: _redact_url(m.group()), text)
    text = _COOKIE.sub(lambda m: f"{m['head']}{m['q']}{MASK}", text)
    text = _mask_named_values(text, _NAMED, _VALUE)
    text = _mask_named_values(text, _OPTION_NAMED, _OPTION_VALUE)
    text = _BEARER.sub(lambda m: f"{m['head']}{MASK}", text)
    return _RANDOM_RUN.sub(lambda m: MASK if looks_random(m.group()) else m.group(), text)


def redact_error(error: Any) -> Any:
    """A stored error ({"type", "message"}, or text) with its text redacted; other values as given."""
    if isinstance(error, str):
        return redact_text(error)
    if isinstance(error, dict):
        return {key: redact_text(value) if isinstance(value, str) else value for key, value in error.items()}
    return error


def redact_argv(argv: list[str]) -> list[str]:
    """A command line with every secret masked: values of secret options (`--api-key X`,
    `--token=X`, `-p X`) whole, and secrets inside any other argument (see redact_text)."""
    redacted: list[str] = []
    mask_next = False
    for arg in argv:
        if mask_next:
            mask_next = False
            if not _LONG_OPTION_LIKE.match(arg):  # `--token --epochs 3`: the option was a flag after all
                redacted.append(MASK)
                continue
        if arg.startswith("-") and arg != "-" and arg != "--":
            option, eq, value = arg.partition("=")
            if option in SECRET_SHORT_OPTIONS or (option.startswith("--") and is_secret_name(option)):
                if eq:
                    redacted.append(f"{option}={MASK}")
                else:
                    redacted.append(arg)
                    mask_next = True
                continue
            if eq:
                redacted.append(f"{option}={redact_text(value)}")
                continue
        redacted.append(redact_text(arg))
    return redacted


def _mask_format(match: re.Match[str]) -> str:
    found = match.group()
    if found.startswith(_LOOSE_PREFIXES) and not looks_random(found[3:], 16):
        return found  # `sk-learn-...`: a word, not a key
    return MASK


def _mask_named_values(text: str, names: re.Pattern[str], values: re.Pattern[str]) -> str:
    """Mask the value after each secret name; a name that is not secret consumes nothing, so
    `Unauthorized: Authorization: Basic X` still finds the second name."""
    out: list[str] = []
    pos = 0
    for name in names.finditer(text):
        if name.start() < pos or not is_secret_name(name["name"]):
            continue
        value = values.match(text, name.end())
        if value is None or value.group().lstrip("\"'").startswith(MASK):  # masked already (a URL password)
            continue
        found = value.group()
        quote = found[0] if len(found) > 1 and found[0] in "'\"" and found[-1] == found[0] else ""
        out += [text[pos:name.end()], quote, MASK, quote]
        pos = value.end()
    out.append(text[pos:])
    return "".join(out)


def _redact_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if not slash:  # no path: the query or fragment may follow the host directly
        for mark in "?#":
            if mark in authority:
                authority, _, tail = authority.partition(mark)
                path, slash = mark + tail, ""
                break
    userinfo, at, host = authority.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        if colon:
            userinfo = f"{user}:{MASK}"
        elif len(user) >= 16 and (looks_random(user, 16) or (any(c.isdigit() for c in user) and any(c.isalpha() for c in user))):
            userinfo = MASK
        authority = f"{userinfo}@{host}"
    path = _redact_url_path(host, slash + path)
    return f"{scheme}://{authority}{path}"


def _redact_url_path(host: str, path: str) -> str:
    """Webhook paths are credentials; so are query and fragment values."""
    route, mark, tail = _split_first(path, "?#")
    segments = route.split("/")
    for index, segment in enumerate(segments):
        if "hook" in segment.lower() and index + 1 < len(segments) and any(segments[index + 1:]):
            route = "/".join(segments[: index + 1] + [MASK])
            break
    else:
        if "hook" in host.lower() and len(segments) > 1 and any(segments[1:]):
            keep = 2 if len(segments) > 2 and segments[1].isalpha() else 1  # /services/***
            route = "/".join(segments[:keep] + [MASK])
    if mark:
        tail = re.sub(r"(?P<key>[^&=#?]+)=(?P<value>[^&#]*)", _mask_query_value, tail)
    return route + mark + tail


def _mask_query_value(match: re.Match[str]) -> str:
    return f"{match['key']}={MASK}" if match["value"] else match.group()


def _split_first(text: str, marks: str) -> tuple[str, str, str]:
    positions = [i for i in (text.find(mark) for mark in marks) if i >= 0]
    if not positions:
        return text, "", ""
    at = min(positions)
    return text[:at], text[at], text[at + 1:]

