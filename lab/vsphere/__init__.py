"""vSphere through pyvmomi, in small pieces the vmware provider puts together.

settings: the lab file's `vmware` section, validated. connection: login, TLS and the
password. inventory: objects found by name, never by guess. tasks: many tasks waited on
together. clone: the clone and customization specs. guest: waiting for guest addresses.
simulator: container-backed VMs for govmomi's vcsim.
"""
