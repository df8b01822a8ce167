"""Path rules: what is refused, how names are fitted to a destination, and match keys."""

import itertools

import pytest

from core.connectors.base import InvalidPath, PathRules
from core.connectors.procore import PROCORE_RULES
from core.paths import (
    CONTROL_CHARS,
    FittedName,
    fit_name,
    match_key,
    name_problem,
    name_problems,
    normalize_path,
    printable,
    printable_lines,
    segment_problem,
    truncate_name,
)

PROCORE = PathRules(invalid_chars='/<>:\\|?*"', max_path_length=255,
                    no_trailing_whitespace=True)


@pytest.mark.parametrize("given, expected", [
    ("/", ""), ("", ""), ("/Drawings/", "Drawings"), ("a//b", "a/b"), ("\\a\\b", "a/b"),
])
def test_normalize_path(given, expected):
    assert normalize_path(given) == expected


@pytest.mark.parametrize("given", ["/a/../b", "..", "./x", "a/\0b"])
def test_normalize_path_refuses_climbing(given):
    with pytest.raises(InvalidPath):
        normalize_path(given)


def test_problems_are_named():
    problems = name_problems("RFI #3: door?.pdf", PROCORE)
    assert problems == ["contains characters the destination does not allow: : ?"]
    assert name_problems("Warranty .pdf", PROCORE) == [
        "has whitespace before the extension or at the end"]
    assert name_problems("fine name.pdf", PROCORE) == []


def test_fit_replaces_or_encodes_invalid_characters():
    assert fit_name("Congrats!?.txt", "", PROCORE).name == "Congrats!_.txt"
    encoded = fit_name("a:b.txt", "", PROCORE, encode=True)
    assert encoded.name == "a3Ab.txt"
    assert "renamed from 'a:b.txt'" in encoded.note


def test_fit_strips_whitespace_around_the_extension():
    assert fit_name("Window Warranty .pdf ", "", PROCORE).name == "Window Warranty.pdf"


def test_fit_without_transform_refuses():
    fitted = fit_name("a:b.txt", "", PROCORE, transform=False)
    assert fitted.refusal and "not allow" in fitted.refusal


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "x\0y"])
def test_unusable_names_are_refused_even_with_transform(name):
    assert fit_name(name, "", PROCORE).refusal


def test_path_length_truncates_keeping_the_extension_or_refuses():
    parent = "p" * 240
    long_name = "Specification section " * 3 + ".pdf"
    refused = fit_name(long_name, parent, PROCORE)
    assert refused.refusal and "too long" in refused.refusal
    fitted = fit_name(long_name, parent, PROCORE, truncate=True)
    assert fitted.name.endswith(".pdf") and len(parent) + 1 + len(fitted.name) == 255
    assert truncate_name("abc.pdf", 4) is None


def test_match_key_normalises_unicode_and_case():
    assert match_key("Cafe\u0301.pdf", False) == match_key("Café.pdf", False)
    assert match_key("PLAN.pdf", True) == match_key("plan.PDF", True)
    assert match_key("PLAN.pdf", False) != match_key("plan.pdf", False)


def test_posix_names_are_limited_in_bytes_not_characters():
    posix = PathRules(max_name_length=255, name_length_in_bytes=True)
    name = "図" * 100 + ".pdf"  # 104 characters, 304 bytes
    refused = fit_name(name, "", posix)
    assert refused.refusal and "bytes" in refused.refusal
    fitted = fit_name(name, "", posix, truncate=True)
    assert fitted.name.endswith(".pdf") and len(fitted.name.encode()) <= 255
    assert len(fitted.name.encode()) > 250


@pytest.mark.parametrize("rules", [PROCORE, PathRules(invalid_chars="/\0", max_name_length=3)])
def test_a_name_is_kept_as_it_is_only_when_no_rule_objects(rules: PathRules) -> None:
    # every name of up to 4 characters from an alphabet of edge cases (the quick path for
    # plain ASCII names must never let through one the full checks would change or refuse)
    alphabet = " \t\x1c.a:/\0"
    names = ["".join(chars) for length in range(5)
             for chars in itertools.product(alphabet, repeat=length)]
    for name in names:
        fitted = fit_name(name, "Folder", rules)
        unchanged = fitted == FittedName(name)
        assert unchanged == (segment_problem(name) is None and not name_problems(name, rules)), name


@pytest.mark.parametrize("char, shown", [
    ("\x00", r"\x00"), ("\x07", r"\x07"), ("\t", r"\t"), ("\n", r"\n"), ("\r", r"\r"),
    ("\x1b", r"\x1b"), ("\x7f", r"\x7f"), ("\x85", r"\x85"), ("\x9b", r"\x9b"),
    ("\u061c", r"\u061c"), ("\u200e", r"\u200e"), ("\u200f", r"\u200f"),
    ("\u2028", r"\u2028"), ("\u2029", r"\u2029"),
    *[(chr(c), f"\\u{c:04x}") for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))],
    ("\udcff", r"\xff"), ("\ud800", r"\ud800"),
])
def test_printable_escapes_what_a_terminal_would_act_on(char: str, shown: str) -> None:
    assert printable(f"a{char}b") == f"a{shown}b"


def test_printable_keeps_ordinary_text_and_is_idempotent() -> None:
    for text in ("plain.pdf", "Café – 図面 (rev 2).pdf", "C:\\temp\\x1b", "a\u00a0b"):
        assert printable(text) == text
    hostile = "\x1b]52;c;ZWNobw==\x07\u202e\n"
    assert printable(printable(hostile)) == printable(hostile)
    # bytes that were not UTF-8 but decode to a C1 control are escaped too
    assert printable("\udcc2\udc9b[2J") == r"\x9b[2J"


def test_printable_lines_keeps_the_lines_and_tabs_of_a_job_file() -> None:
    assert printable_lines('{\n\t"name": "a\x1bb"\n}') == '{\n\t"name": "a\\x1bb"\n}'


@pytest.mark.parametrize("name, problem", [
    ("x" * 128, None), ("Café – 図面", None),
    ("x" * 129, "129 characters, more than the 128 allowed"),
    ("a\x1bb\n", r"contains control characters (\n \x1b), not allowed"),
    ("\udcff", "is not valid UTF-8 text"),
])
def test_name_problem(name: str, problem: str | None) -> None:
    assert name_problem(name) == problem


@pytest.mark.parametrize("name, fitted", [
    ("red\x1b[31m.pdf", "red_[31m.pdf"), ("two\nlines.pdf", "two_lines.pdf"),
    ("tab\there.pdf", "tab_here.pdf"), ("invoice\u202efdp.exe", "invoice_fdp.exe"),
    ("c1\x9b.pdf", "c1_.pdf"),
])
def test_procore_renames_control_characters(name: str, fitted: str) -> None:
    result = fit_name(name, "", PROCORE_RULES)
    assert (result.name, result.refusal) == (fitted, None)
    assert set(result.note or "") & set(CONTROL_CHARS) == set()


def test_windows_names_are_fixed_or_refused() -> None:
    from core.connectors.smb import SMB_RULES

    cases = {
        "CON": "CON_", "con.txt": "con_.txt", "Nul.tar.gz": "Nul_.tar.gz",
        "aux .txt": "aux_ .txt", "COM1.pdf": "COM1_.pdf", "lpt9": "lpt9_",
        "ends.": "ends_", "ends ": "ends_", "dots...": "dots___", "a:b?.txt": "a_b_.txt",
        "tab\there": "tab_here", "CON.": "CON_",
    }
    for name, fixed in cases.items():
        assert name_problems(name, SMB_RULES), name
        fitted = fit_name(name, "Folder", SMB_RULES)
        assert (fitted.name, fitted.refusal) == (fixed, None), name
        assert not name_problems(fitted.name, SMB_RULES), fitted.name
        assert fit_name(name, "Folder", SMB_RULES, transform=False).refusal, name
    assert fit_name("ends.", "", SMB_RULES, encode=True).name == "ends2E"
    assert fit_name("a:b", "", SMB_RULES, encode=True).name == "a3Ab"
    for fine in ("CONSOLE.txt", "COM0", "COM10", "LPT", "nul-report.pdf", ".hidden", "a .b",
                 "Réservé.txt"):
        assert fit_name(fine, "Folder", SMB_RULES) == FittedName(fine), fine
    problems = name_problems("con.txt", SMB_RULES)
    assert problems == ["'con' is a device name the destination reserves"]


def test_windows_names_are_kept_only_when_no_rule_objects() -> None:
    from core.connectors.smb import SMB_RULES

    pieces = ["", "con", "CoN", "nul", "com1", "com0", "a", " ", ".", "x.y", "\x1f"]
    names = ["".join(parts) for parts in itertools.product(pieces, repeat=3)]
    for name in names:
        fitted = fit_name(name, "Folder", SMB_RULES)
        unchanged = fitted == FittedName(name)
        assert unchanged == (segment_problem(name) is None and not name_problems(name, SMB_RULES)
                             ), name


def test_procore_and_posix_rules_keep_windows_names() -> None:
    posix = PathRules(invalid_chars="/\0", max_name_length=255, name_length_in_bytes=True)
    for name in ("CON", "nul.txt", "ends."):
        assert fit_name(name, "", posix) == FittedName(name)
    assert fit_name("CON.txt", "", PROCORE_RULES) == FittedName("CON.txt")
