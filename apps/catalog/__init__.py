"""Fine-tuned models, versions, datasets, provenance, lineage, evaluations and leaderboard."""
