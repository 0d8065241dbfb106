"""The `rollwave demo` scenario (see runner.py)."""
