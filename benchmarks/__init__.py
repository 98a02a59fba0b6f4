"""Scripts that print measurements (not tests)."""
