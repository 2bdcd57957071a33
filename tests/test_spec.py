"""The lab file's validation: every wrong field gets one line naming it and what is allowed."""

from __future__ import annotations

import copy

import pytest

from lab.errors import SpecError
from lab.remote import redact
from lab.spec import LAB_DEFAULTS, parse_spec

pytestmark = pytest.mark.unit


def spec_with(**changes: object) -> dict:
    data = copy.deepcopy(LAB_DEFAULTS)
    data.update(changes)
    return data


def test_defaults_are_the_seed_topology() -> None:
    spec = parse_spec(copy.deepcopy(LAB_DEFAULTS))
    assert [(n.name, n.role) for n in spec.nodes] == [
        ("manager1", "manager"), ("manager2", "manager"), ("worker1", "worker")
    ]
    assert spec.first_manager.name == "manager1"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"provider": "kvm"}, "provider is 'kvm'; allowed: local, vagrant, vmware, incus"),
        ({"firewall": "off"}, "firewall is 'off'; allowed: disable, open-ports"),
        ({"os_family": "arch"}, "os_family is 'arch'; allowed: debian, rhel"),
        ({"nodez": []}, "unknown field 'nodez'"),
        ({"subnet": "10.77.0.1/24"}, "subnet is '10.77.0.1/24'"),
        ({"time_sync": "yes"}, "time_sync is 'yes'; allowed: true, false"),
        ({"name": "Bad_Name"}, "name is 'Bad_Name'"),
        ({"nodes": [{"name": "m1", "role": "worker", "address": "10.77.0.11"}]}, "has no manager"),
        ({"nodes": [{"name": "m1", "role": "boss", "address": "10.77.0.11"}]},
         "nodes[0].role is 'boss'; allowed: manager, worker"),
        ({"nodes": [{"name": "m1", "role": "manager", "address": "10.78.0.11"}]},
         "nodes[0].address 10.78.0.11 is outside subnet 10.77.0.0/24"),
        ({"nodes": [{"name": "m1", "role": "manager", "address": "10.77.0.1"}]},
         "network, gateway or broadcast"),
        ({"nodes": [{"name": "m1", "role": "manager", "address": "10.77.0.11"},
                    {"name": "m2", "role": "manager", "address": "10.77.0.11"}]},
         "nodes[1].address 10.77.0.11 is also the address of m1"),
        ({"nodes": [{"name": "m1", "role": "manager", "address": "10.77.0.11"},
                    {"name": "m1", "role": "worker", "address": "10.77.0.12"}]},
         "nodes[1].name 'm1' is used by two nodes"),
        ({"nodes": [{"name": "m1", "role": "manager", "address": "x"}]},
         "nodes[0].address is 'x'; allowed: an IPv4 address"),
        ({"ssh": {"connect_timeout": 0}}, "ssh.connect_timeout is 0"),
        ({"ssh": {"port": 2}}, "ssh.port is unknown"),
    ],
)
def test_wrong_fields_are_named(changes: dict, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(spec_with(**changes))
    text = str(caught.value)
    assert message in text
    assert "\n" not in text


def test_digest_follows_what_shapes_the_lab() -> None:
    base = parse_spec(spec_with())
    assert base.digest() == parse_spec(spec_with()).digest()
    assert base.digest() != parse_spec(spec_with(firewall="disable")).digest()
    assert base.digest() == parse_spec(spec_with(state_dir="/elsewhere")).digest()


def test_join_tokens_are_redacted() -> None:
    token = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"
    assert redact(f"docker swarm join --token {token} 10.0.0.1:2377") == (
        "docker swarm join --token SWMTKN-1-<redacted> 10.0.0.1:2377"
    )
