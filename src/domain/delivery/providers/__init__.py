"""One module per provider; :func:`domain.delivery.registry.build` picks one by name."""
