"""Builder VMs: template images, libvirt domains, SSH, the KVM/TCG probe, and the pool.

- template: recipe hashing, the image cache and `build_template`
- domain:   pure naming and libvirt XML rendering, `VmSize`
- libvirt:  `LibvirtDriver` (start / destroy / list / reap / is_alive) and `VmHandle`
- ssh:      `wait_ready`, `connect` -> `SshSession` (run with live lines, put, get),
            `open_tunnel` for builders on remote libvirt hosts
- probe:    `probe_domain_type` (kvm if a kernel really boots under KVM, else qemu),
            `cached_probe` (the same, once per host boot)
- capacity: pure pool accounting (which host, what to boot ahead, what to evict)
- hosts:    `Host`: one libvirt host's driver, domain type and SSH tunnel
- pool:     `VmPool`: warm clones, one per task, destroyed after; the refill loop
- builder:  `BuilderVm`: what a task gets from the pool (run, put, get, forward)
"""
