"""The lab file's validation: every wrong field gets one line naming it and what is allowed."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from lab.errors import SpecError
from lab.remote import redact
from lab.spec import LAB_DEFAULTS, parse_spec
from tests.conftest import run_cli, write_lab

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


def test_image_roles_left_out_keep_the_built_images() -> None:
    """The doctor's overlay probe and the failures run images['busybox']: a lab file naming
    only its own roles must not take busybox away (invoke's own merge keeps it, so must we)."""
    web = "registry.example.org:5000/team/web:1.2"
    spec = parse_spec(spec_with(images={"web": web}))
    assert spec.images == {**LAB_DEFAULTS["images"], "web": web}


@pytest.mark.parametrize(("changes", "message"), [
    ({"images": {"busybox": "$(reboot)"}},
     "lab file: images.busybox is '$(reboot)'; allowed: a Docker image reference"),
    ({"images": {"busy box": "busybox"}}, "lab file: images key is 'busy box'"),
    ({"images": ["busybox"]}, "lab file: images must be a mapping of a role"),
    ({"ssh": {"user": "root;reboot"}}, "lab file: ssh.user is 'root;reboot'; allowed: a login"),
    ({"ssh": {1: 2}}, "lab file: ssh has a key 1; keys are names"),
    ({"nodes": [{"name": "m1", "role": "manager", "address": "10.77.0.11", "port": 22}]},
     "lab file: nodes[0].port is unknown; allowed: name, role, address"),
    ({"nodes": [{"name": "m1", "role": "manager", "address": 167641099}]},
     "lab file: nodes[0].address is 167641099; allowed: an IPv4 address"),
    ({"state_dir": "state\n"}, "lab file: state_dir is 'state\\n'; allowed: a path"),
    ({"state_dir": None}, "lab file: state_dir is None; allowed: a path"),
    ({"subnet": ["10.77.0.0/24"]}, "lab file: subnet is ['10.77.0.0/24']; allowed: an IPv4"),
    ({"local": {None: 1}}, "lab file: local has a key None"),
    ({"name": "x" * 100}, "lab file: name is 'xxxxxxx"),
])
def test_every_field_says_what_it_may_hold(changes: dict, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(spec_with(**changes))
    text = str(caught.value)
    assert text.startswith(message)
    assert "\n" not in text and len(text) < 400


def test_unknown_keys_of_any_type_are_named() -> None:
    """YAML keys may be numbers or null: the first unknown one is named, not a TypeError."""
    data = spec_with()
    data.update({1: "x", None: "y", "colour": "z"})
    with pytest.raises(SpecError, match=r"^lab file: unknown field 1; allowed"):
        parse_spec(data)


def test_login_names_with_underscores_and_dashes_are_taken() -> None:
    for user in ("root", "ec2-user", "svc_lab", "_swarm", "vagrant"):
        assert parse_spec(spec_with(ssh={"user": user})).ssh.user == user


def test_lab_files_that_are_not_utf8_or_have_odd_keys_are_one_line(tmp_path: Path) -> None:
    from lab.config import _check_yaml

    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SpecError, match=r"latin.yaml: not UTF-8 text; save it as UTF-8$"):
        _check_yaml(latin)
    numbered = tmp_path / "numbered.yaml"
    numbered.write_text("name: t-h4-x\n1: one\n")
    with pytest.raises(SpecError, match=r"numbered.yaml: the key 1 is not a setting's name"):
        _check_yaml(numbered)


def test_insecure_on_a_lab_that_is_not_vmware_blames_the_flag(tmp_path: Path) -> None:
    """Before, `--insecure` slipped into the provider's section and `lab.up` said
    "lab file: local.insecure is unknown", sending the user to a lab file that was right."""
    lab = write_lab(tmp_path, "t-h4-insecure", 133)
    result = run_cli("-f", str(lab.file), "lab.status", "--insecure", timeout=60)
    assert result.code == 2, result.output
    assert result.stderr.strip() == (
        "error: --insecure is a flag for the vmware provider (it accepts vCenter's self-signed"
        " certificate); lab t-h4-insecure uses provider local: leave --insecure out")


def test_a_fault_without_words_is_one_line_with_the_debug_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from invoke.exceptions import Exit

    from lab.errors import LabError
    from lab.tasks.common import DEBUG_ENV, user_errors

    @user_errors
    def lookup() -> None:
        raise KeyError("busybox")

    @user_errors
    def docker_said() -> None:
        raise LabError("manager1: `docker info` failed:\nCannot connect\n  to the daemon")

    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with pytest.raises(Exit) as caught:
        lookup()
    assert caught.value.code == 70
    assert caught.value.message == (
        "error: unexpected KeyError: 'busybox' (rerun with SWARMLAB_DEBUG=1 for the traceback,"
        " and report it if the lab file is right)")
    with pytest.raises(Exit) as caught:
        docker_said()
    assert caught.value.message == (
        "error: manager1: `docker info` failed: Cannot connect to the daemon")
    # The debug switch lets the real bug through, traceback and all.
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(KeyError):
        lookup()


def test_a_lab_file_invoke_itself_chokes_on_is_one_line(tmp_path: Path) -> None:
    """invoke reads `-f FILE` before any task runs and fails on a numeric key with a
    TypeError traceback: the program's last word is now one line with the debug hint."""
    lab = tmp_path / "numbered.yaml"
    lab.write_text("name: t-h4-numbered\n1: one\n")
    result = run_cli("-f", str(lab), "lab.status", timeout=60)
    assert result.code == 70, result.output
    assert "Traceback" not in result.output
    assert result.stderr.strip().startswith("error: unexpected TypeError:")
    assert result.stderr.strip().endswith("(rerun with SWARMLAB_DEBUG=1 for the traceback,"
                                          " and report it if the lab file is right)")
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unknown_key_with_a_line_break_is_named_on_one_line() -> None:
    """Found by tests/test_input_safety.py: `nodes[0]` with a key "\\n" made a two-line error."""
    node = {"name": "m1", "role": "manager", "address": "10.77.0.11", "\n": None}
    with pytest.raises(SpecError) as caught:
        parse_spec(spec_with(nodes=[node]))
    assert str(caught.value) == ("lab file: nodes[0] key '\\n' is unknown; allowed: name, role,"
                                 " address")
