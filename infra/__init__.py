"""Starting and wiring the stack: services, the worker, the launcher behind `make run`."""
