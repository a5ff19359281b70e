"""Channels (console, email, SMS, push, webhook), rendering and locales, delivery policy."""
