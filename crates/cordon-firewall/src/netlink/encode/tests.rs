//! Golden tests: the encoder's batch must equal, byte for byte, what `nft -f` sent for the
//! same rendered text (captured with `golden/capture.sh`, nftables 1.0.6, x86-64).
//!
//! To add or refresh a case: `CORDON_GOLDEN_OUT=/tmp/g cargo test -p cordon-firewall
//! write_golden_inputs -- --ignored`, then `sh src/netlink/golden/capture.sh /tmp/g`
//! (root; it works in a throwaway network namespace), review, commit.

use std::net::{IpAddr, SocketAddr};

use cordon_policy::render::nft;
use cordon_policy::{Policy, TableName};

use super::*;
use crate::netlink::decode;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The cases pinned by golden captures.
pub fn golden_policies() -> Vec<(&'static str, Policy)> {
    vec![
        (
            "full",
            Policy::builder()
                .server(sa("192.0.2.1:8443"))
                .server(sa("[2001:db8:c0::1]:8443"))
                .resolver(ip("192.0.2.53"))
                .resolver(ip("2001:db8:c0::53"))
                .dhcp(true)
                .dhcp_server(ip("192.0.2.67"))
                .dhcp_server(ip("2001:db8:c0::67"))
                .allow_net("198.51.100.0/24".parse().unwrap())
                .allow_udp(sa("[2001:db8:2::9]:514"))
                .build(),
        ),
        ("empty-no-dhcp", Policy::builder().dhcp(false).build()),
        (
            "intervals",
            Policy::builder()
                .server(sa("203.0.113.7:443"))
                .dhcp(true)
                .allow_net("0.0.0.0/8".parse().unwrap())
                .allow_net("11.0.0.0/8".parse().unwrap())
                .allow_net("12.0.0.0/8".parse().unwrap())
                .allow_net("255.255.255.0/24".parse().unwrap())
                .allow_net("2001:db8::/32".parse().unwrap())
                .allow_net("2001:db8:ffff::1/128".parse().unwrap())
                .allow_net("ff00::/8".parse().unwrap())
                .allow_tcp(sa("[2001:db8::5]:22"))
                .build(),
        ),
        (
            // A Wazuh agent in UDP mode: `--server udp://…:1514` is UDP to the manager.
            "udp-server",
            Policy::builder()
                .server(sa("192.0.2.1:8443"))
                .udp_server(sa("192.0.2.30:1514"))
                .udp_server(sa("[2001:db8:c0::30]:1514"))
                .resolver(ip("192.0.2.53"))
                .dhcp(false)
                .build(),
        ),
        (
            "v6-everything",
            Policy::builder()
                .dhcp(false)
                .allow_net("::/0".parse().unwrap())
                .allow_net("10.0.0.0/8".parse().unwrap())
                .build(),
        ),
    ]
}

fn golden_hex(name: &str) -> Option<&'static str> {
    Some(match name {
        "full" => include_str!("../golden/full.hex"),
        "empty-no-dhcp" => include_str!("../golden/empty-no-dhcp.hex"),
        "intervals" => include_str!("../golden/intervals.hex"),
        "v6-everything" => include_str!("../golden/v6-everything.hex"),
        "udp-server" => include_str!("../golden/udp-server.hex"),
        _ => return None,
    })
}

/// Writes the nft text of every golden case so `capture.sh` can run nft on it
/// (`CORDON_GOLDEN_OUT=DIR`; by default into a fresh temporary directory, checking that
/// every case renders to a replace batch).
#[test]
fn write_golden_inputs() {
    let dir = match std::env::var("CORDON_GOLDEN_OUT") {
        Ok(d) => std::path::PathBuf::from(d),
        Err(_) => std::env::temp_dir().join(format!("cordon-golden-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).unwrap();
    for (name, p) in golden_policies() {
        let path = dir.join(format!("{name}.nft"));
        std::fs::write(&path, nft::render_apply(&TableName::default(), &p)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("add table inet cordon\ndelete table inet cordon\n"),
            "{name}"
        );
        assert!(golden_hex(name).is_some(), "golden case {name} has no capture");
    }
    if std::env::var_os("CORDON_GOLDEN_OUT").is_none() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Splits a batch into messages as (header line, attribute bytes) for readable diffs.
fn describe(bytes: &[u8]) -> Vec<String> {
    decode::messages(bytes)
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "type {:#06x} flags {:#06x} seq {} body {}",
                m.ty,
                m.flags,
                m.seq,
                hex::encode(m.payload)
            )
        })
        .collect()
}

#[test]
#[cfg(target_endian = "little")]
fn batches_equal_nft_captures() {
    for (name, policy) in golden_policies() {
        let want = hex::decode(golden_hex(name).unwrap().trim()).unwrap();
        let got = apply_batch(&TableName::default(), &policy, 0, false).bytes;
        if got != want {
            let (g, w) = (describe(&got), describe(&want));
            for (i, (a, b)) in g.iter().zip(w.iter()).enumerate() {
                assert_eq!(a, b, "{name}: message {i} differs from nft's");
            }
            assert_eq!(g.len(), w.len(), "{name}: message count differs from nft's");
            panic!("{name}: bytes differ");
        }
    }
}

/// Expression-level goldens from `nft --debug=netlink` (nft's own notation), so a failure
/// names the expression, and decoding our bytes reproduces nft's text.
#[test]
#[cfg(target_endian = "little")]
fn rules_decode_to_nft_debug_notation() {
    let (_, policy) = golden_policies().remove(0);
    let batch = apply_batch(&TableName::default(), &policy, 0, false);
    let rules: Vec<String> = decode::messages(&batch.bytes)
        .unwrap()
        .iter()
        .filter(|m| m.ty & 0xff == NFT_MSG_NEWRULE)
        .map(|m| decode::rule(m).unwrap().exprs.join("\n"))
        .collect();
    // From `nft --debug=netlink -f` of the same text (nft prints u32 data as host-order
    // words; ours is raw bytes, so e.g. nft's 0x00000001 for iif 1 is our 0x01000000).
    assert_eq!(
        rules[0],
        "[ meta load iif => reg 1 ]\n[ cmp eq reg 1 0x01000000 ]\n[ immediate reg 0 accept ]"
    );
    assert_eq!(
        rules[1],
        "[ meta load nfproto => reg 1 ]\n[ cmp eq reg 1 0x02 ]\n[ meta load l4proto => reg 1 ]\n[ cmp eq reg 1 0x06 ]\n\
         [ payload load 4b @ network header + 12 => reg 1 ]\n[ payload load 2b @ transport header + 0 => reg 9 ]\n\
         [ lookup reg 1 set tcp4 ]\n[ payload load 1b @ transport header + 13 => reg 1 ]\n\
         [ bitwise reg 1 = ( reg 1 & 0x17 ) ^ 0x00 ]\n[ cmp neq reg 1 0x02 ]\n[ immediate reg 0 accept ]"
    );
    // ip6 daddr . udp dport @udp6 (output chain)
    assert!(rules.contains(
        &"[ meta load nfproto => reg 1 ]\n[ cmp eq reg 1 0x0a ]\n[ meta load l4proto => reg 1 ]\n[ cmp eq reg 1 0x11 ]\n\
          [ payload load 16b @ network header + 24 => reg 1 ]\n[ payload load 2b @ transport header + 2 => reg 2 ]\n\
          [ lookup reg 1 set udp6 ]\n[ immediate reg 0 accept ]"
            .to_string()
    ));
    // meta nfproto ipv4 udp sport 67 udp dport 68 ip saddr 192.0.2.67 accept (input chain)
    assert!(rules.contains(
        &"[ meta load nfproto => reg 1 ]\n[ cmp eq reg 1 0x02 ]\n[ meta load l4proto => reg 1 ]\n[ cmp eq reg 1 0x11 ]\n\
          [ payload load 4b @ transport header + 0 => reg 1 ]\n[ cmp eq reg 1 0x00430044 ]\n\
          [ payload load 4b @ network header + 12 => reg 1 ]\n[ cmp eq reg 1 0xc0000243 ]\n[ immediate reg 0 accept ]"
            .to_string()
    ));
    // icmp type { … } ct state related ct protocol tcp ct original ip daddr . ct original
    // proto-dst @tcp4 accept: the PMTU rule (nft: "ct load dst_ip => reg 1 , dir original").
    assert!(
        rules.iter().any(|r| r.contains(
            "[ ct load key20 dir 00 => reg 1 ]\n[ ct load key12 dir 00 => reg 9 ]\n[ lookup reg 1 set tcp4 ]"
        )),
        "{rules:#?}"
    );
    // Input: loopback, 6 peer rules + one TCP rule per network set, 3 DHCP (v4 server,
    // v6 link-local and server), 6 ICMP error rules, ICMPv6 ND. Output: loopback, 6 peer
    // rules, 4 DHCP (broadcast, ff02::1:2, the two servers), ICMPv6 ND.
    assert_eq!(rules.len(), (1 + 6 + 2 + 3 + 6 + 1) + (1 + 6 + 4 + 1));
}

#[test]
fn interval_elements_follow_nft() {
    let nets: Vec<IpNet> = ["10.0.0.0/8", "11.0.0.0/8", "192.0.2.7/32"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let e = interval_elements(&nets, 4);
    let keys: Vec<(String, bool)> = e.iter().map(|e| (hex::encode(&e.key), e.interval_end)).collect();
    assert_eq!(
        keys,
        vec![
            ("00000000".into(), true),
            ("0a000000".into(), false),
            ("0b000000".into(), true),
            ("0b000000".into(), false),
            ("0c000000".into(), true),
            ("c0000207".into(), false),
            ("c0000208".into(), true),
        ]
    );
    let top = interval_elements(&["255.0.0.0/8".parse().unwrap()], 4);
    assert_eq!(top.last().map(|e| (e.open_end, e.interval_end)), Some((true, false)));
    assert!(interval_elements(&[], 16).is_empty());
}

/// Issue #18: one ACK, on the last message inside BEGIN … END (it used to be every
/// message: ≈ 170 replies for the kernel to build and for isolate to read); errors are
/// reported for every message without it.
#[test]
fn an_ack_is_requested_on_the_last_message_only() {
    let (_, policy) = golden_policies().remove(0);
    let b = apply_batch(&TableName::default(), &policy, 100, true);
    let msgs = decode::messages(&b.bytes).unwrap();
    assert_eq!(msgs.len() as u32, b.messages + 2);
    assert_eq!(b.first_seq, 101);
    assert!(b.messages > 10, "{}", b.messages);
    let last = msgs.len() - 2;
    assert_eq!(b.ack_seq, Some(msgs[last].seq));
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m.flags & NLM_F_ACK != 0, i == last, "message {i}");
        assert_eq!(m.seq, 100 + i as u32);
    }
    // Without `ack` (the goldens, as nft sends them) nothing asks for one.
    let quiet = apply_batch(&TableName::default(), &policy, 100, false);
    assert_eq!(quiet.ack_seq, None);
    assert!(decode::messages(&quiet.bytes)
        .unwrap()
        .iter()
        .all(|m| m.flags & NLM_F_ACK == 0));
    // The bytes differ only in that one flag.
    assert_eq!(quiet.bytes.len(), b.bytes.len());
}

#[test]
fn huge_element_lists_are_split() {
    let mut p = Policy::builder();
    for i in 0..5000u32 {
        p = p.allow_tcp(SocketAddr::new(
            IpAddr::V6(std::net::Ipv6Addr::from(u128::from(i) << 16)),
            443,
        ));
    }
    let b = apply_batch(&TableName::default(), &p.build(), 0, true);
    let msgs = decode::messages(&b.bytes).unwrap();
    let elem_msgs: Vec<_> = msgs.iter().filter(|m| m.ty & 0xff == NFT_MSG_NEWSETELEM).collect();
    assert!(elem_msgs.len() > 3);
    let total: usize = elem_msgs.iter().map(|m| decode::elements(m).unwrap().1.len()).sum();
    // Plus the anonymous type sets: ICMPv6 ND (4, both chains) and the ICMP error
    // types of the three input rules per family (3 for v4, 4 for v6).
    assert_eq!(total, 5000 + 4 + 4 + 3 * 3 + 3 * 4);
}
