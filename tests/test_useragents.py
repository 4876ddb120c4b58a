"""One user-agent parser (ua-parser), for the writer and for `gazeback devices` alike (#18)."""

import pytest

from gazeback.devices.registry import agent_families
from gazeback.knowledge.useragents import families


@pytest.mark.parametrize(
    "agent,expected",
    [
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0", ("Firefox", "Windows")),
        ("Instagram/300.0 CFNetwork/1408.0.4 Darwin/22.5.0", ("Instagram", "iOS")),
        ("okhttp/4.9.3", ("okhttp", None)),
        ("Roku/DVP-12.5 (12.5.0.4174-56)", ("Roku", "Roku")),
        ("Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.5) AppleWebKit/537.36 (KHTML, like Gecko) 85.0.4183.93/6.5 TV Safari/537.36", ("Safari", "Tizen")),
        ("WeatherWidget/7.1 (unknown device)", ("WeatherWidget", None)),  # uap-core: Other
    ],
)  # fmt: skip
def test_families_come_from_ua_parser(agent, expected):
    assert families(agent) == expected
    assert agent_families(agent) == expected  # the devices listing reads the same parser
