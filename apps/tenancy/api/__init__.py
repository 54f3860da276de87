"""REST API of the tenancy app: tenants, members, quotas, usage, audit log and sharing under `/api/v1/`."""
