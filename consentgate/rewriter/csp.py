"""The nonce a page's ``<script>`` elements must carry, read from its Content Security
Policy (the ``Content-Security-Policy`` headers, or a ``<meta http-equiv>`` policy).

Directive-aware: per policy, the directive that governs script elements is
``script-src-elem``, else ``script-src``, else ``default-src`` (CSP Level 3's fallback
list); only its ``'nonce-…'`` source counts (not one in ``style-src``), and of a
directive given twice only the first occurrence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["csp_nonce"]

_NONCE_SOURCE = re.compile(r"'nonce-([A-Za-z0-9+/_=-]+)'", re.I)
#: the directive a <script> element is checked against, in order of precedence
_SCRIPT_DIRECTIVES = ("script-src-elem", "script-src", "default-src")


def csp_nonce(values: Iterable[bytes]) -> str | None:
    """The nonce the injected ``<script>`` elements must carry: from each enforced
    policy (each ``Content-Security-Policy`` header, each comma-separated policy), the
    directive that governs script elements (``script-src-elem``, else ``script-src``,
    else ``default-src``; the first occurrence of a directive counts), its first
    ``'nonce-…'`` source. The first policy that names one wins."""
    for value in values:
        for policy in value.decode("latin-1").split(","):
            directives: dict[str, str] = {}
            for directive in policy.split(";"):
                parts = directive.split(None, 1)
                if not parts:
                    continue
                name = parts[0].lower()
                if name not in directives:
                    directives[name] = parts[1] if len(parts) > 1 else ""
            for name in _SCRIPT_DIRECTIVES:
                if name in directives:
                    found = _NONCE_SOURCE.search(directives[name])
                    if found:
                        return found.group(1)
                    break
    return None
