"""The Textual app (its own issue); it will import core, never the reverse."""
