"""Evaluation harness for Rollwave's verification engine: labeled rollout scenarios, replayed.

Run ``python -m bench.verify PATH`` from the repository root; see README.md.
"""
