"""Routing: the per-call race, retries, the circuit breaker, the hedge policy and the fleet state they share."""
