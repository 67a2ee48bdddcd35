"""Builder VMs: template images, libvirt domains, SSH, and the KVM/TCG probe.

- template: recipe hashing, the image cache and `build_template`
- domain:   pure naming and libvirt XML rendering
- libvirt:  `LibvirtDriver` (start / destroy / list / reap) and `VmHandle`
- ssh:      `wait_ready`, `connect` -> `SshSession` (run with live lines, put, get)
- probe:    `probe_domain_type` (kvm if a kernel really boots under KVM, else qemu)
"""
