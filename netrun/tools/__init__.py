"""Tool implementations: state, http, mcp, wait_for_event, network (each in its module)."""
