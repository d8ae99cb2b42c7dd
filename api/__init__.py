"""The edges: command line (and, later, the HTTP service)."""
