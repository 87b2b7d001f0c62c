"""Tools: one module per kind (state, http, mcp, wait, network, event), the approval
wrapper any tool can have (approval.py), ``netrun test`` stubs (stub.py), and the one
registry of declared kinds (registry.py), from which a run builds its tools."""
