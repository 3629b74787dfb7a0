"""Rules for everything a person types into deployer, checked before any API call.

Every function here either returns the value (parsed or normalised) or raises
:class:`deployer.errors.InvalidInput` with a stable id and a message that names
the field, the offending value or character, and the rule it breaks, e.g.::

    image reference 'Hello:V2' is invalid: repository names must be lowercase (found 'H')
    (deployer: invalid-image)

Refusing here, instead of letting the API server or the kubelet refuse later,
means a bad value never leaves a half-done rollout behind.

Each grammar is one full-match pattern, and the pattern alone decides whether a
value is valid; only a value it refuses is examined further, to say which part
breaks which rule.

The module is imported on the command-line path, so it only uses the standard
library and keeps its import cheap (a few compiled regular expressions).
"""

from __future__ import annotations

import math
import os
import re
import unicodedata
from dataclasses import dataclass
from typing import NoReturn

from deployer.errors import InvalidInput

__all__ = [
    "APP_NAME_MAX",
    "DNS_LABEL_MAX",
    "DURATION_MAX_SECONDS",
    "IMAGE_NAME_MAX",
    "INT32_MAX",
    "INT64_MAX",
    "REASON_MAX",
    "TAG_MAX",
    "ImageRef",
    "check_surge_pair",
    "expected_version_from_tag",
    "is_bare_tag",
    "parse_duration",
    "parse_image",
    "parse_percent",
    "parse_reference",
    "parse_replicas",
    "parse_revision",
    "parse_steps",
    "parse_surge",
    "resolve_image",
    "seconds_from_env",
    "validate_app_name",
    "validate_namespace",
    "validate_reason",
    "validate_tag",
]

# --- limits -------------------------------------------------------------------

DNS_LABEL_MAX = 63  # RFC 1123 label: Kubernetes object names such as namespaces
APP_NAME_MAX = 47  # leaves room for "-canary" and the ReplicaSet hash suffix
IMAGE_NAME_MAX = 255  # repository name, registry included (distribution reference)
TAG_MAX = 128  # image tag (distribution reference)
INT32_MAX = 2**31 - 1  # replica counts and surges are int32 fields
INT64_MAX = 2**63 - 1  # the revision annotation is parsed as an int64
DURATION_MAX_SECONDS = 24 * 3600  # a rollout waiting a day is a mistake
REASON_MAX = 1024  # change-cause text

# --- patterns (ASCII only: none of these grammars allows other letters or digits) --

# Kubernetes: RFC 1123 labels and subdomains, and the name part of a label key or value.
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS_LABEL_RE = re.compile(_DNS_LABEL)

# The distribution reference grammar. deployer is stricter in two places: a port
# is 1 to 65535 (leading zeros allowed), and a digest is sha256 or sha512.
_HOST_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PORT = (
    r"0*(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
)
_IPV6 = r"[0-9A-Fa-f:]+"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST_COMPONENT_RE = re.compile(_HOST_COMPONENT)
_IPV6_RE = re.compile(_IPV6)
_DOMAIN_RE = re.compile(rf"(?:{_HOST_COMPONENT}(?:\.{_HOST_COMPONENT})*|\[{_IPV6}\])(?::{_PORT})?")
_PATH_COMPONENT_RE = re.compile(_PATH_COMPONENT)
_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha512": 128}

# The first character outside each grammar's alphabet, for the messages.
_NOT_DNS_CHAR = re.compile(r"[^a-z0-9-]")
_NOT_NAME_CHAR = re.compile(r"[^A-Za-z0-9_.-]")  # tags
_NOT_HOST_CHAR = re.compile(r"[^A-Za-z0-9-]")
_NOT_PATH_CHAR = re.compile(r"[^a-z0-9._-]")
_NOT_HEX_CHAR = re.compile(r"[^0-9a-f]")
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789" + _UPPER)

_WHOLE_RE = re.compile(r"[0-9]+")

_SEMVER_IDENT = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_FULL_VERSION_TAG_RE = re.compile(
    r"v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    rf"(?:-({_SEMVER_IDENT}(?:\.{_SEMVER_IDENT})*))?"
)
_SHORT_VERSION_TAG_RE = re.compile(r"v(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*))?")

_DURATION_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?|\.[0-9]+)([A-Za-z]*)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_DURATION_ORDER = ("h", "m", "s", "ms")

# Characters that reorder or break a line when an annotation is displayed.
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)

_CHAR_NAMES = {
    " ": "space",
    "\t": "tab",
    "\n": "newline",
    "\r": "carriage return",
    "\x00": "NUL",
    "\x0b": "vertical tab",
    "\x0c": "form feed",
    "\xa0": "no-break space",
}

_LATEST_HINT = (
    "'latest' points at whatever was pushed last, so the rollout is not reproducible "
    "and a rollback cannot return to the version that ran before; "
    "use a version tag (e.g. v2) or a digest"
)
_DURATION_HINT = "write a number with a unit: ms, s, m or h (e.g. 90s, 5m, 1h30m, 500ms)"
_SURGE_HINT = "use a whole number of pods (e.g. 1) or a whole percentage (e.g. 25%)"


# --- message helpers ------------------------------------------------------------

_SHOW_MAX = 80


def _show(value: str) -> str:
    """Quote *value* for a message: control characters escaped, long values shortened."""
    if len(value) > _SHOW_MAX:
        value = f"{value[:56]}...{value[-16:]}"
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
    return f"'{text}'"


def _char(c: str) -> str:
    """Name one character so that it is visible in a terminal: ``';'``, ``tab U+0009``."""
    if c.isprintable() and not c.isspace():
        return f"'{c}'"
    name = _CHAR_NAMES.get(c) or unicodedata.name(c, "") or "control character"
    return f"{name} U+{ord(c):04X}"


class _Problem(Exception):
    """A broken rule found by an internal check; turned into :class:`InvalidInput`."""

    def __init__(self, rule: str, hint: str | None = None) -> None:
        super().__init__(rule)
        self.rule = rule
        self.hint = hint

    def error(self, subject: str, value: str, error_id: str) -> InvalidInput:
        return InvalidInput(
            f"{subject} {_show(value)} is invalid: {self.rule}", id=error_id, hint=self.hint
        )


def _fail(subject: str, value: str, rule: str, error_id: str, hint: str | None = None) -> NoReturn:
    raise InvalidInput(f"{subject} {_show(value)} is invalid: {rule}", id=error_id, hint=hint)


def _check_present(value: str) -> None:
    """Refuse an empty value, or one with whitespace anywhere in it."""
    if value == "":
        raise _Problem("it is empty")
    _check_no_whitespace(value)


def _check_no_whitespace(value: str) -> None:
    for i, c in enumerate(value, 1):
        if c.isspace():
            raise _Problem(f"it contains whitespace ({_char(c)} at position {i})")


def _as_text(value: str | int, subject: str, error_id: str) -> str:
    """Accept a string or an int (not a bool) for the numeric parsers."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        _fail(subject, repr(value), "expected a whole number", error_id)
    return value if isinstance(value, str) else str(value)


def _whole_number(text: str) -> int | None:
    """ASCII digits only (``int()`` would also take ``'٣'``, ``'1_0'`` or ``' 1'``).

    Very long digit strings are capped rather than converted, so a hostile value
    cannot trip Python's int-conversion limit; every caller's maximum is far lower.
    """
    if not _WHOLE_RE.fullmatch(text):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > 30:
        return 10**30
    return int(digits)


# --- names and labels ---------------------------------------------------------------


def _check_dns_label(value: str) -> None:
    """An RFC 1123 label: 1-63 characters of ``[a-z0-9-]``, alphanumeric at both ends."""
    if len(value) <= DNS_LABEL_MAX and _DNS_LABEL_RE.fullmatch(value):
        return
    if value == "":
        raise _Problem(f"it is empty; a name has 1 to {DNS_LABEL_MAX} characters")
    _check_no_whitespace(value)
    if len(value) > DNS_LABEL_MAX:
        raise _Problem(
            f"it is {len(value)} characters long; the limit is {DNS_LABEL_MAX} (RFC 1123 label)"
        )
    if bad := _NOT_DNS_CHAR.search(value):
        c, i = bad[0], bad.start() + 1
        if c in _UPPER:
            lowered = value.lower()
            hint = f"did you mean {_show(lowered)}?" if _DNS_LABEL_RE.fullmatch(lowered) else None
            raise _Problem(f"it must be lowercase (found {_char(c)} at position {i})", hint)
        raise _Problem(
            f"character {_char(c)} at position {i} is not allowed; "
            "use only lowercase letters, digits and '-'"
        )
    if value[0] == "-":
        raise _Problem("it must start with a letter or digit, not a hyphen '-'")
    raise _Problem("it must end with a letter or digit, not a hyphen '-'")


def validate_app_name(value: str) -> str:
    """Check ``--app``: an RFC 1123 label of at most 47 characters.

    deployer creates Deployments named ``<app>-canary``, ``<app>-blue`` and
    ``<app>-green``; Kubernetes names their ReplicaSets ``<deployment>-<hash>``
    and those names end up in pod names and label values limited to 63
    characters. 47 leaves room for both suffixes, so a valid app name never
    produces an object the API server refuses halfway through a rollout.
    The error says exactly what is wrong: empty, whitespace, too long (with the
    length), uppercase, which illegal character, or a hyphen at an end.
    Error id ``invalid-name``.
    """
    try:
        _check_dns_label(value)
    except _Problem as p:
        raise p.error("--app", value, "invalid-name") from None
    if len(value) > APP_NAME_MAX:
        _fail(
            "--app",
            value,
            f"it is {len(value)} characters long; app names are limited to {APP_NAME_MAX}",
            "invalid-name",
            hint=(
                "deployer names Deployments '<app>-canary', '<app>-blue' and '<app>-green', "
                "and Kubernetes appends a hash to each ReplicaSet name; "
                f"{APP_NAME_MAX} keeps those names within {DNS_LABEL_MAX} characters"
            ),
        )
    return value


def validate_namespace(value: str) -> str:
    """Check ``--namespace``: an RFC 1123 label (Kubernetes' rule for namespace names).

    Error id ``invalid-namespace``.
    """
    try:
        _check_dns_label(value)
    except _Problem as p:
        raise p.error("--namespace", value, "invalid-namespace") from None
    return value


# --- image references ---------------------------------------------------------------


def _split_domain(name: str) -> tuple[str | None, str]:
    """Split ``registry/path`` the way the distribution reference does.

    The first component is a registry only when it contains ``.`` or ``:`` or is
    ``localhost``; otherwise the whole name is a path (``team/app``).
    """
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, name


# Each _diagnose_* function is given a part its pattern refused and raises the
# first rule that part breaks, so the message names the character or component.


def _diagnose_port(port: str) -> NoReturn:
    if port == "":
        raise _Problem("the registry port after ':' is empty")
    if _whole_number(port) is None:
        raise _Problem(f"registry port {_show(port)} is not a number")
    raise _Problem(f"registry port {port} is out of range (1 to 65535)")


def _diagnose_domain(domain: str) -> NoReturn:
    if domain.startswith("["):
        end = domain.find("]")
        if end == -1:
            raise _Problem(f"registry {_show(domain)} opens '[' without a closing ']'")
        if not _IPV6_RE.fullmatch(domain[1:end]):
            raise _Problem(f"registry address {_show(domain[: end + 1])} is not an IPv6 address")
        if not domain[end + 1 :].startswith(":"):
            raise _Problem(f"registry {_show(domain)} has text after ']' that is not a port")
        _diagnose_port(domain[end + 2 :])
    if domain.count(":") > 1:
        raise _Problem(f"registry {_show(domain)} has more than one ':'")
    host, _, port = domain.partition(":")
    if host == "":
        raise _Problem("the registry host before ':' is empty")
    part = next((p for p in host.split(".") if not _HOST_COMPONENT_RE.fullmatch(p)), None)
    if part == "":
        raise _Problem(f"registry host {_show(host)} has an empty part between dots")
    if part is not None:
        if bad := _NOT_HOST_CHAR.search(part):
            raise _Problem(
                f"character {_char(bad[0])} is not allowed in registry host {_show(host)}"
            )
        raise _Problem(
            f"registry host part {_show(part)} must start and end with a letter or digit"
        )
    _diagnose_port(port)


def _diagnose_path(path: str, domain: str | None) -> NoReturn:
    if path == "":
        if domain is None:
            raise _Problem("the repository name is empty")
        raise _Problem("the repository path after the registry is empty")
    component = next(c for c in path.split("/") if not _PATH_COMPONENT_RE.fullmatch(c))
    if component == "":
        raise _Problem(
            "the repository path has an empty component (look for '//' or a trailing '/')"
        )
    if bad := _NOT_PATH_CHAR.search(component):
        if bad[0] in _UPPER:
            lowered = path.lower() if domain is None else f"{domain}/{path.lower()}"
            raise _Problem(
                f"repository names must be lowercase (found {_char(bad[0])})",
                f"write the repository as {_show(lowered)}",
            )
        raise _Problem(f"character {_char(bad[0])} is not allowed in a repository name")
    raise _Problem(
        f"repository path component {_show(component)} must start and end with a "
        "letter or digit, with only '.', '_', '__' or '-' between them"
    )


def _diagnose_tag(tag: str) -> NoReturn:
    if tag == "":
        raise _Problem("the tag after ':' is empty")
    if len(tag) > TAG_MAX:
        raise _Problem(f"the tag is {len(tag)} characters long; the limit is {TAG_MAX}")
    if bad := _NOT_NAME_CHAR.search(tag):
        raise _Problem(
            f"character {_char(bad[0])} is not allowed in a tag; "
            "use letters, digits, '_', '.' and '-'"
        )
    raise _Problem(f"a tag must start with a letter, digit or '_', not {_char(tag[0])}")


def _diagnose_digest(digest: str) -> NoReturn:
    if digest == "":
        raise _Problem("the digest after '@' is empty")
    algorithm, colon, encoded = digest.partition(":")
    if not colon or algorithm == "":
        raise _Problem("a digest is written 'algorithm:hex', e.g. sha256:<64 hex digits>")
    expected = _DIGEST_HEX_LENGTHS.get(algorithm)
    if expected is None:
        raise _Problem(
            f"digest algorithm {_show(algorithm)} is not supported (use sha256 or sha512)"
        )
    if encoded == "":
        raise _Problem(f"the digest has no hex digits after '{algorithm}:'")
    if bad := _NOT_HEX_CHAR.search(encoded):
        if bad[0] in "ABCDEF":
            raise _Problem("digest hex digits must be lowercase")
        raise _Problem(f"character {_char(bad[0])} in the digest is not a hex digit")
    raise _Problem(
        f"a {algorithm} digest has exactly {expected} hex digits; this one has {len(encoded)}"
    )


def _check_parts(repository: str, tag: str | None, digest: str | None) -> None:
    """Raise ``_Problem`` for the first part that breaks the grammar, in reading order."""
    domain, path = _split_domain(repository)
    if domain is not None and not _DOMAIN_RE.fullmatch(domain):
        _diagnose_domain(domain)
    if not _PATH_RE.fullmatch(path):
        _diagnose_path(path, domain)
    if len(repository) > IMAGE_NAME_MAX:
        raise _Problem(
            f"the repository name is {len(repository)} characters long; "
            f"the limit is {IMAGE_NAME_MAX}"
        )
    if tag is not None and not _TAG_RE.fullmatch(tag):
        _diagnose_tag(tag)
    if digest is not None and not _DIGEST_RE.fullmatch(digest):
        _diagnose_digest(digest)


@dataclass(frozen=True)
class ImageRef:
    """A container image reference that follows the distribution reference grammar.

    ``repository`` includes the registry when one was given
    (``registry.example.com:5000/team/hello``, or just ``hello``); nothing is
    normalised, so ``str()`` gives back exactly the reference that was parsed.
    Construction checks the grammar (not deployer's tag policy), so an
    ``ImageRef`` that exists is always a reference a registry could serve.
    """

    repository: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        try:
            _check_parts(self.repository, self.tag, self.digest)
        except _Problem as p:
            raise p.error("image reference", str(self), "invalid-image") from None

    def __str__(self) -> str:
        text = self.repository
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    @property
    def domain(self) -> str | None:
        """The registry part (``localhost:5000``), or None when the name has none."""
        return _split_domain(self.repository)[0]

    @property
    def path(self) -> str:
        """The repository path without the registry (``team/hello``)."""
        return _split_domain(self.repository)[1]

    def with_tag(self, tag: str) -> ImageRef:
        """The same repository at *tag*; the digest is dropped because it named the old image.

        Only the tag grammar is checked here; :func:`validate_tag` adds the policy.
        """
        return ImageRef(self.repository, tag, None)


def _parse(value: str) -> ImageRef:
    """Split and check a reference; raises ``_Problem``."""
    _check_present(value)
    if value.count("@") > 1:
        raise _Problem("it contains more than one '@'; a reference has at most one digest")
    rest, at, digest = value.partition("@")
    slash, colon = rest.rfind("/"), rest.rfind(":")
    name, tag = (rest[:colon], rest[colon + 1 :]) if colon > slash else (rest, None)
    _check_parts(name, tag, digest if at else None)
    return ImageRef(name, tag, digest if at else None)


def parse_reference(value: str) -> ImageRef:
    """Parse any reference the grammar allows, with or without a tag.

    For images read from the cluster (a Deployment may run ``hello`` or
    ``hello:latest``); user input goes through :func:`parse_image`, which adds
    deployer's policy. Error id ``invalid-image``.
    """
    try:
        return _parse(value)
    except _Problem as p:
        raise p.error("image reference", value, "invalid-image") from None


def parse_image(value: str) -> ImageRef:
    """Parse ``--image``: a full reference that pins a version.

    Grammar (distribution reference): ``[registry[:port]/]path[:tag][@digest]``,
    as the patterns above spell it; the name is at most 255 characters, and the
    first component is the registry only when it has a ``.`` or ``:`` or is
    ``localhost``.

    Policy on top of the grammar: a reference must name a tag or a digest, and
    the tag ``latest`` is refused unless a digest pins it, because either would
    make the rollout irreproducible and leave a rollback nothing to return to.
    Error id ``invalid-image``.
    """
    ref = parse_reference(value)
    if ref.tag is None and ref.digest is None:
        raise InvalidInput(
            f"image reference {_show(value)} has no tag or digest: "
            f"name an explicit tag (e.g. {ref.repository}:v2) or a digest",
            id="invalid-image",
            hint="without a tag the registry serves 'latest', which changes whenever "
            "someone pushes; the rollout would not be reproducible",
        )
    if ref.tag == "latest" and ref.digest is None:
        _fail(
            "image reference",
            value,
            "the tag 'latest' is not allowed",
            "invalid-image",
            _LATEST_HINT,
        )
    return ref


def is_bare_tag(value: str) -> bool:
    """True when *value* has no ``:``, ``/`` or ``@``, so ``--image v2`` means a tag.

    The CLI then applies it to the app's current repository (see
    :func:`resolve_image`). An empty string counts as a bare tag and is refused
    by :func:`validate_tag`.
    """
    return not any(c in value for c in ":/@")


def validate_tag(value: str) -> str:
    """Check a bare tag: ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``, and not ``latest``.

    Same rule and messages as the tag part of :func:`parse_image`.
    Error id ``invalid-image``.
    """
    if not _TAG_RE.fullmatch(value):
        try:
            _check_present(value)
            _diagnose_tag(value)
        except _Problem as p:
            raise p.error("tag", value, "invalid-image") from None
    if value == "latest":
        _fail("tag", value, "the tag 'latest' is not allowed", "invalid-image", hint=_LATEST_HINT)
    return value


def resolve_image(value: str, current: ImageRef | str) -> ImageRef:
    """Turn ``--image`` into the reference to deploy.

    A bare tag (``v2``) is applied to *current*, the image the app runs now (its
    digest, if any, is dropped); anything else must be a full reference and is
    parsed by :func:`parse_image`. Error id ``invalid-image``.
    """
    if not is_bare_tag(value):
        return parse_image(value)
    validate_tag(value)
    if isinstance(current, ImageRef):
        return current.with_tag(value)
    try:
        base = _parse(current)
    except _Problem as p:
        raise InvalidInput(
            f"the app's current image {_show(current)} is invalid: {p.rule}",
            id="invalid-image",
            hint=f"give a full image reference instead of the bare tag {_show(value)}",
        ) from None
    return base.with_tag(value)


def expected_version_from_tag(tag: str | None) -> str | None:
    """The version an app built from *tag* should report, or None when the tag says none.

    ``v2`` -> ``2.0.0``, ``v2.1`` -> ``2.1.0``, ``v2.1.3`` and ``2.1.3`` ->
    ``2.1.3``, ``v2.1.3-rc.1`` -> ``2.1.3-rc.1``. Tags are case-sensitive, so only
    a lowercase ``v`` counts. Short forms need the ``v``: an unprefixed ``2`` or
    ``2.1`` is commonly a floating tag (like ``python:3.12``) and says nothing
    exact. Everything else (``latest``, ``stable``, ``sha-abc123``, None) gives
    None, and the CLI then asks for ``--expect-version``.
    """
    if tag is None:
        return None
    full = _FULL_VERSION_TAG_RE.fullmatch(tag)
    if full:
        major, minor, patch, pre = full.groups()
        return f"{major}.{minor}.{patch}" + (f"-{pre}" if pre else "")
    short = _SHORT_VERSION_TAG_RE.fullmatch(tag)
    if short:
        major, minor = short.groups()
        return f"{major}.{minor or 0}.0"
    return None


# --- numbers and durations ----------------------------------------------------------


def parse_duration(value: str, field: str, *, allow_zero: bool = False) -> float:
    """Parse a duration into seconds: ``90``, ``90s``, ``5m``, ``1h30m``, ``500ms``, ``1.5s``.

    A bare number is seconds. Units are ``h``, ``m``, ``s`` and ``ms``, from the
    largest to the smallest, each at most once. Zero is refused unless
    *allow_zero* (a zero timeout would fail every run), negative values and
    anything over 24h are refused (waiting longer is a typo, not a plan).
    Error id ``invalid-duration``.
    """
    try:
        if value == "":
            raise _Problem("it is empty", _DURATION_HINT)
        _check_no_whitespace(value)
        if value.startswith("-"):
            raise _Problem("a duration must not be negative")
        total = 0.0
        position = 0
        last_rank = -1
        while position < len(value):
            match = _DURATION_PART_RE.match(value, position)
            if match is None:
                raise _Problem(
                    f"expected a number at position {position + 1}, found {_char(value[position])}",
                    _DURATION_HINT,
                )
            number, unit = match.groups()
            if unit == "":
                if match.end() < len(value):
                    raise _Problem(
                        f"malformed number at position {match.end() + 1}", _DURATION_HINT
                    )
                if position != 0:
                    raise _Problem(f"the number {number} at the end has no unit", _DURATION_HINT)
                total = float(number)
                break
            if unit not in _DURATION_UNITS:
                raise _Problem(f"unknown unit '{unit}' (use ms, s, m or h)", _DURATION_HINT)
            rank = _DURATION_ORDER.index(unit)
            if rank <= last_rank:
                raise _Problem(
                    "units must go from the largest to the smallest, each used once "
                    "(e.g. 1h30m, 1m30s)"
                )
            last_rank = rank
            total += float(number) * _DURATION_UNITS[unit]
            position = match.end()
        if total == 0 and not allow_zero:
            raise _Problem("it must be greater than zero")
        if total > DURATION_MAX_SECONDS:
            raise _Problem(f"it is longer than the limit of 24h ({DURATION_MAX_SECONDS}s)")
    except _Problem as p:
        raise p.error(field, value, "invalid-duration") from None
    return total


def parse_surge(value: str | int, field: str) -> int | str:
    """Parse maxSurge / maxUnavailable the way Kubernetes' IntOrString takes them.

    Either a whole number of pods, 0 to 2147483647 (an int32), returned as
    ``int``; or a whole percentage ``N%`` with 0 <= N <= 100, returned as the
    string ``"N%"`` (leading zeros dropped). Fractions, negatives and words are
    refused here instead of by the API server mid-run. Error id ``invalid-surge``.
    """
    text = _as_text(value, field, "invalid-surge")
    try:
        _check_present(text)
        if text.endswith("%"):
            number = _whole_number(text[:-1])
            if text.startswith("-"):
                raise _Problem("a percentage must not be negative")
            if number is None:
                raise _Problem("a percentage must be a whole number followed by '%' (e.g. 25%)")
            if number > 100:
                raise _Problem("a percentage must be between 0% and 100%")
            return f"{number}%"
        if text.startswith("-"):
            raise _Problem("it must not be negative")
        number = _whole_number(text)
        if number is None:
            raise _Problem("it must be a whole number of pods or a whole percentage")
        if number > INT32_MAX:
            raise _Problem(f"it must be at most {INT32_MAX}")
        return number
    except _Problem as p:
        raise InvalidInput(
            f"{field} {_show(text)} is invalid: {p.rule}", id="invalid-surge", hint=_SURGE_HINT
        ) from None


def _is_zero(amount: int | str) -> bool:
    return amount == 0 or amount == "0%"


def check_surge_pair(
    max_surge: str | int,
    max_unavailable: str | int,
    *,
    surge_field: str = "--max-surge",
    unavailable_field: str = "--max-unavailable",
) -> None:
    """Refuse maxSurge and maxUnavailable both zero (``0`` or ``0%``).

    A rolling update could then neither add a pod nor remove one; Kubernetes
    rejects it ("may not be 0 when maxUnavailable is 0"). Each value is also
    checked by :func:`parse_surge`. Error id ``invalid-surge``.
    """
    surge = parse_surge(max_surge, surge_field)
    unavailable = parse_surge(max_unavailable, unavailable_field)
    if _is_zero(surge) and _is_zero(unavailable):
        raise InvalidInput(
            f"{surge_field} {surge} and {unavailable_field} {unavailable} are both zero: "
            "the rollout could neither add nor remove a pod",
            id="invalid-surge",
            hint="Kubernetes refuses this too (maxSurge may not be 0 when maxUnavailable is 0); "
            f"set {surge_field} or {unavailable_field} to at least 1 (or 25%)",
        )


def parse_percent(value: str | int, field: str, *, minimum: int = 0, maximum: int = 100) -> int:
    """Parse a whole percentage written ``25`` or ``25%``, within [minimum, maximum].

    Error id ``invalid-percent``.
    """
    text = _as_text(value, field, "invalid-percent")
    try:
        _check_present(text)
        digits = text[:-1] if text.endswith("%") else text
        if digits.startswith("-"):
            raise _Problem("a percentage must not be negative")
        number = _whole_number(digits)
        if number is None:
            raise _Problem("it must be a whole percentage such as 25 or 25%")
        if not minimum <= number <= maximum:
            raise _Problem(f"it must be between {minimum}% and {maximum}%")
        return number
    except _Problem as p:
        raise p.error(field, text, "invalid-percent") from None


def parse_steps(value: str) -> tuple[int, ...]:
    """Parse ``--steps`` (canary traffic steps) such as ``10,50,100``.

    Comma-separated whole percentages from 1 to 100 (``10%`` is accepted too),
    strictly increasing and without repeats; spaces around commas are fine. The
    last step may be below 100: the canary then pauses there as a promotion
    gate, so 100 is not appended. Error id ``invalid-steps``.
    """
    try:
        if value.strip() == "":
            raise _Problem("it is empty; give percentages such as 10,50,100")
        steps: list[int] = []
        for position, raw in enumerate(value.split(","), 1):
            item = raw.strip()
            if item == "":
                raise _Problem(f"step {position} is empty (look for a doubled or trailing comma)")
            number = _whole_number(item[:-1] if item.endswith("%") else item)
            if number is None:
                raise _Problem(
                    f"step {position} {_show(item)} is not a whole percentage from 1 to 100"
                )
            if not 1 <= number <= 100:
                raise _Problem(f"step {position} is {number}; steps must be between 1 and 100")
            if number in steps:
                raise _Problem(f"step {number} appears more than once")
            if steps and number < steps[-1]:
                raise _Problem(f"steps must increase, but {number} comes after {steps[-1]}")
            steps.append(number)
    except _Problem as p:
        raise p.error("--steps", value, "invalid-steps") from None
    return tuple(steps)


def _parse_bounded(
    value: str | int, subject: str, error_id: str, minimum: int, maximum: int, noun: str
) -> int:
    text = _as_text(value, subject, error_id)
    try:
        _check_present(text)
        if text.startswith("-") and _whole_number(text[1:]) is not None:
            raise _Problem(f"it must not be negative; {noun} are {minimum} or more")
        number = _whole_number(text)
        if number is None:
            raise _Problem(f"it must be a whole number ({noun} are {minimum} or more)")
        if number < minimum:
            raise _Problem(f"it must be at least {minimum}")
        if number > maximum:
            raise _Problem(f"it must be at most {maximum}")
        return number
    except _Problem as p:
        raise p.error(subject, text, error_id) from None


def parse_revision(value: str | int) -> int:
    """Parse a Deployment revision: a whole number from 1 to 2^63-1.

    Kubernetes numbers revisions from 1 in the ``deployment.kubernetes.io/revision``
    annotation and parses it as an int64. Error id ``invalid-revision``.
    """
    return _parse_bounded(value, "revision", "invalid-revision", 1, INT64_MAX, "revisions")


def parse_replicas(value: str | int, field: str, *, minimum: int = 0) -> int:
    """Parse a replica count: a whole number from *minimum* (default 0) to 2147483647.

    ``spec.replicas`` is an int32 in Kubernetes. Error id ``invalid-replicas``.
    """
    return _parse_bounded(value, field, "invalid-replicas", minimum, INT32_MAX, "replica counts")


def validate_reason(text: str, field: str = "--reason") -> str:
    """Check the change-cause text and return it with surrounding whitespace removed.

    It is stored in the ``kubernetes.io/change-cause`` annotation and printed on
    one line by ``kubectl rollout history`` and deployer's reports, so line
    breaks, control characters and bidirectional-override characters (which
    make a line read differently from what it says) are refused, and it is at
    most 1024 characters. Error id ``invalid-reason``.
    """
    stripped = text.strip()
    try:
        if stripped == "":
            raise _Problem("it is empty")
        for i, c in enumerate(stripped, 1):
            category = unicodedata.category(c)
            if category in ("Cc", "Zl", "Zp"):
                raise _Problem(
                    f"it contains {_char(c)} at position {i}; it must be one line "
                    "without control characters"
                )
            if category == "Cs" or c in _BIDI_CONTROLS:
                raise _Problem(f"it contains {_char(c)} at position {i}, which is not allowed")
        if len(stripped) > REASON_MAX:
            raise _Problem(f"it is {len(stripped)} characters long; the limit is {REASON_MAX}")
    except _Problem as p:
        raise p.error(field, stripped, "invalid-reason" if field == "--reason" else
                      "invalid-actor") from None
    return stripped


def seconds_from_env(name: str, default: float, *, whole: bool, error_id: str) -> float:
    """A budget in seconds from the environment variable ``name`` (a test knob): above 0,
    a whole number if ``whole``; unset or blank means ``default``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        seconds = float(int(raw)) if whole else float(raw)
    except ValueError:
        seconds = 0.0
    if not (math.isfinite(seconds) and seconds > 0):
        kind = "a whole number" if whole else "a number"
        raise InvalidInput(f"{name}={raw!r} is invalid: use {kind} of seconds above 0",
                           id=error_id, hint=f"unset it for the default of {default:.0f}s")
    return seconds


# ------------------------------------------------------------------ quantities

_DECIMAL = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9,
            "T": 1e12, "P": 1e15, "E": 1e18}
_BINARY = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50,
           "Ei": 2 ** 60}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)$")


def quantity(text: str | int | float) -> float:
    """A Kubernetes resource quantity (``100m``, ``64Mi``, ``1.5``, ``2e3``) as a number."""
    match = _QUANTITY.match(str(text).strip())
    if match is None:
        raise ValueError(f"not a quantity: {text!r}")
    number, suffix = match.groups()
    return float(number) * (_BINARY.get(suffix) or _DECIMAL[suffix])
