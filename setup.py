"""Build hook for the optional C accelerators: the streaming rewriter's, the export
encoders' and the SQLite export reader's.

Everything else is declared in pyproject.toml. ``optional=True``: without a C compiler
the install still succeeds and the same code runs in pure Python (slower, same output).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "consentgate.rewriter._speedups",
            sources=["consentgate/rewriter/_speedups.c"],
            optional=True,
        ),
        Extension(
            "consentgate.audit._csvenc",
            sources=["consentgate/audit/_csvenc.c"],
            depends=["consentgate/audit/csvenc.h"],
            optional=True,
        ),
        # needs SQLite's headers (Debian: libsqlite3-dev); without them exports read
        # through Python's sqlite3 module instead (same bytes, slower)
        Extension(
            "consentgate.audit._sqlpages",
            sources=["consentgate/audit/_sqlpages.c"],
            depends=["consentgate/audit/csvenc.h"],
            libraries=["sqlite3"],
            optional=True,
        ),
    ]
)
