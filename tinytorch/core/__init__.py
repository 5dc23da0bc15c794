"""The framework, one module per lesson (see DESIGN §1)."""
