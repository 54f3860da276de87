"""Management commands of the publishing app."""
