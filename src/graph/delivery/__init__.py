"""GraphQL adapter of brands' delivery settings: providers, messaging settings, suppressions."""
