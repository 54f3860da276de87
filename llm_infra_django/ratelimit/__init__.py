"""Rate limiting: rate parsing, atomic Redis algorithms, DRF throttles and Django middleware."""
