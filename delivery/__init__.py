"""Delivery: the outbox, the delivery job, escalation, channel wiring, receipts and the delivery policy."""
