"""Management commands and their helpers for the publishing app."""
