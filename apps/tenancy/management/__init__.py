"""Management commands of the tenancy app."""
