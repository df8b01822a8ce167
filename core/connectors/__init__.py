"""Storage platforms behind one small interface (see base.py)."""
