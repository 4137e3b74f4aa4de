"""The web console under ``/_consent/admin/``: what owners and auditors see.

Server-rendered (Jinja2, autoescape), no build step, usable without JavaScript.
See ``docs/console.md``."""
