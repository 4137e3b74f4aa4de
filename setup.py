"""Build hook for the optional C accelerators: the streaming rewriter's and the export
encoders'.

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
            optional=True,
        ),
    ]
)
