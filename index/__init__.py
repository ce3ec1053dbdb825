"""The tenant's index: catalog, active index, visibility, publish/retire, the dedupe registry."""
