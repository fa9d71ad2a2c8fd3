"""The window's side panel: one module per tab."""
