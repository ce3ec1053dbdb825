"""Activities do the I/O; workflows only orchestrate them."""
