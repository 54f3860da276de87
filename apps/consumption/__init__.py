"""API keys, the metered OpenAI-compatible proxy, admission and settlement, usage ledger and SLA."""
