"""What the pictures of an analysis say, in words and bars: shared by the HTML report
(core.analysis_html) and the app's Analyze screen, so both tell a project manager the same.

Pure functions of an `Analysis`; names and paths come back printable (control characters
escaped), and each front end escapes them again for its own medium.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from core.analysis_walk import WalkProgress
from core.analyze import Analysis, Bucket, Comparison, Estimate, FlaggedName
from core.cli.output import count, size
from core.paths import printable

PLATFORM_NAMES = {"procore": "Procore", "smb": "an SMB share", "local": "a local disk",
                  "rclone": "the rclone remote"}
CHART_ROWS = 10  # bars per chart: the rest are summed into one "other" bar
FLAGGED_FIX = "flagged for a person"  # what no automatic fix means


@dataclass(frozen=True)
class Chart:
    """One breakdown as bars: bytes per bucket (files for the caption)."""

    key: str  # the Analysis field: by_extension, by_size, by_age, by_folder
    title: str
    bars: tuple[Bucket, ...]


CHARTS = (("by_extension", "Bytes by type"), ("by_size", "Bytes by file size"),
          ("by_age", "Bytes by age (last modified)"), ("by_folder", "Bytes by top-level folder"))
# the breakdowns whose buckets are ranges in order (size, age): never re-sorted
ORDERED = frozenset({"by_size", "by_age"})
NO_LABEL = {"by_extension": "(no extension)", "by_folder": "(top level)"}


def target(connection: str, path: str) -> str:
    """A connection's folder as the CLI takes it: `name:/path`."""
    return printable(f"{connection}:/{path}")


def platform_name(platform: str) -> str:
    """`Procore`, `an SMB share`: a platform as a sentence names it."""
    return PLATFORM_NAMES.get(platform, platform)


def bucket_label(key: str, bucket: Bucket) -> str:
    return printable(bucket.label) if bucket.label else NO_LABEL.get(key, "(none)")


def top_buckets(key: str, buckets: tuple[Bucket, ...], rows: int = CHART_ROWS
                ) -> tuple[Bucket, ...]:
    """The `rows` bars to draw: ranges (size, age) as given; names (types, folders) largest
    first, those past `rows - 1` summed into one "other" bar."""
    if key in ORDERED:
        return buckets
    ranked = sorted(buckets, key=lambda b: (-b.bytes, -b.files, b.label))
    if len(ranked) <= rows:
        return tuple(Bucket(bucket_label(key, b), b.files, b.bytes) for b in ranked)
    kept, rest = ranked[:rows - 1], ranked[rows - 1:]
    other = Bucket(f"other ({len(rest)})", sum(b.files for b in rest),
                   sum(b.bytes for b in rest))
    return (*(Bucket(bucket_label(key, b), b.files, b.bytes) for b in kept), other)


def charts(analysis: Analysis) -> tuple[Chart, ...]:
    return tuple(Chart(key, title, top_buckets(key, getattr(analysis, key)))
                 for key, title in CHARTS)


def bar_caption(bucket: Bucket) -> str:
    """The words beside a bar: `1.2 MiB · 14 files`."""
    return f"{size(bucket.bytes)} · {count(bucket.files, 'file')}"


def when_analyzed(analysis: Analysis) -> str:
    """When the walk ended, with the zone (a report is read elsewhere, later)."""
    return time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(analysis.finished_at))


def summary(analysis: Analysis) -> str:
    took = max(0.0, analysis.finished_at - analysis.started_at)
    return (f"{count(analysis.files, 'file')} ({size(analysis.bytes)}) in "
            f"{count(analysis.folders, 'folder')}; analyzed {when_analyzed(analysis)} in "
            f"{took:.0f} s with {count(analysis.api_calls, 'API call')}")


def progress_text(progress: WalkProgress) -> str:
    """How far a walk has got, in one line."""
    return (f"{count(progress.folders, 'folder')}, {count(progress.files, 'file')} "
            f"({size(progress.bytes)}) so far, {count(progress.api_calls, 'API call')}")


def caveats(analysis: Analysis) -> list[str]:
    """What a reader must know before trusting the totals, and what else the walk found."""
    lines = []
    if analysis.unreadable_count:
        lines.append(f"⚠ {count(analysis.unreadable_count, 'folder')} could not be read: "
                     "nothing under them is counted.")
        lines += [f"  {printable(why)}" for why in analysis.unreadable_folders]
    if analysis.skipped:
        lines.append(f"{count(analysis.skipped, 'item')} listed but not counted (links that "
                     "lead out, leftover partial files).")
    if analysis.duplicate_groups:
        lines.append(f"{count(analysis.duplicate_groups, 'group')} of probable duplicates: "
                     f"{size(analysis.duplicate_bytes)} in the extra copies.")
    return lines


def hours_text(hours: float) -> str:
    """How long, roughly: "under a minute", "about 5 minutes", "about 2.5 hours"."""
    if hours < 1 / 60:
        return "under a minute"
    if hours < 1:
        return f"about {count(round(hours * 60), 'minute')}"
    return f"about {hours:,.1f} hours"


def upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def estimate_lines(estimate: Estimate) -> list[str]:
    """What a copy of the analyzed tree would cost, in sentences."""
    if estimate.api_calls == 0:
        return [f"{upper_first(estimate.basis or 'no Procore API calls')}."]
    what = upper_first(estimate.basis or "a copy")
    lines = [f"{what}: about {count(estimate.api_calls, 'Procore API call')}"
             + (f" for {count(estimate.files, 'file')} ({size(estimate.bytes)})"
                if estimate.files else "") + "."]
    parts = [f"{n:,} {word}" for n, word in ((estimate.listing_calls, "listing"),
                                              (estimate.folder_calls, "creating folders"),
                                              (estimate.transfer_calls, "moving files")) if n]
    if parts:
        lines.append(f"Of those calls: {', '.join(parts)}.")
    if estimate.hours is not None and estimate.hourly_limit:
        kept = (f", less the {estimate.reserve:.0%} kept for browsing"
                if estimate.reserve else "")
        lines.append(f"That takes {hours_text(estimate.hours)} under the client's budget "
                     f"of {estimate.hourly_limit:,} calls an hour{kept}.")
    else:
        lines.append("The client's hourly budget is not known yet: no time estimate.")
    if estimate.remaining_now is not None:
        reset = (f", resetting at {time.strftime('%H:%M %Z', time.localtime(estimate.reset_at))}"
                 if estimate.reset_at else "")
        lines.append(f"{estimate.remaining_now:,} calls were left in the current hour when "
                     f"analyzed{reset}.")
    if estimate.hours_from_now is not None:
        lines.append(f"Started then, it would end in {hours_text(estimate.hours_from_now)}.")
    return lines


def fix_text(flag: FlaggedName) -> str:
    return f"→ {printable(flag.fix)}" if flag.fix is not None else FLAGGED_FIX


def flagged_heading(analysis: Analysis) -> str:
    """How many names the destination would refuse, and whose rules say so."""
    if analysis.destination_platform is None:
        return "Names were not checked: no destination platform to check them against."
    rules = platform_name(analysis.destination_platform)
    shown = len(analysis.flagged)
    more = (f" (the first {shown:,} shown)" if analysis.flagged_count > shown else "")
    if not analysis.flagged_count:
        return f"Every name fits the rules of {rules}."
    return f"{count(analysis.flagged_count, 'name')} {rules} would refuse{more}."


def comparison_rows(analysis: Analysis, comparison: Comparison) -> list[tuple[str, Bucket]]:
    """The four sides of a platform comparison, labelled with the connections' names."""
    here = target(analysis.connection, analysis.path)
    there = target(analysis.against or "the other side", analysis.against_path or "")
    return [(f"Only in {here}", comparison.only_here),
            (f"Only in {there}", comparison.only_there),
            ("Different", comparison.different),
            ("Identical", comparison.identical)]


COMPARISON_SAMPLES = {"only_here": "Only here", "only_there": "Only there",
                      "different": "Different", "identical": "Identical"}


def first_sync_text(comparison: Comparison) -> str:
    if not comparison.first_sync:
        return "The first sync would change nothing."
    actions = ", ".join(f"{printable(action)} {items:,}"
                        for action, items in sorted(comparison.first_sync.items()))
    return f"The first sync would: {actions}."
