"""Pure tests of domain naming and the libvirt XML Kopers renders."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kopers.vm.domain import (
    QEMU_NS,
    DomainSpec,
    domain_name,
    domain_of_file,
    domain_prefix,
    instance_tag,
    is_kopers_domain,
    pool_name,
    pool_target_path,
    render_domain_xml,
    render_pool_xml,
    render_volume_xml,
    sanitize_tag,
)

Q = f"{{{QEMU_NS}}}"


def spec(**overrides: object) -> DomainSpec:
    values: dict[str, object] = {
        "name": "kopers-abc123-b7-ff00aa",
        "domain_type": "qemu",
        "vcpus": 2,
        "memory_mib": 1536,
        "kernel": Path("/cache/templates/debian-12-x/vmlinuz"),
        "initrd": Path("/cache/templates/debian-12-x/initrd.img"),
        "disk": Path("/data/overlays/kopers-abc123-b7-ff00aa.qcow2"),
        "console_log": Path("/data/overlays/kopers-abc123-b7-ff00aa.console.log"),
        "ssh_port": 40022,
    }
    values.update(overrides)
    return DomainSpec(**values)  # type: ignore[arg-type]


def qemu_args(root: ET.Element) -> list[str]:
    return [a.attrib["value"] for a in root.findall(f"{Q}commandline/{Q}arg")]


def test_domain_xml_basics() -> None:
    root = ET.fromstring(render_domain_xml(spec()))
    assert root.tag == "domain"
    assert root.attrib["type"] == "qemu"
    assert root.findtext("name") == "kopers-abc123-b7-ff00aa"
    assert root.findtext("vcpu") == "2"
    memory = root.find("memory")
    assert memory is not None and memory.text == "1536" and memory.attrib["unit"] == "MiB"
    assert root.findtext("on_reboot") == "destroy"


def test_domain_declares_qemu_namespace() -> None:
    text = render_domain_xml(spec())
    assert f'xmlns:qemu="{QEMU_NS}"' in text


def test_direct_kernel_boot() -> None:
    root = ET.fromstring(render_domain_xml(spec(cmdline="root=/dev/vda rw quiet")))
    assert root.findtext("os/kernel") == "/cache/templates/debian-12-x/vmlinuz"
    assert root.findtext("os/initrd") == "/cache/templates/debian-12-x/initrd.img"
    assert root.findtext("os/cmdline") == "root=/dev/vda rw quiet"


def test_default_cmdline_uses_serial_console_and_eth0() -> None:
    cmdline = ET.fromstring(render_domain_xml(spec())).findtext("os/cmdline") or ""
    assert "root=/dev/vda" in cmdline
    assert "console=ttyS0" in cmdline
    assert "net.ifnames=0" in cmdline


def test_disk_is_virtio_qcow2_overlay() -> None:
    disk = ET.fromstring(render_domain_xml(spec())).find("devices/disk")
    assert disk is not None
    assert disk.find("source").attrib["file"] == "/data/overlays/kopers-abc123-b7-ff00aa.qcow2"  # type: ignore[union-attr]
    assert disk.find("target").attrib == {"dev": "vda", "bus": "virtio"}  # type: ignore[union-attr]
    assert disk.find("driver").attrib["type"] == "qcow2"  # type: ignore[union-attr]


def test_no_libvirt_interface() -> None:
    root = ET.fromstring(render_domain_xml(spec()))
    assert root.findall(".//interface") == []


def test_user_net_is_restricted_and_forward_bound_to_loopback() -> None:
    args = qemu_args(ET.fromstring(render_domain_xml(spec(ssh_port=40123))))
    netdev = args[args.index("-netdev") + 1]
    options = netdev.split(",")
    assert options[0] == "user"
    assert "restrict=on" in options
    assert "hostfwd=tcp:127.0.0.1:40123-:22" in options
    assert [o for o in options if o.startswith("hostfwd=")] == ["hostfwd=tcp:127.0.0.1:40123-:22"]


def test_no_vm_ever_gets_unrestricted_user_networking() -> None:
    """restrict=off makes the guest's 10.0.2.2 the host's loopback: never rendered.

    A network-enabled build reaches out through the egress proxy instead.
    """
    xml = render_domain_xml(spec())
    args = qemu_args(ET.fromstring(xml))
    options = args[args.index("-netdev") + 1].split(",")
    assert "restrict=on" in options and "restrict=off" not in xml
    assert [o for o in options if o.startswith(("hostfwd=", "guestfwd="))] == [
        "hostfwd=tcp:127.0.0.1:40022-:22"
    ]


def test_nic_has_fixed_pci_slot() -> None:
    args = qemu_args(ET.fromstring(render_domain_xml(spec())))
    device = args[args.index("-device") + 1]
    assert device.startswith("virtio-net-pci,")
    assert "netdev=n0" in device and "addr=0x9" in device and "bus=pci.0" in device


def test_serial_console_goes_to_file() -> None:
    serial = ET.fromstring(render_domain_xml(spec())).find("devices/serial")
    assert serial is not None and serial.attrib["type"] == "file"
    source = serial.find("source")
    assert source is not None
    assert source.attrib["path"] == "/data/overlays/kopers-abc123-b7-ff00aa.console.log"


def test_cpu_mode_depends_on_domain_type() -> None:
    kvm = ET.fromstring(render_domain_xml(spec(domain_type="kvm")))
    tcg = ET.fromstring(render_domain_xml(spec(domain_type="qemu")))
    assert kvm.attrib["type"] == "kvm"
    assert kvm.find("cpu").attrib["mode"] == "host-passthrough"  # type: ignore[union-attr]
    assert tcg.find("cpu").attrib["mode"] == "maximum"  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", [{"domain_type": "xen"}, {"ssh_port": 0}, {"ssh_port": 70000}])
def test_domain_xml_rejects_bad_specs(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        render_domain_xml(spec(**bad))


def test_paths_are_escaped() -> None:
    root = ET.fromstring(render_domain_xml(spec(kernel=Path("/odd <&> dir/vmlinuz"))))
    assert root.findtext("os/kernel") == "/odd <&> dir/vmlinuz"


def test_volume_xml_has_backing_store() -> None:
    vol = ET.fromstring(render_volume_xml("kopers-x-y-z.qcow2", Path("/cache/base.qcow2")))
    assert vol.findtext("name") == "kopers-x-y-z.qcow2"
    assert vol.find("target/format").attrib["type"] == "qcow2"  # type: ignore[union-attr]
    assert vol.findtext("backingStore/path") == "/cache/base.qcow2"
    assert vol.find("backingStore/format").attrib["type"] == "qcow2"  # type: ignore[union-attr]
    # Without a capacity libvirt takes the backing image's size.
    assert vol.find("capacity") is None


def test_volume_xml_with_capacity() -> None:
    vol = ET.fromstring(render_volume_xml("v.qcow2", Path("/b.qcow2"), capacity_bytes=1 << 33))
    capacity = vol.find("capacity")
    assert capacity is not None and capacity.text == str(1 << 33)
    assert capacity.attrib["unit"] == "bytes"


def test_pool_xml_roundtrip() -> None:
    xml = render_pool_xml("kopers-pool-1", Path("/data/overlays"))
    root = ET.fromstring(xml)
    assert root.attrib["type"] == "dir"
    assert root.findtext("name") == "kopers-pool-1"
    assert pool_target_path(xml) == Path("/data/overlays")


def test_pool_name_differs_per_directory() -> None:
    a, b = pool_name(Path("/srv/a/overlays")), pool_name(Path("/srv/b/overlays"))
    assert a != b
    assert a == pool_name(Path("/srv/a/overlays"))
    assert a.startswith("kopers-pool-")


def test_domain_names() -> None:
    name = domain_name("i1", "b42-fedora40", random="abc123")
    assert name == "kopers-i1-b42fedora40-abc123"
    assert name.startswith(domain_prefix("i1"))
    assert is_kopers_domain(name)
    assert is_kopers_domain(name, "i1")
    assert not is_kopers_domain(name, "i2")
    assert not is_kopers_domain("debian-test")
    assert not is_kopers_domain("kopers-pool-abc")


def test_random_suffix_differs() -> None:
    names = {domain_name("i1", "t") for _ in range(20)}
    assert len(names) == 20
    assert all(n.startswith("kopers-i1-t-") for n in names)


def test_instance_prefixes_do_not_overlap() -> None:
    # "i1" must not reap "i12"'s domains: the prefix ends with a dash.
    assert not domain_name("i12", "t").startswith(domain_prefix("i1"))


def test_sanitize_tag() -> None:
    assert sanitize_tag("Fedora-40_x86") == "fedora40x86"
    with pytest.raises(ValueError):
        sanitize_tag("---")


def test_instance_tag_is_stable_and_short() -> None:
    assert instance_tag("/var/lib/kopers") == instance_tag("/var/lib/kopers")
    assert instance_tag("/var/lib/kopers") != instance_tag("/srv/kopers")
    assert len(instance_tag("x")) == 8


def test_domain_of_file() -> None:
    assert domain_of_file("kopers-i1-t-abc.qcow2") == "kopers-i1-t-abc"
    assert domain_of_file("kopers-i1-t-abc.console.log") == "kopers-i1-t-abc"
    assert domain_of_file("other.qcow2") is None
    assert domain_of_file("kopers-i1-t-abc.txt") is None
