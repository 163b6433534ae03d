"""GraphQL adapter of campaigns and delivery settings."""
