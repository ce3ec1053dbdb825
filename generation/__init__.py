"""Answer generation: prompts, providers, the provider chain with its breaker, routing and validation."""
