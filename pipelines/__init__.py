"""Each path's steps over real clients and no Temporal: what activities wrap and the plain loops run."""
