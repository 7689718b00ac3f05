"""Shared analyses: computed once per file, read by every rule."""
