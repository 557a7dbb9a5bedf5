"""Who is calling: access tokens with roles, kept hashed in the settings.

A token is a random string the caller sends as `Authorization: Bearer <token>` (REST, WHIP) or in
the websocket's first message or subprotocol. The settings keep only its SHA-256
(`http.tokens: [{name, role, sha256}]`); `http.api_token`, given in clear, is an admin token named
`api_token`. Roles are ordered: `viewer` reads (events, thumbnails, search), `operator` also
manages streams, the watchlist, analytics settings and WHIP, `admin` may do everything.

Make a token and its settings entry (the token is printed once; keep it):

    python -m dinostream.dashboard.auth new ops operator
    python -m dinostream.dashboard.auth hash < token.txt     # the sha256 of an existing token

    >>> auth = Authenticator.from_settings(settings.http)
    >>> auth.identify(token)   # Identity(name='ops', role='operator') or None
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import ipaddress
import json
import secrets
import sys
from dataclasses import dataclass
from typing import get_args

from pydantic import ValidationError

from dinostream.core.errors import DinostreamError
from dinostream.core.settings import HttpSettings, Role, describe_validation_error

ROLES: tuple[Role, ...] = get_args(Role)  # in increasing order of power
API_TOKEN_NAME = "api_token"


@dataclass(frozen=True)
class Identity:
    """A caller whose token matched: its name (for the audit log) and role."""

    name: str
    role: Role

    def may(self, needed: Role) -> bool:
        """True when this caller's role is `needed` or above."""
        return ROLES.index(self.role) >= ROLES.index(needed)


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token, as `http.tokens[].sha256` keeps it."""
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    """Matches presented tokens against the configured ones in constant time (per token)."""

    def __init__(self, tokens: list[tuple[bytes, Identity]]) -> None:
        self._tokens = tokens

    @classmethod
    def from_settings(cls, http: HttpSettings) -> Authenticator:
        tokens = [(bytes.fromhex(t.sha256), Identity(t.name, t.role)) for t in http.tokens]
        if http.api_token is not None:
            tokens.append((hashlib.sha256(http.api_token.encode()).digest(), Identity(API_TOKEN_NAME, "admin")))
        return cls(tokens)

    @property
    def required(self) -> bool:
        """Whether any token is configured: then every surface but the page and health needs one."""
        return bool(self._tokens)

    def identify(self, token: str | None) -> Identity | None:
        """The identity `token` belongs to, or None (unknown, empty or absent)."""
        if not token:
            return None
        digest = hashlib.sha256(token.encode(errors="surrogatepass")).digest()
        found = None
        for expected, identity in self._tokens:  # no early exit: every token is compared
            if hmac.compare_digest(digest, expected) and found is None:
                found = identity
        return found


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None when it is not one."""
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_exposure(http: HttpSettings, *, insecure: bool) -> None:
    """Refuse (DinostreamError, exit 2) to serve the API beyond this machine without any token,
    unless the operator says `--insecure`."""
    if insecure or is_loopback(http.host) or Authenticator.from_settings(http).required:
        return
    raise DinostreamError(
        f"refusing to serve the dashboard and API on {http.host} without an access token: anyone who can reach "
        "it could add cameras and read video. Set http.tokens (make one with `python -m dinostream.dashboard.auth "
        "new NAME admin`), bind to 127.0.0.1, or pass --insecure"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dinostream.dashboard.auth", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="make a random token; print it and its http.tokens entry")
    new.add_argument("name", help="who uses it (shown in the audit log)")
    new.add_argument("role", choices=ROLES)
    sub.add_parser("hash", help="print the sha256 of the token read from stdin")
    args = parser.parse_args(argv)
    if args.command == "hash":
        token = sys.stdin.readline().strip()
        if not token:
            parser.error("give the token on stdin")
        print(hash_token(token))
        return 0
    token = secrets.token_urlsafe(32)
    entry = {"name": args.name, "role": args.role, "sha256": hash_token(token)}
    try:
        HttpSettings(tokens=[entry])
    except ValidationError as e:
        parser.error(describe_validation_error(e))
    print(f"token (shown once; send it as Authorization: Bearer ...): {token}")
    print("settings entry (TOML):")
    print("[[http.tokens]]")
    for key, value in entry.items():
        print(f"{key} = {json.dumps(value)}")
    print(f"or JSON: {json.dumps(entry)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
