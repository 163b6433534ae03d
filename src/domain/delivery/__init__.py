"""Delivery: the providers that carry messages out (email, SMS, push) and the events they send back."""
