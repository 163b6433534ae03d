"""GraphQL of AI settings and the copilot."""
