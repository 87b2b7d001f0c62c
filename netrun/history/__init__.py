"""Conversations: threads of messages kept across runs, in a history store."""
