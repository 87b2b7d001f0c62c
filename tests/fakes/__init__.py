"""Test doubles that cross real boundaries: HTTP servers on 127.0.0.1, MCP servers."""
