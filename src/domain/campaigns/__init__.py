"""Campaigns: brand-scoped email, SMS and push sends to segment audiences."""
