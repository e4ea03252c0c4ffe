"""What the environment says about the network, read as httpx read it: the TLS context
(certifi's CA bundle, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``) and the proxy for a URL
(``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` and ``NO_PROXY``, any case). Used by
``api/transport.py``."""

from __future__ import annotations

import base64
import os
import ssl
from urllib.parse import SplitResult, unquote, urlsplit


class ProxySettingError(Exception):
    """The proxy setting cannot be used (its text never holds the URL's credentials)."""


_TLS: ssl.SSLContext | None = None


def tls_context() -> ssl.SSLContext:
    """One verifying context per process (loading a CA bundle costs ~50 ms here)."""
    global _TLS
    if _TLS is None:
        if os.environ.get("SSL_CERT_FILE"):
            _TLS = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
        elif os.environ.get("SSL_CERT_DIR"):
            _TLS = ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
        else:
            import certifi

            _TLS = ssl.create_default_context(cafile=certifi.where())
        _TLS.set_alpn_protocols(["http/1.1"])
    return _TLS


def _env(name: str) -> str:
    return os.environ.get(name.lower()) or os.environ.get(name.upper()) or ""


def proxy_for(url: SplitResult) -> SplitResult | None:
    """The proxy the environment names for ``url``, or None. ``NO_PROXY`` is a comma list of ``*``,
    host names (``example.com`` also covers its subdomains; ``.example.com``, ``*.example.com`` and a
    trailing dot mean the same), IP addresses (IPv6 in brackets or not), CIDR ranges, each with an
    optional ``:port`` and an optional ``scheme://`` in front."""
    proxy = _env(f"{url.scheme}_proxy") or _env("all_proxy")
    if not proxy:
        return None
    host = (url.hostname or "").lower().rstrip(".")
    for entry in (e.strip().lower() for e in _env("no_proxy").split(",")):
        if entry == "*":
            return None
        if entry and _bypasses(entry, url.scheme, host, url.port or (443 if url.scheme == "https" else 80)):
            return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    try:
        parsed = urlsplit(proxy)
        _ = parsed.port  # a port that is not a number raises here
    except ValueError:
        raise ProxySettingError("the proxy URL in the environment is not a valid URL") from None
    if not parsed.hostname:
        raise ProxySettingError("the proxy URL in the environment names no host")
    if parsed.scheme not in ("http", "https"):
        raise ProxySettingError(
            f"the proxy {parsed.scheme}://{parsed.hostname}:… from the environment is not supported: "
            "codexbro speaks to http:// and https:// proxies only",
        )
    return parsed


def _bypasses(entry: str, scheme: str, host: str, port: int) -> bool:
    """Whether one ``NO_PROXY`` entry covers ``scheme://host:port`` (an entry naming a scheme covers
    that scheme only, as httpx read it)."""
    named, sep, rest = entry.partition("://")
    if sep and named != scheme:
        return False
    entry = (rest if sep else entry).rstrip("/")
    if entry.startswith("["):  # [v6] or [v6]:port
        name, _, rest = entry[1:].partition("]")
        wanted = rest.removeprefix(":")
    elif entry.count(":") == 1:
        name, _, wanted = entry.partition(":")
    else:
        name, wanted = entry, ""
    if wanted and wanted != str(port):
        return False
    name = name.removeprefix("*").removeprefix(".").rstrip(".")
    if not name:
        return False
    if "/" in name or _is_ip(name):
        import ipaddress

        try:
            network = ipaddress.ip_network(name, strict=False)
            return _is_ip(host) and ipaddress.ip_address(host) in network
        except ValueError:
            return False
    return host == name or host.endswith("." + name)


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def proxy_auth(proxy: SplitResult) -> list[tuple[str, str]]:
    if proxy.username is None:
        return []
    user_pass = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}".encode()
    return [("proxy-authorization", "Basic " + base64.b64encode(user_pass).decode())]
