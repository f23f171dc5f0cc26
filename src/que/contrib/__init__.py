"""Integrations with frameworks, each an optional extra (docs/integrations.md)."""
