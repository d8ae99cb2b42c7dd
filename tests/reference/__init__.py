"""Independent reference implementation of SPEC sections 2, 4, 5 and 6, for tests only."""
