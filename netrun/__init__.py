"""netrun: AI agent networks declared in YAML, validated, compiled to Inngest functions."""

__version__ = "0.1.0"

__all__ = ["__version__"]
