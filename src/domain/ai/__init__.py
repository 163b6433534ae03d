"""AI settings and the copilot."""
