"""`manage.py` commands of the tenancy app."""
