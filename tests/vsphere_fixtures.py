"""Fixtures of the vsphere lane: one vcsim per session, labs made of plain LabSpecs.

vcsim is started with -username/-password so that a wrong password is refused (without
them any non-empty password logs in). Plain simulated VMs have no SSH server, so their
labs live on loopback addresses (127.77.N.0/24: nothing can leave this machine) and the
host-key scan is replaced by a fixed key; container-backed labs use their own Docker
network in 10.201.200+N.0/24 and the real scan.
"""

from __future__ import annotations

import datetime
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from lab import vcsim as vcsim_process
from lab.providers.vmware import VMwareProvider
from lab.spec import LabSpec, parse_spec
from lab.state import LabState
from lab.vsphere import inventory

# What `from tests.vsphere_fixtures import *` gives a test module: the fixtures only.
__all__ = ["no_ssh", "password_env", "service", "vcsim"]

USER = "swarmlab"
TEMPLATE = vcsim_process.TEMPLATE
FAKE_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPlainSimulatedVMsHaveNoSSHServerAtAll0"


class Simulator:
    """A running vcsim and the password it accepts."""

    def __init__(self, process: vcsim_process.Vcsim, password: str):
        self.process = process
        self.password = password

    @property
    def endpoint(self) -> str:
        return self.process.endpoint

    def connect(self) -> Any:
        """A pyvmomi session of the test's own, for looking and tampering behind the provider."""
        return SmartConnect(host=self.process.host, port=self.process.port, user=USER,
                            pwd=self.password, disableSslCertValidation=True)


@pytest.fixture(scope="session")
def vcsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    password = "pw-" + secrets.token_hex(8)
    process = vcsim_process.start(tmp_path_factory.mktemp("vcsim"), username=USER,
                                  password=password)
    try:
        yield Simulator(process, password)
    finally:
        process.stop()


@pytest.fixture
def service(vcsim: Simulator) -> Iterator[Any]:
    si = vcsim.connect()
    yield si
    Disconnect(si)


@pytest.fixture
def password_env(vcsim: Simulator, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SWARMLAB_VSPHERE_PASSWORD", vcsim.password)
    return vcsim.password


@pytest.fixture
def no_ssh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain simulated VMs run no sshd: pin a fixed key instead of scanning for one."""
    monkeypatch.setattr("lab.hostkeys.scan", lambda host, port, timeout: FAKE_HOST_KEY)


def lab_spec(tmp: Path, name: str, octet: int, endpoint: str, *, containers: bool = False,
             **vmware: Any) -> LabSpec:
    prefix = f"10.201.{200 + octet}" if containers else f"127.77.{octet}"
    settings: dict[str, Any] = {
        "vcenter": endpoint, "user": USER, "insecure": True, "datacenter": "DC0",
        "cluster": "DC0_C0", "datastore": "LocalDS_0", "network": "DC0_DVPG0",
        "template": TEMPLATE, "linked_clone": True, "simulator": True, "guest_timeout": 60,
        **vmware,
    }
    return parse_spec({
        "name": name,
        "provider": "vmware",
        "subnet": f"{prefix}.0/24",
        "nodes": [
            {"name": "manager1", "role": "manager", "address": f"{prefix}.11"},
            {"name": "manager2", "role": "manager", "address": f"{prefix}.12"},
            {"name": "worker1", "role": "worker", "address": f"{prefix}.13"},
        ],
        "state_dir": str(tmp / "state"),
        "vmware": settings,
    })


def provider_for(spec: LabSpec, log: Any = None) -> VMwareProvider:
    state = LabState.load(spec.state_dir, spec.name)
    return VMwareProvider(spec, state, log or (lambda line: None))


def find_vms(si: Any, name_prefix: str) -> list[inventory.Found]:
    content = si.RetrieveContent()
    paths = ["config.extraConfig", "runtime.powerState", "guest.ipAddress", "guest.hostName",
             "parent", "config.template"]
    return [vm for vm in inventory.contained(content, content.rootFolder, vim.VirtualMachine,
                                             ["name", *paths])
            if vm.name.startswith(name_prefix)]


def wait_task(task: Any) -> None:
    """Tests wait on their own tampering tasks the simple way: vcsim ends them at once."""
    assert task.info.state == "success", task.info.error


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_ca_and_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a 2048-bit certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = (x509.CertificateBuilder().subject_name(name("swarmlab test CA"))
          .issuer_name(name("swarmlab test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now)
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return paths
