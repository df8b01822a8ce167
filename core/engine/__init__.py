"""The transfer engine: march (merge listings per folder), plan (decide per pair), execute."""
