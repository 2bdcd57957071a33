"""Node releases: `release:` in the lab file, the node image per Debian suite, and Docker's
words on both generations (20.10 on bookworm, 26.1 on trixie) as the lessons match them.

The words are real: tests/fixtures/docker_words/<release>/ holds what each release's docker
printed on real nodes here (captured by capture.py in that folder).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab import images
from lab.errors import LabError, SpecError
from lab.failures.clock_skew_ca import X509
from lab.failures.firewall_blocks_join import NO_ROUTE
from lab.failures.non_overlay_network import CLI_TEXTS, DAEMON_TEXT
from lab.failures.show import said_any
from lab.spec import RELEASES, parse_spec
from tests.conftest import LabHandle, lab_fixture, write_lab

WORDS = Path(__file__).parent / "fixtures" / "docker_words"
NODES = [{"name": "manager1", "role": "manager", "address": "10.77.0.11"}]


def spec(**fields):
    return parse_spec({"nodes": NODES, **fields})


# --- the lab file ------------------------------------------------------------------------------
def test_release_picks_the_local_node_image():
    assert spec(release="trixie").provider_settings["image"] == "swarmlab/node:trixie"
    assert spec(release="bookworm").provider_settings["image"] == "swarmlab/node:bookworm"
    default = spec()
    assert default.release in RELEASES
    assert default.provider_settings["image"] == f"swarmlab/node:{default.release}"
    # An image named in the lab file wins over the release's.
    given = spec(release="trixie", local={"image": "swarmlab/node:bookworm"})
    assert given.provider_settings["image"] == "swarmlab/node:bookworm"


@pytest.mark.parametrize("fields, words", [
    ({"release": "sid"}, "lab file: release is 'sid'; allowed: bookworm, trixie"),
    ({"release": 12}, "lab file: release is 12; allowed: bookworm, trixie"),
    ({"release": "bookworm", "provider": "vmware"},
     "lab file: release does not apply to provider vmware"),
])
def test_a_wrong_release_is_one_line(fields, words):
    with pytest.raises(SpecError) as caught:
        spec(**fields)
    assert str(caught.value).startswith(words)
    assert "\n" not in str(caught.value)


def test_an_unknown_release_from_the_cli_is_one_line(tmp_path):
    lab = write_lab(tmp_path, "t-h10-cli", 239, release="buster")
    result = lab.invoke("lab.status")
    assert result.code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("release is 'buster'; allowed: bookworm, trixie")
    assert "Traceback" not in result.output


def test_vmware_labs_have_no_release():
    assert parse_spec({"nodes": NODES, "provider": "vmware"}).release == ""


# --- the image recipe per suite -----------------------------------------------------------------
def test_each_release_has_its_own_node_image_and_root_file_system():
    assert {f"swarmlab/node:{r}" for r in RELEASES} <= set(images.IMAGE_NAMES)
    digests = {images.rootfs_digest(r) for r in RELEASES}
    assert len(digests) == len(RELEASES)
    assert images.recipe_digest("swarmlab/node:trixie") != images.recipe_digest(
        "swarmlab/node:bookworm")
    # trixie's docker CLI is its own package; bookworm's comes with docker.io.
    assert "docker-cli" in images.rootfs_packages("trixie")
    assert "docker-cli" not in images.rootfs_packages("bookworm")


def test_the_host_sources_get_the_release_suite_and_keep_the_mirror(tmp_path):
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n")
    out = images.suite_sources("trixie", deb822, "bookworm")
    assert "Suites: trixie trixie-updates\n" in out and "Suites: trixie-security\n" in out
    assert out.count("http://mirror.example/") == 2 and "bookworm" not in out
    one_line = tmp_path / "sources.list"
    one_line.write_text("deb http://m.example/debian bookworm main\n"
                        "deb [signed-by=/k.gpg] http://m.example/bookworm-stuff bookworm-updates"
                        " main\n# deb http://m.example/debian bookworm main\n")
    out = images.suite_sources("trixie", one_line, "bookworm")
    assert out.splitlines() == [
        "deb http://m.example/debian trixie main",
        "deb [signed-by=/k.gpg] http://m.example/bookworm-stuff trixie-updates main",
        "# deb http://m.example/debian bookworm main",
    ]


@pytest.mark.local
def test_a_suite_the_mirror_does_not_serve_is_one_line_naming_it():
    # A real mmdebstrap against the host's mirror, which has no such suite: apt says 404.
    client = images._engine(None)
    with pytest.raises(LabError) as caught:
        images._ensure_rootfs(client, lambda line: None, "swarmlab-nosuch")
    text = str(caught.value)
    assert "does not serve Debian suite 'swarmlab-nosuch'" in text and "\n" not in text


# --- Docker's words, as each generation says them -----------------------------------------------
def words(release: str, name: str) -> str:
    return (WORDS / release / name).read_text()


@pytest.mark.parametrize("release, version", [("bookworm", "20.10."), ("trixie", "26.1.")])
def test_the_fixtures_come_from_each_docker_generation(release, version):
    assert words(release, "version.txt").startswith(version)


@pytest.mark.parametrize("release", RELEASES)
def test_failure_2_knows_the_cli_and_daemon_words_of_both(release):
    assert said_any(words(release, "non_overlay_cli.txt"), CLI_TEXTS)
    assert said_any(words(release, "non_overlay_daemon.txt"), DAEMON_TEXT)


def test_the_cli_words_of_failure_2_really_differ():
    # Why CLI_TEXTS holds two: each generation's text misses the other's stable part.
    bookworm, trixie = (words(r, "non_overlay_cli.txt") for r in RELEASES)
    assert not said_any(trixie, CLI_TEXTS[0]) and not said_any(bookworm, CLI_TEXTS[1])


@pytest.mark.parametrize("release", RELEASES)
def test_failure_3_sees_no_route_through_either_grpc_wrapper(release):
    said = words(release, "join_no_route.txt")
    assert said_any(said, NO_ROUTE)
    # The wrappers differ ("Error while dialing dial tcp" / "Error while dialing: dial tcp").
    assert "rpc error: code = Unavailable" in said


@pytest.mark.parametrize("release", RELEASES)
def test_failure_4_sees_the_x509_words_of_both(release):
    assert said_any(words(release, "ca_not_yet_valid.txt"), X509)


# --- nodes like the lesson's ------------------------------------------------------------------
def test_seed_nodes_get_the_seed_image_of_their_release():
    assert spec(nodes_like="seed", release="trixie").provider_settings["image"] == \
        "swarmlab/node-seed:trixie"
    assert spec().nodes_like == "plain"
    assert images.RECIPES["swarmlab/node-seed:trixie"].extra == ("firewalld",)
    assert images.recipe_digest("swarmlab/node-seed:trixie") != images.recipe_digest(
        "swarmlab/node:trixie")


@pytest.mark.parametrize("fields, words", [
    ({"nodes_like": "centos"}, "lab file: nodes_like is 'centos'; allowed: plain, seed"),
    ({"nodes_like": "seed", "provider": "incus"},
     "lab file: nodes_like seed is not built for provider incus yet"),
])
def test_a_wrong_nodes_like_is_one_line(fields, words):
    with pytest.raises(SpecError) as caught:
        spec(**fields)
    assert str(caught.value).startswith(words) and "\n" not in str(caught.value)


def vagrant_settings(**fields):
    from lab.providers.vagrant import parse_settings
    return parse_settings(spec(provider="vagrant", **fields))


def test_vagrant_machines_come_from_the_box_or_image_of_the_release_and_flavour():
    assert vagrant_settings(vagrant={"provider": "libvirt"}).box == "swarmlab/trixie"
    assert vagrant_settings(release="bookworm", nodes_like="seed",
                            vagrant={"provider": "libvirt"}).box == "swarmlab/bookworm-seed"
    assert vagrant_settings(nodes_like="seed", vagrant={"provider": "docker"}).image == \
        "swarmlab/node-seed:trixie"
    # VirtualBox takes the Debian project's box of the release; a box given wins.
    assert vagrant_settings(release="bookworm").box == "debian/bookworm64"
    assert vagrant_settings(vagrant={"box": "mine/deb"}).box == "mine/deb"


@pytest.mark.parametrize("parse, fields, words", [
    (spec, {"selinux": "enforcing"},
     "lab file: selinux enforcing cannot be had on local: its nodes are containers sharing the"
     " host's kernel"),
    (spec, {"selinux": "enforcing", "provider": "incus"},
     "lab file: selinux enforcing cannot be had on incus"),
    (spec, {"selinux": "strict"},
     "lab file: selinux is 'strict'; allowed: permissive, unchanged, enforcing"),
    (vagrant_settings, {"selinux": "enforcing", "vagrant": {"provider": "docker"}},
     "lab file: selinux enforcing cannot be had on vagrant's docker provider"),
    (vagrant_settings, {"nodes_like": "seed"},
     "lab file: nodes_like seed is built as a libvirt box or a node image; set"
     " vagrant.provider: libvirt"),
])
def test_what_the_nodes_cannot_be_is_refused_with_the_reason(parse, fields, words):
    with pytest.raises(SpecError) as caught:
        parse(**fields)
    assert str(caught.value).startswith(words) and "\n" not in str(caught.value)


# --- a seed lab: firewalld really there --------------------------------------------------------
SEED = ("t-h10-seed", 226)


def node_sh(lab: LabHandle, node: str, script: str) -> str:
    done = subprocess.run(["docker", "exec", f"swarmlab-{lab.name}-{node}", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60)
    return (done.stdout + done.stderr).strip()


def firewall_rows(output: str) -> dict[str, str]:
    """node -> the status word of its `firewall` row in lab.up's prepare output."""
    rows = {}
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 3 and words[1] == "firewall":
            rows[words[0]] = words[2]
    return rows


@pytest.fixture(scope="module")
def seed_lab(images: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    # The seed image is built on demand (about two minutes the first time on this machine).
    yield from lab_fixture(tmp_path_factory.mktemp("seed"), *SEED, release="trixie",
                           nodes_like="seed", firewall="open-ports")


@pytest.mark.failure
def test_seed_nodes_run_firewalld_and_prepare_opens_the_swarm_ports(seed_lab: LabHandle):
    names = [n["name"] for n in seed_lab.nodes]
    for name in names:
        assert node_sh(seed_lab, name, "firewall-cmd --state") == "running"
        # Default-deny: the public zone allows ssh and what prepare opened, nothing else.
        assert node_sh(seed_lab, name, "firewall-cmd --get-default-zone") == "public"
        assert sorted(node_sh(seed_lab, name, "firewall-cmd --list-ports").split()) == [
            "2377/tcp", "4789/udp", "7946/tcp", "7946/udp"]
    again = seed_lab.invoke("lab.up")
    assert again.code == 0, again.output
    assert firewall_rows(again.stdout) == dict.fromkeys(names, "ok"), again.stdout


@pytest.mark.failure
def test_firewall_blocks_join_through_firewalld_and_both_fixes(seed_lab: LabHandle):
    broken = seed_lab.invoke("failure.break", "firewall-blocks-join")
    assert broken.code == 0, broken.output
    assert "manager1$ firewall-cmd --remove-port=2377/tcp" in broken.stdout
    assert "iptables" not in broken.stdout
    assert "connect: no route to host" in broken.stdout
    doctor = seed_lab.invoke("lab.doctor", "--json", "--lang", "en")
    report = json.loads(doctor.stdout)
    [rule] = [f for f in report["findings"]
              if f["check"] == "firewall" and f["severity"] == "error"]
    assert rule["node"] == "manager1"
    assert rule["saw"] == "firewalld runs on manager1 and does not open 2377/tcp"

    safe = seed_lab.invoke("failure.fix", "firewall-blocks-join", "--way", "safe")
    assert safe.code == 0, safe.output
    assert "manager1$ firewall-cmd --permanent --add-port=2377/tcp" in safe.stdout
    assert node_sh(seed_lab, "manager1", "firewall-cmd --state") == "running"

    assert seed_lab.invoke("failure.break", "firewall-blocks-join").code == 0
    seed = seed_lab.invoke("failure.fix", "firewall-blocks-join", "--way", "seed")
    assert seed.code == 0, seed.output
    assert "manager1$ systemctl disable --now firewalld" in seed.stdout
    assert node_sh(seed_lab, "manager1", "firewall-cmd --state") == "not running"
    assert seed_lab.invoke("lab.doctor").code == 0


@pytest.mark.failure
def test_prepare_firewall_disable_on_seed_nodes(seed_lab: LabHandle):
    # After the seed's fix manager1's firewalld is off already; the others' still runs.
    data = yaml.safe_load(seed_lab.file.read_text())
    seed_lab.file.write_text(yaml.safe_dump({**data, "firewall": "disable"}))
    first = seed_lab.invoke("lab.up")
    assert first.code == 0, first.output
    assert firewall_rows(first.stdout) == {"manager1": "ok", "manager2": "changed",
                                           "worker1": "changed"}, first.stdout
    for name in ("manager2", "worker1"):
        assert node_sh(seed_lab, name, "systemctl is-enabled firewalld; firewall-cmd --state"
                       ).split() == ["disabled", "not", "running"]
    again = seed_lab.invoke("lab.up")
    assert firewall_rows(again.stdout) == dict.fromkeys(
        ["manager1", "manager2", "worker1"], "ok"), again.stdout
