"""Auditor tools: export, integrity proof, retention, subject requests, tokens."""
