"""Categories and their reports: DryvIQ's `category` groups jobs, and a report is a category's
totals (jobs, executions, files and bytes moved, flagged, failed, API calls, time waiting for
the rate limit)."""

from __future__ import annotations
