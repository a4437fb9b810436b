"""The client's IP address, the same for the audit log and for django-axes."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def _valid(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest | None) -> str | None:
    """REMOTE_ADDR, or the address the trusted reverse proxies put in X-Forwarded-For.

    TRUSTED_PROXY_COUNT proxies each append the address they received the request from, so the
    client is the COUNT-th address from the right; anything further left was written by the
    client and is ignored (it could be forged to dodge the login throttling).
    """
    if request is None:
        return None
    count = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if count > 0:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= count:
            return _valid(forwarded[-count])
    return _valid(request.META.get("REMOTE_ADDR"))
