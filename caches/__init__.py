"""Answer caches: exact, semantic and snippet, scoped so an entry is never wrong about whose data or which version."""
