"""Governance tools: the access matrix, change review, formatting and the plain-English document."""
