"""Conversations: two-way messaging threads between a brand and a customer."""
