"""GraphQL adapter of conversations: the inbox, threads, replies, canned responses."""
