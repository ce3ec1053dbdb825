"""Query-side steps: filters, hybrid retrieval, re-scoring and context packing."""
