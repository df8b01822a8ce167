"""The DryvIQ-compatible REST API (`dryviq-tui serve`) over the same core as the app and the
command line: DryvIQ's paths, envelopes and statuses (reference/dryviq-jobs.md §1, §6–§9), bearer
tokens (tokens.py), live progress as Server-Sent Events (events.py), and an OpenAPI document
written by hand (spec/, served at v1/openapi.json)."""
