"""Alerts: lifecycle, dedup and throttling, tickets, confirmation tokens, the store and the outbox."""
