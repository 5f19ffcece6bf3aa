//! The device layer (issue #12) in the namespace lab: what the inet hooks never see is cut
//! off too. Each test builds its own lab and runs the real `cordon` binary (netlink
//! backend) in the endpoint namespace; extra "guest" namespaces are made here and deleted
//! by a guard, also when a test fails. Needs root, `ip` and `nft`; fails loudly without.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cordon_firewall::netlink::Netlink;
use cordon_firewall::Firewall;
use cordon_lab::lab::{addr::*, netns, Host, Lab, LabOptions};
use cordon_policy::TableName;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cordon"))
}

fn lab() -> Lab {
    Lab::build(&bin(), LabOptions::default())
        .expect("building the namespace lab (needs root, iproute2, nftables, iptables)")
}

fn server_url() -> String {
    format!("tcp://{SERVER_NAME}:{SERVER_PORT}")
}

fn cordon(lab: &Lab, args: &[&str]) -> (i32, String, String) {
    let out = lab.cordon(args).unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn isolate(lab: &Lab, sd: &str) {
    let url = server_url();
    let (code, out, err) = cordon(
        lab,
        &["isolate", "--server", &url, "--backend", "netlink", "--state-dir", sd],
    );
    assert_eq!(code, 0, "isolate failed: {out}\n{err}");
}

fn release(lab: &Lab, sd: &str) {
    let (code, out, err) = cordon(lab, &["release", "--state-dir", sd]);
    assert_eq!(code, 0, "release failed: {out}\n{err}");
}

fn coverage_layers(lab: &Lab, sd: &str) -> Vec<String> {
    let (code, out, err) = cordon(lab, &["status", "--json", "--state-dir", sd]);
    assert_eq!(code, 0, "status failed: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["coverage"]["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("status --json has no coverage.layers: {out}"))
        .iter()
        .map(|l| l.as_str().unwrap_or_default().to_string())
        .collect()
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Extra namespaces (guests of the endpoint), deleted on drop.
struct Guests(Vec<String>);

impl Guests {
    fn add(&mut self, lab: &Lab, tag: &str) -> String {
        let name = format!("{}-{tag}", lab.ns(Host::Endpoint));
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        self.0.push(name.clone());
        name
    }
}

impl Drop for Guests {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

/// Whether a TCP connection from namespace `ns` to the other host's echo port succeeds.
fn reaches_other(ns: &str) -> bool {
    netns::run_in(ns, || {
        Ok(TcpStream::connect_timeout(
            &SocketAddr::new(OTHER4.into(), OTHER_TCP_PORT),
            Duration::from_millis(700),
        )
        .is_ok())
    })
    .unwrap()
}

/// Puts a device of the endpoint into guest namespace `g` with address `addr`/24.
fn move_into(lab: &Lab, dev: &str, g: &str, addr: &str) {
    let ep = lab.ns(Host::Endpoint);
    ip(&["-n", &ep, "link", "set", dev, "netns", g]);
    ip(&["-n", g, "addr", "add", &format!("{addr}/24"), "dev", dev]);
    ip(&["-n", g, "link", "set", dev, "up"]);
}

fn mac_of(lab: &Lab, host: Host) -> [u8; 6] {
    let out = lab.exec(host, &["ip", "-j", "link", "show", "eth0"]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = v[0]["address"].as_str().unwrap().to_string();
    let mut mac = [0u8; 6];
    for (i, part) in text.split(':').enumerate() {
        mac[i] = u8::from_str_radix(part, 16).unwrap();
    }
    mac
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum = 0u32;
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame carrying IPv4/UDP from the endpoint to the other host's `port`.
fn udp_frame(src_mac: [u8; 6], dst_mac: [u8; 6], port: u16, payload: &[u8]) -> Vec<u8> {
    udp_frame_to(src_mac, dst_mac, OTHER4, 40000, port, payload)
}

/// An Ethernet frame carrying IPv4/UDP from the endpoint's `sport` to `dst`:`dport`.
fn udp_frame_to(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    dst: std::net::Ipv4Addr,
    sport: u16,
    port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = (20 + 8 + payload.len()) as u16;
    let mut iph = vec![0x45, 0];
    iph.extend_from_slice(&total.to_be_bytes());
    iph.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, 17, 0, 0]);
    iph.extend_from_slice(&ENDPOINT4.octets());
    iph.extend_from_slice(&dst.octets());
    let c = checksum(&iph);
    iph[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&iph);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&port.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Sends `frame` from the endpoint's eth0 through an AF_PACKET socket (which the inet
/// hooks never see).
fn send_raw(lab: &Lab, frame: Vec<u8>) {
    send_raw_as(lab, frame, 0)
}

/// [`send_raw`] with `sll_protocol` = `proto` (an `ETH_P_*`; 0: the kernel reads the
/// frame's type), which becomes the frame's `meta protocol` whatever the frame carries.
fn send_raw_as(lab: &Lab, frame: Vec<u8>, proto: u16) {
    send_raw_via(lab, "eth0", frame, proto)
}

/// [`send_raw_as`] through the endpoint's interface `dev`.
fn send_raw_via(lab: &Lab, dev: &'static str, frame: Vec<u8>, proto: u16) {
    netns::run_in(&lab.ns(Host::Endpoint), move || {
        // SAFETY: plain socket(2); checked below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                i32::from((libc::ETH_P_ALL as u16).to_be()),
            )
        };
        assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
        let name = std::ffi::CString::new(dev).unwrap();
        // SAFETY: a valid NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(ifindex > 0);
        // SAFETY: sockaddr_ll is plain old data.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto.to_be();
        addr.sll_ifindex = ifindex as i32;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        for _ in 0..3 {
            // SAFETY: frame and addr outlive the call; lengths match.
            let n = unsafe {
                libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            // A drop by the egress hook can surface as EPERM; either way nothing leaves.
            let _ = n;
        }
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
        Ok(())
    })
    .unwrap();
}

/// Whether a raw frame sent from the endpoint's packet socket reaches the other host.
fn raw_frame_arrives(lab: &Lab, port: u16) -> bool {
    raw_frame_arrives_on(lab, "eth0", port)
}

/// [`raw_frame_arrives`], sent through the endpoint's interface `dev`.
fn raw_frame_arrives_on(lab: &Lab, dev: &'static str, port: u16) -> bool {
    let bind = SocketAddr::new(OTHER4.into(), port);
    let sock: UdpSocket = netns::run_in(&lab.ns(Host::Other), move || Ok(UdpSocket::bind(bind)?)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    let out = lab
        .exec(Host::Endpoint, &["cat", &format!("/sys/class/net/{dev}/address")])
        .unwrap();
    let mut src = [0u8; 6];
    for (i, part) in String::from_utf8_lossy(&out.stdout).trim().split(':').enumerate() {
        src[i] = u8::from_str_radix(part, 16).unwrap();
    }
    let frame = udp_frame(src, mac_of(lab, Host::Other), port, b"cordon-af-packet");
    send_raw_via(lab, dev, frame, 0);
    let mut buf = [0u8; 64];
    matches!(sock.recv_from(&mut buf), Ok((n, _)) if &buf[..n] == b"cordon-af-packet")
}

/// Whether a raw DHCP request (UDP 68 -> 67, what DHCP clients send from packet sockets)
/// from the endpoint reaches `host` at `to`.
fn raw_dhcp_request_arrives(lab: &Lab, host: Host, to: std::net::Ipv4Addr) -> bool {
    let bind = SocketAddr::new(to.into(), 67);
    let sock: UdpSocket = netns::run_in(&lab.ns(host), move || Ok(UdpSocket::bind(bind)?)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    let frame = udp_frame_to(
        mac_of(lab, Host::Endpoint),
        mac_of(lab, host),
        to,
        68,
        67,
        b"cordon-dhcp-raw",
    );
    send_raw(lab, frame);
    let mut buf = [0u8; 64];
    matches!(sock.recv_from(&mut buf), Ok((n, _)) if &buf[..n] == b"cordon-dhcp-raw")
}

/// DHCP ports at the device layer were open to any host (#12): a packet socket could
/// talk to anyone on UDP 68 -> 67. Now only the known DHCP servers (and broadcast) get
/// DHCP frames, as in the inet table.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn device_layer_dhcp_reaches_only_the_known_servers() {
    // The resolver host stands for "any host that is not a DHCP server" (the other host
    // already runs the leak matrix's listener on port 67).
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    assert!(
        raw_dhcp_request_arrives(&lab, Host::Resolver, RESOLVER4),
        "lab broken: a raw DHCP frame did not arrive before isolate"
    );
    let url = server_url();
    let known = SERVER4.to_string();
    let (code, out, err) = cordon(
        &lab,
        &[
            "isolate",
            "--server",
            &url,
            "--backend",
            "netlink",
            "--state-dir",
            &sd,
            "--dhcp-server",
            &known,
        ],
    );
    assert_eq!(code, 0, "isolate failed: {out}\n{err}");
    assert!(
        !raw_dhcp_request_arrives(&lab, Host::Resolver, RESOLVER4),
        "a packet-socket DHCP frame reached a host that is not a DHCP server"
    );
    assert!(
        raw_dhcp_request_arrives(&lab, Host::Server, SERVER4),
        "a DHCP frame to the known DHCP server was dropped"
    );
    release(&lab, &sd);
    assert!(
        raw_dhcp_request_arrives(&lab, Host::Resolver, RESOLVER4),
        "raw DHCP frames still blocked after release"
    );
}

#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn packet_socket_sender_cannot_reach_the_other_host() {
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    assert!(
        raw_frame_arrives(&lab, 7991),
        "lab broken: a raw frame did not arrive before isolate"
    );
    isolate(&lab, &sd);
    let layers = coverage_layers(&lab, &sd);
    assert_eq!(
        layers,
        ["inet", "netdev-ingress", "netdev-egress"],
        "coverage on this kernel"
    );
    assert!(
        !raw_frame_arrives(&lab, 7992),
        "a packet-socket frame left the quarantined endpoint"
    );
    release(&lab, &sd);
    assert!(raw_frame_arrives(&lab, 7993), "raw frames still blocked after release");
}

/// A packet socket on `host`'s eth0 that sees every frame arriving there (what a host on
/// the link receives, whether or not its IP stack takes it).
struct Capture(std::os::fd::OwnedFd);

impl Capture {
    fn open(lab: &Lab, host: Host) -> Capture {
        Capture::open_on(lab, host, c"eth0")
    }

    /// A capture on device `dev` of `host`.
    fn open_on(lab: &Lab, host: Host, dev: &'static std::ffi::CStr) -> Capture {
        Capture::open_proto(lab, host, dev, libc::ETH_P_ALL as u16)
    }

    /// A packet socket of protocol `proto` on device `dev` of `host` (`ETH_P_IP`: served
    /// after the netdev ingress hook, so what it reads passed Cordon's chain).
    fn open_proto(lab: &Lab, host: Host, dev: &'static std::ffi::CStr, proto: u16) -> Capture {
        let fd = netns::run_in(&lab.ns(host), move || {
            // SAFETY: plain socket(2); checked below.
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_NONBLOCK,
                    i32::from(proto.to_be()),
                )
            };
            assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
            // SAFETY: fd was just opened and is owned from here on.
            let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            // SAFETY: a valid NUL-terminated name.
            let ifindex = unsafe { libc::if_nametoindex(dev.as_ptr()) };
            assert!(ifindex > 0, "no {dev:?} here");
            // SAFETY: sockaddr_ll is plain old data.
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = proto.to_be();
            addr.sll_ifindex = ifindex as i32;
            // SAFETY: addr is a valid sockaddr_ll of the size given.
            let rc = unsafe {
                libc::bind(
                    std::os::fd::AsRawFd::as_raw_fd(&fd),
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
            Ok(fd)
        })
        .unwrap();
        Capture(fd)
    }

    /// How many frames containing `marker` arrive within `within`.
    fn count(&self, marker: &[u8], within: Duration) -> usize {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; 2048];
        let mut seen = 0;
        while Instant::now() < deadline {
            // SAFETY: buf is valid for its length.
            let n = unsafe {
                libc::recv(
                    std::os::fd::AsRawFd::as_raw_fd(&self.0),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                )
            };
            if n > 0 && buf[..n as usize].windows(marker.len()).any(|w| w == marker) {
                seen += 1;
            }
            if n <= 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        seen
    }

    /// Whether a frame containing `marker` arrives within 700 ms.
    fn sees(&self, marker: &[u8]) -> bool {
        let deadline = Instant::now() + Duration::from_millis(700);
        let mut buf = vec![0u8; 2048];
        while Instant::now() < deadline {
            // SAFETY: buf is valid for its length.
            let n = unsafe {
                libc::recv(
                    std::os::fd::AsRawFd::as_raw_fd(&self.0),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                )
            };
            if n > 0 && buf[..n as usize].windows(marker.len()).any(|w| w == marker) {
                return true;
            }
            if n <= 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        false
    }
}

/// `frame` (an Ethernet frame) with an 802.1Q tag (VLAN 5) written into it after the MAC
/// addresses, as a packet socket can send it.
fn tagged(frame: &[u8]) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&0x8100u16.to_be_bytes());
    f.extend_from_slice(&5u16.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

/// An ARP frame that is not Ethernet/IPv4 address resolution (operation 9, hardware type
/// 0x4242) carrying `marker`: ARP as a data channel.
fn odd_arp(src_mac: [u8; 6], marker: &[u8]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0806u16.to_be_bytes());
    f.extend_from_slice(&[0x42, 0x42, 0x08, 0x00, 6, 4, 0, 9]);
    f.extend_from_slice(marker);
    f
}

/// Whether a TCP connection from the endpoint to `addr` succeeds (700 ms).
fn endpoint_connects(lab: &Lab, addr: SocketAddr) -> bool {
    netns::run_in(&lab.ns(Host::Endpoint), move || {
        Ok(TcpStream::connect_timeout(&addr, Duration::from_millis(700)).is_ok())
    })
    .unwrap()
}

/// trial21 HIGH-1: `meta protocol arp accept` trusted what a packet socket says
/// (`sll_protocol`), not what the frame carries. From the quarantined endpoint a packet
/// socket sends (a) an IPv4/UDP frame labelled ARP, (b) the same frame inside an 802.1Q
/// tag, also labelled ARP and labelled IP, (c) ARP that is not Ethernet/IPv4 address
/// resolution: none reaches the other host's link (captured there with a packet socket).
/// Address resolution and neighbour discovery for the allowed server still work (caches
/// flushed first, so both really run under quarantine).
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn packet_socket_cannot_dress_frames_as_arp_or_hide_them_in_a_vlan_tag() {
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    let (ep_mac, other_mac) = (mac_of(&lab, Host::Endpoint), mac_of(&lab, Host::Other));
    let cap = Capture::open(&lab, Host::Other);
    let plain = |m: &[u8]| udp_frame(ep_mac, other_mac, 7994, m);
    // The lab carries all of them before the quarantine.
    send_raw_as(&lab, plain(b"f12c-pre-a"), libc::ETH_P_ARP as u16);
    assert!(
        cap.sees(b"f12c-pre-a"),
        "lab broken: an ARP-labelled frame did not arrive before isolate"
    );
    send_raw_as(&lab, tagged(&plain(b"f12c-pre-b")), libc::ETH_P_ARP as u16);
    assert!(
        cap.sees(b"f12c-pre-b"),
        "lab broken: a tagged frame did not arrive before isolate"
    );
    isolate(&lab, &sd);
    lab.exec(Host::Endpoint, &["ip", "neigh", "flush", "all"]).unwrap();
    send_raw_as(&lab, plain(b"f12c-a-ip-as-arp"), libc::ETH_P_ARP as u16);
    assert!(
        !cap.sees(b"f12c-a-ip-as-arp"),
        "an IPv4 frame labelled ARP left the quarantined endpoint"
    );
    send_raw_as(&lab, tagged(&plain(b"f12c-b-vlan-as-arp")), libc::ETH_P_ARP as u16);
    assert!(
        !cap.sees(b"f12c-b-vlan-as-arp"),
        "an 802.1Q-tagged IPv4 frame labelled ARP left"
    );
    send_raw_as(&lab, tagged(&plain(b"f12c-b-vlan-as-ip")), libc::ETH_P_IP as u16);
    assert!(
        !cap.sees(b"f12c-b-vlan-as-ip"),
        "an 802.1Q-tagged IPv4 frame labelled IPv4 left"
    );
    send_raw_as(&lab, odd_arp(ep_mac, b"f12c-c-odd-arp"), libc::ETH_P_ARP as u16);
    assert!(!cap.sees(b"f12c-c-odd-arp"), "ARP that is not address resolution left");
    assert!(
        endpoint_connects(&lab, SocketAddr::new(SERVER4.into(), SERVER_PORT)),
        "the allowed server is unreachable over IPv4 (ARP)"
    );
    assert!(
        endpoint_connects(&lab, SocketAddr::new(SERVER6.into(), SERVER_PORT)),
        "the allowed server is unreachable over IPv6 (neighbour discovery)"
    );
    release(&lab, &sd);
    send_raw_as(&lab, plain(b"f12c-post-a"), libc::ETH_P_ARP as u16);
    assert!(cap.sees(b"f12c-post-a"), "raw frames still blocked after release");
}

/// `status --json` of state directory `sd`, parsed.
fn status_json(lab: &Lab, sd: &str) -> serde_json::Value {
    let (code, out, err) = cordon(lab, &["status", "--json", "--state-dir", sd]);
    assert!(code == 0 || code == 1, "status failed ({code}): {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json: {e}: {out}"))
}

fn names(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap_or_default().to_string()).collect())
        .unwrap_or_default()
}

/// trial21 HIGH-3: a foreign nftables chain on the same hook and device as ours (here at
/// the earliest priority, where it runs before ours and could `fwd`/`dup` frames away, and
/// an inet `ingress` chain) left `status` saying isolated with full coverage. Now status
/// says tampered, names each chain, and claims no netdev layer the chain sits on; Cordon
/// removes nothing foreign; once the operator deletes them, isolated again.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn foreign_chain_on_our_hooks_is_reported_as_tampering() {
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    isolate(&lab, &sd);
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "isolated", "{v}");
    lab.exec(
        Host::Endpoint,
        &[
            "nft",
            "add table netdev sneaky; add chain netdev sneaky early { type filter hook egress device eth0 priority -2147483648; policy accept; }; add table inet sneaky2; add chain inet sneaky2 ing { type filter hook ingress device eth0 priority -500; policy accept; }",
        ],
    )
    .unwrap();
    let v = status_json(&lab, &sd);
    assert_eq!(
        v["state"], "tampered",
        "a foreign chain on our hooks must not read as isolated: {v}"
    );
    let foreign = names(&v["coverage"]["foreign"]);
    assert!(
        foreign
            .iter()
            .any(|f| f.starts_with("netdev sneaky early (hook egress, priority -2147483648) on eth0")),
        "{foreign:?}"
    );
    assert!(
        foreign.iter().any(|f| f.starts_with("inet sneaky2 ing (hook ingress")),
        "{foreign:?}"
    );
    assert_eq!(names(&v["coverage"]["layers"]), ["inet"], "{v}");
    assert!(v["reason"].as_str().unwrap_or_default().contains("sneaky"), "{v}");
    lab.exec(
        Host::Endpoint,
        &["nft", "delete table netdev sneaky; delete table inet sneaky2"],
    )
    .unwrap();
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "isolated", "{v}");
    assert_eq!(
        names(&v["coverage"]["layers"]),
        ["inet", "netdev-ingress", "netdev-egress"]
    );
    release(&lab, &sd);
}

/// trial21 HIGH-5: moving the uplink into another namespace (`ip link set eth0 netns X`)
/// takes it out of reach of our hooks, and `status` still claimed coverage. Now status
/// says tampered and names the device as departed, while the other namespace indeed
/// reaches the other host (what the report is about).
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn uplink_moved_to_another_namespace_is_reported() {
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    let mut guests = Guests(Vec::new());
    let g = guests.add(&lab, "esc");
    isolate(&lab, &sd);
    move_into(&lab, "eth0", &g, "192.0.2.10");
    // (A few tries: the moved device comes up without its neighbours.)
    assert!(
        (0..4).any(|_| reaches_other(&g)),
        "lab: the moved uplink should reach the other host from {g}"
    );
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "tampered", "a moved uplink must not read as isolated: {v}");
    assert_eq!(names(&v["coverage"]["departed"]), ["eth0"], "{v}");
    assert!(
        !names(&v["coverage"]["layers"]).iter().any(|l| l.starts_with("netdev")),
        "{v}"
    );
    assert!(v["reason"].as_str().unwrap_or_default().contains("eth0"), "{v}");
    drop(guests);
    let _ = cordon(&lab, &["release", "--state-dir", &sd]);
}

/// True when this kernel was built without `CONFIG_IPVLAN` (so no ipvlan child can exist
/// to be cut off); false when that cannot be shown.
fn kernel_lacks_ipvlan() -> bool {
    let out = Command::new("sh")
        .args([
            "-c",
            "zcat /proc/config.gz 2>/dev/null | grep -x '# CONFIG_IPVLAN is not set'",
        ])
        .output();
    matches!(out, Ok(o) if o.status.success())
}

/// A child of the endpoint's uplink of link type `kind` (`macvlan`, `ipvlan`), moved into
/// a guest namespace, is cut off while the endpoint is quarantined and back after release.
fn child_is_cut_off_and_back_after_release(kind: &str, mode: &str, addr: &str) {
    let lab = lab();
    let ep = lab.ns(Host::Endpoint);
    let mut guests = Guests(Vec::new());
    let made = Command::new("ip")
        .args([
            "-n", &ep, "link", "add", "child0", "link", "eth0", "type", kind, "mode", mode,
        ])
        .output()
        .unwrap();
    if !made.status.success() {
        // Never a silent pass: a kernel without the link type fails this test by name, and
        // scripts/test leaves it out with a loud NOT RUN line only after checking the
        // kernel config itself.
        let why = if kind == "ipvlan" && kernel_lacks_ipvlan() {
            "NOT RUN: this kernel is built without CONFIG_IPVLAN, so the ipvlan case cannot run here (scripts/test skips it by name and says so)".to_string()
        } else {
            format!(
                "cannot create a {kind} child: {}",
                String::from_utf8_lossy(&made.stderr)
            )
        };
        panic!("{why}");
    }
    let g = guests.add(&lab, kind);
    move_into(&lab, "child0", &g, addr);
    assert!(
        reaches_other(&g),
        "lab broken: the {kind} guest cannot reach the other host before isolate"
    );
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    isolate(&lab, &sd);
    assert!(
        !reaches_other(&g),
        "the {kind} child (below the endpoint's IP stack) still reaches the other host"
    );
    release(&lab, &sd);
    assert!(reaches_other(&g), "the {kind} child is still cut off after release");
}

#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn macvlan_child_is_cut_off_and_back_after_release() {
    child_is_cut_off_and_back_after_release("macvlan", "bridge", "192.0.2.21");
}

/// Needs a kernel with CONFIG_IPVLAN; on one without, it fails saying so (scripts/test
/// then leaves it out by name with a NOT RUN line).
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn ipvlan_child_is_cut_off_and_back_after_release() {
    child_is_cut_off_and_back_after_release("ipvlan", "l2", "192.0.2.22");
}

#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn bridged_guest_is_cut_off_and_back_after_release() {
    let lab = lab();
    let ep = lab.ns(Host::Endpoint);
    let mut guests = Guests(Vec::new());
    let g = guests.add(&lab, "br");
    // The uplink becomes a bridge port, the endpoint's addresses move to the bridge, and
    // the guest hangs off the bridge through a veth (no br_netfilter: bridged frames never
    // meet the inet hooks).
    for knob in [
        "bridge-nf-call-iptables",
        "bridge-nf-call-ip6tables",
        "bridge-nf-call-arptables",
    ] {
        let out = lab
            .exec(
                Host::Endpoint,
                &["sh", "-c", &format!("echo 0 > /proc/sys/net/bridge/{knob}")],
            )
            .unwrap();
        assert!(
            out.status.success(),
            "setting {knob}=0: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    ip(&["-n", &ep, "link", "add", "gbr0", "type", "bridge"]);
    ip(&["-n", &ep, "addr", "flush", "dev", "eth0"]);
    ip(&["-n", &ep, "link", "set", "eth0", "master", "gbr0"]);
    ip(&["-n", &ep, "addr", "add", &format!("{ENDPOINT4}/24"), "dev", "gbr0"]);
    ip(&[
        "-n",
        &ep,
        "addr",
        "add",
        &format!("{ENDPOINT6}/64"),
        "dev",
        "gbr0",
        "nodad",
    ]);
    ip(&["-n", &ep, "link", "set", "gbr0", "up"]);
    ip(&[
        "-n", &ep, "link", "add", "ge0", "type", "veth", "peer", "name", "ge1", "netns", &g,
    ]);
    ip(&["-n", &ep, "link", "set", "ge0", "master", "gbr0", "up"]);
    ip(&["-n", &g, "addr", "add", "192.0.2.23/24", "dev", "ge1"]);
    ip(&["-n", &g, "link", "set", "ge1", "up"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !reaches_other(&g) {
        assert!(
            Instant::now() < deadline,
            "lab broken: the bridged guest cannot reach the other host"
        );
    }
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    isolate(&lab, &sd);
    assert!(!reaches_other(&g), "the bridged guest still reaches the other host");
    release(&lab, &sd);
    assert!(reaches_other(&g), "the bridged guest is still cut off after release");
}

/// Sends SIGTERM to the child it names when dropped (also when a test fails).
struct Kill(u32);
impl Drop for Kill {
    fn drop(&mut self) {
        // SAFETY: signalling the child this test started.
        unsafe { libc::kill(self.0 as i32, libc::SIGTERM) };
    }
}

/// `cordon isolate --server … --watch` in the endpoint (netlink backend), once it says it
/// is watching: the process, its stop guard and the "watching" line.
fn spawn_watcher(lab: &Lab, sd: &str) -> (std::process::Child, Kill, String) {
    let url = server_url();
    let mut watcher = Command::new("ip")
        .args(["netns", "exec", &lab.ns(Host::Endpoint)])
        .arg(bin())
        .args([
            "isolate",
            "--server",
            &url,
            "--backend",
            "netlink",
            "--state-dir",
            sd,
            "--watch",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = Kill(watcher.id());
    let mut lines = BufReader::new(watcher.stdout.take().unwrap()).lines();
    let started = loop {
        let line = lines.next().expect("watcher ended before watching").unwrap();
        if line.starts_with("watching") {
            break line;
        }
    };
    // Keep reading its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    assert!(started.contains("kernel notifications"), "{started}");
    (watcher, guard, started)
}

/// The watcher never gives up (#12): two seconds of tampering as fast as the kernel takes
/// it — tables deleted, the ruleset flushed, accept rules inserted, a chain policy flipped
/// — with far more notifications than its socket holds, and afterwards the watcher still
/// runs and the recorded quarantine is back (the poll alone would do that within a second;
/// a watcher that died on the storm never would).
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn watcher_survives_a_tamper_storm_and_repairs_after_it() {
    use cordon_firewall::netlink::consts::NF_ACCEPT;
    use cordon_firewall::netlink::encode::{Batch, Expr};
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    isolate(&lab, &sd);
    // The engine's watcher in the endpoint, without the owner flag (as the agent runs it,
    // and as on kernels < 6.9), so the tampering gets through.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let engine = cordon_engine::Engine::new(
        TableName::default(),
        state.path().to_path_buf(),
        cordon_firewall::BackendChoice::Exactly(cordon_firewall::BackendKind::Netlink),
    );
    let flag = stop.clone();
    let watcher = netns::spawn_in(&lab.ns(Host::Endpoint), move || {
        let opts = cordon_engine::watch::WatchOptions {
            own: false,
            ..Default::default()
        };
        engine.watch(&opts, &flag, |_| {})?;
        Ok(())
    });
    struct Stop(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let _stop = Stop(stop);
    std::thread::sleep(Duration::from_millis(300));
    let sent = netns::run_in(&lab.ns(Host::Endpoint), || {
        let nl = Netlink::probe(TableName::default())?;
        let until = Instant::now() + Duration::from_secs(2);
        let mut sent = 0u32;
        while Instant::now() < until {
            let mut b = Batch::new(Netlink::next_seq(16), true);
            match sent % 4 {
                0 => b.del_table("cordon"),
                1 => b.flush_ruleset(),
                2 => b.new_rule("cordon", "input", &[Expr::Verdict { code: NF_ACCEPT }]),
                _ => b.set_chain_policy("cordon", "input", NF_ACCEPT),
            }
            // Refusals (the table is gone just now) are part of the storm.
            let _ = nl.send_batch(&b.finish());
            sent += 1;
        }
        Ok(sent)
    })
    .unwrap();
    eprintln!("{sent} tamper batches in 2 s");
    assert!(!watcher.is_finished(), "the watcher ended during the storm");
    let start = Instant::now();
    loop {
        let (code, out, _) = cordon(&lab, &["status", "--json", "--state-dir", &sd]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        if code == 0 && v["state"] == "isolated" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the quarantine was not back 3 s after the storm: {out}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!watcher.is_finished(), "the watcher ended after the storm");
}

/// trial21 HIGH-3/HIGH-5 with the watcher (as the agent runs it): a device deleted while
/// quarantined is dropped from our hooks (so status stays isolated); moving the uplink
/// to another namespace is said at once (WatchEvent::Undermined naming it) and survives
/// later rebuilds (a new interface appearing), so status keeps saying tampered; a foreign
/// chain on our hooks is said too.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn watcher_reports_an_escaped_uplink_and_a_foreign_chain() {
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    isolate(&lab, &sd);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let engine = cordon_engine::Engine::new(
        TableName::default(),
        state.path().to_path_buf(),
        cordon_firewall::BackendChoice::Exactly(cordon_firewall::BackendKind::Netlink),
    );
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let flag = stop.clone();
    let _watcher = netns::spawn_in(&lab.ns(Host::Endpoint), move || {
        let opts = cordon_engine::watch::WatchOptions {
            own: false,
            ..Default::default()
        };
        engine.watch(&opts, &flag, |ev| {
            let _ = tx.send(serde_json::to_value(ev).unwrap_or_default());
        })?;
        Ok(())
    });
    struct Stop(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let _stop = Stop(stop);
    let wait_state = |want: &str, what: &str| {
        let start = Instant::now();
        loop {
            let v = status_json(&lab, &sd);
            if v["state"] == want {
                return v;
            }
            assert!(start.elapsed() < Duration::from_secs(3), "{what}: {v}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let undermined = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(2);
        while let Ok(ev) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if ev["event"] == "undermined" && ev["why"].as_str().unwrap_or_default().contains(needle) {
                return;
            }
        }
        panic!("no undermined event naming {needle} within 2 s");
    };
    let ep = lab.ns(Host::Endpoint);
    ip(&["-n", &ep, "link", "add", "vq0", "type", "veth", "peer", "name", "vq1"]);
    std::thread::sleep(Duration::from_millis(200));
    ip(&["-n", &ep, "link", "del", "vq0"]);
    let v = wait_state("isolated", "a deleted device must not leave the quarantine tampered");
    assert!(names(&v["coverage"]["departed"]).is_empty(), "{v}");
    let mut guests = Guests(Vec::new());
    let g = guests.add(&lab, "esc");
    move_into(&lab, "eth0", &g, "192.0.2.10");
    undermined("eth0");
    ip(&["-n", &ep, "link", "add", "vr0", "type", "veth", "peer", "name", "vr1"]);
    std::thread::sleep(Duration::from_millis(300));
    let v = wait_state("tampered", "the moved uplink");
    assert!(names(&v["coverage"]["departed"]).contains(&"eth0".to_string()), "{v}");
    assert!(
        names(&v["coverage"]["devices"]).contains(&"vr0".to_string()),
        "new interface covered: {v}"
    );
    lab.exec(
        Host::Endpoint,
        &[
            "nft",
            "add table netdev sneaky; add chain netdev sneaky c { type filter hook ingress device vr0 priority 0; }",
        ],
    )
    .unwrap();
    undermined("sneaky");
    drop(guests);
}

/// The layers and devices in force, read from inside the endpoint namespace.
fn endpoint_coverage(lab: &Lab) -> cordon_firewall::Coverage {
    netns::run_in(&lab.ns(Host::Endpoint), || {
        Ok(Netlink::probe(TableName::default())?.coverage()?)
    })
    .unwrap()
}

#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_macvlan_created_while_quarantined_is_covered_within_100_ms() {
    let lab = lab();
    let ep = lab.ns(Host::Endpoint);
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    let (mut watcher, guard, started) = spawn_watcher(&lab, &sd);
    assert!(started.contains("kernel notifications"), "{started}");

    ip(&[
        "-n", &ep, "link", "add", "mvnew", "link", "eth0", "type", "macvlan", "mode", "bridge",
    ]);
    let created = Instant::now();
    let covered = loop {
        let cov = endpoint_coverage(&lab);
        if cov.devices.iter().any(|d| d == "mvnew") && cov.uncovered.is_empty() {
            break created.elapsed();
        }
        assert!(
            created.elapsed() < Duration::from_secs(2),
            "the new macvlan was not covered: {cov:?}"
        );
    };
    eprintln!("new macvlan covered after {covered:?}");
    assert!(
        covered <= Duration::from_millis(100),
        "the new macvlan took {covered:?} to be covered"
    );
    // The hot-plugged child, moved into a guest, is cut off.
    let mut guests = Guests(Vec::new());
    let g = guests.add(&lab, "hp");
    move_into(&lab, "mvnew", &g, "192.0.2.24");
    assert!(
        !reaches_other(&g),
        "the hot-plugged macvlan child reaches the other host"
    );

    // Stopping the watcher leaves the quarantine in force; then release works.
    drop(guard);
    let _ = watcher.wait();
    let layers = coverage_layers(&lab, &sd);
    assert_eq!(
        layers,
        ["inet", "netdev-ingress", "netdev-egress"],
        "{}",
        status_json(&lab, &sd)
    );
    release(&lab, &sd);
    assert!(
        reaches_other(&g),
        "the hot-plugged child is still cut off after release"
    );
}

/// Runs `tc ARGS` in the endpoint and fails the test when it fails.
fn tc(lab: &Lab, args: &[&str]) {
    let mut argv = vec!["tc"];
    argv.extend_from_slice(args);
    let out = lab.exec(Host::Endpoint, &argv).unwrap();
    assert!(
        out.status.success(),
        "tc {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The engine's watcher (without the owner flag, as the agent runs it) in the endpoint,
/// sending its events as JSON; stopped when the guard drops.
struct EngineWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    events: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl Drop for EngineWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl EngineWatch {
    fn start(lab: &Lab, state_dir: &std::path::Path) -> EngineWatch {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let engine = cordon_engine::Engine::new(
            TableName::default(),
            state_dir.to_path_buf(),
            cordon_firewall::BackendChoice::Exactly(cordon_firewall::BackendKind::Netlink),
        );
        let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
        let flag = stop.clone();
        let _ = netns::spawn_in(&lab.ns(Host::Endpoint), move || {
            let opts = cordon_engine::watch::WatchOptions {
                own: false,
                ..Default::default()
            };
            engine.watch(&opts, &flag, |ev| {
                let _ = tx.send(serde_json::to_value(ev).unwrap_or_default());
            })?;
            Ok(())
        });
        let w = EngineWatch { stop, events: rx };
        let first = w
            .events
            .recv_timeout(Duration::from_secs(5))
            .expect("watcher did not start");
        assert_eq!(first["event"], "started", "{first}");
        w
    }

    /// Waits up to `within` for an `undermined` event whose `why` contains `needle`, and
    /// returns how long after `since` it came.
    fn undermined_since(&self, needle: &str, since: Instant, within: Duration) -> Duration {
        let deadline = Instant::now() + within;
        while let Ok(ev) = self
            .events
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if ev["event"] == "undermined" && ev["why"].as_str().unwrap_or_default().contains(needle) {
                return since.elapsed();
            }
        }
        panic!("no undermined event naming {needle:?} within {within:?}");
    }

    fn undermined(&self, needle: &str, within: Duration) {
        self.undermined_since(needle, Instant::now(), within);
    }
}

fn bypass_words(v: &serde_json::Value) -> Vec<String> {
    v["coverage"]["bypasses"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|b| b["what"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// trial27 HIGH-1/1b: a tc filter that redirects (here `u32` + `mirred` on `lo`'s clsact
/// egress: the host's own traffic routed to `lo` leaves through eth0 past its egress
/// chain) left status `isolated` with all three layers. Now, added after the apply, it
/// makes status `tampered`, naming device, hook and action, claims no layer, and the
/// watcher says so at once (RTNLGRP_TC); deleted, all is back. One already there at the
/// apply is named (impact, status note) and no layer is claimed; it is no tampering, but
/// the quarantine is `not_isolated` and the isolate exits 11 (trial31 HIGH-H).
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn tc_redirect_around_the_hooks_is_reported() {
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    isolate(&lab, &sd);
    let watch = EngineWatch::start(&lab, state.path());
    tc(&lab, &["qdisc", "add", "dev", "lo", "clsact"]);
    let since = Instant::now();
    tc(
        &lab,
        &[
            "filter", "add", "dev", "lo", "egress", "protocol", "all", "u32", "match", "u32", "0", "0", "action",
            "mirred", "egress", "redirect", "dev", "eth0",
        ],
    );
    let took = watch.undermined_since("mirred", since, Duration::from_secs(2));
    eprintln!("watcher said it after {took:?}");
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "tampered", "{v}");
    assert!(names(&v["coverage"]["layers"]).is_empty(), "{v}");
    let words = bypass_words(&v);
    assert!(
        words
            .iter()
            .any(|w| w.starts_with("tc filter u32 on lo egress") && w.ends_with("actions mirred")),
        "{words:?}"
    );
    assert!(v["reason"].as_str().unwrap_or_default().contains("on lo egress"), "{v}");
    // A harmless filter (classify only) keeps the claim.
    tc(&lab, &["qdisc", "del", "dev", "lo", "clsact"]);
    tc(&lab, &["qdisc", "add", "dev", "eth0", "clsact"]);
    tc(
        &lab,
        &[
            "filter",
            "add",
            "dev",
            "eth0",
            "ingress",
            "protocol",
            "ip",
            "u32",
            "match",
            "ip",
            "src",
            "203.0.113.7/32",
            "classid",
            "1:1",
        ],
    );
    watch.undermined("", Duration::from_secs(2));
    let v = status_json(&lab, &sd);
    // Gone, but the watcher saw it: tampered until acknowledged (trial31 MED-E).
    assert_eq!(v["state"], "tampered", "{v}");
    assert_eq!(
        names(&v["coverage"]["layers"]),
        ["inet", "netdev-ingress", "netdev-egress"],
        "{v}"
    );
    acknowledge_back_to_isolated(&lab, &sd, "tc filter u32 on lo egress");
    // Already there when the quarantine is applied: named, layers not claimed, no tampering.
    tc(
        &lab,
        &[
            "filter",
            "add",
            "dev",
            "eth0",
            "ingress",
            "protocol",
            "ip",
            "u32",
            "match",
            "ip",
            "src",
            "192.0.2.99/32",
            "action",
            "mirred",
            "egress",
            "redirect",
            "dev",
            "lo",
        ],
    );
    drop(watch);
    release(&lab, &sd);
    let url = server_url();
    let (code, out, err) = cordon(
        &lab,
        &[
            "isolate",
            "--server",
            &url,
            "--backend",
            "netlink",
            "--state-dir",
            &sd,
            "--json",
        ],
    );
    // trial31 HIGH-H: applied (the rules stay), but NOT isolated: exit 11, never
    // `isolated` (it was exit 0, `state: isolated`, `reason: null`).
    assert_eq!(
        code, 11,
        "a quarantine with a path around it is no success: {out}\n{err}"
    );
    let o: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(o["state"], "not_isolated", "{o}");
    assert!(o["not_isolated"].to_string().contains("on eth0 ingress"), "{o}");
    assert!(
        o["impact"]["around"].to_string().contains("on eth0 ingress"),
        "the impact report names it: {o}"
    );
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "not_isolated", "there before the apply: {v}");
    assert!(
        names(&v["not_isolated"])
            .iter()
            .any(|n| n.starts_with("NOT ISOLATED") && n.contains("on eth0 ingress")),
        "{v}"
    );
    assert!(names(&v["coverage"]["layers"]).is_empty(), "{v}");
    assert!(
        names(&v["coverage"]["notes"])
            .iter()
            .any(|n| n.contains("already there") && n.contains("on eth0 ingress")),
        "{v}"
    );
    let (_, text, _) = cordon(&lab, &["status", "--state-dir", &sd]);
    assert!(
        text.starts_with("not_isolated\n") && text.contains("NOT ISOLATED: something goes around"),
        "{text}"
    );
    let (code, text, err) = cordon(&lab, &["isolate", "--reapply", "--state-dir", &sd]);
    assert_eq!(code, 11, "a re-apply does not make it isolated: {text}\n{err}");
    assert!(text.starts_with("NOT ISOLATED: re-applied"), "{text}");
    tc(&lab, &["qdisc", "del", "dev", "eth0", "clsact"]);
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "isolated", "{v}");
    assert!(v.get("not_isolated").is_none(), "{v}");
    assert_eq!(
        names(&v["coverage"]["layers"]),
        ["inet", "netdev-ingress", "netdev-egress"],
        "{v}"
    );
    release(&lab, &sd);
}

/// A minimal XDP program (`return XDP_PASS`), loaded with bpf(BPF_PROG_LOAD): what it
/// does does not matter, only that one is attached (no compiler needed).
fn xdp_pass_program() -> std::os::fd::OwnedFd {
    bpf_program(6, 2) // BPF_PROG_TYPE_XDP, XDP_PASS
}

/// A BPF program of type `prog_type` that returns `ret` (`r0 = ret; exit`).
fn bpf_program(prog_type: u32, ret: u8) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    let insns: [u8; 16] = [0xb7, 0, 0, 0, ret, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let license = c"GPL";
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&prog_type.to_ne_bytes());
    attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    // SAFETY: attr is a valid bpf_attr for BPF_PROG_LOAD (5), pointing at live buffers.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 5, attr.as_ptr(), attr.len()) };
    assert!(fd >= 0, "BPF_PROG_LOAD: {}", std::io::Error::last_os_error());
    // SAFETY: a new descriptor owned by nobody else.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) }
}

/// Attaches program `prog` in generic (skb) mode to device `ifindex` of the calling
/// thread's namespace: RTM_SETLINK with IFLA_XDP { IFLA_XDP_FD, IFLA_XDP_FLAGS }.
fn attach_xdp_generic(ifindex: i32, prog: i32) {
    let mut nest = Vec::new();
    for (ty, val) in [(1u16, prog as u32), (3u16, 2u32)] {
        nest.extend_from_slice(&8u16.to_ne_bytes());
        nest.extend_from_slice(&ty.to_ne_bytes());
        nest.extend_from_slice(&val.to_ne_bytes());
    }
    let mut body = vec![0u8; 16];
    body[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    body.extend_from_slice(&((4 + nest.len()) as u16).to_ne_bytes());
    body.extend_from_slice(&(43u16 | 0x8000).to_ne_bytes());
    body.extend_from_slice(&nest);
    let mut msg = Vec::new();
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&libc::RTM_SETLINK.to_ne_bytes());
    msg.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    // SAFETY: plain socket calls on buffers that outlive them.
    unsafe {
        let s = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        );
        assert!(s >= 0);
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        let n = libc::sendto(
            s,
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        );
        assert_eq!(n as usize, msg.len());
        let mut buf = [0u8; 4096];
        let n = libc::recv(s, buf.as_mut_ptr().cast(), buf.len(), 0);
        libc::close(s);
        assert!(n >= 20, "no answer to RTM_SETLINK");
        let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
        assert_eq!(err, 0, "attaching XDP: {}", std::io::Error::from_raw_os_error(-err));
    }
}

/// trial27 HIGH-2/2b: an XDP program on any device of the endpoint (here a veth the
/// attacker adds: it could redirect out of the uplink past the egress hook, and one on
/// the uplink answers before every hook) left status `isolated` with all layers. Now
/// status says `tampered` naming program and device, claims no layer, and the watcher
/// says so at once (a link notification); detached, all is back.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn xdp_program_on_any_device_is_reported() {
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    isolate(&lab, &sd);
    let ep = lab.ns(Host::Endpoint);
    ip(&["-n", &ep, "link", "add", "xv0", "type", "veth", "peer", "name", "xv1"]);
    // Up: the kernel announces an XDP change (RTM_NEWLINK) only for a device that is up
    // (on a down one it does nothing until the device goes up, which is announced).
    ip(&["-n", &ep, "link", "set", "xv0", "up"]);
    let watch = EngineWatch::start(&lab, state.path());
    let since = Instant::now();
    netns::run_in(&ep, || {
        let prog = xdp_pass_program();
        let idx = unsafe { libc::if_nametoindex(c"xv0".as_ptr()) } as i32;
        assert!(idx > 0);
        attach_xdp_generic(idx, std::os::fd::AsRawFd::as_raw_fd(&prog));
        Ok(())
    })
    .unwrap();
    let took = watch.undermined_since("XDP program", since, Duration::from_secs(2));
    eprintln!("watcher said it after {took:?}");
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "tampered", "{v}");
    assert!(names(&v["coverage"]["layers"]).is_empty(), "{v}");
    let words = bypass_words(&v);
    assert!(
        words
            .iter()
            .any(|w| w.starts_with("XDP program id ") && w.ends_with("(generic) on xv0")),
        "{words:?}"
    );
    ip(&["-n", &ep, "link", "set", "dev", "xv0", "xdpgeneric", "off"]);
    let v = status_json(&lab, &sd);
    // Gone, but the watcher saw it: tampered until acknowledged (trial31 MED-E).
    assert_eq!(v["state"], "tampered", "{v}");
    acknowledge_back_to_isolated(&lab, &sd, "XDP program id ");
    let v = status_json(&lab, &sd);
    assert_eq!(
        names(&v["coverage"]["layers"]),
        ["inet", "netdev-ingress", "netdev-egress"],
        "{v}"
    );
    drop(watch);
    release(&lab, &sd);
}

/// trial27 HIGH-4 and HIGH-3: an AF_XDP socket (copy-mode TX goes past the egress hook;
/// no device change at all) left status `isolated` with all layers. Now netdev-egress is
/// not claimed while one exists, status says `tampered` (opened after the apply), and the
/// watcher says so at its periodic check (no kernel event exists: within its 1 s poll).
/// An ETH_P_ALL packet socket (reads every inbound frame before the ingress hook) is
/// listed under `taps` with its process; it changes no claim.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn af_xdp_socket_and_packet_taps_are_reported() {
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    isolate(&lab, &sd);
    let watch = EngineWatch::start(&lab, state.path());
    let ep = lab.ns(Host::Endpoint);
    let open = |domain: i32, ty: i32, proto: i32| {
        netns::run_in(&ep, move || {
            use std::os::fd::FromRawFd;
            // SAFETY: a new socket, owned by the returned OwnedFd.
            let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
            assert!(fd >= 0, "socket({domain}): {}", std::io::Error::last_os_error());
            Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
        })
        .unwrap()
    };
    let tap = open(
        libc::AF_PACKET,
        libc::SOCK_RAW,
        i32::from((libc::ETH_P_ALL as u16).to_be()),
    );
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "isolated", "a tap reads, it does not send: {v}");
    let taps = names(&v["coverage"]["taps"]);
    let me = format!("pid {} (", std::process::id());
    assert!(
        taps.iter()
            .any(|t| t.contains(&me) && t.contains("ETH_P_ALL packet socket on all interfaces")),
        "{v}"
    );
    let since = Instant::now();
    let xsk = open(libc::AF_XDP, libc::SOCK_RAW, 0);
    let took = watch.undermined_since("AF_XDP socket", since, Duration::from_secs(3));
    eprintln!("watcher said it after {took:?}");
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "tampered", "{v}");
    assert_eq!(names(&v["coverage"]["layers"]), ["inet", "netdev-ingress"], "{v}");
    let b = &v["coverage"]["bypasses"][0];
    assert!(
        b["what"]
            .as_str()
            .unwrap_or_default()
            .starts_with("AF_XDP socket (inode "),
        "{v}"
    );
    assert!(b["holder"].as_str().unwrap_or_default().contains(&me), "{v}");
    drop(xsk);
    drop(tap);
    let v = status_json(&lab, &sd);
    // Gone, but the watcher saw it: tampered until acknowledged (trial31 MED-E).
    assert_eq!(v["state"], "tampered", "{v}");
    acknowledge_back_to_isolated(&lab, &sd, "AF_XDP socket (inode ");
    let v = status_json(&lab, &sd);
    assert_eq!(
        names(&v["coverage"]["layers"]),
        ["inet", "netdev-ingress", "netdev-egress"],
        "{v}"
    );
    assert!(names(&v["coverage"]["taps"]).is_empty(), "{v}");
    drop(watch);
    release(&lab, &sd);
}

/// trial27 HIGH-1 by another door: a BPF program attached with tcx (Linux ≥ 6.6: a bpf
/// link, no qdisc, so no tc dump shows it) runs where a tc clsact filter does and can
/// redirect the same way. Status says `tampered` naming it and claims no layer; the
/// watcher finds it at its periodic check (the kernel announces tcx attachments nowhere);
/// the link closed, all is back.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn tcx_program_is_reported() {
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    isolate(&lab, &sd);
    let watch = EngineWatch::start(&lab, state.path());
    let since = Instant::now();
    let link = netns::run_in(&lab.ns(Host::Endpoint), || {
        use std::os::fd::{AsRawFd, FromRawFd};
        let prog = bpf_program(3, 0); // BPF_PROG_TYPE_SCHED_CLS, TCX_PASS
        let idx = unsafe { libc::if_nametoindex(c"eth0".as_ptr()) };
        let mut attr = [0u8; 64];
        attr[0..4].copy_from_slice(&(prog.as_raw_fd() as u32).to_ne_bytes());
        attr[4..8].copy_from_slice(&idx.to_ne_bytes());
        attr[8..12].copy_from_slice(&46u32.to_ne_bytes()); // BPF_TCX_INGRESS
                                                           // SAFETY: a valid bpf_attr for BPF_LINK_CREATE (28).
        let fd = unsafe { libc::syscall(libc::SYS_bpf, 28, attr.as_ptr(), attr.len()) };
        assert!(fd >= 0, "BPF_LINK_CREATE tcx: {}", std::io::Error::last_os_error());
        // SAFETY: a new descriptor owned by nobody else.
        Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
    })
    .unwrap();
    let took = watch.undermined_since("tcx ingress BPF program", since, Duration::from_secs(3));
    eprintln!("watcher said it after {took:?}");
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "tampered", "{v}");
    assert!(names(&v["coverage"]["layers"]).is_empty(), "{v}");
    assert!(
        bypass_words(&v)
            .iter()
            .any(|w| w.starts_with("tcx ingress BPF program id ") && w.ends_with(" on eth0")),
        "{v}"
    );
    drop(link);
    let v = status_json(&lab, &sd);
    // Gone, but the watcher saw it: tampered until acknowledged (trial31 MED-E).
    assert_eq!(v["state"], "tampered", "{v}");
    acknowledge_back_to_isolated(&lab, &sd, "tcx ingress BPF program id ");
    let v = status_json(&lab, &sd);
    assert_eq!(
        names(&v["coverage"]["layers"]),
        ["inet", "netdev-ingress", "netdev-egress"],
        "{v}"
    );
    drop(watch);
}

/// Stops an in-process watcher when dropped (also when a test fails).
struct StopFlag(std::sync::Arc<std::sync::atomic::AtomicBool>);
impl Drop for StopFlag {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The engine's watcher (as the agent runs it: no owner flag) in the endpoint, its events
/// as JSON on the returned channel.
fn watch_in_endpoint(lab: &Lab, state: &std::path::Path) -> (StopFlag, std::sync::mpsc::Receiver<serde_json::Value>) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let engine = cordon_engine::Engine::new(
        TableName::default(),
        state.to_path_buf(),
        cordon_firewall::BackendChoice::Exactly(cordon_firewall::BackendKind::Netlink),
    );
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let flag = stop.clone();
    let _watcher = netns::spawn_in(&lab.ns(Host::Endpoint), move || {
        let opts = cordon_engine::watch::WatchOptions {
            own: false,
            ..Default::default()
        };
        engine.watch(&opts, &flag, |ev| {
            let _ = tx.send(serde_json::to_value(ev).unwrap_or_default());
        })?;
        Ok(())
    });
    (StopFlag(stop), rx)
}

/// The `repaired` events among those queued on `rx` within `d`.
fn repairs_within(rx: &std::sync::mpsc::Receiver<serde_json::Value>, d: Duration) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + d;
    let mut out = Vec::new();
    while let Ok(ev) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if ev["event"] == "repaired" {
            out.push(ev);
        }
    }
    out
}

/// trial27 MED-3: with more than 255 devices our hooks are spread over two chains per
/// hook, and the listing named the second chain, so once the device count crossed 255
/// after the apply, every reading differed from the recorded digest: the watcher rebuilt
/// about 25 times a second forever and `status` said tampered, also after the devices
/// were gone again. Now 300 devices come and go: the watcher covers them and goes quiet,
/// and status says isolated throughout.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn crossing_255_devices_neither_loops_the_watcher_nor_reads_as_tampering() {
    let lab = lab();
    let ep = lab.ns(Host::Endpoint);
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    isolate(&lab, &sd);
    let (_stop, rx) = watch_in_endpoint(&lab, state.path());
    std::thread::sleep(Duration::from_millis(300));
    let batch = |verb: &str| -> String {
        (0..150)
            .map(|i| {
                if verb == "add" {
                    format!("link add f12v{i} type veth peer name f12w{i}\n")
                } else {
                    format!("link del f12v{i}\n")
                }
            })
            .collect()
    };
    let run_batch = |text: String| {
        let mut child = Command::new("ip")
            .args(["-n", &ep, "-batch", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "ip -batch failed");
    };
    for (verb, ours) in [("add", 300usize), ("del", 0)] {
        run_batch(batch(verb));
        // Wait until the watcher has covered the new set of devices.
        let start = Instant::now();
        loop {
            let cov = endpoint_coverage(&lab);
            let covered = cov.devices.iter().filter(|d| d.starts_with("f12")).count();
            if cov.uncovered.is_empty() && covered == ours && cov.devices.len() > ours {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "after `{verb}` the watcher did not cover the {ours} test devices: {covered} covered, uncovered {:?}",
                cov.uncovered
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(500));
        while rx.try_recv().is_ok() {}
        let repairs = repairs_within(&rx, Duration::from_secs(2));
        assert!(
            repairs.is_empty(),
            "after `{verb}` of 150 veth pairs the watcher kept rebuilding: {} repairs in 2 s, first {}",
            repairs.len(),
            repairs[0]
        );
        let v = status_json(&lab, &sd);
        assert_eq!(v["state"], "isolated", "after `{verb}`: {v}");
    }
    drop(_stop);
    release(&lab, &sd);
}

/// An Ethernet/IPv4 ARP request from the endpoint for `target`, sent to `dst_mac`, with
/// `trailer` after the 28-byte ARP message.
fn arp_request(src_mac: [u8; 6], dst_mac: [u8; 6], target: std::net::Ipv4Addr, trailer: &[u8]) -> Vec<u8> {
    let mut f = dst_mac.to_vec();
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0806u16.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&ENDPOINT4.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f.extend_from_slice(trailer);
    f
}

/// An Ethernet/IPv6 neighbour-discovery message of ICMPv6 type `ty` (hop limit 255) from
/// a link-local address of the endpoint to `dst`, sent to `dst_mac`, with `options` after
/// the target address (checksum left zero: the receiver's packet socket sees it anyway).
fn nd_frame(src_mac: [u8; 6], dst_mac: [u8; 6], dst: std::net::Ipv6Addr, ty: u8, options: &[u8]) -> Vec<u8> {
    let mut f = dst_mac.to_vec();
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x86ddu16.to_be_bytes());
    let icmp_len = (24 + options.len()) as u16;
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&icmp_len.to_be_bytes());
    f.extend_from_slice(&[58, 255]);
    let src: std::net::Ipv6Addr = "fe80::10".parse().unwrap();
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&[ty, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(options);
    f
}

/// IPv6/UDP from port 546 to `ff02::1:2` port 547 (a DHCPv6 client's request) with
/// `payload`, to Ethernet `33:33:00:01:00:02`. (The UDP checksum is left 0: the frames
/// are only looked for on the link.)
fn dhcp6_frame(src_mac: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x33, 0x33, 0, 1, 0, 2];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x86ddu16.to_be_bytes());
    let udp_len = (8 + payload.len()) as u16;
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[17, 1]);
    let src: std::net::Ipv6Addr = "fe80::10".parse().unwrap();
    let dst: std::net::Ipv6Addr = "ff02::1:2".parse().unwrap();
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&546u16.to_be_bytes());
    f.extend_from_slice(&547u16.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// `marker` followed by filler up to `len` bytes.
fn filled(marker: &[u8], len: usize) -> Vec<u8> {
    let mut v = marker.to_vec();
    v.resize(len, b'A');
    v
}

/// trial27 MED-1: the shapes the device layer lets out for DHCP, ARP and neighbour
/// discovery carried anything, unicast to any neighbour: a full-MTU "DHCP broadcast" sent
/// to the other host's MAC, an ARP request with a 1400-byte trailer, an ND solicitation
/// with 1200 bytes of options, and multicast ND sent to a unicast MAC all reached the
/// other host's link. Now each is held to its size and Ethernet destination; a DHCP
/// broadcast of a real client's size to `ff:ff:ff:ff:ff:ff` still leaves, and address
/// resolution and neighbour discovery for the allowed server still work.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn dhcp_arp_and_nd_shapes_carry_no_data_to_a_neighbour() {
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    let (ep, other) = (mac_of(&lab, Host::Endpoint), mac_of(&lab, Host::Other));
    let bcast = std::net::Ipv4Addr::BROADCAST;
    let cap = Capture::open(&lab, Host::Other);
    send_raw(&lab, udp_frame_to(ep, other, bcast, 68, 67, &filled(b"f12e-pre", 1400)));
    assert!(
        cap.sees(b"f12e-pre"),
        "lab broken: a raw DHCP frame did not arrive before isolate"
    );
    isolate(&lab, &sd);
    let solicited: std::net::Ipv6Addr = "ff02::1:ff00:1".parse().unwrap();
    let link_local: std::net::Ipv6Addr = "fe80::1".parse().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "f12e-dhcp-unicast-mac",
            udp_frame_to(ep, other, bcast, 68, 67, &filled(b"f12e-dhcp-unicast-mac", 300)),
        ),
        (
            "f12e-dhcp-oversize",
            udp_frame_to(ep, [0xff; 6], bcast, 68, 67, &filled(b"f12e-dhcp-oversize", 1400)),
        ),
        (
            "f12e-arp-trailer",
            arp_request(ep, other, OTHER4, &filled(b"f12e-arp-trailer", 1400)),
        ),
        (
            "f12e-nd-options",
            nd_frame(ep, other, link_local, 135, &filled(b"f12e-nd-options", 1200)),
        ),
        // trial31 MED-C: DHCPv6 to ff02::1:2 had no size cap (1400 bytes reached every
        // neighbour).
        (
            "f12f-dhcp6-oversize",
            dhcp6_frame(ep, &filled(b"f12f-dhcp6-oversize", 1400)),
        ),
        (
            "f12e-nd-multicast-to-unicast-mac",
            nd_frame(
                ep,
                other,
                solicited,
                135,
                &filled(b"f12e-nd-multicast-to-unicast-mac", 40),
            ),
        ),
    ];
    for (marker, frame) in cases {
        send_raw(&lab, frame);
        assert!(
            !cap.sees(marker.as_bytes()),
            "{marker}: the frame reached the other host's link"
        );
    }
    // What real clients send still leaves: a DHCP discover of 300 bytes to broadcast.
    send_raw(
        &lab,
        udp_frame_to(ep, [0xff; 6], bcast, 68, 67, &filled(b"f12e-dhcp-real", 300)),
    );
    assert!(
        cap.sees(b"f12e-dhcp-real"),
        "a DHCP broadcast of a real client's size was dropped"
    );
    send_raw(&lab, dhcp6_frame(ep, &filled(b"f12f-dhcp6-real", 300)));
    assert!(
        cap.sees(b"f12f-dhcp6-real"),
        "a DHCPv6 request of a real client's size was dropped"
    );
    lab.exec(Host::Endpoint, &["ip", "neigh", "flush", "all"]).unwrap();
    assert!(
        endpoint_connects(&lab, SocketAddr::new(SERVER4.into(), SERVER_PORT)),
        "the allowed server is unreachable over IPv4 (ARP)"
    );
    assert!(
        endpoint_connects(&lab, SocketAddr::new(SERVER6.into(), SERVER_PORT)),
        "the allowed server is unreachable over IPv6 (neighbour discovery)"
    );
    release(&lab, &sd);
}

/// trial27 HIGH-5, without a watcher: the uplink moved to another namespace and a new
/// device called `eth0` made in its place. The departure was keyed on the name, so the
/// look-alike cleared it: `status` said isolated while the real uplink was open. Now the
/// record knows the uplink by its interface index: tampered, the uplink named as lost.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_look_alike_uplink_does_not_clear_the_departure() {
    let lab = lab();
    let ep = lab.ns(Host::Endpoint);
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    let mut guests = Guests(Vec::new());
    let g = guests.add(&lab, "mv");
    isolate(&lab, &sd);
    move_into(&lab, "eth0", &g, "192.0.2.10");
    ip(&[
        "-n", &ep, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    ip(&["-n", &ep, "link", "set", "eth0", "up"]);
    assert!(
        reaches_other(&g),
        "lab: the moved uplink should reach the other host from {g}"
    );
    let v = status_json(&lab, &sd);
    assert_eq!(
        v["state"], "tampered",
        "a look-alike eth0 must not clear the departure: {v}"
    );
    let lost = names(&v["coverage"]["lost"]);
    assert!(
        lost.iter()
            .any(|l| l.starts_with("eth0 (ifindex ") && l.contains("another one")),
        "{v}"
    );
    assert!(
        !names(&v["coverage"]["layers"]).iter().any(|l| l.starts_with("netdev")),
        "{v}"
    );
    // trial31 MED-D: the operator re-applies, as the reason said; what is here is covered
    // again, but the moved uplink is still open in its namespace: the re-apply must not
    // read as isolated (it did: the record forgot the uplink).
    let (code, out, err) = cordon(&lab, &["isolate", "--reapply", "--state-dir", &sd]);
    assert_eq!(code, 0, "reapply failed: {out}\n{err}");
    assert!(reaches_other(&g), "lab: the moved uplink still reaches the other host");
    let v = status_json(&lab, &sd);
    assert_eq!(
        v["state"], "tampered",
        "a re-apply does not cover an uplink in another namespace: {v}"
    );
    assert!(
        names(&v["coverage"]["lost"])
            .iter()
            .any(|l| l.starts_with("eth0 (ifindex ") && l.contains("no longer in this network namespace")),
        "{v}"
    );
    assert!(
        v["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("never one moved to another network namespace"),
        "the advice says what a re-apply does not do: {v}"
    );
    // Gone for good (its namespace deleted with it): without a watcher that is not told
    // from a move, so the quarantine is recorded afresh by a release and an isolate.
    // (Changed deliberately: a re-apply used to clear it.)
    drop(guests);
    let (code, out, err) = cordon(&lab, &["isolate", "--reapply", "--state-dir", &sd]);
    assert_eq!(code, 0, "reapply failed: {out}\n{err}");
    assert_eq!(status_json(&lab, &sd)["state"], "tampered");
    release(&lab, &sd);
    // (The uplink is gone, so no server can be verified: an exception only.)
    let (code, out, err) = cordon(
        &lab,
        &[
            "isolate",
            "--allow",
            "203.0.113.7/32",
            "--backend",
            "netlink",
            "--state-dir",
            &sd,
        ],
    );
    assert_eq!(code, 0, "isolate failed: {out}\n{err}");
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "isolated", "{v}");
    let _ = cordon(&lab, &["release", "--state-dir", &sd]);
}

/// trial27 MED-2, without a watcher: `ip link set eth0 name uplink0` takes the device
/// off our hooks (they stay on the name) and a new `eth0` picks them up; `status` said
/// isolated. Now the renamed uplink is lost (tampered) until `isolate --reapply`, which
/// covers it under its new name.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_renamed_uplink_is_tampering_until_reapplied() {
    let lab = lab();
    let ep = lab.ns(Host::Endpoint);
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    isolate(&lab, &sd);
    ip(&["-n", &ep, "link", "set", "eth0", "down"]);
    ip(&["-n", &ep, "link", "set", "eth0", "name", "uplink0"]);
    ip(&[
        "-n", &ep, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    ip(&["-n", &ep, "link", "set", "uplink0", "up"]);
    ip(&["-n", &ep, "link", "set", "eth0", "up"]);
    let v = status_json(&lab, &sd);
    assert_eq!(
        v["state"], "tampered",
        "a renamed uplink must not read as isolated: {v}"
    );
    let lost = names(&v["coverage"]["lost"]);
    assert!(lost.iter().any(|l| l.contains("now named uplink0")), "{v}");
    assert!(v["reason"].as_str().unwrap_or_default().contains("uplink0"), "{v}");
    let (code, out, err) = cordon(&lab, &["isolate", "--reapply", "--state-dir", &sd]);
    assert_eq!(code, 0, "reapply failed: {out}\n{err}");
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "isolated", "{v}");
    assert!(names(&v["coverage"]["devices"]).contains(&"uplink0".to_string()), "{v}");
    let _ = cordon(&lab, &["release", "--state-dir", &sd]);
}

/// trial27 HIGH-5 with the watcher: after the uplink left for another namespace, a new
/// `eth0` made the watcher say "no longer undermined" and status isolated. Now the
/// departure stays said and status stays tampered.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn the_watcher_keeps_an_escaped_uplink_departed_when_a_look_alike_appears() {
    let lab = lab();
    let ep = lab.ns(Host::Endpoint);
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    isolate(&lab, &sd);
    let (_stop, rx) = watch_in_endpoint(&lab, state.path());
    std::thread::sleep(Duration::from_millis(300));
    let mut guests = Guests(Vec::new());
    let g = guests.add(&lab, "mv");
    move_into(&lab, "eth0", &g, "192.0.2.10");
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut said = false;
    while let Ok(ev) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if ev["event"] == "undermined" && ev["why"].as_str().unwrap_or_default().contains("eth0") {
            said = true;
            break;
        }
    }
    assert!(said, "the watcher did not say the uplink left");
    ip(&[
        "-n", &ep, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    ip(&["-n", &ep, "link", "set", "eth0", "up"]);
    let deadline = Instant::now() + Duration::from_millis(1500);
    while let Ok(ev) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        assert!(
            !(ev["event"] == "undermined" && ev["why"] == ""),
            "the look-alike eth0 cleared the departure: {ev}"
        );
    }
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "tampered", "{v}");
    assert!(
        names(&v["coverage"]["devices"]).contains(&"eth0p".to_string()),
        "the watcher covers the new devices: {v}"
    );
    drop(_stop);
    drop(guests);
}

/// trial37 HIGH-3 (and trial31 HIGH-F's rename episodes): with a watcher running, the
/// uplink moved to another namespace, used there (a full TCP session to the other host)
/// and moved back — or renamed and renamed back — left nothing: the watcher said it in
/// its log and re-adopted the device, and `status` said `isolated` with every layer. Now
/// each episode is kept in the record (`around_seen`) and status says `tampered` until
/// `cordon status --acknowledge`.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn an_uplink_moved_away_and_back_or_renamed_and_back_stays_a_sighting() {
    let lab = lab();
    let ep = lab.ns(Host::Endpoint);
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    isolate(&lab, &sd);
    let watch = EngineWatch::start(&lab, state.path());
    let mut guests = Guests(Vec::new());
    let g = guests.add(&lab, "hop");
    move_into(&lab, "eth0", &g, "192.0.2.10");
    // (A few tries: the moved device comes up without its neighbours.)
    assert!(
        (0..4).any(|_| reaches_other(&g)),
        "lab: the moved uplink should reach the other host from {g}"
    );
    ip(&["-n", &g, "link", "set", "eth0", "netns", &ep]);
    ip(&["-n", &ep, "addr", "add", "192.0.2.10/24", "dev", "eth0"]);
    ip(&["-n", &ep, "link", "set", "eth0", "up"]);
    std::thread::sleep(Duration::from_millis(1500));
    let v = status_json(&lab, &sd);
    assert_eq!(
        names(&v["coverage"]["layers"]),
        ["inet", "netdev-ingress", "netdev-egress"],
        "back and hooked again: {v}"
    );
    assert_eq!(v["state"], "tampered", "the episode must not read as isolated: {v}");
    let seen: Vec<String> = v["around_seen"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s["what"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        seen.iter()
            .any(|w| w.starts_with("covered interface eth0 moved to another network namespace")),
        "{v}"
    );
    acknowledge_back_to_isolated(&lab, &sd, "covered interface eth0 moved");
    // trial37 LOW-6: the acknowledgement itself stays in the record, with who and what.
    let v = status_json(&lab, &sd);
    let ack = &v["acknowledged"][0];
    assert!(
        ack["by"].as_str().unwrap_or_default().starts_with("uid 0, pid ")
            && ack["forgot"][0]
                .as_str()
                .unwrap_or_default()
                .contains("covered interface eth0 moved")
            && ack["at"].is_string(),
        "{v}"
    );
    let (_, text, _) = cordon(&lab, &["status", "--state-dir", &sd]);
    assert!(text.contains("1 sighting(s) acknowledged at "), "{text}");
    ip(&["-n", &ep, "link", "set", "eth0", "down"]);
    ip(&["-n", &ep, "link", "set", "eth0", "name", "up0"]);
    ip(&["-n", &ep, "link", "set", "up0", "name", "eth0"]);
    ip(&["-n", &ep, "link", "set", "eth0", "up"]);
    std::thread::sleep(Duration::from_millis(1500));
    let v = status_json(&lab, &sd);
    assert_eq!(
        v["state"], "tampered",
        "a rename episode must not read as isolated: {v}"
    );
    assert!(
        v["around_seen"]
            .to_string()
            .contains("covered interface eth0 (ifindex 2) renamed up0"),
        "{v}"
    );
    drop(watch);
    acknowledge_back_to_isolated(&lab, &sd, "covered interface eth0 (ifindex 2) renamed up0");
    drop(guests);
    release(&lab, &sd);
}

/// Sends `count` UDP datagrams 67 -> 68 from `host` to `to` (with SO_BROADCAST), each
/// `len` bytes of payload starting with `marker`.
fn send_dhcp_replies(lab: &Lab, host: Host, to: std::net::Ipv4Addr, len: usize, marker: &'static [u8], count: usize) {
    netns::run_in(&lab.ns(host), move || {
        let sock = UdpSocket::bind(("0.0.0.0", 67)).expect("binding UDP port 67");
        sock.set_broadcast(true).unwrap();
        // On eth0 (the lab's hosts have no default route for 255.255.255.255).
        let dev = b"eth0\0";
        // SAFETY: setsockopt(2) on a live socket with a valid NUL-terminated name.
        let rc = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&sock),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                dev.as_ptr().cast(),
                dev.len() as u32,
            )
        };
        assert_eq!(rc, 0, "SO_BINDTODEVICE: {}", std::io::Error::last_os_error());
        let payload = filled(marker, len);
        for _ in 0..count {
            sock.send_to(&payload, (to, 68))
                .expect("sending a DHCP-reply-shaped datagram");
        }
        Ok(())
    })
    .unwrap();
}

/// trial37 HIGH-4: the device layer accepted UDP 67 -> 68 from ANY address, any size,
/// and an `ETH_P_IP` packet socket (served after the ingress hook, never listed as a
/// tap) read it: inbound data from anywhere to a host that read `isolated`. Now DHCPv4
/// replies come in only from the known server, or addressed to the broadcast address,
/// at most 576 bytes, at most 5 a second (burst 20) per rule.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn dhcp_reply_shapes_come_only_from_the_known_server_small_and_slow() {
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    let url = server_url();
    let known = DHCP4.to_string();
    let (code, out, err) = cordon(
        &lab,
        &[
            "isolate",
            "--server",
            &url,
            "--backend",
            "netlink",
            "--state-dir",
            &sd,
            "--dhcp-server",
            &known,
        ],
    );
    assert_eq!(code, 0, "isolate failed: {out}\n{err}");
    let reader = Capture::open_proto(&lab, Host::Endpoint, c"eth0", libc::ETH_P_IP as u16);
    // Unicast from a host that is not the DHCP server: C2 in a DHCP reply's shape.
    send_dhcp_replies(&lab, Host::Resolver, ENDPOINT4, 300, b"cordon-c2-unicast", 3);
    assert_eq!(
        reader.count(b"cordon-c2-unicast", Duration::from_millis(500)),
        0,
        "a DHCP-reply-shaped datagram from a host that is not the DHCP server came in"
    );
    // From the known server: in, when small enough.
    send_dhcp_replies(&lab, Host::Dhcp, ENDPOINT4, 300, b"cordon-dhcp-small", 1);
    assert_eq!(reader.count(b"cordon-dhcp-small", Duration::from_millis(500)), 1);
    send_dhcp_replies(&lab, Host::Dhcp, ENDPOINT4, 1000, b"cordon-dhcp-large", 1);
    assert_eq!(
        reader.count(b"cordon-dhcp-large", Duration::from_millis(500)),
        0,
        "a 1028-byte DHCP reply came in past the 576-byte cap"
    );
    // Broadcast from any server (one that does not hold the lease answers so).
    send_dhcp_replies(
        &lab,
        Host::Resolver,
        std::net::Ipv4Addr::BROADCAST,
        300,
        b"cordon-dhcp-bcast",
        1,
    );
    assert_eq!(reader.count(b"cordon-dhcp-bcast", Duration::from_millis(500)), 1);
    // Rate: 100 at once from the known server, at most the burst (and a few more from
    // the rate while they are sent) get in.
    send_dhcp_replies(&lab, Host::Dhcp, ENDPOINT4, 300, b"cordon-dhcp-flood", 100);
    let n = reader.count(b"cordon-dhcp-flood", Duration::from_millis(500));
    assert!((1..=25).contains(&n), "{n} of 100 DHCP replies sent at once came in");
    release(&lab, &sd);
    send_dhcp_replies(&lab, Host::Resolver, ENDPOINT4, 300, b"cordon-c2-after", 1);
    assert_eq!(
        reader.count(b"cordon-c2-after", Duration::from_millis(500)),
        1,
        "lab: after release the datagram should come in"
    );
}

/// A one-slot BPF devmap named `name`, empty (trial37 HIGH-1's pre-staged map).
fn empty_devmap(name: &[u8]) -> std::os::fd::OwnedFd {
    // BPF_MAP_CREATE (0): map_type DEVMAP (14), key_size 4, value_size 4, max_entries 1.
    let mut attr = [0u8; 72];
    for (at, v) in [(0, 14u32), (4, 4), (8, 4), (12, 1)] {
        attr[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    }
    attr[28..28 + name.len()].copy_from_slice(name);
    bpf_fd(0, &mut attr, "BPF_MAP_CREATE devmap")
}

/// A process (`sleep 60`) in network namespace `ns` holding copies of `fds` (as its
/// descriptors 100, 101, …), killed when dropped.
fn holder_in(ns: &str, fds: &[std::os::fd::RawFd]) -> Child {
    use std::os::unix::process::CommandExt;
    let fds = fds.to_vec();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "sleep", "60"]);
    // SAFETY: only dup2(2) and fcntl(2), async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for (i, fd) in fds.iter().enumerate() {
                let to = 100 + i as i32;
                if *fd == to {
                    libc::fcntl(to, libc::F_SETFD, 0);
                } else if libc::dup2(*fd, to) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Child(cmd.spawn().expect("running ip netns exec … sleep"))
}

/// trial37 HIGH-1 and HIGH-2: programs staged in advance evaded the watcher's 20 ms
/// look at the BPF id counters — an empty devmap with an XDP program using it, whose
/// entry was flipped to the uplink for 100 ms at a time (a map update makes no id), and
/// a tc program attached by a tcx link for microseconds — and `status` said `isolated`
/// throughout. Now such programs count for as long as they exist: an XDP program using a
/// devmap that a process of this namespace holds (netdev-egress not claimed), and a tc or
/// XDP program held by a process of this namespace (no layer claimed); status says
/// `tampered`, naming them and the holder.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn staged_bpf_programs_held_in_the_namespace_are_reported() {
    use std::os::fd::AsRawFd;
    let lab = lab();
    let ep = lab.ns(Host::Endpoint);
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    isolate(&lab, &sd);
    let (map, xdp, tc) = netns::run_in(&ep, || {
        let map = empty_devmap(b"t37flip");
        let xdp = xdp_redirect_map_program(&map);
        let tc = bpf_program(3, 0); // BPF_PROG_TYPE_SCHED_CLS, TC_ACT_OK
        Ok((map, xdp, tc))
    })
    .unwrap();
    let holder = holder_in(&ep, &[map.as_raw_fd(), xdp.as_raw_fd(), tc.as_raw_fd()]);
    let tc_id = {
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", tc.as_raw_fd())).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("prog_id:"))
            .unwrap()
            .trim()
            .to_string()
    };
    drop((map, xdp, tc)); // the holder has them now
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "tampered", "{v}");
    let words = bypass_words(&v);
    assert!(
        words.iter().any(|w| w.starts_with("XDP program id ")
            && w.contains("uses BPF devmap id ")
            && w.contains("\"t37flip\", held by a process of this network namespace")),
        "{v}"
    );
    assert!(
        words.iter().any(|w| w.starts_with(&format!(
            "tc/tcx BPF program id {tc_id} held by a process of this network namespace"
        ))),
        "{v}"
    );
    assert!(
        v["coverage"]["bypasses"].to_string().contains("(sleep)"),
        "the holder is named: {v}"
    );
    assert!(names(&v["coverage"]["layers"]).is_empty(), "{v}");
    drop(holder);
    let deadline = Instant::now() + Duration::from_secs(5);
    let v = loop {
        let v = status_json(&lab, &sd);
        if bypass_words(&v).is_empty() || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(v["state"], "isolated", "gone with their holder: {v}");
    release(&lab, &sd);
}

/// trial27 LOW-1: a SIGSTOPped holder was shown as `held by a running cordon`. Now
/// status says it is stopped, with its pid.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_stopped_holder_is_shown_as_stopped() {
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    let (mut watcher, guard, _) = spawn_watcher(&lab, &sd);
    let (_, out, _) = cordon(&lab, &["status", "--state-dir", &sd]);
    assert!(out.contains("ownership: held by a running cordon"), "{out}");
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(watcher.id() as i32, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(200));
    let (_, out, _) = cordon(&lab, &["status", "--state-dir", &sd]);
    // SAFETY: as above; continued before the guard's SIGTERM.
    unsafe { libc::kill(watcher.id() as i32, libc::SIGCONT) };
    assert!(
        out.contains(&format!("ownership: held by a stopped cordon (pid {}", watcher.id())),
        "{out}"
    );
    drop(guard);
    let _ = watcher.wait();
    release(&lab, &sd);
}

/// trial37 MED-5: a holder frozen with the cgroup freezer (state `D`, not `T`) was shown as
/// `held by a running cordon` while it repaired nothing. Now it is shown as stopped, with
/// a note saying it is frozen. (cgroup v1's freezer, as on this machine; fails loudly
/// without it.)
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_frozen_holder_is_shown_as_stopped() {
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    let (mut watcher, guard, _) = spawn_watcher(&lab, &sd);
    let cg = std::path::PathBuf::from(format!("/sys/fs/cgroup/freezer/{}-frozen", lab.ns(Host::Endpoint)));
    std::fs::create_dir(&cg).expect("a cgroup v1 freezer hierarchy at /sys/fs/cgroup/freezer");
    std::fs::write(cg.join("cgroup.procs"), watcher.id().to_string()).unwrap();
    std::fs::write(cg.join("freezer.state"), "FROZEN").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (_, out, _) = cordon(&lab, &["status", "--state-dir", &sd]);
    // Thawed and back in the root freezer cgroup before anything can fail.
    std::fs::write(cg.join("freezer.state"), "THAWED").unwrap();
    std::fs::write("/sys/fs/cgroup/freezer/cgroup.procs", watcher.id().to_string()).unwrap();
    let _ = std::fs::remove_dir(&cg);
    assert!(
        out.contains(&format!("ownership: held by a stopped cordon (pid {}", watcher.id()))
            && out.contains("is frozen (its cgroup's freezer"),
        "{out}"
    );
    drop(guard);
    let _ = watcher.wait();
    release(&lab, &sd);
}

/// trial27 HIGH-1b with the backends that filter the host's own stack only (iptables,
/// `nft`): a tc redirect on `lo` gets the host's own traffic out past their rules too, so
/// their layer is not claimed and status says `tampered`.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn tc_redirect_on_lo_is_reported_with_the_host_stack_backends() {
    let lab = lab();
    for backend in ["iptables", "nftables"] {
        let state = tempfile::tempdir().unwrap();
        let sd = state.path().to_string_lossy().to_string();
        let url = server_url();
        let (code, out, err) = cordon(
            &lab,
            &["isolate", "--server", &url, "--backend", backend, "--state-dir", &sd],
        );
        assert_eq!(code, 0, "isolate ({backend}) failed: {out}\n{err}");
        let v = status_json(&lab, &sd);
        assert_eq!(v["state"], "isolated", "{backend}: {v}");
        assert_eq!(names(&v["coverage"]["layers"]).len(), 1, "{backend}: {v}");
        tc(&lab, &["qdisc", "add", "dev", "lo", "clsact"]);
        tc(
            &lab,
            &[
                "filter", "add", "dev", "lo", "egress", "protocol", "all", "u32", "match", "u32", "0", "0", "action",
                "mirred", "egress", "redirect", "dev", "eth0",
            ],
        );
        let v = status_json(&lab, &sd);
        tc(&lab, &["qdisc", "del", "dev", "lo", "clsact"]);
        assert_eq!(v["state"], "tampered", "{backend}: {v}");
        assert!(names(&v["coverage"]["layers"]).is_empty(), "{backend}: {v}");
        assert!(
            bypass_words(&v)
                .iter()
                .any(|w| w.starts_with("tc filter u32 on lo egress")),
            "{backend}: {v}"
        );
        release(&lab, &sd);
    }
}

/// The other places a tc filter sits: the classic `ingress` qdisc (parent ffff:) and a
/// class of a classful root qdisc (htb 1:1, below Cordon's egress chain: it can mirror or
/// rewrite what the chain accepted). Both are found, and status names the hook.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn tc_filters_on_the_ingress_qdisc_and_on_classes_are_found() {
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    isolate(&lab, &sd);
    tc(&lab, &["qdisc", "add", "dev", "eth0", "ingress"]);
    tc(
        &lab,
        &[
            "filter",
            "add",
            "dev",
            "eth0",
            "parent",
            "ffff:",
            "protocol",
            "ip",
            "u32",
            "match",
            "ip",
            "src",
            "192.0.2.99/32",
            "action",
            "mirred",
            "egress",
            "redirect",
            "dev",
            "lo",
        ],
    );
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "tampered", "{v}");
    assert!(
        bypass_words(&v)
            .iter()
            .any(|w| w.starts_with("tc filter u32 on eth0 ingress") && w.ends_with("actions mirred")),
        "{v}"
    );
    tc(&lab, &["qdisc", "del", "dev", "eth0", "ingress"]);
    tc(&lab, &["qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb"]);
    tc(
        &lab,
        &[
            "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:1", "htb", "rate", "1mbit",
        ],
    );
    tc(
        &lab,
        &[
            "filter",
            "add",
            "dev",
            "eth0",
            "parent",
            "1:1",
            "protocol",
            "ip",
            "u32",
            "match",
            "ip",
            "dst",
            "192.0.2.99/32",
            "action",
            "mirred",
            "egress",
            "mirror",
            "dev",
            "lo",
        ],
    );
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "tampered", "{v}");
    assert!(
        bypass_words(&v)
            .iter()
            .any(|w| w.starts_with("tc filter u32 on eth0 egress qdisc") && w.ends_with("actions mirred")),
        "{v}"
    );
    tc(&lab, &["qdisc", "del", "dev", "eth0", "root"]);
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "isolated", "{v}");
    release(&lab, &sd);
}

/// Sends `frame` three times from device `dev` of namespace `ns` through an AF_PACKET
/// socket.
fn send_raw_on(ns: &str, dev: &'static std::ffi::CStr, frame: Vec<u8>) {
    netns::run_in(ns, move || {
        // SAFETY: plain socket(2); checked below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
        // SAFETY: a valid NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(dev.as_ptr()) };
        assert!(ifindex > 0, "no {dev:?} here");
        // SAFETY: sockaddr_ll is plain old data.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex as i32;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        for _ in 0..3 {
            // SAFETY: frame and addr outlive the call; lengths match.
            unsafe {
                libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
        }
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
        Ok(())
    })
    .unwrap();
}

/// bpf(2) with `attr` (a `union bpf_attr` member laid out by the caller); the new
/// descriptor it returns, or the test fails naming `what`.
fn bpf_fd(cmd: i64, attr: &mut [u8], what: &str) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: attr is laid out for `cmd` by the caller and points at live buffers.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    assert!(fd >= 0, "{what}: {}", std::io::Error::last_os_error());
    // SAFETY: a new descriptor owned by nobody else.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) }
}

/// A one-slot BPF devmap whose slot 0 holds `ifindex` (resolved in the calling thread's
/// network namespace), as trial31's xdp_devmap.c makes it.
fn devmap_holding(ifindex: u32) -> std::os::fd::OwnedFd {
    use std::os::fd::AsRawFd;
    // BPF_MAP_CREATE (0): map_type DEVMAP (14), key_size 4, value_size 4, max_entries 1.
    let mut attr = [0u8; 72];
    for (at, v) in [(0, 14u32), (4, 4), (8, 4), (12, 1)] {
        attr[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    }
    attr[28..34].copy_from_slice(b"t31dev");
    let map = bpf_fd(0, &mut attr, "BPF_MAP_CREATE devmap");
    let key = 0u32;
    // BPF_MAP_UPDATE_ELEM (2): map_fd, key, value, flags.
    let mut attr = [0u8; 32];
    attr[0..4].copy_from_slice(&(map.as_raw_fd() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(&key as *const u32 as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(&ifindex as *const u32 as u64).to_ne_bytes());
    // SAFETY: a valid bpf_attr for BPF_MAP_UPDATE_ELEM pointing at live values.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, 2, attr.as_mut_ptr(), attr.len()) };
    assert_eq!(rc, 0, "devmap update: {}", std::io::Error::last_os_error());
    map
}

/// An XDP program `return bpf_redirect_map(&map, 0, XDP_PASS)` (trial31 HIGH-A).
fn xdp_redirect_map_program(map: &std::os::fd::OwnedFd) -> std::os::fd::OwnedFd {
    use std::os::fd::AsRawFd;
    let fd = (map.as_raw_fd() as u32).to_le_bytes();
    #[rustfmt::skip]
    let insns: [u8; 48] = [
        0x18, 0x11, 0, 0, fd[0], fd[1], fd[2], fd[3], // r1 = map (ld_imm64, pseudo map fd)
        0, 0, 0, 0, 0, 0, 0, 0,
        0xb7, 0x02, 0, 0, 0, 0, 0, 0, // r2 = 0 (key)
        0xb7, 0x03, 0, 0, 2, 0, 0, 0, // r3 = XDP_PASS (when the slot is empty)
        0x85, 0, 0, 0, 51, 0, 0, 0,   // call bpf_redirect_map
        0x95, 0, 0, 0, 0, 0, 0, 0,    // exit
    ];
    let license = c"GPL";
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&6u32.to_ne_bytes()); // BPF_PROG_TYPE_XDP
    attr[4..8].copy_from_slice(&6u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    bpf_fd(5, &mut attr, "BPF_PROG_LOAD xdp redirect_map")
}

/// trial31 HIGH-A: an XDP program in ANOTHER network namespace (here a guest's veth),
/// redirecting through a devmap filled in the endpoint with the ifindex of a device the
/// hooks cover, sends frames out of that device (no netdev egress hook, no qdisc) — and
/// status said `isolated` with all layers, as the per-namespace XDP/tc checks never look
/// elsewhere. Now the devmap (BPF ids are global) is a bypass of netdev-egress: status
/// `tampered` naming it, the layer not claimed, the watcher says so; gone, the layer is
/// claimed again, and the sighting stays until `status --acknowledge`.
///
/// The covered device is a veth of the endpoint with an interface index no other lab
/// has (its peer in the other host), not eth0: a devmap entry gives an ifindex without
/// its namespace, so one holding ifindex 2 would count in every lab running at the same
/// time (each lab's eth0 is ifindex 2).
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn xdp_devmap_from_another_namespace_is_reported() {
    use std::os::fd::AsRawFd;
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    let ep = lab.ns(Host::Endpoint);
    let other = lab.ns(Host::Other);
    let index = (30_000 + std::process::id() % 20_000).to_string();
    ip(&[
        "-n", &ep, "link", "add", "up9", "index", &index, "type", "veth", "peer", "name", "up9p",
    ]);
    ip(&["-n", &ep, "link", "set", "up9p", "netns", &other]);
    ip(&["-n", &ep, "link", "set", "up9", "up"]);
    ip(&["-n", &other, "link", "set", "up9p", "up"]);
    isolate(&lab, &sd);
    let mut guests = Guests(vec![]);
    let g = guests.add(&lab, "xb");
    ip(&["-n", &g, "link", "add", "vb1", "type", "veth", "peer", "name", "vb2"]);
    ip(&["-n", &g, "link", "set", "vb1", "up"]);
    ip(&["-n", &g, "link", "set", "vb2", "up"]);
    let watch = EngineWatch::start(&lab, state.path());
    let since = Instant::now();
    let (map, prog) = netns::run_in(&ep, || {
        // SAFETY: a valid NUL-terminated name.
        let up = unsafe { libc::if_nametoindex(c"up9".as_ptr()) };
        assert!(up > 0);
        let map = devmap_holding(up);
        let prog = xdp_redirect_map_program(&map);
        Ok((map, prog))
    })
    .unwrap();
    let prog_fd = prog.as_raw_fd();
    let link = netns::run_in(&g, move || {
        // SAFETY: a valid NUL-terminated name.
        let dev = unsafe { libc::if_nametoindex(c"vb2".as_ptr()) };
        // BPF_LINK_CREATE (28): prog_fd, target_ifindex, attach_type BPF_XDP (37), flags
        // XDP_FLAGS_SKB_MODE (2).
        let mut attr = [0u8; 64];
        for (at, v) in [(0, prog_fd as u32), (4, dev), (8, 37), (12, 2)] {
            attr[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        }
        Ok(bpf_fd(28, &mut attr, "BPF_LINK_CREATE xdp"))
    })
    .unwrap();
    // The path is real: a frame written into the guest's veth leaves the endpoint's up9
    // (past its egress hook) and reaches the other host's end.
    let cap = Capture::open_on(&lab, Host::Other, c"up9p");
    let frame = udp_frame(
        mac_of(&lab, Host::Endpoint),
        mac_of(&lab, Host::Other),
        7995,
        b"cordon-devmap-xdp",
    );
    send_raw_on(&g, c"vb1", frame);
    assert!(
        cap.sees(b"cordon-devmap-xdp"),
        "the devmap path did not carry the frame"
    );
    let took = watch.undermined_since("BPF devmap id", since, Duration::from_secs(3));
    eprintln!("watcher said it after {took:?}");
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "tampered", "{v}");
    assert_eq!(names(&v["coverage"]["layers"]), ["inet", "netdev-ingress"], "{v}");
    let needle = format!("\"t31dev\" holds ifindex {index} (up9 here");
    assert!(
        bypass_words(&v)
            .iter()
            .any(|w| w.starts_with("BPF devmap id ") && w.contains(&needle)),
        "{v}"
    );
    drop(link);
    drop(prog);
    drop(map);
    // The kernel frees the map after an RCU grace period.
    let deadline = Instant::now() + Duration::from_secs(5);
    let v = loop {
        let v = status_json(&lab, &sd);
        if bypass_words(&v).is_empty() || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        names(&v["coverage"]["layers"]),
        ["inet", "netdev-ingress", "netdev-egress"],
        "{v}"
    );
    assert_eq!(v["state"], "tampered", "the watcher saw it: {v}");
    drop(watch);
    acknowledge_back_to_isolated(&lab, &sd, "BPF devmap id ");
    release(&lab, &sd);
}

/// `cordon status --acknowledge`: names what it forgets (`needle` among it) and the state
/// is `isolated` again.
fn acknowledge_back_to_isolated(lab: &Lab, sd: &str, needle: &str) {
    let (code, out, err) = cordon(lab, &["status", "--acknowledge", "--json", "--state-dir", sd]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains(&format!("acknowledged (table cordon): {needle}")), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["state"], "isolated", "{v}");
    assert!(v.get("around_seen").is_none(), "{v}");
}

/// A tcx program (`return TCX_PASS`) attached to the endpoint's `eth0` ingress, held by
/// the returned link descriptor.
fn tcx_link_on_eth0(lab: &Lab) -> std::os::fd::OwnedFd {
    netns::run_in(&lab.ns(Host::Endpoint), || {
        use std::os::fd::AsRawFd;
        let prog = bpf_program(3, 0); // BPF_PROG_TYPE_SCHED_CLS, TCX_PASS
                                      // SAFETY: a valid NUL-terminated name.
        let idx = unsafe { libc::if_nametoindex(c"eth0".as_ptr()) };
        let mut attr = [0u8; 64];
        attr[0..4].copy_from_slice(&(prog.as_raw_fd() as u32).to_ne_bytes());
        attr[4..8].copy_from_slice(&idx.to_ne_bytes());
        attr[8..12].copy_from_slice(&46u32.to_ne_bytes()); // BPF_TCX_INGRESS
        Ok(bpf_fd(28, &mut attr, "BPF_LINK_CREATE tcx"))
    })
    .unwrap()
}

/// Waits up to `within` for an `undermined` event naming `needle` on `rx`.
fn saw_undermined(rx: &std::sync::mpsc::Receiver<serde_json::Value>, needle: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while let Ok(ev) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if ev["event"] == "undermined" && ev["why"].as_str().unwrap_or_default().contains(needle) {
            return true;
        }
    }
    false
}

/// trial31 MED-E: a tcx program or an AF_XDP socket living less than a second (between
/// two of the watcher's 1 s checks) was never reported: the frames it moved got out, and
/// status said `isolated` before and after. Now the watcher reads the BPF id counters and
/// the AF_XDP socket count every 20 ms and checks at once when they move, so each (held
/// 150 ms) is said; the record keeps it, so status says `tampered` after it is gone
/// (naming it under `around_seen`), until `cordon status --acknowledge`.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn short_lived_tcx_and_af_xdp_are_reported_and_kept() {
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    isolate(&lab, &sd);
    let (stop, rx) = watch_in_endpoint(&lab, state.path());
    let first = rx.recv_timeout(Duration::from_secs(5)).expect("watcher did not start");
    assert_eq!(first["event"], "started", "{first}");
    std::thread::sleep(Duration::from_millis(100));
    let link = tcx_link_on_eth0(&lab);
    std::thread::sleep(Duration::from_millis(150));
    drop(link);
    assert!(
        saw_undermined(&rx, "tcx ingress BPF program", Duration::from_millis(500)),
        "the watcher did not say a tcx program that lived 150 ms"
    );
    std::thread::sleep(Duration::from_millis(100));
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "tampered", "{v}");
    assert_eq!(
        names(&v["coverage"]["layers"]),
        ["inet", "netdev-ingress", "netdev-egress"],
        "gone now, so every layer is in force again: {v}"
    );
    let reason = v["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("the watcher saw a path around Cordon's hooks"), "{v}");
    let seen = &v["around_seen"];
    assert!(
        seen[0]["what"]
            .as_str()
            .unwrap_or_default()
            .starts_with("tcx ingress BPF program id ")
            && seen[0]["seen_at"].is_string(),
        "{v}"
    );
    let xsk = netns::run_in(&lab.ns(Host::Endpoint), || {
        use std::os::fd::FromRawFd;
        // SAFETY: a new socket, owned by the returned OwnedFd.
        let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "AF_XDP socket: {}", std::io::Error::last_os_error());
        Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    drop(xsk);
    assert!(
        saw_undermined(&rx, "AF_XDP socket", Duration::from_millis(500)),
        "the watcher did not say an AF_XDP socket that lived 150 ms"
    );
    std::thread::sleep(Duration::from_millis(100));
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "tampered", "{v}");
    let seen: Vec<String> = v["around_seen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["what"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(seen.iter().any(|w| w.starts_with("AF_XDP socket (inode ")), "{seen:?}");
    drop(stop);
    acknowledge_back_to_isolated(&lab, &sd, "tcx ingress BPF program");
    release(&lab, &sd);
}

/// A child process killed (by its pid) when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// trial31 MED-B: `coverage.taps` left out any process whose `comm` was a DHCP client's
/// name, which a process sets for itself (`prctl(PR_SET_NAME, "dhclient")`): a tap reading
/// every inbound frame was hidden. Now a DHCP client is judged by its executable
/// (`/proc/PID/exe`) and its socket's filter: the look-alike is listed, the real ISC
/// dhclient (ETH_P_ALL socket with a DHCP-only filter) is not.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_tap_calling_itself_dhclient_is_listed_and_the_real_dhclient_is_not() {
    let dhclient = "/usr/sbin/dhclient";
    assert!(
        std::path::Path::new(dhclient).exists(),
        "this test needs ISC dhclient at {dhclient} (apt-get install isc-dhcp-client)"
    );
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    isolate(&lab, &sd);
    let ep = lab.ns(Host::Endpoint);
    let script = "import ctypes, socket, time\nctypes.CDLL(None).prctl(15, b'dhclient', 0, 0, 0)\ns = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))\nprint('ready', flush=True)\ntime.sleep(30)\n";
    let mut fake = Child(
        Command::new("ip")
            .args(["netns", "exec", &ep, "python3", "-c", script])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3"),
    );
    let mut line = String::new();
    BufReader::new(fake.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    let lease = state.path().join("dhclient.leases");
    let pidfile = state.path().join("dhclient.pid");
    let real = Child(
        Command::new("ip")
            .args(["netns", "exec", &ep, dhclient, "-d", "-sf", "/bin/true", "-lf"])
            .arg(&lease)
            .arg("-pf")
            .arg(&pidfile)
            .arg("eth0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dhclient"),
    );
    // dhclient opens its packet socket at start.
    let deadline = Instant::now() + Duration::from_secs(5);
    let real_tap = format!("/proc/{}/fd", real.0.id());
    while Instant::now() < deadline {
        let opened = std::fs::read_dir(&real_tap)
            .map(|d| {
                d.flatten()
                    .filter(|f| std::fs::read_link(f.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:")))
                    .count()
            })
            .unwrap_or(0);
        if opened >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let v = status_json(&lab, &sd);
    let taps = names(&v["coverage"]["taps"]);
    let fake_pid = format!("pid {} (dhclient): ETH_P_ALL packet socket", fake.0.id());
    assert!(
        taps.iter().any(|t| t.starts_with(&fake_pid)),
        "the look-alike is hidden: {taps:?}"
    );
    let real_pid = format!("pid {} (", real.0.id());
    assert!(
        !taps.iter().any(|t| t.contains(&real_pid)),
        "the real dhclient is listed: {taps:?}"
    );
    assert!(
        names(&v["coverage"]["notes"])
            .iter()
            .any(|n| n.contains("trusted when every holder runs a known DHCP client's executable")),
        "{v}"
    );
    drop(real);
    drop(fake);
    release(&lab, &sd);
}

/// trial31 LOW-G: a foreign netdev chain on the device name `*` (nft < 1.1 sends it as a
/// name, and the kernel hooks only a device named exactly `*`: none here) was judged as
/// covering eth0 (Cordon read `*` as a wildcard): a false `tampered`, netdev-egress
/// withdrawn. Now names are matched as the kernel binds them: isolated, all layers.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_foreign_chain_on_the_name_star_hooks_no_device_here() {
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    isolate(&lab, &sd);
    let out = lab
        .exec(
            Host::Endpoint,
            &[
                "nft",
                "add table netdev star; add chain netdev star c { type filter hook egress device \"*\" priority -2147483648; policy accept; }",
            ],
        )
        .unwrap();
    assert!(out.status.success(), "nft: {}", String::from_utf8_lossy(&out.stderr));
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "isolated", "{v}");
    assert!(names(&v["coverage"]["foreign"]).is_empty(), "{v}");
    assert_eq!(
        names(&v["coverage"]["layers"]),
        ["inet", "netdev-ingress", "netdev-egress"],
        "{v}"
    );
    lab.exec(Host::Endpoint, &["nft", "delete table netdev star"]).unwrap();
    release(&lab, &sd);
}

/// trial31 HIGH-F: a down/rename/up of the uplink took it off Cordon's hooks (they stay on
/// a name) until the watcher's full check had rebuilt the table (1.4–64 ms, raw frames
/// leaked meanwhile), and the watcher said "repaired (interfaces not covered: up0)" like
/// a hot-plug, status isolated. Now a thread of the watcher hooks the new name as soon as
/// the kernel reports the rename and the watcher says it as tampering; status says
/// tampered (`coverage.renamed`), the layers still claimed, until `isolate --reapply`
/// records the new name. (How fast: `cordon bench tamper`, rename row.)
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_renamed_uplink_is_hooked_at_once_and_said_as_tampering() {
    let lab = lab();
    let ep = lab.ns(Host::Endpoint);
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    isolate(&lab, &sd);
    let watch = EngineWatch::start(&lab, state.path());
    ip(&["-n", &ep, "link", "set", "eth0", "down"]);
    ip(&["-n", &ep, "link", "set", "eth0", "name", "up0"]);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut said = None;
    while let Ok(ev) = watch
        .events
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
    {
        let cause = ev["cause"].as_str().unwrap_or_default();
        if ev["event"] == "repaired" && cause.contains("eth0 (ifindex ") && cause.contains("is now named up0") {
            said = Some(ev);
            break;
        }
    }
    let said = said.expect("the watcher did not say the uplink was renamed");
    assert_eq!(said["tampering"], true, "{said}");
    assert!(said["rebuilt"].to_string().contains("hooks of up0"), "{said}");
    ip(&["-n", &ep, "link", "set", "up0", "up"]);
    assert!(
        !raw_frame_arrives_on(&lab, "up0", 7791),
        "a raw frame through the renamed uplink reached the other host"
    );
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "tampered", "a renamed uplink is tampering: {v}");
    assert!(
        names(&v["coverage"]["renamed"])
            .iter()
            .any(|r| r.starts_with("eth0 (ifindex ") && r.contains("now named up0")),
        "{v}"
    );
    assert!(v["reason"].as_str().unwrap_or_default().contains("renamed"), "{v}");
    assert_eq!(
        names(&v["coverage"]["layers"]),
        ["inet", "netdev-ingress", "netdev-egress"],
        "hooked under its new name: {v}"
    );
    drop(watch);
    let (code, out, err) = cordon(&lab, &["isolate", "--reapply", "--state-dir", &sd]);
    assert_eq!(code, 0, "reapply failed: {out}\n{err}");
    // The rename the watcher saw stays a sighting across the re-apply (trial37 HIGH-3;
    // deliberately changed: this read `isolated` right after the re-apply), until it is
    // acknowledged.
    let v = status_json(&lab, &sd);
    assert_eq!(v["state"], "tampered", "{v}");
    assert!(
        names(&v["coverage"]["renamed"]).is_empty(),
        "recorded under its new name: {v}"
    );
    acknowledge_back_to_isolated(&lab, &sd, "covered interface eth0 (ifindex 2) renamed up0");
    let v = status_json(&lab, &sd);
    assert!(names(&v["coverage"]["devices"]).contains(&"up0".to_string()), "{v}");
    release(&lab, &sd);
}

/// trial31 MED-C: DHCPv6 requests are now held to 590 bytes like DHCPv4's; a real
/// client's Solicit (ISC dhclient -6, about 100 bytes) still leaves the quarantined
/// endpoint for `ff02::1:2`. Fails loudly without dhclient (CI installs isc-dhcp-client).
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn dhclient_v6_solicit_still_leaves_under_the_dhcpv6_cap() {
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_string_lossy().to_string();
    isolate(&lab, &sd);
    let files = tempfile::tempdir().unwrap();
    let lease = files.path().join("lease6").to_string_lossy().to_string();
    let pid = files.path().join("pid6").to_string_lossy().to_string();
    // dhclient -6 needs a link-local address that is no longer tentative (DAD, a second
    // or two after a fresh lab's eth0 came up).
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let out = lab
            .exec(
                Host::Endpoint,
                &["ip", "-6", "addr", "show", "dev", "eth0", "scope", "link"],
            )
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.contains("fe80::") && !text.contains("tentative") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let cap = Capture::open(&lab, Host::Other);
    let log = files.path().join("dhclient.log");
    let mut client = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns(Host::Endpoint),
            "timeout",
            "10",
            "dhclient",
            "-6",
            "-1",
            "-d",
            "-v",
            "-sf",
            "/bin/true",
            "-lf",
            &lease,
            "-pf",
            &pid,
            "eth0",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("running dhclient (apt-get install isc-dhcp-client)");
    // UDP 546 -> 547: a DHCPv6 client's request; dhclient waits up to 1 s before its
    // first Solicit and sends the next ones 1, 2, 4 s later.
    let seen = (0..12).any(|_| cap.sees(&[0x02, 0x22, 0x02, 0x23]));
    let _ = client.kill();
    let _ = client.wait();
    assert!(
        seen,
        "dhclient -6's Solicit did not leave the quarantined endpoint; dhclient said: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    release(&lab, &sd);
}
