"""Persistence: models, engine setup and migrations."""
