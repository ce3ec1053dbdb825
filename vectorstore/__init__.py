"""One small vector-store interface, two Qdrant backends (Edge in-process, qdrant-client)."""
