"""Verification judges: pure functions from metric series to verdicts with explanations."""
