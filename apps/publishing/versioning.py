"""Strict SemVer for published versions: MAJOR.MINOR.PATCH, no pre-release, no build metadata."""

from __future__ import annotations

import semver

MAX_PART = 2_147_483_647  # the database's integer columns


class VersionError(ValueError):
    """A version string that is not plain SemVer."""


def parse_version(text: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a plain SemVer string; pre-release and build suffixes are refused."""
    if not isinstance(text, str):
        raise VersionError("The version must be a string like 1.2.3.")
    try:
        version = semver.Version.parse(text.strip())
    except (ValueError, TypeError):
        raise VersionError(f"{text!r} is not a semantic version like 1.2.3.") from None
    if version.prerelease:
        raise VersionError(f"{text!r} has a pre-release suffix ({version.prerelease}); publish plain versions.")
    if version.build:
        raise VersionError(f"{text!r} has build metadata ({version.build}); publish plain versions.")
    if max(version.major, version.minor, version.patch) > MAX_PART:
        raise VersionError(f"{text!r} has a part larger than {MAX_PART}.")
    return version.major, version.minor, version.patch
