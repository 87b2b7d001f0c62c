"""The checks after the schema: cross-references, templates, expressions, cycles, Inngest's rules."""
