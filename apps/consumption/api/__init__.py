"""REST API of the consumption app: API keys, usage records and summaries, quota status under `/api/v1/`."""
