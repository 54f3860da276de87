"""Management commands of the catalog app."""
