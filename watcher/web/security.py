"""What keeps the console safe, in the standard library only (the config imports it to
validate ``web:``, without the web stack): where it may listen, password hashes, the
form token, the Host allow-list and redaction of secrets in what it shows."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import time
from collections.abc import Iterable

DEFAULT_LISTEN = "127.0.0.1:8080"


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) -> (host, port); ValueError says why not."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^\s:\[\]]+):(\d+)", value.strip())
    if match is None:
        raise ValueError(
            f"expected HOST:PORT (such as {DEFAULT_LISTEN} or [::1]:8080), got {value!r}"
        )
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range (1-65535)")
    return host, port


def is_loopback(host: str) -> bool:
    """Only this machine can reach it: localhost, 127.0.0.0/8, ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


# -- passwords: scrypt, from the standard library ---------------------------------------------

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_SCRYPT_MAX_N = 2**20  # a stored hash must not make one login cost gigabytes


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$SALT$HASH`` (base64), for ``web.auth.users`` (watcher web --hash-password)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.b64encode
    n, r, p = _SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"]
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def _parts(stored: str) -> tuple[int, int, int, bytes, bytes]:
    kind, n, r, p, salt, digest = stored.split("$")
    if kind != "scrypt":
        raise ValueError(kind)
    found = int(n), int(r), int(p), base64.b64decode(salt, validate=True)
    return (*found, base64.b64decode(digest, validate=True))


def hash_problem(stored: str) -> str | None:
    """Why ``stored`` is not a password hash this console takes, or None."""
    try:
        n, r, p, salt, digest = _parts(stored)
    except (ValueError, TypeError):
        return "not a password hash: make one with `watcher web --hash-password`"
    if n < 2 or n & (n - 1) or n > _SCRYPT_MAX_N or not 0 < r <= 32 or not 0 < p <= 16:
        return "scrypt parameters out of range: make one with `watcher web --hash-password`"
    if len(salt) < 8 or len(digest) < 16:
        return "salt or hash too short: make one with `watcher web --hash-password`"
    return None


def verify_password(password: str, stored: str) -> bool:
    try:
        n, r, p, salt, digest = _parts(stored)
        found = hashlib.scrypt(
            password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(digest), maxmem=2**27
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, digest)


# -- the tester's form token ------------------------------------------------------------------


class FormTokens:
    """Tokens that prove a form came from this console: an HMAC, under a secret made at
    start (so a restart voids them), of the time it was issued; good for ``lifetime``."""

    def __init__(self, lifetime: float = 12 * 3600) -> None:
        self._secret = secrets.token_bytes(32)
        self.lifetime = lifetime

    def _mac(self, issued: str) -> str:
        return hmac.new(self._secret, f"tester:{issued}".encode(), hashlib.sha256).hexdigest()

    def issue(self) -> str:
        issued = str(int(time.time()))
        return f"{issued}.{self._mac(issued)}"

    def valid(self, token: str) -> bool:
        issued, _, mac = token.partition(".")
        if not issued.isdigit() or not hmac.compare_digest(mac, self._mac(issued)):
            return False
        return 0 <= time.time() - int(issued) <= self.lifetime


# -- Host allow-list (against DNS rebinding) --------------------------------------------------


def allowed_hosts(host: str, port: int, names: Iterable[str]) -> frozenset[str]:
    """The Host header values the console answers: the address it listens on (and
    localhost for a loopback one), each with and without the port, and the configured
    names (a reverse proxy's), as given or with the port."""
    hosts = {host.lower()}
    if is_loopback(host):
        hosts |= {"localhost", "127.0.0.1", "::1"}
    if host in ("0.0.0.0", "::"):  # every address: only the configured names and loopback
        hosts = {"localhost", "127.0.0.1", "::1"}
    out: set[str] = set()
    for h in hosts:
        shown = f"[{h}]" if ":" in h else h
        out |= {shown, f"{shown}:{port}"}
    for name in names:
        out.add(name.lower())
        if ":" not in name:
            out.add(f"{name.lower()}:{port}")
    return frozenset(out)


# -- redaction --------------------------------------------------------------------------------
