"""Events of the publishing app."""

from django.dispatch import Signal

# sender=ServiceVersion; kwargs: version, previous (status). Cached routes are dropped on it.
version_status_changed = Signal()
