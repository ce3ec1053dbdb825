"""The thin HTTP layer: it validates, starts workflows and reads job state; it does no work itself."""
