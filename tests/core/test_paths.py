"""Path rules: what is refused, how names are fitted to a destination, and match keys."""

import itertools

import pytest

from core.connectors.base import InvalidPath, PathRules
from core.paths import (
    FittedName,
    fit_name,
    match_key,
    name_problems,
    normalize_path,
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
