"""Tokenizer states of the streaming rewriter and its default memory caps."""

from __future__ import annotations

__all__ = ["DEFAULT_SCRIPT_CAP", "DEFAULT_TAG_CAP"]

(DATA, COMMENT, BOGUS, RAWTEXT, SCRIPT, PLAINTEXT, CDATA, PASS, SNIFF, LONGTAG) = range(10)

#: Longest start tag read whole; a longer one gets the conservative treatment.
DEFAULT_TAG_CAP = 1 << 20
#: Longest inline script buffered for classification; a longer one is ``unclassified``.
DEFAULT_SCRIPT_CAP = 1 << 20
