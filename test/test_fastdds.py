"""Which Fast DDS variable selects the large-image profile, and when the node sets it.

Fast DDS 3 reads FASTDDS_DEFAULT_PROFILES_FILE (eProsima/Fast-DDS 3.x,
src/cpp/xmlparser/XMLParserCommon.cpp: DEFAULT_FASTDDS_ENV_VARIABLE) and warns that the old
name is deprecated; Fast DDS 2 (Humble, Jazzy) reads FASTRTPS_DEFAULT_PROFILES_FILE
(DEFAULT_FASTRTPS_ENV_VARIABLE). Fast DDS 3 also renamed its CMake package, and so its share/
directory, from fastrtps to fastdds. The live check (the node sets it for itself, no warning)
is in test_package.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lowlight_perception import fastdds


def _prefix(tmp_path: Path, package: str) -> str:
    (tmp_path / package / "share" / package).mkdir(parents=True)
    return str(tmp_path / package)


def test_the_major_version_comes_from_the_installed_package_then_the_distro(tmp_path):
    three, two = _prefix(tmp_path, "fastdds"), _prefix(tmp_path, "fastrtps")
    assert fastdds.fastdds_major([three]) == 3
    assert fastdds.fastdds_major([two]) == 2
    assert fastdds.fastdds_major([two, three]) == 2  # the first prefix wins, as in ament
    for distro, major in (("humble", 2), ("jazzy", 2), ("kilted", 3), ("rolling", 3)):
        assert fastdds.fastdds_major([], distro) == major


def test_this_machine_has_fast_dds_3_from_the_ros_wheels():
    assert (Path(sys.prefix) / "share" / "fastdds").is_dir()
    assert fastdds.profile_variable() == "FASTDDS_DEFAULT_PROFILES_FILE"
    assert fastdds.profile_env() == {"FASTDDS_DEFAULT_PROFILES_FILE": str(fastdds.profile_path())}
    assert fastdds.profile_path().is_file()


def test_the_profile_is_set_once_by_version_with_a_line_saying_how_to_opt_out():
    env: dict[str, str] = {}
    note = fastdds.apply_default_profile(env)
    assert env == {"FASTDDS_DEFAULT_PROFILES_FILE": str(fastdds.profile_path())}
    assert note and "FASTDDS_DEFAULT_PROFILES_FILE=" in note and fastdds.OPT_OUT in note


@pytest.mark.parametrize(
    "env",
    [
        {"FASTRTPS_DEFAULT_PROFILES_FILE": "/mine.xml"},  # the user's own profile
        {"FASTDDS_DEFAULT_PROFILES_FILE": ""},  # the user asks for Fast DDS defaults
        {fastdds.OPT_OUT: "none"},
        {fastdds.OPT_OUT: ""},
        {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"},  # not Fast DDS at all
    ],
)
def test_a_choice_of_the_user_is_kept(env):
    before = dict(env)
    assert fastdds.apply_default_profile(env) is None
    assert env == before


def test_another_profile_can_be_named_and_a_missing_one_is_reported(tmp_path):
    mine = tmp_path / "mine.xml"
    mine.write_text("<dds/>")
    env = {fastdds.OPT_OUT: str(mine), "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}
    assert fastdds.apply_default_profile(env)
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(mine)
    gone = {fastdds.OPT_OUT: str(tmp_path / "gone.xml")}
    assert "not found" in fastdds.apply_default_profile(gone)
    assert "FASTDDS_DEFAULT_PROFILES_FILE" not in gone
