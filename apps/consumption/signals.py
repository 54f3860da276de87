"""Events of the consumption app other apps (and operators' receivers) can listen to."""

from django.dispatch import Signal

# sender=UsageRecord; kwargs: request_id, tenant_id (consumer), publisher_id, service_version_id, model_id,
# prompt_tokens, completion_tokens (billed), reported_prompt_tokens, reported_completion_tokens (claimed; None: not a
# count). Sent once per disputed record, after the ledger committed it.
usage_disputed = Signal()
