"""dryviq-tui's headless core: connectors, engine, state and job definitions (no UI here)."""

__version__ = "0.1.0"
