"""The HTTP API (FastAPI): REST under /api/v1, flags and OFREP, the dashboard under /."""
