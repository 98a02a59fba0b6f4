"""Command-line tools users run around a deployed environment (python -m tools.<name>)."""
