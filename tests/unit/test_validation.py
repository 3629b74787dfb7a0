"""Tests for deployer.validation: every rule accepts a good value and refuses a bad one.

Refusals are checked for the error id and for the parts of the message a person
needs to fix the input: the field, the offending value or character, the limit.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deployer import validation as v
from deployer.errors import InvalidInput
from deployer.exitcodes import ExitCode

HEX64 = "0123456789abcdef" * 4
HEX128 = HEX64 * 2
REPO_ROOT = Path(__file__).resolve().parents[2]


def refused(func: Callable[..., Any], *args: Any, error_id: str, **kwargs: Any) -> InvalidInput:
    """Call *func*, assert it raises InvalidInput with *error_id*, return the error."""
    with pytest.raises(InvalidInput) as info:
        func(*args, **kwargs)
    error = info.value
    assert error.id == error_id, str(error)
    assert error.exit_code == ExitCode.INVALID
    assert f"(deployer: {error_id})" in str(error)
    return error


def assert_names(error: InvalidInput, *fragments: str) -> None:
    for fragment in fragments:
        assert fragment in error.message, f"{fragment!r} not in {error.message!r}"


# --- RFC 1123 labels: --app and --namespace share the rule ----------------------------

DNS_LABEL_FIELDS = [
    (v.validate_app_name, "--app", "invalid-name"),
    (v.validate_namespace, "--namespace", "invalid-namespace"),
]


@pytest.mark.parametrize("check", [v.validate_app_name, v.validate_namespace])
@pytest.mark.parametrize("value", ["a", "0", "hello", "my-app-2", "1a-b", "a--b"])
def test_dns_label_accepts(check: Callable[[str], str], value: str) -> None:
    assert check(value) == value


@pytest.mark.parametrize(("check", "field", "error_id"), DNS_LABEL_FIELDS)
@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ("", ["''", "empty"]),
        ("Hello", ["'Hello'", "lowercase", "'H'", "position 1"]),
        ("helLo", ["lowercase", "'L'", "position 4"]),
        ("a" * 64, ["64 characters", "limit is 63"]),
        ("a;b", ["'a;b'", "';'", "position 2"]),
        ("a_b", ["'_'"]),
        ("a.b", ["'.'"]),
        ("héllo", ["'é'"]),
        ("a\x00b", ["U+0000"]),
        ("-ab", ["start", "hyphen"]),
        ("ab-", ["end", "hyphen"]),
        ("-", ["start"]),
        ("a b", ["whitespace", "space", "position 2"]),
        (" ab", ["whitespace", "position 1"]),
        ("ab\t", ["whitespace", "tab"]),
        ("ab\n", ["whitespace", "newline"]),
    ],
)
def test_dns_label_refuses(
    check: Callable[[str], str], field: str, error_id: str, value: str, fragments: list[str]
) -> None:
    error = refused(check, value, error_id=error_id)
    assert error.message.startswith(f"{field} ")
    assert_names(error, *fragments)


def test_dns_label_message_is_exact() -> None:
    error = refused(v.validate_app_name, "Hello", error_id="invalid-name")
    assert (
        error.message == "--app 'Hello' is invalid: it must be lowercase (found 'H' at position 1)"
    )
    assert error.hint == "did you mean 'hello'?"


def test_messages_escape_control_characters() -> None:
    error = refused(v.validate_namespace, "ns\n", error_id="invalid-namespace")
    assert "\n" not in error.message
    assert "'ns\\n'" in error.message


def test_messages_shorten_very_long_values() -> None:
    error = refused(v.validate_app_name, "a" * 5000, error_id="invalid-name")
    assert len(error.message) < 300
    assert_names(error, "5000 characters", "63")


# --- app names and namespaces ---------------------------------------------------------


@pytest.mark.parametrize("value", ["hello", "a", "a" * 47, "team-api-2"])
def test_app_name_accepts(value: str) -> None:
    assert v.validate_app_name(value) == value


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ("a" * 48, ["48 characters", "limited to 47"]),
        ("a" * 63, ["63 characters", "limited to 47"]),
        ("a" * 64, ["64 characters", "limit is 63"]),
        ("Hello", ["'Hello'", "lowercase"]),
        ("a;b", ["';'"]),
        ("", ["empty"]),
        ("my app", ["whitespace"]),
        ("-app", ["start"]),
    ],
)
def test_app_name_refuses(value: str, fragments: list[str]) -> None:
    error = refused(v.validate_app_name, value, error_id="invalid-name")
    assert error.message.startswith("--app ")
    assert_names(error, *fragments)


def test_app_name_limit_explains_why() -> None:
    error = refused(v.validate_app_name, "a" * 48, error_id="invalid-name")
    assert error.hint is not None
    assert "-canary" in error.hint
    assert "ReplicaSet" in error.hint


@pytest.mark.parametrize("value", ["default", "kube-system", "team-1", "a" * 63])
def test_namespace_accepts(value: str) -> None:
    assert v.validate_namespace(value) == value


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ("Default", ["'Default'", "lowercase"]),
        ("", ["empty"]),
        ("ns;rm", ["';'"]),
        ("n" * 64, ["64", "63"]),
        ("team.prod", ["'.'"]),
        ("ns-", ["end"]),
    ],
)
def test_namespace_refuses(value: str, fragments: list[str]) -> None:
    error = refused(v.validate_namespace, value, error_id="invalid-namespace")
    assert error.message.startswith("--namespace ")
    assert_names(error, *fragments)


# --- image references: accepted -------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "repository", "tag", "digest", "domain", "path"),
    [
        ("hello:v2", "hello", "v2", None, None, "hello"),
        ("localhost:5000/hello:v1", "localhost:5000/hello", "v1", None, "localhost:5000", "hello"),
        ("localhost/hello:v1", "localhost/hello", "v1", None, "localhost", "hello"),
        (
            f"registry.example.com/team/app@sha256:{HEX64}",
            "registry.example.com/team/app",
            None,
            f"sha256:{HEX64}",
            "registry.example.com",
            "team/app",
        ),
        (
            "docker.io/library/hello:v1",
            "docker.io/library/hello",
            "v1",
            None,
            "docker.io",
            "library/hello",
        ),
        (
            "registry.example.com:5000/team/hello:1.0",
            "registry.example.com:5000/team/hello",
            "1.0",
            None,
            "registry.example.com:5000",
            "team/hello",
        ),
        (f"hello:v2@sha256:{HEX64}", "hello", "v2", f"sha256:{HEX64}", None, "hello"),
        (f"hello@sha512:{HEX128}", "hello", None, f"sha512:{HEX128}", None, "hello"),
        # A digest pins the image, so 'latest' next to it is only a label.
        (f"hello:latest@sha256:{HEX64}", "hello", "latest", f"sha256:{HEX64}", None, "hello"),
        ("team/app:v1", "team/app", "v1", None, None, "team/app"),
        ("a_b__c.d-e--f:v1", "a_b__c.d-e--f", "v1", None, None, "a_b__c.d-e--f"),
        (
            "Registry.Example.COM/app:v1",
            "Registry.Example.COM/app",
            "v1",
            None,
            "Registry.Example.COM",
            "app",
        ),
        ("[::1]:5000/hello:v1", "[::1]:5000/hello", "v1", None, "[::1]:5000", "hello"),
        ("hello:V2", "hello", "V2", None, None, "hello"),
        ("hello:_x", "hello", "_x", None, None, "hello"),
        ("hello:" + "a" * 128, "hello", "a" * 128, None, None, "hello"),
        # Without '/', a colon always starts the tag: this is repository 'localhost', tag '5000'.
        ("localhost:5000", "localhost", "5000", None, None, "localhost"),
        ("a" * 252 + ":v1", "a" * 252, "v1", None, None, "a" * 252),
    ],
)
def test_parse_image_accepts(
    value: str,
    repository: str,
    tag: str | None,
    digest: str | None,
    domain: str | None,
    path: str,
) -> None:
    ref = v.parse_image(value)
    assert (ref.repository, ref.tag, ref.digest) == (repository, tag, digest)
    assert ref.domain == domain
    assert ref.path == path
    assert str(ref) == value


def test_image_domain_rule() -> None:
    assert v.parse_image("team/app:v1").domain is None
    assert v.parse_image("Registry.Example.COM/app:v1").domain == "Registry.Example.COM"
    assert v.parse_image("localhost/app:v1").domain == "localhost"
    assert v.parse_image("host:5000/app:v1").domain == "host:5000"
    assert v.parse_image("[::1]/app:v1").domain == "[::1]"


@pytest.mark.parametrize("port", ["1", "80", "5000", "65535", "00080"])
def test_registry_ports_from_1_to_65535(port: str) -> None:
    assert v.parse_image(f"localhost:{port}/app:v1").domain == f"localhost:{port}"
    assert v.parse_image(f"[::1]:{port}/app:v1").domain == f"[::1]:{port}"


@pytest.mark.parametrize("port", ["65536", "000", "100000"])
def test_registry_ports_out_of_range(port: str) -> None:
    error = refused(v.parse_image, f"localhost:{port}/app:v1", error_id="invalid-image")
    assert_names(error, f"registry port {port} is out of range (1 to 65535)")


# --- image references: refused --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ("Hello:V2", ["'Hello:V2'", "repository names must be lowercase", "'H'"]),
        ("team/App:v1", ["repository names must be lowercase", "'A'"]),
        ("localhost:5000/Hello:v1", ["repository names must be lowercase"]),
        ("", ["''", "empty"]),
        ("hello :v1", ["whitespace", "space", "position 6"]),
        (" hello:v1", ["whitespace", "position 1"]),
        ("hello:v1\n", ["whitespace", "newline"]),
        ("hello:v1\t", ["whitespace", "tab"]),
        ("a;b", ["'a;b'", "';'", "repository"]),
        ("a;b:v1", ["';'", "repository"]),
        ("hello:v1;rm", ["';'", "tag"]),
        ("hello:v1+build.7", ["'+'", "tag"]),
        ("hello:" + "a" * 129, ["129 characters", "limit is 128"]),
        ("hello:-v1", ["tag must start", "'-'"]),
        ("hello:.v1", ["tag must start", "'.'"]),
        ("hello:", ["tag after ':' is empty"]),
        (":v1", ["repository name is empty"]),
        ("hello@sha256:" + HEX64[:63], ["sha256", "64 hex digits", "has 63"]),
        ("hello@sha256:" + HEX64 + "0", ["64 hex digits", "has 65"]),
        ("hello@sha256:" + HEX64.upper(), ["lowercase"]),
        ("hello@sha256:" + "g" * 64, ["'g'", "hex digit"]),
        ("hello@sha256:", ["no hex digits"]),
        ("hello@sha256", ["algorithm:hex"]),
        ("hello@:" + HEX64, ["algorithm:hex"]),
        ("hello@", ["digest after '@' is empty"]),
        ("hello@md5:" + HEX64[:32], ["'md5'", "not supported"]),
        ("hello@SHA256:" + HEX64, ["'SHA256'", "not supported"]),
        (f"hello@sha256:{HEX64}@sha256:{HEX64}", ["more than one '@'"]),
        ("a//b:v1", ["empty component"]),
        ("hello/:v1", ["empty component"]),
        ("/hello:v1", ["empty component"]),
        ("-hello:v1", ["'-hello'", "start and end"]),
        ("hello-:v1", ["'hello-'", "start and end"]),
        ("a...b:v1", ["'a...b'"]),
        ("a___b:v1", ["'a___b'"]),
        ("my_reg:5000/x:v1", ["'_'", "registry host 'my_reg'"]),
        ("localhost:99999/a:v1", ["port 99999", "65535"]),
        ("localhost:0/a:v1", ["port 0"]),
        ("localhost:/a:v1", ["port", "empty"]),
        ("localhost:abc/a:v1", ["port 'abc'", "not a number"]),
        ("a:b:c/x:v1", ["more than one ':'"]),
        ("-reg.com/x:v1", ["'-reg'", "start and end"]),
        ("reg..com/x:v1", ["empty part"]),
        ("[::1/x:v1", ["']'"]),
        ("[zz]:5000/x:v1", ["'[zz]'", "IPv6"]),
        ("localhost:5000/:v1", ["path after the registry is empty"]),
        ("a" * 256 + ":v1", ["256 characters", "limit is 255"]),
        ("registry.example.com/" + "a" * 240 + ":v1", ["261 characters", "255"]),
    ],
)
def test_parse_image_refuses(value: str, fragments: list[str]) -> None:
    error = refused(v.parse_image, value, error_id="invalid-image")
    assert error.message.startswith("image reference ")
    assert_names(error, *fragments)


@pytest.mark.parametrize(
    "value",
    [
        "a" * 100_000 + ";",
        "a-" * 50_000,
        "a_" * 50_000 + ":v1",
        "a." * 50_000 + "/x:v1",
        "reg.io/" + "a-" * 50_000 + "/x:v1",
        "hello:" + "a" * 100_000,
        "[" + ":" * 100_000,
    ],
)
def test_very_long_references_are_refused_quickly(value: str) -> None:
    start = time.perf_counter()
    refused(v.parse_image, value, error_id="invalid-image")
    assert time.perf_counter() - start < 1


def test_parse_image_message_matches_the_documented_style() -> None:
    error = refused(v.parse_image, "Hello:V2", error_id="invalid-image")
    assert error.message.startswith(
        "image reference 'Hello:V2' is invalid: repository names must be lowercase"
    )
    assert error.hint is not None
    assert "'hello'" in error.hint


def test_parse_image_refuses_a_reference_without_tag_or_digest() -> None:
    error = refused(v.parse_image, "hello", error_id="invalid-image")
    assert error.message == (
        "image reference 'hello' has no tag or digest: "
        "name an explicit tag (e.g. hello:v2) or a digest"
    )


def test_parse_image_does_not_mistake_a_registry_port_for_a_tag() -> None:
    error = refused(v.parse_image, "registry.example.com:5000/team/hello", error_id="invalid-image")
    assert_names(error, "has no tag or digest", "registry.example.com:5000/team/hello:v2")


@pytest.mark.parametrize("value", ["hello:latest", "docker.io/library/hello:latest"])
def test_parse_image_refuses_latest(value: str) -> None:
    error = refused(v.parse_image, value, error_id="invalid-image")
    assert_names(error, f"'{value}'", "'latest'")
    assert error.hint is not None
    assert "reproducible" in error.hint
    assert "rollback" in error.hint


@pytest.mark.parametrize("value", ["hello:Latest", "hello:latest2", "hello:v-latest"])
def test_only_the_exact_latest_tag_is_refused(value: str) -> None:
    assert v.parse_image(value).tag == value.split(":")[1]


# --- ImageRef -------------------------------------------------------------------------


def test_image_ref_str_forms() -> None:
    assert str(v.ImageRef("hello", "v2")) == "hello:v2"
    assert str(v.ImageRef("hello", None, f"sha256:{HEX64}")) == f"hello@sha256:{HEX64}"
    assert str(v.ImageRef("hello", "v2", f"sha256:{HEX64}")) == f"hello:v2@sha256:{HEX64}"
    assert str(v.ImageRef("localhost:5000/hello")) == "localhost:5000/hello"


def test_image_ref_with_tag_drops_the_digest() -> None:
    ref = v.parse_image(f"registry.example.com/team/app:v1@sha256:{HEX64}")
    moved = ref.with_tag("v2")
    assert moved == v.ImageRef("registry.example.com/team/app", "v2", None)
    assert str(moved) == "registry.example.com/team/app:v2"
    assert ref.digest == f"sha256:{HEX64}"  # the original is unchanged


def test_image_ref_with_tag_checks_the_grammar() -> None:
    error = refused(v.ImageRef("hello", "v1").with_tag, "v2;rm", error_id="invalid-image")
    assert_names(error, "';'", "tag")


def test_image_ref_is_frozen_and_hashable() -> None:
    ref = v.parse_image("hello:v2")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.tag = "v3"  # type: ignore[misc]
    assert {ref, v.ImageRef("hello", "v2")} == {ref}


@pytest.mark.parametrize(
    ("repository", "tag", "digest", "fragment"),
    [
        ("Hello", "v1", None, "lowercase"),
        ("", "v1", None, "repository name is empty"),
        ("hello", "a" * 129, None, "128"),
        ("hello", "", None, "tag after ':' is empty"),
        ("hello", None, "sha256:abc", "64 hex digits"),
        ("hello@x", None, None, "'@'"),
    ],
)
def test_image_ref_refuses_invalid_parts(
    repository: str, tag: str | None, digest: str | None, fragment: str
) -> None:
    error = refused(v.ImageRef, repository, tag, digest, error_id="invalid-image")
    assert_names(error, fragment)


@pytest.mark.parametrize("value", ["hello", "hello:latest", "docker.io/library/hello"])
def test_parse_reference_has_no_tag_policy(value: str) -> None:
    assert str(v.parse_reference(value)) == value


def test_parse_reference_still_checks_the_grammar() -> None:
    error = refused(v.parse_reference, "Hello", error_id="invalid-image")
    assert_names(error, "'Hello'", "lowercase")


# --- bare tags and resolution ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "bare"),
    [
        ("v2", True),
        ("1.0", True),
        ("hello", True),
        ("", True),
        ("hello:v2", False),
        ("team/app", False),
        (f"hello@sha256:{HEX64}", False),
        ("localhost:5000/hello", False),
        (":v2", False),
    ],
)
def test_is_bare_tag(value: str, bare: bool) -> None:
    assert v.is_bare_tag(value) is bare


@pytest.mark.parametrize("value", ["v2", "V2", "_x", "1.0.0-rc.1", "sha-abc123", "a" * 128])
def test_validate_tag_accepts(value: str) -> None:
    assert v.validate_tag(value) == value


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ("", ["''", "empty"]),
        ("-v1", ["'-v1'", "start", "'-'"]),
        (".v1", ["start", "'.'"]),
        ("v1;x", ["';'"]),
        ("v1+build", ["'+'"]),
        ("v 1", ["whitespace"]),
        ("v1\n", ["whitespace", "newline"]),
        ("a" * 129, ["129 characters", "limit is 128"]),
        ("vé", ["'é'"]),
    ],
)
def test_validate_tag_refuses(value: str, fragments: list[str]) -> None:
    error = refused(v.validate_tag, value, error_id="invalid-image")
    assert error.message.startswith("tag ")
    assert_names(error, *fragments)


def test_validate_tag_refuses_latest_with_a_reason() -> None:
    error = refused(v.validate_tag, "latest", error_id="invalid-image")
    assert_names(error, "'latest'")
    assert error.hint is not None
    assert "rollback" in error.hint


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (v.ImageRef("hello", "v1"), "hello:v2"),
        ("hello:v1", "hello:v2"),
        ("hello", "hello:v2"),
        ("hello:latest", "hello:v2"),
        ("registry.example.com:5000/team/hello:v1", "registry.example.com:5000/team/hello:v2"),
        (f"localhost:5000/hello:v1@sha256:{HEX64}", "localhost:5000/hello:v2"),
        (f"hello@sha256:{HEX64}", "hello:v2"),
    ],
)
def test_resolve_image_applies_a_bare_tag_to_the_current_repository(
    current: v.ImageRef | str, expected: str
) -> None:
    resolved = v.resolve_image("v2", current)
    assert str(resolved) == expected
    assert resolved.digest is None


def test_resolve_image_parses_a_full_reference_and_ignores_current() -> None:
    resolved = v.resolve_image("docker.io/library/hello:v3", "other:v1")
    assert resolved == v.ImageRef("docker.io/library/hello", "v3")


def test_resolve_image_refuses_a_bad_bare_tag() -> None:
    error = refused(v.resolve_image, "latest", "hello:v1", error_id="invalid-image")
    assert_names(error, "'latest'")
    error = refused(v.resolve_image, "v2;rm", "hello:v1", error_id="invalid-image")
    assert_names(error, "';'")


def test_resolve_image_refuses_a_bad_full_reference() -> None:
    error = refused(v.resolve_image, "Hello:V2", "hello:v1", error_id="invalid-image")
    assert_names(error, "'Hello:V2'", "repository names must be lowercase")
    error = refused(v.resolve_image, "team/hello", "hello:v1", error_id="invalid-image")
    assert_names(error, "has no tag or digest")


def test_resolve_image_explains_an_unusable_current_image() -> None:
    error = refused(v.resolve_image, "v2", "Bad Image", error_id="invalid-image")
    assert_names(error, "current image", "'Bad Image'", "whitespace")
    assert error.hint is not None
    assert "full image reference" in error.hint


# --- expected version -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "version"),
    [
        ("v2", "2.0.0"),
        ("v2.1", "2.1.0"),
        ("v2.1.3", "2.1.3"),
        ("2.1.3", "2.1.3"),
        ("v0.0.1", "0.0.1"),
        ("v10.20.30", "10.20.30"),
        ("v2.1.3-rc.1", "2.1.3-rc.1"),
        ("2.1.3-alpha-2.beta", "2.1.3-alpha-2.beta"),
        ("V2", None),
        ("V2.1.3", None),
        ("latest", None),
        ("stable", None),
        ("sha-abc123", None),
        (None, None),
        ("2", None),
        ("2.1", None),
        ("v01", None),
        ("v1.02.3", None),
        ("v2.1.3.4", None),
        ("v2-rc.1", None),
        ("v2.1.3-rc.01", None),
        ("v2.1.3-rc_1", None),
        ("v", None),
        ("", None),
    ],
)
def test_expected_version_from_tag(tag: str | None, version: str | None) -> None:
    assert v.expected_version_from_tag(tag) == version


# --- durations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1.5s", 1.5),
        ("0.5", 0.5),
        (".5s", 0.5),
        ("2h500ms", 7200.5),
        ("1h1m1s1ms", 3661.001),
        ("24h", 86400.0),
        ("1440m", 86400.0),
    ],
)
def test_parse_duration_accepts(value: str, seconds: float) -> None:
    assert v.parse_duration(value, "--timeout") == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["0", "0s", "0h0m"])
def test_parse_duration_zero_only_when_allowed(value: str) -> None:
    assert v.parse_duration(value, "--pause", allow_zero=True) == 0.0
    error = refused(v.parse_duration, value, "--timeout", error_id="invalid-duration")
    assert_names(error, "greater than zero")


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ("", ["''", "empty"]),
        ("-5s", ["'-5s'", "negative"]),
        ("-0", ["negative"]),
        ("5d", ["unknown unit 'd'"]),
        ("5min", ["unknown unit 'min'"]),
        ("5S", ["unknown unit 'S'"]),
        ("5us", ["unknown unit 'us'"]),
        ("25h", ["24h", "86400"]),
        ("86401", ["24h"]),
        ("1" + "0" * 400, ["24h"]),
        ("1m30", ["30", "no unit"]),
        ("30s1m", ["largest to the smallest"]),
        ("1m1m", ["each used once"]),
        ("5 m", ["whitespace"]),
        ("abc", ["expected a number", "'a'"]),
        ("+5s", ["'+'"]),
        ("5s-3s", ["'-'"]),
        ("1.5.3s", ["malformed number"]),
        ("inf", ["expected a number"]),
        ("nan", ["expected a number"]),
        ("1e3s", ["unknown unit 'e'"]),
    ],
)
def test_parse_duration_refuses(value: str, fragments: list[str]) -> None:
    error = refused(v.parse_duration, value, "--timeout", error_id="invalid-duration")
    assert error.message.startswith("--timeout ")
    assert_names(error, *fragments)


def test_parse_duration_hint_shows_the_format() -> None:
    error = refused(v.parse_duration, "5d", "--timeout", error_id="invalid-duration")
    assert error.hint is not None
    assert "1h30m" in error.hint


# --- surge ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("0", 0),
        ("1", 1),
        ("007", 7),
        ("2147483647", 2147483647),
        (3, 3),
        ("25%", "25%"),
        ("0%", "0%"),
        ("100%", "100%"),
        ("050%", "50%"),
    ],
)
def test_parse_surge_accepts(value: str | int, parsed: int | str) -> None:
    assert v.parse_surge(value, "--max-surge") == parsed


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ("-1", ["'-1'", "negative"]),
        (-1, ["'-1'", "negative"]),
        ("-5%", ["negative"]),
        ("1.5", ["'1.5'", "whole number"]),
        ("1.5%", ["whole number"]),
        ("101%", ["'101%'", "0%", "100%"]),
        ("abc", ["'abc'", "whole number"]),
        ("99999999999", ["'99999999999'", "2147483647"]),
        ("2147483648", ["2147483647"]),
        ("9" * 5000, ["2147483647"]),
        ("", ["empty"]),
        ("%", ["whole number"]),
        ("25%%", ["whole number"]),
        (" 1", ["whitespace"]),
        ("\u0663", ["whole number"]),  # ARABIC-INDIC DIGIT THREE: int() would take it
        ("1_000", ["whole number"]),
        (True, ["whole number"]),
    ],
)
def test_parse_surge_refuses(value: Any, fragments: list[str]) -> None:
    error = refused(v.parse_surge, value, "--max-surge", error_id="invalid-surge")
    assert error.message.startswith("--max-surge ")
    assert_names(error, *fragments)


@pytest.mark.parametrize(
    ("surge", "unavailable"),
    [(1, 0), (0, 1), ("25%", "0"), ("0", "25%"), ("25%", "25%"), ("1", "0%")],
)
def test_check_surge_pair_accepts(surge: str | int, unavailable: str | int) -> None:
    v.check_surge_pair(surge, unavailable)  # does not raise


@pytest.mark.parametrize(("surge", "unavailable"), [(0, 0), ("0", "0"), ("0%", "0"), ("0", "0%")])
def test_check_surge_pair_refuses_both_zero(surge: str | int, unavailable: str | int) -> None:
    error = refused(v.check_surge_pair, surge, unavailable, error_id="invalid-surge")
    assert_names(error, "--max-surge", "--max-unavailable", "both zero")
    assert error.hint is not None
    assert "may not be 0 when maxUnavailable is 0" in error.hint


def test_check_surge_pair_checks_each_value() -> None:
    error = refused(v.check_surge_pair, "101%", "0", error_id="invalid-surge")
    assert_names(error, "--max-surge", "'101%'")
    error = refused(
        v.check_surge_pair, "1", "x", unavailable_field="maxUnavailable", error_id="invalid-surge"
    )
    assert_names(error, "maxUnavailable", "'x'")


# --- percentages and steps ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"), [("25", 25), ("25%", 25), ("0", 0), ("100%", 100), (50, 50)]
)
def test_parse_percent_accepts(value: str | int, parsed: int) -> None:
    assert v.parse_percent(value, "--threshold") == parsed


def test_parse_percent_bounds_are_parameters() -> None:
    assert v.parse_percent("1", "--weight", minimum=1, maximum=50) == 1
    assert v.parse_percent("50%", "--weight", minimum=1, maximum=50) == 50
    error = refused(
        v.parse_percent, "0", "--weight", minimum=1, maximum=50, error_id="invalid-percent"
    )
    assert_names(error, "--weight '0'", "between 1% and 50%")
    error = refused(
        v.parse_percent, "51%", "--weight", minimum=1, maximum=50, error_id="invalid-percent"
    )
    assert_names(error, "'51%'", "between 1% and 50%")


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ("101", ["'101'", "between 0% and 100%"]),
        ("-5", ["negative"]),
        ("-5%", ["negative"]),
        ("abc", ["'abc'", "whole percentage"]),
        ("25.5", ["whole percentage"]),
        ("25%%", ["whole percentage"]),
        ("%", ["whole percentage"]),
        ("", ["empty"]),
        ("2 5", ["whitespace"]),
    ],
)
def test_parse_percent_refuses(value: str, fragments: list[str]) -> None:
    error = refused(v.parse_percent, value, "--threshold", error_id="invalid-percent")
    assert error.message.startswith("--threshold ")
    assert_names(error, *fragments)


@pytest.mark.parametrize(
    ("value", "steps"),
    [
        ("10,50,100", (10, 50, 100)),
        ("10, 50 , 100", (10, 50, 100)),
        (" 25 ", (25,)),
        ("10,50", (10, 50)),  # a last step below 100 is a gate: nothing is appended
        ("5%,100%", (5, 100)),
        ("1,100", (1, 100)),
        ("100", (100,)),
        ("10,\t50", (10, 50)),
    ],
)
def test_parse_steps_accepts(value: str, steps: tuple[int, ...]) -> None:
    assert v.parse_steps(value) == steps


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ("", ["''", "empty"]),
        ("   ", ["empty"]),
        ("10,,50", ["step 2 is empty"]),
        ("10,50,", ["step 3 is empty"]),
        (",10", ["step 1 is empty"]),
        ("50,10", ["increase", "10 comes after 50"]),
        ("10,10", ["10 appears more than once"]),
        ("10,50,50,100", ["50 appears more than once"]),
        ("0,50", ["step 1 is 0", "between 1 and 100"]),
        ("10,101", ["step 2 is 101", "between 1 and 100"]),
        ("abc", ["'abc'", "whole percentage"]),
        ("10;50", ["'10;50'", "whole percentage"]),
        ("-10,50", ["'-10'"]),
        ("10.5,50", ["'10.5'"]),
        ("1 0,50", ["'1 0'"]),
    ],
)
def test_parse_steps_refuses(value: str, fragments: list[str]) -> None:
    error = refused(v.parse_steps, value, error_id="invalid-steps")
    assert error.message.startswith("--steps ")
    assert_names(error, *fragments)


# --- revisions and replicas -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"), [("1", 1), (3, 3), ("42", 42), (str(2**63 - 1), 2**63 - 1)]
)
def test_parse_revision_accepts(value: str | int, parsed: int) -> None:
    assert v.parse_revision(value) == parsed


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ("0", ["'0'", "at least 1"]),
        (0, ["'0'", "at least 1"]),
        ("-1", ["'-1'", "negative"]),
        (str(2**63), ["9223372036854775807"]),
        ("abc", ["'abc'", "whole number"]),
        ("1.0", ["whole number"]),
        ("r3", ["'r3'"]),
        ("", ["empty"]),
        (" 3", ["whitespace"]),
        (True, ["whole number"]),
    ],
)
def test_parse_revision_refuses(value: Any, fragments: list[str]) -> None:
    error = refused(v.parse_revision, value, error_id="invalid-revision")
    assert error.message.startswith("revision ")
    assert_names(error, *fragments)


@pytest.mark.parametrize(
    ("value", "parsed"), [("0", 0), ("3", 3), (5, 5), ("2147483647", 2**31 - 1)]
)
def test_parse_replicas_accepts(value: str | int, parsed: int) -> None:
    assert v.parse_replicas(value, "--replicas") == parsed


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ("-1", ["'-1'", "negative"]),
        ("2147483648", ["2147483647"]),
        ("x", ["'x'", "whole number"]),
        ("1.5", ["whole number"]),
        ("", ["empty"]),
    ],
)
def test_parse_replicas_refuses(value: str, fragments: list[str]) -> None:
    error = refused(v.parse_replicas, value, "--replicas", error_id="invalid-replicas")
    assert error.message.startswith("--replicas ")
    assert_names(error, *fragments)


def test_parse_replicas_minimum() -> None:
    assert v.parse_replicas("1", "--canary-replicas", minimum=1) == 1
    error = refused(
        v.parse_replicas, "0", "--canary-replicas", minimum=1, error_id="invalid-replicas"
    )
    assert_names(error, "--canary-replicas '0'", "at least 1")


# --- change-cause ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("deploy v2", "deploy v2"),
        ("  fix login bug  ", "fix login bug"),
        ("fix\n", "fix"),  # a trailing newline (e.g. from $(cat file)) is just an end
        ("déploiement ✓ #123", "déploiement ✓ #123"),
        ("a" * 1024, "a" * 1024),
    ],
)
def test_validate_reason_accepts(text: str, kept: str) -> None:
    assert v.validate_reason(text) == kept


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("a" * 1025, ["1025 characters", "limit is 1024"]),
        ("", ["empty"]),
        ("   ", ["empty"]),
        ("line one\nline two", ["newline", "U+000A", "one line"]),
        ("a\rb", ["carriage return"]),
        ("a\tb", ["tab"]),
        ("a\x1b[31mred", ["U+001B"]),
        ("a\u2028b", ["U+2028"]),
        ("a\u202eb", ["U+202E"]),
    ],
)
def test_validate_reason_refuses(text: str, fragments: list[str]) -> None:
    error = refused(v.validate_reason, text, error_id="invalid-reason")
    assert error.message.startswith("--reason ")
    assert_names(error, *fragments)


# --- import cost ----------------------------------------------------------------------


def test_importing_validation_pulls_in_no_heavy_dependency() -> None:
    code = (
        "import sys, deployer.validation\n"
        "heavy = [m for m in ('kubernetes', 'httpx', 'typer', 'yaml', 'structlog')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == ""
