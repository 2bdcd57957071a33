"""The incus provider on a real incusd: unprivileged system containers, one project per lab.

`make test` starts incusd (scripts/ensure-incus, the `incus` prerequisite); a test run without
one fails here rather than skipping. One lab of the default release (trixie) serves the
module; a bookworm lab comes up beside it once; the last test takes the module's down and
proves nothing of it is left.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab.context import Lab
from lab.errors import LabError
from lab.images import RECIPES, Recipe, build_incus_tarball, incus_image_digest
from lab.incus.client import Incus, IncusError
from lab.spec import parse_spec
from tests.conftest import NODE_RUNS, LabHandle, lab_fixture, write_lab

pytestmark = pytest.mark.incus

NAME = "t-h8-incus"
OCTET = 180
PROJECT = f"swarmlab-{NAME}"
NETWORK = f"sli-{NAME}"[:15]


@pytest.fixture(scope="module")
def lab(incus: Incus, images: None, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[LabHandle]:
    yield from lab_fixture(tmp_path_factory.mktemp("incus"), NAME, OCTET, provider="incus")


def host_disk() -> tuple[int, int]:
    """The major and minor numbers of this host's first disk (the one a node must not open)."""
    for line in Path("/proc/partitions").read_text().splitlines()[2:]:
        major, minor, _, name = line.split()
        if not name.startswith(("loop", "ram", "zram", "nbd")):
            return int(major), int(minor)
    return 8, 0  # sda, where the host lists none


def on(lab: LabHandle, node: str, command: str) -> str:
    result = lab.invoke("lab.exec", node, command)
    assert result.code == 0, result.output
    return result.stdout


def test_up_gives_three_ready_nodes_in_the_labs_own_project(lab: LabHandle, incus: Incus) -> None:
    status = lab.status()
    assert status["provider"] == "incus"
    assert [(n["name"], n["role"], n["address"], n["ready"], n["power"])
            for n in status["nodes"]] == [
        (n["name"], n["role"], n["address"], True, "running") for n in lab.nodes]
    project = incus.get(f"/1.0/projects/{PROJECT}")
    assert project["config"]["user.swarmlab.lab"] == NAME
    # The project's quota is the lab's nodes: Incus itself refuses a fourth instance.
    assert {k: project["config"][k] for k in ("limits.instances", "limits.cpu",
                                              "limits.memory")} == {
        "limits.instances": "3", "limits.cpu": "6", "limits.memory": "3GiB"}
    with pytest.raises(IncusError, match="maximum number of instances"):
        incus.post("/1.0/instances", {"name": "extra", "type": "container", "source": {
            "type": "none"}, "config": {"limits.cpu": "1", "limits.memory": "64MiB"},
            "devices": {"root": {"type": "disk", "path": "/", "pool": "swarmlab"}}},
            project=PROJECT)
    network = incus.get(f"/1.0/networks/{NETWORK}")
    assert network["config"]["ipv4.address"] == f"10.201.{OCTET}.1/24"
    assert network["config"]["user.swarmlab.lab"] == NAME
    # The swarm advertises the lab addresses, and nested containers run on every node.
    seen = on(lab, "manager1", "docker node ls -q | xargs docker node inspect"
                               " --format '{{.Description.Hostname}} {{.Status.Addr}}'")
    assert dict(line.split() for line in seen.splitlines()) == {
        n["name"]: n["address"] for n in lab.nodes}
    ran = on(lab, "all", "docker run --rm swarmlab/busybox:latest echo ran-here")
    assert ran.count("ran-here") == 3
    assert on(lab, "all", "systemctl --failed --no-legend").strip() == ""


def test_rerun_changes_nothing(lab: LabHandle) -> None:
    result = lab.invoke("lab.up")
    assert result.code == 0, result.output
    # The default release's node image, already imported by the first lab.up.
    alias = f"swarmlab-node-{incus_image_digest('trixie')}"
    assert f"node image {alias} (trixie)\n" in result.stdout
    assert "nothing changed: the lab was already up" in result.stdout
    assert "create: ok" in result.stdout and "swarm: ok" in result.stdout
    assert "changed" not in result.stdout.replace("nothing changed", "")


def test_a_node_the_state_does_not_hold_is_made_again(lab: LabHandle) -> None:
    """A node is recorded only once whole; one the state file lacks (a run died before the
    record, or the state was lost) cannot be reached, so a rerun makes it again."""
    state = json.loads(lab.state_file.read_text())
    del state["machines"]["worker1"]
    lab.state_file.write_text(json.dumps(state))
    result = lab.invoke("lab.up")
    assert result.code == 0, result.output
    assert "worker1: left half-made by an interrupted run; making it again" in result.stdout
    assert all(node["ready"] for node in lab.status()["nodes"])


def test_status_table_names_the_provider_and_how_to_reach_nodes(lab: LabHandle) -> None:
    result = lab.invoke("lab.status")
    assert result.code == 0, result.output
    assert f"lab {NAME} (incus)" in result.stdout
    for node in lab.nodes:
        assert f"lab.ssh {node['name']}" in result.stdout


def test_nodes_are_unprivileged_and_cannot_reach_the_host(lab: LabHandle, incus: Incus) -> None:
    bases = set()
    for node in lab.nodes:
        config = incus.get(f"/1.0/instances/{node['name']}", project=PROJECT)["config"]
        assert config.get("security.privileged", "false") == "false"
        assert config["security.idmap.isolated"] == "true"
        assert config["security.nesting"] == "true"
        bases.add(int(config["volatile.idmap.base"]))
    # Each node its own host uid range: created one at a time, they never collide.
    assert len(bases) == 3 and min(bases) >= 65536, bases
    major, minor = host_disk()
    host_pattern = Path("/proc/sys/kernel/core_pattern").read_text()
    probe = (
        "cat /proc/self/uid_map;"
        " (echo '|/tmp/x' > /proc/sys/kernel/core_pattern) 2>&1 && echo CORE-WRITTEN;"
        f" mknod /tmp/host-disk b {major} {minor} 2>&1 && echo MKNOD-MADE; true"
    )
    out = on(lab, "worker1", probe)
    first_map = out.splitlines()[0].split()
    assert first_map[0] == "0" and int(first_map[1]) in bases, out
    assert "CORE-WRITTEN" not in out and "Permission denied" in out, out
    assert "MKNOD-MADE" not in out and "Operation not permitted" in out, out
    assert Path("/proc/sys/kernel/core_pattern").read_text() == host_pattern


def test_whoami_dns_scenario_passes_as_on_local(lab: LabHandle, tmp_path: Path) -> None:
    journal = tmp_path / "run.json"
    result = lab.invoke("scenario.run", "whoami-dns", "--json", str(journal), timeout=600)
    record = json.loads(journal.read_text())
    checks = [c for step in record["steps"] + record["cleanup"] for c in step["checks"]]
    assert [c for c in checks if c["status"] == "failed"] == [], result.output
    # No IPVS in this kernel: the VIP checks say so (exit 3); with IPVS all of it passes.
    unavailable = {c["detail"] for c in checks if c["status"] == "unavailable"}
    assert (result.code, unavailable) in (
        (0, set()), (3, {"unavailable: no IPVS in this kernel"})), result.output
    assert len(record["variables"]["task_ips"]) == 3


@pytest.mark.parametrize("failure", ["firewall-blocks-join", "non-overlay-network",
                                     "already-in-swarm"])
def test_the_local_failures_break_and_fix_on_incus(lab: LabHandle, failure: str) -> None:
    broken = lab.invoke("failure.break", failure, timeout=600)
    assert broken.code == 0, broken.output
    assert f"broken: {failure}" in broken.stdout
    fixed = lab.invoke("failure.fix", failure, timeout=600)
    assert fixed.code == 0, fixed.output
    assert f"fixed: {failure}; lab {NAME} is healthy" in fixed.stdout


def test_clock_skew_is_refused_in_one_line(lab: LabHandle) -> None:
    result = lab.invoke("failure.break", "clock-skew-ca")
    assert result.code == 1 and result.stdout == ""
    line = result.stderr.strip()
    assert "\n" not in line and "incus provider's nodes share this machine's clock" in line


def test_snapshot_and_reset_bring_back_the_swarm(lab: LabHandle) -> None:
    # After the scenario and the failures: right after a reset, whoami-dns once found no
    # name for its new service within its 20 s (gossip between the restarted dockerds).
    taken = lab.invoke("lab.snapshot", "clean")
    assert taken.code == 0, taken.output
    on(lab, "worker1", "touch /root/after-snapshot")
    reset = lab.invoke("lab.reset", "--to", "clean")
    assert reset.code == 0, reset.output
    assert "3 nodes Ready" in reset.stdout
    gone = lab.invoke("lab.exec", "worker1", "test -e /root/after-snapshot")
    assert gone.code != 0
    assert all(n["ready"] for n in lab.status()["nodes"])


def test_a_project_or_network_not_made_by_swarmlab_is_refused(
        incus: Incus, tmp_path: Path) -> None:
    foreign = write_lab(tmp_path, "t-h8-foreign", 181, provider="incus")
    incus.post("/1.0/projects", {"name": "swarmlab-t-h8-foreign", "config": {}})
    try:
        for task in ("lab.up", "lab.down"):
            result = foreign.invoke(task)
            assert result.code == 1 and "Traceback" not in result.output, result.output
            assert result.stderr.strip().count("\n") == 0, result.stderr
            assert "project named swarmlab-t-h8-foreign exists but was not made by swarmlab"\
                in result.stderr
        assert incus.find("/1.0/projects/swarmlab-t-h8-foreign") is not None
        assert incus.find("/1.0/networks/sli-t-h8-forei") is None
    finally:
        incus.delete("/1.0/projects/swarmlab-t-h8-foreign")
    incus.create_network({"name": "h8-other", "type": "bridge", "config": {
        "ipv4.address": "10.201.182.1/24", "ipv4.nat": "false", "ipv6.address": "none"}})
    try:
        overlapping = write_lab(tmp_path, "t-h8-overlap", 182, provider="incus")
        result = overlapping.invoke("lab.up")
        assert result.code != 0 and "Traceback" not in result.output, result.output
        assert "overlaps Incus network h8-other (10.201.182.1/24)" in result.stderr
        assert incus.find("/1.0/projects/swarmlab-t-h8-overlap") is None
    finally:
        incus.delete("/1.0/networks/h8-other")


def test_bad_incus_settings_are_one_line(tmp_path: Path) -> None:
    for extra, message in (
        ({"incus": {"cpu": 2}}, "incus.cpu is unknown; allowed: client_cert, client_key, cpus"),
        ({"incus": {"memory": "lots"}}, "incus.memory is 'lots'; allowed: a size"),
        ({"incus": {"remote": "http://127.0.0.1:8443"}}, "incus.remote is 'http://127.0.0.1:8443';"
                                                          " allowed: an https:// URL"),
        ({"incus": {"remote": "https://127.0.0.1:8443"}}, "incus.remote needs incus.client_cert"),
    ):
        bad = write_lab(tmp_path, "t-h8-bad", 183, provider="incus", **extra)
        result = bad.invoke("lab.up")
        assert result.code != 0 and message in result.stderr, result.output
        assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.output


def test_a_release_the_mirror_does_not_serve_is_one_line_naming_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A real mmdebstrap against the host's mirror, which has no such suite: apt says 404.
    monkeypatch.setitem(RECIPES, "swarmlab/node:swarmlab-nosuch", Recipe(
        "node-nosuch", "node", (("WITH_DOCKER", "1"),), "swarmlab-nosuch"))
    with pytest.raises(LabError) as caught:
        build_incus_tarball("swarmlab-nosuch", log=lambda line: None)
    line = str(caught.value)
    assert "does not serve Debian suite 'swarmlab-nosuch'; pick another release" in line
    assert "\n" not in line


def test_no_incusd_is_one_line_saying_how_to_start_it(tmp_path: Path) -> None:
    lab = write_lab(tmp_path, "t-h8-nod", 184, provider="incus")
    result = lab.invoke("lab.up", env={"INCUS_SOCKET": str(tmp_path / "no.socket")})
    assert result.code == 1 and "Traceback" not in result.output, result.output
    line = result.stderr.strip()
    assert "\n" not in line and f"no Incus daemon answers on {tmp_path / 'no.socket'}" in line
    assert "run `make incus`" in line


@pytest.fixture
def https_incus(incus: Incus, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The local incusd also on https://127.0.0.1:18443, trusting a client certificate made
    here: the remote path over real TLS. Both are undone afterwards."""
    before = incus.get("/1.0")["config"].get("core.https_address", "")
    files = {"client_cert": str(tmp_path / "client.crt"),
             "client_key": str(tmp_path / "client.key")}
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:secp384r1", "-nodes", "-days", "1",
                    "-subj", "/CN=swarmlab-test-incus", "-keyout", files["client_key"],
                    "-out", files["client_cert"]], check=True, capture_output=True)
    if not before:
        incus.request("PATCH", "/1.0", {"config": {"core.https_address": "127.0.0.1:18443"}})
    url = f"https://{before or '127.0.0.1:18443'}"
    pem = Path(files["client_cert"]).read_text()
    body = "".join(pem.strip().splitlines()[1:-1])
    incus.post("/1.0/certificates", {"type": "client", "name": "swarmlab-test-incus",
                                     "certificate": body})
    fingerprint = subprocess.run(
        ["openssl", "x509", "-in", files["client_cert"], "-noout", "-fingerprint", "-sha256"],
        capture_output=True, text=True, check=True,
    ).stdout.split("=", 1)[1].strip().replace(":", "").lower()
    try:
        yield {"remote": url, "server_cert": "/var/lib/incus/server.crt", **files}
    finally:
        incus.delete(f"/1.0/certificates/{fingerprint}")
        if not before:
            incus.request("PATCH", "/1.0", {"config": {"core.https_address": ""}})


def test_a_remote_incus_over_https_with_a_client_certificate(
        https_incus: dict[str, str], tmp_path: Path) -> None:
    remote = write_lab(tmp_path, "t-h8-remote", 185, nodes=1, provider="incus",
                       incus=https_incus)
    try:
        up = remote.invoke("lab.up")
        assert up.code == 0, up.output
        assert [(n["name"], n["ready"]) for n in remote.status()["nodes"]] == [
            ("manager1", True)]
    finally:
        down = remote.invoke("lab.down")
    assert down.code == 0 and "removed project swarmlab-t-h8-remote" in down.stdout, down.output
    # A certificate the server does not trust: one line that says how to make it trusted.
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=x",
                    "-keyout", str(stranger / "k"), "-out", str(stranger / "c")],
                   check=True, capture_output=True)
    untrusted = write_lab(tmp_path, "t-h8-remote", 185, nodes=1, provider="incus", incus={
        **https_incus, "client_cert": str(stranger / "c"), "client_key": str(stranger / "k")})
    result = untrusted.invoke("lab.up")
    assert result.code == 1 and "Traceback" not in result.output, result.output
    assert f"does not trust {stranger / 'c'}" in result.stderr
    assert "incus config trust add-certificate" in result.stderr


OLDER = "swarmlab-node-t-inc17-"  # aliases of this test's stand-ins for older recipes
USER = "t-inc17-user"  # a container someone made from an older bookworm recipe


def node_images(incus: Incus) -> dict[str, tuple[str, str]]:
    """Every swarmlab node image in Incus: alias -> (the release its metadata names, its
    fingerprint)."""
    return {alias["name"]: ((image.get("properties") or {}).get("release", ""),
                            image["fingerprint"])
            for image in incus.get("/1.0/images", query={"recursion": "1"})
            for alias in image["aliases"] if alias["name"].startswith("swarmlab-node-")}


def older_recipe(incus: Incus, tmp: Path, release: str, tag: str) -> str:
    """An image of a node image's shape (alias, release property) with almost nothing in it:
    an older recipe of `release`, made in a second. Returns its fingerprint."""
    tarball = tmp / f"{tag}.tar"
    with tarfile.open(tarball, "w") as out:
        for name, text in (
            ("metadata.yaml", yaml.safe_dump({"architecture": "x86_64", "creation_date": 1,
                                              "properties": {"release": release}})),
            ("rootfs/etc/hostname", f"{tag}\n"),  # its own bytes: its own fingerprint
        ):
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            out.addfile(info, io.BytesIO(text.encode()))
    return incus.import_image(tarball, OLDER + tag, "swarmlab test t-inc17: an older recipe")


def remove_stand_ins(incus: Incus) -> None:
    """This test's container and images, as an interrupted run may have left them."""
    if incus.find(f"/1.0/instances/{USER}") is not None:
        incus.delete(f"/1.0/instances/{USER}")
    for alias, (_, fingerprint) in node_images(incus).items():
        if alias.startswith(OLDER):
            incus.delete(f"/1.0/images/{fingerprint}")


def test_a_bookworm_lab_beside_trixie_keeps_both_node_images(
        lab: LabHandle, incus: Incus, tmp_path: Path) -> None:
    """The module's lab runs trixie (Docker 26.1); a bookworm lab (Docker 20.10) comes up
    beside it from its own image. Pruning after an import removes older recipes of the same
    release only: never the other release's image, never one a container was made from."""
    seen = on(lab, "all", "docker version --format '{{.Client.Version}} {{.Server.Version}}'")
    versions = [word for line in seen.splitlines() for word in line.split()[1:]]  # [node] C S
    assert len(versions) == 6 and all(
        v.startswith(NODE_RUNS["trixie"][1] + ".") for v in versions), seen
    trixie = f"swarmlab-node-{incus_image_digest('trixie')}"
    bookworm = f"swarmlab-node-{incus_image_digest('bookworm')}"
    other = write_lab(tmp_path, "t-inc17-bw", 170, nodes=2, provider="incus",
                      release="bookworm")
    remove_stand_ins(incus)
    try:
        for release in ("bookworm", "trixie"):
            older_recipe(incus, tmp_path, release, f"old-{release}")
        used = older_recipe(incus, tmp_path, "bookworm", "used")
        incus.post("/1.0/instances", {
            "name": USER, "type": "container", "profiles": [],
            "source": {"type": "image", "fingerprint": used},
            "config": {"user.swarmlab.lab": USER},
            "devices": {"root": {"type": "disk", "path": "/", "pool": "swarmlab"}}})
        up = other.invoke("lab.up")
        assert up.code == 0, up.output
        assert f"node image {bookworm} (bookworm)\n" in up.stdout
        os_name, docker = NODE_RUNS["bookworm"]
        assert [(n["os"].startswith(os_name), n["docker"][:5], n["ready"])
                for n in other.status()["nodes"]] == [(True, docker, True)] * 2
        # That lab.up pruned only if bookworm's image was not imported yet: the same rule
        # again, now certainly, on images of every kind.
        with Lab(parse_spec(yaml.safe_load(other.file.read_text())), log=print) as made:
            made.provider._remove_stale_images(bookworm)
        kept = {alias: release for alias, (release, _) in node_images(incus).items()}
        assert {alias: kept.get(alias) for alias in (
            trixie, bookworm, OLDER + "old-trixie", OLDER + "used", OLDER + "old-bookworm")
        } == {trixie: "trixie", bookworm: "bookworm", OLDER + "old-trixie": "trixie",
              OLDER + "used": "bookworm", OLDER + "old-bookworm": None}, kept
    finally:
        down = other.invoke("lab.down")
        remove_stand_ins(incus)
    assert down.code == 0, down.output


def test_down_removes_the_project_network_and_nodes_only(lab: LabHandle, incus: Incus) -> None:
    down = lab.invoke("lab.down")
    assert down.code == 0, down.output
    assert incus.find(f"/1.0/projects/{PROJECT}") is None
    assert incus.find(f"/1.0/networks/{NETWORK}") is None
    labelled = [i["name"] for i in incus.get("/1.0/instances", query={
        "recursion": "1", "all-projects": "true"}) if i["config"].get("user.swarmlab.lab") == NAME]
    assert labelled == []
    # The node image stays cached in the default project for the next lab (one per recipe).
    images = incus.get("/1.0/images", query={"recursion": "1"})
    assert any(a["name"].startswith("swarmlab-node-") for i in images for a in i["aliases"])
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    assert f"10.201.{OCTET}." not in routes
