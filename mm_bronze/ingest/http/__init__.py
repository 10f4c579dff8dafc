"""The HTTP front door (starlette on hypercorn)."""
