"""Plans, their limits and the quotas later capabilities meter (``limits``, ``quotas``), the
API's leaky bucket (``bucket``) and its usage over time (``api_usage``)."""
