"""REST API of the publishing app: publish, discover and manage services under `/api/v1/services/`."""
