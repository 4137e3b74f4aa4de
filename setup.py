"""Build hook for the optional C accelerator of the streaming rewriter.

Everything else is declared in pyproject.toml. ``optional=True``: without a C compiler
the install still succeeds and the rewriter runs in pure Python (slower, same output).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "consentgate.rewriter._speedups",
            sources=["consentgate/rewriter/_speedups.c"],
            optional=True,
        )
    ]
)
