"""A class against the vSphere simulator: a folder per student inside the class's folder.

Plain simulated VMs (no sshd), so only what vSphere does is exercised: the class's folder
made, each student's labs cloned into a folder of their own with their own addresses, and
the class's folder removed when the last lab is gone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.classroom import runner
from lab.classroom import vsphere as class_vsphere
from lab.classroom.plan import make_plan
from lab.classroom.record import ClassRecord
from lab.classroom.roster import Student
from lab.classroom.settings import parse_settings
from lab.context import Lab
from lab.spec import LAB_DEFAULTS, parse_spec
from tests.vsphere_fixtures import *  # noqa: F403 (the lane's fixtures: __all__)
from tests.vsphere_fixtures import TEMPLATE, USER, find_vms

pytestmark = [pytest.mark.classroom, pytest.mark.vsphere]


def test_each_student_gets_a_folder_inside_the_class_folder(
    vcsim, password_env, no_ssh, service, tmp_path: Path
) -> None:
    data = {
        **LAB_DEFAULTS, "name": "t-classv", "provider": "vmware", "subnet": "127.77.0.0/24",
        "state_dir": str(tmp_path / "state"),
        "nodes": [{"name": n, "role": r, "address": f"127.77.0.{11 + i}"} for i, (n, r) in
                  enumerate([("manager1", "manager"), ("manager2", "manager"),
                             ("worker1", "worker")])],
        "vmware": {"vcenter": vcsim.endpoint, "user": USER, "insecure": True,
                   "datacenter": "DC0", "cluster": "DC0_C0", "datastore": "LocalDS_0",
                   "network": "DC0_DVPG0", "template": TEMPLATE, "linked_clone": True,
                   "simulator": True, "guest_timeout": 60},
    }
    base = parse_spec(data)
    settings = parse_settings({"address_pool": "127.79.0.0/16"}, base)
    record = ClassRecord.load(base.state_dir, settings.name)
    students = [Student("ann", "Ann", 2), Student("ben", "Ben", 3)]
    plan = make_plan(base, settings, data, students, record, "roster.csv")

    made = class_vsphere.before_up(plan.labs[0].spec, [])
    assert made == ["swarmlab-t-classv"]
    assert class_vsphere.before_up(plan.labs[0].spec, made) == made  # nothing new the 2nd time

    def create(entry, log):
        with Lab(entry.spec, log=log) as lab:
            lab.provider.preflight()
            return "cloned", lab.provider.create()

    def destroy(entry, log):
        with Lab(entry.spec, log=log) as lab:
            return "destroyed", lab.provider.destroy()

    results = runner.run(list(plan.labs), create, what="up", parallel=2, say=lambda line: None,
                         log_dir=tmp_path / "logs")
    assert [r.status for r in results] == ["ok", "ok"], [r.detail for r in results]
    vms = {vm.name: vm for vm in find_vms(service, "t-classv-")}
    assert sorted(vms) == [f"t-classv-{sid}-{node}" for sid in ("ann", "ben")
                           for node in ("manager1", "manager2", "worker1")]
    for sid, octet in (("ann", 0), ("ben", 1)):
        for node, address in (("manager1", 11), ("worker1", 13)):
            vm = vms[f"t-classv-{sid}-{node}"]
            assert vm.props["parent"].name == f"t-classv-{sid}"
            assert vm.props["parent"].parent.name == "swarmlab-t-classv"
            assert vm.props["guest.ipAddress"] == f"127.79.{octet}.{address}"

    # Both labs at once, as class.down does: each finds its folder among its siblings.
    results = runner.run(list(plan.labs), destroy, what="down", parallel=2,
                         say=lambda line: None, log_dir=tmp_path / "logs")
    assert [r.status for r in results] == ["ok", "ok"], [r.detail for r in results]
    assert class_vsphere.after_down(plan.labs[0].spec, made) == []
    assert find_vms(service, "t-classv-") == []
