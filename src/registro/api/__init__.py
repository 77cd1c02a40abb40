"""The HTTP API: routes, their request/response shapes, and JSON error bodies."""
