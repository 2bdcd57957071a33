"""The image builder, for real: images are built on this machine's engine and then run."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from lab import images
from lab.errors import LabError

pytestmark = pytest.mark.local

LABEL = {"swarmlab.lab": "test-images"}
LABEL_FILTER = {"label": "swarmlab.lab=test-images"}
BUSYBOX = "swarmlab/busybox:latest"
WHOAMI = "swarmlab/whoami:latest"


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    client = docker.from_env(timeout=120)
    yield client
    # Only what these tests made, found by their label.
    for container in client.containers.list(all=True, filters=LABEL_FILTER):
        container.remove(force=True)
    for network in client.networks.list(filters=LABEL_FILTER):
        network.remove()
    client.close()


@pytest.fixture(scope="module")
def built(client: docker.DockerClient) -> dict[str, str]:
    # From scratch where missing: up to ~90 s the first time on this machine.
    return images.ensure_images(client=client, log=lambda line: print(line))


def run(client: docker.DockerClient, image: str, command: list[str], **kwargs) -> str:
    return client.containers.run(image, command, remove=True, labels=LABEL, **kwargs).decode()


def test_every_image_is_built_and_labelled(client, built):
    assert set(built) == set(images.IMAGE_NAMES)
    assert set(built.values()) <= {"built", "ok"}
    for name in images.IMAGE_NAMES:
        labels = client.images.get(name).labels
        assert labels["swarmlab.recipe"] == images.recipe_digest(name)
        assert labels["swarmlab.image"] == images.RECIPES[name].short
        assert images.image_ok(client, name)
    rootfs = f"{images.ROOTFS_REPO}:{images.rootfs_digest()}"
    assert client.images.get(rootfs).labels["swarmlab.recipe"] == images.rootfs_digest()


def test_busybox_has_the_applets_scenarios_use(client, built):
    applets = "sh nslookup ping wget httpd sleep ip hostname tar"
    script = f"for a in {applets}; do ls /bin/$a >/dev/null || exit 1; done; sleep 0.1 && echo ok"
    assert run(client, BUSYBOX, ["sh", "-c", script]) == "ok\n"
    assert client.images.get(BUSYBOX).attrs["Config"]["Cmd"] == ["sh"]


def test_whoami_answers_with_hostname_and_address_and_stops_promptly(client, built):
    network = client.networks.create("swarmlab-test-images", driver="bridge", labels=LABEL)
    whoami = client.containers.run(
        WHOAMI, detach=True, hostname="whoami-test", network=network.name, labels=LABEL
    )
    try:
        whoami.reload()
        address = whoami.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
        # Retry for a moment: the server needs a few milliseconds after the container starts.
        script = "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://whoami-test:8000/ && exit 0;"
        script += " sleep 0.5; done; exit 1"
        answer = run(client, BUSYBOX, ["sh", "-c", script], network=network.name)
        lines = answer.splitlines()
        assert lines[0] == "I'm whoami-test"
        assert f"IP: {address}" in lines[1:]
        assert "IP: 127.0.0.1" not in lines
        started = time.monotonic()
        whoami.stop(timeout=10)
        assert time.monotonic() - started < 5, "whoami ignored SIGTERM"
        whoami.reload()
        assert whoami.attrs["State"]["ExitCode"] == 0
    finally:
        whoami.remove(force=True)
        network.remove()


def test_whoami_port_comes_from_the_environment(client, built):
    network = client.networks.create("swarmlab-test-images-port", driver="bridge", labels=LABEL)
    whoami = client.containers.run(
        WHOAMI, detach=True, hostname="whoami-port", network=network.name, labels=LABEL,
        environment={"PORT": "9090"},
    )  # fmt: skip
    try:
        script = "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://whoami-port:9090/ && exit 0;"
        script += " sleep 0.5; done; exit 1"
        answer = run(client, BUSYBOX, ["sh", "-c", script], network=network.name)
        assert answer.startswith("I'm whoami-port\n")
    finally:
        whoami.remove(force=True)
        network.remove()


def test_only_the_docker_node_image_has_dockerd(client, built):
    check = ["sh", "-c", "command -v dockerd >/dev/null && echo yes || echo no"]
    assert run(client, "swarmlab/node:bookworm", check) == "yes\n"
    assert run(client, "swarmlab/node-nodocker:bookworm", check) == "no\n"
    # Both keep what the local provider relies on.
    tools = ["sh", "-c", "test -x /usr/sbin/sshd && test -x /sbin/init && echo ok"]
    assert run(client, "swarmlab/node-nodocker:bookworm", tools) == "ok\n"


def test_recipe_digest_follows_the_build_files(tmp_path: Path):
    root = tmp_path / "images"
    shutil.copytree(images.IMAGES_DIR, root, symlinks=True)
    before = {name: images.recipe_digest(name, root) for name in images.IMAGE_NAMES}
    assert before == {name: images.recipe_digest(name) for name in images.IMAGE_NAMES}
    assert all(len(digest) == 16 for digest in before.values())
    assert len(set(before.values())) == len(before), "build args must tell node images apart"

    sshd = root / "node" / "files" / "etc" / "ssh" / "sshd_config.d" / "swarmlab.conf"
    sshd.write_text(sshd.read_text() + "# changed\n")
    after = {name: images.recipe_digest(name, root) for name in images.IMAGE_NAMES}
    assert after["swarmlab/node:bookworm"] != before["swarmlab/node:bookworm"]
    assert after["swarmlab/node-nodocker:bookworm"] != before["swarmlab/node-nodocker:bookworm"]
    assert after[BUSYBOX] == before[BUSYBOX]
    assert after[WHOAMI] == before[WHOAMI]

    (root / "whoami" / "main.go").write_text("package main\n\nfunc main() {}\n")
    assert images.recipe_digest(WHOAMI, root) != before[WHOAMI]

    # The executable bit is part of the recipe; a new file is too.
    script = root / "node" / "files" / "usr" / "local" / "sbin" / "swarmlab-cgroup-rw"
    script.chmod(script.stat().st_mode ^ 0o111)
    assert images.recipe_digest("swarmlab/node:bookworm", root) != after["swarmlab/node:bookworm"]
    (root / "busybox" / "extra").write_text("x")
    assert images.recipe_digest(BUSYBOX, root) != before[BUSYBOX]


def test_a_stale_label_means_a_rebuild(client, built):
    # An image with the right name but another recipe's label, as a cache would hold it
    # after the recipe changed: ensure_images must not accept it.
    client.images.build(
        fileobj=_dockerfile(f"FROM {BUSYBOX}\n"),
        custom_context=True,
        tag=BUSYBOX,
        labels={"swarmlab.recipe": "0000000000000000", "swarmlab.image": "busybox"},
        rm=True,
        forcerm=True,
    )
    assert not images.image_ok(client, BUSYBOX)
    assert images.ensure_images([BUSYBOX], client=client, log=lambda line: None) == {
        BUSYBOX: "built"
    }
    assert images.image_ok(client, BUSYBOX)


def test_a_second_run_finds_everything_fresh_quickly(client, built):
    started = time.monotonic()
    assert images.ensure_images(client=client, log=lambda line: None) == dict.fromkeys(
        images.IMAGE_NAMES, "ok"
    )
    assert time.monotonic() - started < 5


def test_no_engine_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(LabError) as caught:
        images.ensure_images([BUSYBOX], log=lambda line: None)
    message = str(caught.value)
    assert message.startswith("no Docker engine answers at unix:///nonexistent/docker.sock")
    assert "\n" not in message


def test_cli(built):
    cli = [sys.executable, "-m", "lab.images"]
    cwd = images.PROJECT_ROOT
    done = subprocess.run([*cli, "busybox", WHOAMI], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{BUSYBOX}: ok", f"{WHOAMI}: ok"]

    failed = subprocess.run([*cli, "nosuch"], cwd=cwd, capture_output=True, text=True)
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert failed.stderr.startswith("unknown image 'nosuch'")
    assert len(failed.stderr.splitlines()) == 1


def test_a_failed_build_is_one_line_and_leaves_no_container(client, built):
    # forcerm: even the container of the failing RUN step goes. A unique marker finds it
    # among whatever else runs on this engine.
    marker = f"swarmlab-test-images-{time.monotonic_ns()}"
    context = _dockerfile(f"FROM {BUSYBOX}\nRUN echo {marker} && echo it broke >&2 && exit 3\n")
    recipe = images.Recipe("test-images-broken", "broken")
    log_path = images.BUILD_DIR / "test-images-broken.log"
    try:
        with pytest.raises(LabError) as caught:
            images._docker_build(client, "swarmlab-test/broken:latest", recipe, "x", context, {})
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith("swarmlab-test/broken:latest: `docker build images/broken`")
        assert "it broke" in message and "non-zero code: 3" in message
        assert message.endswith(f"full log: {log_path}")
        assert marker in log_path.read_text()
    finally:
        log_path.unlink(missing_ok=True)
    leftovers = [
        container.id
        for container in client.containers.list(all=True)
        if marker in " ".join(container.attrs["Config"]["Cmd"] or [])
    ]
    assert leftovers == []
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("swarmlab-test/broken:latest")


def _dockerfile(text: str) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(text.encode())
        tar.addfile(info, io.BytesIO(text.encode()))
    buffer.seek(0)
    return buffer
