"""Every request openveo sends to a URL someone gave it (an image URL, a webhook, the moderation
service) goes through this one guarded fetcher, so a client cannot make the server reach inside its
own network.

- The host is resolved here, and every address it resolves to must be public: loopback, private,
  link-local (cloud metadata at 169.254.169.254 included), shared, multicast, unspecified and
  reserved addresses are refused in every spelling the resolver accepts (`127.1`, `2130706433`,
  `0x7f.0.0.1`, `localhost.`, `[::ffff:127.0.0.1]`, a DNS name that resolves there ...), IPv4 inside
  IPv6 (mapped, compatible, 6to4) is unwrapped first.
- The connection goes to the address that was checked (the Host header and TLS name stay the
  URL's), so a second DNS answer cannot swap in another address.
- Redirects are followed by hand, each one checked again; sizes and time are capped.
- Every failure reads the same to the caller (`OutboundFailed`): telling "refused" from "closed port"
  from "timed out" would let a client map the inside of the deployment. The reason goes to the log.

An operator can allow internal destinations (`OPENVEO_OUTBOUND_ALLOW`: CIDR ranges and host names),
for a webhook receiver or moderation service on the private network.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger("openveo.outbound")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

NEUTRAL = "the URL could not be fetched from this server"
MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)


class OutboundFailed(Exception):
    """The request was refused or failed; the message is the same whatever the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(NEUTRAL)
        self.reason = reason  # for the log, never for the client


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


def public(address: IPAddress) -> bool:
    """Whether an address is one anybody on the internet could reach (and so may be asked for)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and int(address) >> 32 == 0:  # IPv4-compatible ::a.b.c.d (and ::, ::1)
            embedded = ipaddress.IPv4Address(int(address)) if int(address) > 1 else None
        if embedded is not None:
            return public(embedded)
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class Allowlist:
    """Internal destinations the operator allows: networks, and host names taken as they are spelled."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(_host_name(entry))
        return cls(tuple(networks), frozenset(hosts))

    def permits(self, host: str, address: IPAddress) -> bool:
        return _host_name(host) in self.hosts or any(address in network for network in self.networks)


@dataclass(frozen=True)
class Outbound:
    """The guarded fetcher. `allow` names internal destinations the operator permits."""

    allow: Allowlist = field(default_factory=Allowlist)
    timeout_s: float = 30.0

    def with_allowed(self, *hosts: str) -> Outbound:
        """The same fetcher, also allowing these hosts (the moderation service the operator named)."""
        extra = Allowlist.parse(hosts)
        allow = Allowlist(self.allow.networks + extra.networks, self.allow.hosts | extra.hosts)
        return Outbound(allow, self.timeout_s)

    def refusal(self, url: str) -> str | None:
        """Why a URL may not be used, judged without fetching it (None: it may be tried). A host that
        does not resolve now is left to the request itself."""
        try:
            parsed = _parse(url)
            self._address(parsed)
        except _Unresolved:
            return None
        except OutboundFailed as exc:
            return exc.reason
        return None

    def get(self, url: str, *, max_bytes: int) -> Answer:
        return self.request("GET", url, max_bytes=max_bytes)

    def post(
        self,
        url: str,
        *,
        content: bytes | str | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int = 1024 * 1024,
        redirects: int = MAX_REDIRECTS,
    ) -> Answer:
        return self.request(
            "POST", url, content=content, json=json, headers=headers, max_bytes=max_bytes, redirects=redirects
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | str | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int,
        redirects: int = MAX_REDIRECTS,
    ) -> Answer:
        """Send the request to a checked address, following up to `redirects` redirects (each checked
        again; 0 hands a redirect back as the answer); raises `OutboundFailed`."""
        deadline = time.monotonic() + self.timeout_s
        try:
            with httpx.Client(follow_redirects=False, trust_env=False) as client:
                for hop in range(redirects + 1):
                    parsed = _parse(url)
                    address = self._address(parsed)
                    answer, location = self._send(
                        client, method, parsed, address, content, json, headers, max_bytes, deadline
                    )
                    if location is None or hop == redirects:
                        return answer
                    url = str(parsed.join(location))
                    if answer.status == 303 or (answer.status in (301, 302) and method == "POST"):
                        method, content, json = "GET", None, None
                raise OutboundFailed(f"more than {redirects} redirects")
        except OutboundFailed as exc:
            log.warning("outbound %s %s refused or failed: %s", method, _loggable(url), exc.reason)
            raise
        except _Unresolved as exc:
            log.warning("outbound %s %s failed: %s", method, _loggable(url), exc)
            raise OutboundFailed(str(exc)) from None

    def _address(self, url: httpx.URL) -> IPAddress:
        """The one address to connect to: every address the host resolves to must be allowed."""
        host = url.raw_host.decode("ascii")  # IDNA-encoded, as the resolver wants it
        try:
            infos = socket.getaddrinfo(host, url.port or _default_port(url), type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise _Unresolved(f"{host!r} does not resolve ({exc})") from None
        # An IPv6 answer may carry a zone ("fe80::1%eth0"); the address is what comes before it.
        addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))
        if not addresses:
            raise _Unresolved(f"{host!r} does not resolve")
        for address in addresses:
            if not public(address) and not self.allow.permits(host, address):
                raise OutboundFailed(f"{host!r} resolves to {address}, which is not a public address")
        return addresses[0]

    def _send(
        self,
        client: httpx.Client,
        method: str,
        url: httpx.URL,
        address: IPAddress,
        content: bytes | str | None,
        json: Any,
        headers: Mapping[str, str] | None,
        max_bytes: int,
        deadline: float,
    ) -> tuple[Answer, str | None]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OutboundFailed("timed out")
        pinned = url.copy_with(host=str(address))
        extensions: dict[str, Any] = {}
        if url.scheme == "https":  # TLS checks the certificate against the URL's name
            extensions["sni_hostname"] = url.raw_host.decode("ascii")
        request = client.build_request(
            method,
            pinned,
            content=content,
            json=json,
            headers={**(headers or {}), "host": _host_header(url)},
            timeout=remaining,
            extensions=extensions,
        )
        try:
            response = client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise OutboundFailed(f"{type(exc).__name__}: {exc}") from None
        try:
            location = response.headers.get("location") if response.status_code in REDIRECTS else None
            body = bytearray()
            if location is None:
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise OutboundFailed(f"the answer is larger than {max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise OutboundFailed("timed out")
        except httpx.HTTPError as exc:
            raise OutboundFailed(f"{type(exc).__name__}: {exc}") from None
        finally:
            response.close()
        return Answer(response.status_code, dict(response.headers), bytes(body)), location


class _Unresolved(Exception):
    """The host name has no address (now)."""


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except Exception:
        raise OutboundFailed("not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise OutboundFailed("not an http(s) URL with a host")
    return parsed


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


def _host_header(url: httpx.URL) -> str:
    raw = url.raw_host.decode("ascii")
    host = f"[{raw}]" if ":" in raw else raw
    return host if url.port is None else f"{host}:{url.port}"


def _host_name(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _loggable(url: str) -> str:
    """The URL without its query string (which may carry a token)."""
    return url.split("?", 1)[0][:300]


def outbound_from_settings(settings: Any) -> Outbound:
    """The deployment's fetcher; `OPENVEO_OUTBOUND_ALLOW` is a comma-separated list."""
    return Outbound(Allowlist.parse(settings.outbound_allow.split(",")))
