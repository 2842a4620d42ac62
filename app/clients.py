"""Who a request is from, for the rate limits: the socket's address by default.

X-Forwarded-For is anyone's to write, so it is believed only from the proxies
listed in MREMAP_VIZ_TRUSTED_PROXIES (addresses or networks, comma-separated;
empty by default): then uvicorn's ProxyHeadersMiddleware puts the first
address not of a trusted proxy, counting from the right, in the request's
client. An IPv6 client is counted by its /64, the block one subscriber holds.
"""

from __future__ import annotations

import ipaddress
import os

from starlette.requests import Request

TRUSTED_PROXIES_ENV = "MREMAP_VIZ_TRUSTED_PROXIES"
IPV6_PREFIX = 64


def trusted_proxies() -> list[str]:
    """The configured trusted proxies; none unless the operator says so."""
    return [h.strip() for h in os.environ.get(TRUSTED_PROXIES_ENV, "").split(",") if h.strip()]


def client_key(request: Request) -> str:
    """The client a request counts against: an IPv4 address, an IPv6 /64, or
    the host string an ASGI server gave (a test client's "testclient")."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)
