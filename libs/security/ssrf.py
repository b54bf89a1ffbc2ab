"""SSRF guard: outgoing HTTP only to public addresses, unless configuration allows more.

A URL is refused when its host is, or resolves to, a loopback, link-local, private, shared,
reserved, unspecified or multicast address, or a cloud metadata endpoint (169.254.169.254,
fd00:ec2::254, metadata.google.internal). Hosts are read the way the HTTP client and the
resolver read them, so encoded forms are caught: decimal, hex and octal IPv4 (``2130706433``,
``0x7f.1``, ``0177.0.0.1``), IPv4-mapped and NAT64 IPv6, trailing dots; URLs carrying
credentials (``http://good@evil/``) or backslashes are refused outright.

``RELAI_SSRF_ALLOW`` (a JSON list of host names and IP networks, e.g.
``["127.0.0.1", "10.0.0.0/8", "llm.internal"]``) lets through what a deployment really uses,
such as a model server on the local network.

Two ways in:

- :func:`check_url` validates a URL an admin configures (a handler's ``params.base_url``):
  the literal host, then every address its name resolves to.
- :func:`guarded_client` (or :class:`GuardedTransport`) is the HTTP client for calls to
  providers. It checks the address at connect time, after resolution, and connects to that
  very address (a name that resolves elsewhere by then, DNS rebinding, changes nothing), and it
  refuses redirects instead of following them::

      policy = UrlPolicy.from_allow(settings.ssrf_allow)
      async with guarded_client(policy, timeout=30) as client:
          response = await client.post(f"{base_url}/v1/chat/completions", json=body)

  A refused connection raises ``httpx.ConnectError``; a redirect raises
  :class:`RedirectRefused` (an ``httpx.RequestError``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "localhost"}
)
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("169.254.170.2"),
        ipaddress.ip_address("fd00:ec2::254"),
        ipaddress.ip_address("100.100.100.200"),
    }
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_SPELLINGS = (
    # IPv4-compatible (``::127.0.0.1``, deprecated by RFC 4291), SIIT-translated
    # (``::ffff:0:127.0.0.1``) and local-use NAT64 (``64:ff9b:1::/48``) addresses: ways to write
    # an IPv4 address that no public service is reached by, and that some stacks route to it.
    (ipaddress.ip_network("::/96"), "an IPv4-compatible IPv6 address"),
    (ipaddress.ip_network("::ffff:0:0:0/96"), "an IPv4-translated IPv6 address"),
    (ipaddress.ip_network("64:ff9b:1::/48"), "a local-use NAT64 address"),
    (ipaddress.ip_network("::/8"), "a reserved IPv6 address"),
)


class UnsafeUrlError(ValueError):
    """The URL points where Relai must not connect; the message says why."""


class RedirectRefused(httpx.RequestError):
    """The server answered with a redirect, which the guarded client does not follow."""


class BlockedConnection(httpcore.ConnectError):
    """A connection refused by the guard (seen by httpx callers as ``httpx.ConnectError``)."""


@dataclass(frozen=True)
class UrlPolicy:
    """What may be reached beyond the public internet: host names and IP networks."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def from_allow(cls, allow: Iterable[str]) -> UrlPolicy:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in allow:
            entry = entry.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(normalize_host(entry))
        return cls(hosts=frozenset(hosts), networks=tuple(networks))

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


def normalize_host(host: str) -> str:
    """Lower case, without brackets or trailing dots (``LOCALHOST.`` is ``localhost``)."""
    return host.strip("[]").rstrip(".").lower()


def parse_address(host: str) -> IPAddress | None:
    """The address ``host`` denotes, read as the C resolver reads it (so ``2130706433``,
    ``0x7f.1`` and ``0177.0.0.1`` are 127.0.0.1), or None for a name."""
    host = normalize_host(host)
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefx." for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _is_local_name(host: str) -> bool:
    return host in METADATA_HOSTS or host.endswith(".localhost")


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    return None


def address_problem(address: IPAddress) -> str | None:
    """Why ``address`` must not be reached, or None when it is a public address."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        problem = address_problem(inner)
        return f"{problem} (embedded in {address})" if problem else None
    if isinstance(address, ipaddress.IPv6Address) and not (
        address.is_loopback or address.is_unspecified
    ):
        for network, kind in _IPV4_SPELLINGS:
            if address in network:
                return f"{address} is {kind}"
    if address in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata address"
    for kind, flag in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
    ):
        if flag:
            article = "an" if kind[0] in "aeiou" else "a"
            return f"{address} is {article} {kind} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def _check_address(address: IPAddress, policy: UrlPolicy) -> None:
    if policy.allows_address(address):
        return
    problem = address_problem(address)
    if problem:
        raise UnsafeUrlError(f"{problem}; allow it with RELAI_SSRF_ALLOW if it is meant")


def check_url_syntax(url: str, policy: UrlPolicy) -> tuple[str, IPAddress | None]:
    """Check what can be checked without DNS; return the normalized host and its address when
    it is a literal one."""
    if "\\" in url or any(ord(c) < 0x21 for c in url):
        raise UnsafeUrlError("the URL contains backslashes, spaces or control characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UnsafeUrlError(f"not a valid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise UnsafeUrlError("only http and https URLs are allowed")
    if parsed.userinfo:
        raise UnsafeUrlError("URLs with credentials (user@host) are not allowed")
    host = normalize_host(parsed.host)
    if not host:
        raise UnsafeUrlError("the URL has no host")
    if host in policy.hosts:
        return host, None
    address = parse_address(host)
    if address is not None:
        _check_address(address, policy)
        return host, address
    if _is_local_name(host):
        raise UnsafeUrlError(f"{host} is a local or cloud metadata name")
    return host, None


async def resolve(host: str, port: int | None = None) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeUrlError(f"{host} does not resolve: {exc.strerror}") from exc
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


async def check_url(url: str, policy: UrlPolicy) -> None:
    """Refuse (``UnsafeUrlError``) a URL whose host is, or resolves to, an address that
    ``policy`` does not allow."""
    host, address = check_url_syntax(url, policy)
    if address is not None or host in policy.hosts:
        return
    for resolved in await resolve(host):
        try:
            _check_address(resolved, policy)
        except UnsafeUrlError as exc:
            raise UnsafeUrlError(f"{host} resolves to {exc}") from exc


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves each host itself, checks every address, and connects to a checked one."""

    def __init__(self, policy: UrlPolicy, inner: httpcore.AsyncNetworkBackend | None = None):
        self._policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        name = normalize_host(host)
        allowed_name = name in self._policy.hosts
        try:
            address = parse_address(name)
            if address is None and not allowed_name and _is_local_name(name):
                raise UnsafeUrlError(f"{name} is a local or cloud metadata name")
            addresses = [address] if address is not None else await resolve(name, port)
            if not allowed_name:
                for candidate in addresses:
                    _check_address(candidate, self._policy)
        except UnsafeUrlError as exc:
            raise BlockedConnection(f"connection to {host} refused: {exc}") from exc
        return await self._inner.connect_tcp(
            str(addresses[0]), port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedConnection("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connections go through :class:`GuardedBackend` and
    which refuses redirects."""

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        http2: bool = False,
        limits: httpx.Limits | None = None,
        retries: int = 0,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(http2=http2, limits=limits, retries=retries)
        # The same pool httpx builds, with the guard as its network backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=http2,
            retries=retries,
            network_backend=GuardedBackend(policy),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if response.is_redirect or response.status_code in (301, 302, 303, 307, 308):
            await response.aclose()
            raise RedirectRefused(
                f"{request.url.host} answered {response.status_code} (a redirect), which is "
                "not followed",
                request=request,
            )
        return response


def guarded_client(policy: UrlPolicy, **kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that reaches only what ``policy`` allows and never redirects."""
    kwargs.pop("follow_redirects", None)
    return httpx.AsyncClient(transport=GuardedTransport(policy), follow_redirects=False, **kwargs)
