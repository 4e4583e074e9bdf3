"""Model adapters: one module per backend, each importing its heavy dependencies itself."""
