"""Built-in tasks. Each module defines one task family and exposes it as `TASK`."""
