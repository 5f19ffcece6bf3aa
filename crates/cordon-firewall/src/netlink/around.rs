//! What goes around the device-layer hooks (trial27): tc filters, XDP programs and AF_XDP
//! sockets, which move frames past Cordon's nftables chains, and packet taps, which read
//! every inbound frame before the netdev ingress hook.
//!
//! Kernel facts this rests on (`net/core/dev.c`, Linux 6.x):
//! * receive: generic XDP → `ptype_all` taps (ETH_P_ALL packet sockets) → tc ingress
//!   (`sch_handle_ingress`) → nf ingress → the protocol handlers. A tc ingress filter that
//!   redirects (`mirred`, `bpf_redirect`) takes the frame away before the nf ingress hook;
//!   one that rewrites it (`pedit`, `skbmod`, a BPF program) changes what the hooks judge.
//! * transmit: nf egress → tc egress (`sch_handle_egress`) → the root qdisc → the driver.
//!   A frame that a tc filter of ANY device (also `lo`) redirects onto the uplink carries
//!   `nf_skip_egress` and never meets the uplink's egress chain; a filter on the uplink's
//!   own tc egress or root qdisc runs after Cordon's chain and can rewrite what it
//!   accepted.
//! * XDP runs before everything on receive, and what it sends (`XDP_TX`, a redirect to
//!   another device) never passes the egress hook; AF_XDP sockets in copy mode transmit
//!   through `__dev_direct_xmit`, which has no egress hook either.
//! * tcx (Linux ≥ 6.6) runs BPF programs where tc's clsact does, attached by bpf links
//!   with no qdisc at all (`BPF_PROG_QUERY` finds them), as does netkit for its devices.
//!
//! So Cordon claims no layer such a path skips (see [`crate::Bypass`]): any tc filter on
//! any qdisc or class of any device in the namespace counts, unless it can only classify,
//! police or drop — a classifier other than `bpf` whose actions are all in
//! [`HARMLESS_ACTIONS`] (traffic shaping keeps its coverage). Cordon deletes nothing
//! foreign (a release would have to put it back exactly, and a filter may be a
//! legitimate CNI's): it reports.
//!
//! Hand-written on the module's netlink socket and decoder, as [`super::links`]: four
//! message types of rtnetlink's tc family, read-only; the Rust tc crates are either
//! async-oriented (`netlink-packet-route` + `rtnetlink`) or bindings to libnl.

use std::collections::BTreeSet;

use super::bpf;
use super::decode::{self, attrs, DecodeError};
use super::links::Link;
use super::socket::{NlError, Socket};
use crate::{Bypass, Layer};

// linux/rtnetlink.h, linux/pkt_sched.h, linux/pkt_cls.h (`libc` lacks most of them).
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_ACT_KIND: u16 = 1;
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_ID: u16 = 11;
/// `TC_H_INGRESS` / `TC_H_CLSACT`: the ingress and clsact qdiscs' parent.
const TC_H_INGRESS: u32 = 0xFFFF_FFF1;
/// clsact's ingress and egress blocks.
const TC_H_CLSACT_INGRESS: u32 = 0xFFFF_FFF2;
const TC_H_CLSACT_EGRESS: u32 = 0xFFFF_FFF3;

/// tc actions that can only let a frame through, drop it, police its rate or set
/// metadata (priority, mark, queue, checksum): they neither move nor rewrite a frame's
/// addresses, so a filter with only these keeps the hooks' claim.
pub const HARMLESS_ACTIONS: [&str; 6] = ["gact", "police", "csum", "skbedit", "connmark", "ctinfo"];

/// Qdisc kinds whose classes take no filters (classless, or whose classes are queue
/// slots): no class dump is needed for a device that has only these.
const NO_CLASS_FILTERS: [&str; 28] = [
    "noqueue",
    "pfifo_fast",
    "pfifo",
    "bfifo",
    "pfifo_head_drop",
    "fq_codel",
    "fq",
    "fq_pie",
    "codel",
    "pie",
    "sfq",
    "tbf",
    "netem",
    "red",
    "choke",
    "cake",
    "clsact",
    "ingress",
    "mq",
    "mqprio",
    "sfb",
    "gred",
    "hhf",
    "plug",
    "skbprio",
    "taprio",
    "cbs",
    "etf",
];

/// Qdisc kinds that take no filters at all (no `tcf_block`): no filter dump below them
/// (a veth's or a container's default `noqueue` would cost one dump each).
const NO_FILTERS: [&str; 6] = ["noqueue", "pfifo_fast", "pfifo", "bfifo", "pfifo_head_drop", "mq"];

/// The layers a tc filter or an XDP program goes around: the two netdev hooks, and the
/// inet hooks too — it can carry the host's own IP traffic past them through `lo`, which
/// the inet chains accept (trial27 HIGH-1b: route to `lo`, tc redirect onto the uplink).
pub const SKIPS_ALL: [Layer; 3] = [Layer::Inet, Layer::NetdevIngress, Layer::NetdevEgress];

/// The `tcmsg` header of a tc message and its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcObject {
    /// `tcm_ifindex`.
    pub ifindex: u32,
    /// `tcm_handle` (a filter's: classifier specific, e.g. u32's `800::800`).
    pub handle: u32,
    /// `tcm_parent`.
    pub parent: u32,
    /// A filter's preference (`tcm_info` high 16 bits); 0 for qdiscs and classes.
    pub prio: u16,
    /// `TCA_KIND`: the qdisc, class or classifier kind (`clsact`, `htb`, `u32`, `bpf`).
    pub kind: String,
}

/// A tc filter as far as Cordon judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Where it sits and what classifier it is.
    pub object: TcObject,
    /// The kinds of its actions (`mirred`, `pedit`, `gact`, …), in order.
    pub actions: Vec<String>,
    /// For a `bpf` classifier: the program's name and id (`TCA_BPF_NAME`, `TCA_BPF_ID`).
    pub bpf: Option<(String, u32)>,
    /// No `TCA_OPTIONS`: the entry a dump gives for a classifier instance (one per
    /// preference and protocol, `tc filter show`'s line without a handle) before its
    /// filters; it matches nothing itself.
    pub head: bool,
}

/// Reads the `tcmsg` header and `TCA_KIND` of a qdisc, class or filter message, and
/// returns the `TCA_OPTIONS` nest with it (empty when absent).
///
/// # Errors
/// `DecodeError` when the payload is shorter than a `tcmsg` or an attribute is
/// malformed.
pub fn parse_object(payload: &[u8]) -> Result<(TcObject, &[u8]), DecodeError> {
    let short = || DecodeError("short tcmsg".into());
    let h = payload.get(..20).ok_or_else(short)?;
    let u32_at = |at: usize| u32::from_ne_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let mut obj = TcObject {
        ifindex: u32_at(4),
        handle: u32_at(8),
        parent: u32_at(12),
        prio: (u32_at(16) >> 16) as u16,
        kind: String::new(),
    };
    let mut options: &[u8] = &[];
    for (t, d) in attrs(payload.get(20..).unwrap_or_default())? {
        match t {
            TCA_KIND => obj.kind = cstr(d),
            TCA_OPTIONS => options = d,
            _ => {}
        }
    }
    Ok((obj, options))
}

/// The attribute inside a classifier's `TCA_OPTIONS` that holds its actions
/// (`TCA_U32_ACT`, `TCA_BPF_ACT`, `TCA_FLOWER_ACT`, …); `None` for a classifier kind
/// Cordon does not know.
fn actions_attr(kind: &str) -> Option<u16> {
    Some(match kind {
        "u32" => 7,
        "bpf" => 1,
        "flower" => 3,
        "matchall" => 2,
        "basic" => 3,
        "fw" => 4,
        "route" => 6,
        "cgroup" => 1,
        "flow" => 9,
        _ => return None,
    })
}

/// Parses one RTM_NEWTFILTER payload.
///
/// # Errors
/// As [`parse_object`].
pub fn parse_filter(payload: &[u8]) -> Result<Filter, DecodeError> {
    let (object, options) = parse_object(payload)?;
    let mut f = Filter {
        object,
        actions: Vec::new(),
        bpf: None,
        head: options.is_empty(),
    };
    let want = actions_attr(&f.object.kind);
    let mut name = String::new();
    let mut id = 0;
    for (t, d) in attrs(options)? {
        if Some(t) == want {
            // One nest per action, numbered by its order; each names its kind.
            for (_, act) in attrs(d)? {
                for (at, ad) in attrs(act)? {
                    if at == TCA_ACT_KIND {
                        f.actions.push(cstr(ad));
                    }
                }
            }
        } else if f.object.kind == "bpf" && t == TCA_BPF_NAME {
            name = cstr(d);
        } else if f.object.kind == "bpf" && t == TCA_BPF_ID {
            if let Some(b) = d.get(..4) {
                id = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
    }
    if f.object.kind == "bpf" && !f.head {
        f.bpf = Some((name, id));
    }
    Ok(f)
}

/// Why filter `f` goes around the hooks, or `None` when it can only classify, police or
/// drop. Classifier-only entries (u32 hash tables, `classid` filters without actions)
/// are harmless; a BPF classifier never is (its program can redirect, clone or rewrite
/// whatever its return value says); an unknown classifier kind is not trusted.
pub fn filter_risk(f: &Filter) -> Option<String> {
    if f.head {
        return None;
    }
    if let Some((name, id)) = &f.bpf {
        let name = if name.is_empty() { "unnamed" } else { name };
        return Some(format!("BPF program {name} (id {id})"));
    }
    if actions_attr(&f.object.kind).is_none() {
        return Some(format!("classifier {} unknown to Cordon", f.object.kind));
    }
    let risky: Vec<&str> = f
        .actions
        .iter()
        .map(String::as_str)
        .filter(|a| !HARMLESS_ACTIONS.contains(a))
        .collect();
    (!risky.is_empty()).then(|| format!("actions {}", risky.join(", ")))
}

/// Where a filter dumped below `parent` (the parent the dump asked for) sits, in words:
/// `ingress` (clsact's or the ingress qdisc's block), `egress` (clsact's), or `egress
/// qdisc` (a qdisc's or class's block: the dumps of a classful qdisc and of its classes
/// may list the same filter, so no class is named and the two read the same).
pub fn hook_words(parent: u32) -> &'static str {
    match parent {
        TC_H_INGRESS | TC_H_CLSACT_INGRESS => "ingress",
        TC_H_CLSACT_EGRESS => "egress",
        _ => "egress qdisc",
    }
}

/// The words for a risky filter on device `dev`, dumped below `parent`: stable while the
/// filter exists (they are compared with the record of what was there at apply time).
pub fn filter_words(f: &Filter, dev: &str, parent: u32, why: &str) -> String {
    format!(
        "tc filter {} on {dev} {} (pref {}, handle {:#x}): {why}",
        f.object.kind,
        hook_words(parent),
        f.object.prio,
        f.object.handle
    )
}

/// The filter parents of qdisc `q` to dump: clsact's two blocks, ingress's one, or the
/// qdisc itself (by handle; 0 addresses the root qdisc).
pub fn filter_parents(q: &TcObject) -> Vec<u32> {
    match q.kind.as_str() {
        "clsact" => vec![TC_H_CLSACT_INGRESS, TC_H_CLSACT_EGRESS],
        "ingress" => vec![TC_H_INGRESS],
        _ => vec![q.handle],
    }
}

fn cstr(d: &[u8]) -> String {
    let end = d.iter().position(|b| *b == 0).unwrap_or(d.len());
    String::from_utf8_lossy(&d[..end]).into_owned()
}

/// A dump request of tc message type `ty` for device `ifindex` (0: all) below `parent`.
fn tc_dump(s: &mut Socket, ty: u16, ifindex: u32, parent: u32) -> Result<Vec<Vec<u8>>, NlError> {
    // struct tcmsg: family, pad, pad, ifindex, handle, parent, info.
    let mut body = vec![0u8; 4];
    body.extend_from_slice(&ifindex.to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    body.extend_from_slice(&parent.to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    let reply = s.raw_request(ty, libc::NLM_F_DUMP as u16, &body)?;
    Ok(decode::data_msgs(&reply)?
        .into_iter()
        .map(|m| m.payload.to_vec())
        .collect())
}

/// Everything in this namespace that goes around the hooks: tc filters, tcx and netkit
/// programs, XDP programs, AF_XDP sockets. What cannot be listed counts as a bypass of
/// the layers it would skip (never claim what cannot be seen).
pub fn all(links: &[Link]) -> Vec<Bypass> {
    let mut out = tc_bypasses(links).unwrap_or_else(|e| {
        vec![Bypass {
            what: format!("tc filters cannot be listed ({e:?})"),
            skips: SKIPS_ALL.to_vec(),
            holder: None,
        }]
    });
    out.extend(mprog_bypasses(links));
    out.extend(xdp_bypasses(links));
    out.extend(af_xdp_bypasses());
    out.extend(devmap_bypasses(links));
    out.extend(program_bypasses());
    out
}

/// The BPF programs anywhere on the machine that can move frames around this namespace's
/// hooks at any moment without creating anything a watcher could notice (trial37 HIGH-1,
/// HIGH-2), for as long as they exist:
/// * an **XDP program that uses a devmap** (`DEVMAP`, `DEVMAP_HASH`) whose program or map
///   a process of this network namespace holds, or nobody holds (pinned, or held only by
///   an attachment): an entry is filled in the namespace of whoever updates it, and a map
///   update makes no new BPF id, so an entry flipped to a covered device for 100 ms
///   between two checks sent frames out of it unseen (HIGH-1). `netdev-egress` is not
///   claimed. The other redirect maps are left out on purpose: a `CPUMAP` entry hands the
///   frame to the receive path of the device it came in on (which the hooks see) and an
///   `XSKMAP` entry to an AF_XDP socket of that device's namespace (counted there);
/// * a **tc, tcx or XDP program held by a process of this network namespace** (its main
///   thread's `/proc/PID/ns/net`; a descriptor of the program or of a link to it): it
///   can be attached to any device here, used and detached within microseconds, between
///   two checks (HIGH-2: a tcx link living µs on a pre-staged tap). No layer is claimed.
///
/// Processes of other namespaces are not counted (every container's loader would make
/// every quarantine read tampered); a root process there can still enter this namespace
/// for the moment of the attach (README). What cannot be listed counts as a bypass.
pub fn program_bypasses() -> Vec<Bypass> {
    let types = [bpf::PROG_TYPE_SCHED_CLS, bpf::PROG_TYPE_SCHED_ACT, bpf::PROG_TYPE_XDP];
    let progs = match bpf::programs(&types) {
        Ok(p) => p,
        Err(e) => {
            return listing_failed("BPF programs on this machine cannot be listed", &e, SKIPS_ALL.to_vec())
                .into_iter()
                .collect()
        }
    };
    if progs.is_empty() {
        return Vec::new();
    }
    let here = std::fs::read_link("/proc/thread-self/ns/net")
        .map(|l| l.to_string_lossy().into_owned())
        .unwrap_or_default();
    let held = bpf_holders();
    let holders_of =
        |kind: BpfKind, id: u32| -> Vec<&BpfHolder> { held.iter().filter(|h| h.kind == kind && h.id == id).collect() };
    let named = |name: &str| {
        if name.is_empty() {
            String::new()
        } else {
            format!(" {name:?}")
        }
    };
    let say = |hs: &[&BpfHolder]| {
        let mut v: Vec<String> = hs.iter().map(|h| format!("pid {} ({})", h.pid, h.comm)).collect();
        v.sort();
        v.dedup();
        (!v.is_empty()).then(|| v.join(", "))
    };
    let mut out = Vec::new();
    for p in progs {
        let prog_holders = holders_of(BpfKind::Prog, p.id);
        let here_prog: Vec<&BpfHolder> = prog_holders.iter().copied().filter(|h| h.netns == here).collect();
        let kind = match p.prog_type {
            bpf::PROG_TYPE_XDP => "XDP",
            bpf::PROG_TYPE_SCHED_ACT => "tc action",
            _ => "tc/tcx",
        };
        if p.prog_type == bpf::PROG_TYPE_XDP {
            for m in &p.map_ids {
                let Ok(Some(info)) = bpf::map_by_id(*m) else {
                    continue;
                };
                if info.map_type != bpf::MAP_TYPE_DEVMAP && info.map_type != bpf::MAP_TYPE_DEVMAP_HASH {
                    continue;
                }
                let map_holders = holders_of(BpfKind::Map, info.id);
                let mut here_all = here_prog.clone();
                here_all.extend(map_holders.iter().copied().filter(|h| h.netns == here));
                let nobody = prog_holders.is_empty() && map_holders.is_empty();
                if here_all.is_empty() && !nobody {
                    continue;
                }
                let whose = if nobody {
                    "held by no process (pinned, or by an attachment only): whoever opens it can fill it"
                } else {
                    "held by a process of this network namespace, which can fill it with this namespace's devices"
                };
                out.push(Bypass {
                    what: format!(
                        "XDP program id {}{} uses BPF devmap id {}{}, {whose}; a map update makes no new BPF id, so an entry set between two checks sends frames out of any device it names past the egress hook unseen",
                        p.id,
                        named(&p.name),
                        info.id,
                        named(&info.name)
                    ),
                    skips: vec![Layer::NetdevEgress],
                    holder: say(&here_all),
                });
            }
        }
        if !here_prog.is_empty() {
            out.push(Bypass {
                what: format!(
                    "{kind} BPF program id {}{} held by a process of this network namespace: it can be attached to any device here, used and detached within microseconds, between two checks",
                    p.id,
                    named(&p.name)
                ),
                skips: SKIPS_ALL.to_vec(),
                holder: say(&here_prog),
            });
        }
    }
    out
}

/// What a BPF descriptor held by a process refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BpfKind {
    /// A program (its own descriptor, or a link's: the link holds the program).
    Prog,
    /// A map.
    Map,
}

/// A process holding a BPF descriptor.
#[derive(Debug, Clone)]
struct BpfHolder {
    kind: BpfKind,
    id: u32,
    pid: u32,
    comm: String,
    /// The `/proc/PID/ns/net` link text of its main thread.
    netns: String,
}

/// Every BPF program, link and map descriptor held by a process, from `/proc/*/fd`
/// (`anon_inode:bpf-prog`, `bpf_link`, `bpf-map`) and the `prog_id:`/`map_id:` line of
/// its `fdinfo` (this process's too: the descriptors [`bpf::programs`] opened are closed
/// by then, and a process embedding the watcher may hold others).
fn bpf_holders() -> Vec<BpfHolder> {
    let mut out = Vec::new();
    for (pid, base) in processes() {
        let Ok(fds) = std::fs::read_dir(base.join("fd")) else {
            continue;
        };
        let mut mine = Vec::new();
        for fd in fds.flatten() {
            let Ok(t) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let (kind, key) = match t.to_string_lossy().as_ref() {
                "anon_inode:bpf-prog" | "anon_inode:bpf_link" => (BpfKind::Prog, "prog_id:"),
                "anon_inode:bpf-map" => (BpfKind::Map, "map_id:"),
                _ => continue,
            };
            let Ok(info) = std::fs::read_to_string(base.join("fdinfo").join(fd.file_name())) else {
                continue;
            };
            if let Some(id) = info
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse::<u32>().ok())
            {
                mine.push((kind, id));
            }
        }
        if mine.is_empty() {
            continue;
        }
        let comm = std::fs::read_to_string(base.join("comm")).unwrap_or_default();
        let netns = std::fs::read_link(base.join("ns/net"))
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (kind, id) in mine {
            out.push(BpfHolder {
                kind,
                id,
                pid,
                comm: comm.trim().to_string(),
                netns: netns.clone(),
            });
        }
    }
    out
}

/// The devmaps anywhere on the machine that hold the interface index of a device of this
/// namespace the hooks cover (trial31 HIGH-A): an XDP program in ANY network namespace
/// that uses such a map sends frames out of that device past the netdev egress hook (see
/// [`super::bpf`]). A devmap entry gives an ifindex but not its namespace, so an entry
/// holding the index of `eth0` here may be another namespace's device of the same index:
/// counted all the same (never claim what cannot be told apart), and the words say so.
/// A devmap too large to read in full, or maps that cannot be listed, count too.
pub fn devmap_bypasses(links: &[Link]) -> Vec<Bypass> {
    let skips = vec![Layer::NetdevEgress];
    let maps = match bpf::devmaps() {
        Ok(m) => m,
        Err(e) => {
            return listing_failed("BPF devmaps on this machine cannot be read", &e, skips)
                .into_iter()
                .collect()
        }
    };
    // The /proc walk only when a map is flagged, once for all of them.
    let held = std::cell::OnceCell::new();
    devmap_words(maps, links, |id| {
        holder_names(held.get_or_init(bpf_holders), BpfKind::Map, id)
    })
}

/// How a failed BPF listing (`what`, error `e`) counts: any failure is a bypass of
/// `skips` (what cannot be seen is not claimed) — but `EPERM`, bpf(2) refused outright
/// (trial39 MED-1: a container whose seccomp policy refuses it, an unprivileged LXC), is
/// none: no process of such a sandbox can load, attach or fill what these listings look
/// for either, so every quarantine there read NOT ISOLATED with nothing to delete. That
/// case is a coverage note instead ([`BPF_REFUSED_NOTE`]). Pure.
pub fn listing_failed(what: &str, e: &std::io::Error, skips: Vec<Layer>) -> Option<Bypass> {
    (e.raw_os_error() != Some(libc::EPERM)).then(|| Bypass {
        what: format!("{what} ({e})"),
        skips,
        holder: None,
    })
}

/// The coverage note when bpf(2) is refused here ([`bpf_refused`]).
pub const BPF_REFUSED_NOTE: &str = "BPF programs, links and maps cannot be listed here (bpf(2): Operation not permitted — a container whose seccomp policy refuses it, or an unprivileged one): no process of this sandbox can load or attach them either, but a tcx or XDP program or a devmap made by a process allowed bpf(2) (the host's root, outside this container) is not seen";

/// Whether bpf(2) is refused to this process (`EPERM` listing program ids): see
/// [`listing_failed`].
pub fn bpf_refused() -> bool {
    matches!(bpf::next_id(bpf::Object::Prog, 0), Err(e) if e.raw_os_error() == Some(libc::EPERM))
}

/// The bypasses of [`devmap_bypasses`] for the devmaps `maps` read, `holders` naming the
/// processes that hold a map (by id). Pure but for `holders`.
pub fn devmap_words(maps: Vec<bpf::Devmap>, links: &[Link], holders: impl Fn(u32) -> Vec<String>) -> Vec<Bypass> {
    let skips = vec![Layer::NetdevEgress];
    let mut out = Vec::new();
    for m in maps {
        let name = if m.info.name.is_empty() {
            String::new()
        } else {
            format!(" {:?}", m.info.name)
        };
        let mut what: Vec<String> = m
            .ifindexes
            .iter()
            .filter_map(|i| links.iter().find(|l| l.index == *i && !l.is_loopback() && !l.name.is_empty()))
            .map(|l| {
                format!(
                    "BPF devmap id {}{name} holds ifindex {} ({} here, or another network namespace's device of that index: the map does not say which), so an XDP program in any namespace can send through it past the egress hook",
                    m.info.id, l.index, l.name
                )
            })
            .collect();
        if let Some(why) = &m.unreadable {
            what.push(format!(
                "BPF devmap id {}{name} cannot be read ({why}; a map created write-only refuses every lookup): it may hold a device of this namespace",
                m.info.id
            ));
        }
        if m.partial {
            what.push(format!(
                "BPF devmap id {}{name} has {} entries, more than Cordon reads ({}): the rest may hold a device of this namespace",
                m.info.id,
                m.info.max_entries,
                bpf::DEVMAP_READ_LIMIT
            ));
        }
        if what.is_empty() {
            continue;
        }
        let by = holders(m.info.id);
        let holder = (!by.is_empty()).then(|| by.join(", "));
        out.extend(what.into_iter().map(|what| Bypass {
            what,
            skips: skips.clone(),
            holder: holder.clone(),
        }));
    }
    out
}

/// The processes holding a descriptor of BPF map `id` among `held` ([`bpf_holders`]),
/// each once as `pid N (comm)`, in `/proc` order (a process's descriptors are adjacent
/// in `held`). A map held only by a program (its descriptors closed) has none. Pure.
fn holder_names(held: &[BpfHolder], kind: BpfKind, id: u32) -> Vec<String> {
    let mut v: Vec<String> = held
        .iter()
        .filter(|h| h.kind == kind && h.id == id)
        .map(|h| format!("pid {} ({})", h.pid, h.comm))
        .collect();
    v.dedup();
    v
}

/// Every process under `/proc`: its id and its `/proc/PID` directory.
fn processes() -> impl Iterator<Item = (u32, std::path::PathBuf)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flat_map(|procs| procs.flatten())
        .filter_map(|p| {
            let pid = p.file_name().to_str()?.parse::<u32>().ok()?;
            Some((pid, p.path()))
        })
}

/// Every tc filter of every device in this namespace that goes around the hooks: a dump
/// of all qdiscs, of the classes of devices with a classful qdisc, and of the filters
/// below each qdisc and class.
///
/// # Errors
/// `NlError` when a dump fails or does not parse.
pub fn tc_bypasses(links: &[Link]) -> Result<Vec<Bypass>, NlError> {
    let mut s = Socket::open_protocol(libc::NETLINK_ROUTE)?;
    let name_of = |i: u32| {
        links
            .iter()
            .find(|l| l.index == i)
            .map(|l| l.name.clone())
            .unwrap_or_else(|| format!("ifindex {i}"))
    };
    let mut parents: BTreeSet<(u32, u32)> = BTreeSet::new();
    let mut classful: BTreeSet<u32> = BTreeSet::new();
    for p in tc_dump(&mut s, libc::RTM_GETQDISC, 0, 0)? {
        let (q, _) = parse_object(&p)?;
        if NO_FILTERS.contains(&q.kind.as_str()) {
            continue;
        }
        for parent in filter_parents(&q) {
            parents.insert((q.ifindex, parent));
        }
        if !NO_CLASS_FILTERS.contains(&q.kind.as_str()) {
            classful.insert(q.ifindex);
        }
    }
    for dev in classful {
        for p in tc_dump(&mut s, libc::RTM_GETTCLASS, dev, 0)? {
            let (c, _) = parse_object(&p)?;
            parents.insert((dev, c.handle));
        }
    }
    let mut out = Vec::new();
    for (dev, parent) in parents {
        for p in tc_dump(&mut s, libc::RTM_GETTFILTER, dev, parent)? {
            let f = parse_filter(&p)?;
            if let Some(why) = filter_risk(&f) {
                let what = filter_words(&f, &name_of(dev), parent, &why);
                if !out.iter().any(|b: &Bypass| b.what == what) {
                    out.push(Bypass {
                        what,
                        skips: SKIPS_ALL.to_vec(),
                        holder: None,
                    });
                }
            }
        }
    }
    Ok(out)
}

// bpf(2): command and attach types (linux/bpf.h, Linux ≥ 6.6; `libc` has none of them).
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_TCX_INGRESS: u32 = 46;
const BPF_TCX_EGRESS: u32 = 47;
const BPF_NETKIT_PRIMARY: u32 = 54;
const BPF_NETKIT_PEER: u32 = 55;

/// The ids of the BPF programs attached to device `ifindex` at `attach_type` through
/// bpf_mprog (`BPF_PROG_QUERY`): tcx ingress/egress (Linux ≥ 6.6) and netkit's. Such
/// programs run where tc's do but are attached with bpf links, without any qdisc, so the
/// tc dumps never show them. Empty where the kernel has no such hook (`EINVAL`) or the
/// device is gone.
fn mprog_ids(ifindex: u32, attach_type: u32) -> std::io::Result<Vec<u32>> {
    let mut ids = [0u32; 64];
    // union bpf_attr, query: target_ifindex, attach_type, query_flags, attach_flags,
    // prog_ids (u64 pointer), prog_cnt; the rest zero.
    let mut attr = [0u8; 72];
    attr[0..4].copy_from_slice(&ifindex.to_ne_bytes());
    attr[4..8].copy_from_slice(&attach_type.to_ne_bytes());
    attr[16..24].copy_from_slice(&(ids.as_mut_ptr() as u64).to_ne_bytes());
    attr[24..28].copy_from_slice(&(ids.len() as u32).to_ne_bytes());
    // SAFETY: attr is a valid bpf_attr for BPF_PROG_QUERY whose prog_ids points at `ids`
    // with the capacity given in prog_cnt; both outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_QUERY, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::ENODEV) | Some(libc::ENOSYS) => Ok(Vec::new()),
            _ => Err(e),
        };
    }
    let n = u32::from_ne_bytes([attr[24], attr[25], attr[26], attr[27]]) as usize;
    Ok(ids[..n.min(ids.len())].to_vec())
}

/// The BPF programs attached through tcx (every device) and netkit (netkit devices) in
/// this namespace, as bypasses of every layer (they can redirect and rewrite like a tc
/// BPF classifier). A query refused for another reason than a missing hook is reported
/// as a bypass too: what cannot be seen is not claimed.
pub fn mprog_bypasses(links: &[Link]) -> Vec<Bypass> {
    let mut out = Vec::new();
    for l in links {
        let mut hooks = vec![(BPF_TCX_INGRESS, "tcx ingress"), (BPF_TCX_EGRESS, "tcx egress")];
        if l.kind.as_deref() == Some("netkit") {
            hooks.push((BPF_NETKIT_PRIMARY, "netkit primary"));
            hooks.push((BPF_NETKIT_PEER, "netkit peer"));
        }
        for (ty, words) in hooks {
            let what: Vec<String> = match mprog_ids(l.index, ty) {
                Ok(ids) => ids
                    .into_iter()
                    .map(|id| format!("{words} BPF program id {id} on {}", l.name))
                    .collect(),
                Err(e) => listing_failed(
                    &format!("{words} BPF programs on {} cannot be listed", l.name),
                    &e,
                    vec![],
                )
                .map(|b| b.what)
                .into_iter()
                .collect(),
            };
            out.extend(what.into_iter().map(|what| Bypass {
                what,
                skips: SKIPS_ALL.to_vec(),
                holder: None,
            }));
        }
    }
    out
}

/// The XDP programs attached to any device in the namespace (any device, not only
/// covered ones: a program on a tap can redirect out of the uplink; trial27 HIGH-2b).
pub fn xdp_bypasses(links: &[Link]) -> Vec<Bypass> {
    links
        .iter()
        .filter_map(|l| {
            let x = l.xdp.as_ref()?;
            Some(Bypass {
                what: format!("XDP program id {} ({}) on {}", x.prog_id, x.mode, l.name),
                skips: SKIPS_ALL.to_vec(),
                holder: None,
            })
        })
        .collect()
}

/// The `sockets` column of protocol `proto`'s row in `/proc/net/protocols` text: how many
/// sockets of it exist in the reader's network namespace (the kernel counts them per
/// namespace, `sock_prot_inuse_get`).
pub fn protocol_sockets(text: &str, proto: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(proto))?
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// One packet socket from `/proc/net/packet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketSocket {
    /// The protocol it is bound to (host order; 3 = `ETH_P_ALL`).
    pub proto: u16,
    /// The interface index it is bound to (0: every interface).
    pub ifindex: u32,
    /// Its socket inode (matches `/proc/PID/fd/N -> socket:[INODE]`).
    pub inode: u64,
}

/// `ETH_P_ALL`: a packet socket of this protocol is a tap that sees every frame.
pub const ETH_P_ALL: u16 = 3;

/// Parses `/proc/net/packet` (`sk RefCnt Type Proto Iface R Rmem User Inode`, Proto in
/// hex), skipping lines that do not parse.
pub fn parse_proc_packet(text: &str) -> Vec<PacketSocket> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(PacketSocket {
                proto: u16::from_str_radix(f.get(3)?, 16).ok()?,
                ifindex: f.get(4)?.parse().ok()?,
                inode: f.get(8)?.parse().ok()?,
            })
        })
        .collect()
}

/// A socket's holder: its inode, the process id and the process's `comm`.
type Holder = (u64, u32, String);

/// The processes (`pid N (comm)`) holding each of `inodes`, from `/proc/*/fd`, limited to
/// processes in network namespace `netns` (the `/proc/PID/ns/net` link text) when given,
/// and to sockets whose protocol name (`system.sockprotoname`) is `proto` when given.
fn holders(inodes: Option<&BTreeSet<u64>>, proto: Option<&str>, netns: Option<&str>) -> Vec<Holder> {
    let mut out = Vec::new();
    for (pid, base) in processes() {
        if netns.is_some_and(|ns| !in_netns(&base, ns)) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(base.join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            let Some(inode) = t
                .strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if inodes.is_some_and(|set| !set.contains(&inode)) {
                continue;
            }
            if let Some(want) = proto {
                if sock_proto_name(&fd.path()).as_deref() != Some(want) {
                    continue;
                }
            }
            let comm = std::fs::read_to_string(base.join("comm")).unwrap_or_default();
            out.push((inode, pid, comm.trim().to_string()));
        }
    }
    out
}

/// Whether process `base` (`/proc/PID`) or one of its threads is in network namespace
/// `ns` (a thread may have entered another namespace than its process's).
fn in_netns(base: &std::path::Path, ns: &str) -> bool {
    let is = |p: std::path::PathBuf| std::fs::read_link(p).is_ok_and(|l| l.to_string_lossy() == ns);
    if is(base.join("ns/net")) {
        return true;
    }
    std::fs::read_dir(base.join("task"))
        .map(|tasks| tasks.flatten().any(|t| is(t.path().join("ns/net"))))
        .unwrap_or(false)
}

/// The protocol name of the socket an fd link names (`XDP`, `PACKET`, `TCP`, …), from
/// the socket file system's `system.sockprotoname` attribute.
fn sock_proto_name(path: &std::path::Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = [0u8; 32];
    // SAFETY: c is a valid NUL-terminated path, the name a static C string, and buf a
    // writable buffer of the length passed.
    let n = unsafe {
        libc::getxattr(
            c.as_ptr(),
            c"system.sockprotoname".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    Some(cstr(&buf[..n.min(buf.len())]))
}

fn proc_net(file: &str) -> std::io::Result<String> {
    // thread-self: the namespace of this thread (the watcher and the lab tests enter a
    // namespace per thread), not of the process's main thread.
    std::fs::read_to_string(format!("/proc/thread-self/net/{file}"))
}

/// How many AF_XDP sockets exist in the calling thread's network namespace (the `XDP`
/// row of `/proc/thread-self/net/protocols`); `None` when that cannot be read.
pub fn xdp_sockets() -> Option<u64> {
    proc_net("protocols")
        .ok()
        .map(|t| protocol_sockets(&t, "XDP").unwrap_or(0))
}

/// The AF_XDP sockets of this network namespace, each as a [`Bypass`] of the netdev
/// egress hook (copy-mode TX goes through `__dev_direct_xmit`, past it; trial27 HIGH-4).
/// The count comes from `/proc/net/protocols` (the `XDP` row, counted per namespace by
/// the kernel); holders are found by scanning `/proc/*/fd` of the processes with a
/// thread in this namespace for sockets named `XDP`. Sockets whose holder is not found (passed to a
/// process in another namespace) are counted in one entry. This kernel interface gives
/// no event when one is opened: the watcher finds them at its periodic check.
/// (`sock_diag` with `AF_XDP` would also give the device and queue, but needs
/// `CONFIG_XDP_SOCKETS_DIAG`, which common kernels lack.)
pub fn af_xdp_bypasses() -> Vec<Bypass> {
    let skips = vec![Layer::NetdevEgress];
    let count = match proc_net("protocols") {
        Ok(t) => protocol_sockets(&t, "XDP").unwrap_or(0),
        Err(e) => {
            return vec![Bypass {
                what: format!("AF_XDP sockets cannot be counted (/proc/thread-self/net/protocols: {e})"),
                skips,
                holder: None,
            }]
        }
    };
    if count == 0 {
        return Vec::new();
    }
    let ns = std::fs::read_link("/proc/thread-self/ns/net")
        .ok()
        .map(|l| l.to_string_lossy().into_owned());
    let mut out: Vec<Bypass> = Vec::new();
    for (inode, pid, comm) in holders(None, Some("XDP"), ns.as_deref()) {
        let what = format!("AF_XDP socket (inode {inode})");
        match out.iter_mut().find(|b| b.what == what) {
            Some(b) => {
                if let Some(h) = b.holder.as_mut() {
                    h.push_str(&format!(", pid {pid} ({comm})"));
                }
            }
            None => out.push(Bypass {
                what,
                skips: skips.clone(),
                holder: Some(format!("pid {pid} ({comm})")),
            }),
        }
    }
    let found = out.len() as u64;
    if count > found {
        out.push(Bypass {
            what: format!(
                "{} AF_XDP socket(s) in this network namespace whose holder was not found",
                count - found
            ),
            skips,
            holder: None,
        });
    }
    out
}

/// The packet taps of this namespace that read every inbound frame before the netdev
/// ingress hook: `ETH_P_ALL` packet sockets (from `/proc/net/packet`), with the
/// processes holding them. Left out: a DHCP client's socket, judged by what a process
/// cannot set by `prctl` (trial31 MED-B: the `comm` allowlist hid any process calling
/// itself `dhclient`): every holder runs one of
/// [`super::dhcp_client::KNOWN_DHCP_CLIENT_EXES`] (`/proc/PID/exe`) and the socket's
/// filter passes DHCP replies only ([`super::dhcp_client::dhcp_shaped`]). One line each:
/// `pid 812 (tcpdump): ETH_P_ALL packet socket on all interfaces (inode 40213)`.
pub fn packet_taps(links: &[Link]) -> Vec<String> {
    let Ok(text) = proc_net("packet") else {
        return Vec::new();
    };
    let taps: Vec<PacketSocket> = parse_proc_packet(&text)
        .into_iter()
        .filter(|p| p.proto == ETH_P_ALL)
        .collect();
    if taps.is_empty() {
        return Vec::new();
    }
    let inodes: BTreeSet<u64> = taps.iter().map(|p| p.inode).collect();
    // A DHCP client holds one for as long as it runs, and every check of a watcher
    // reads the taps: scan /proc again only when the set of tap sockets changed.
    static LAST: std::sync::Mutex<Option<(BTreeSet<u64>, Vec<Holder>)>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let held = match last.as_ref() {
        Some((set, held)) if *set == inodes => held.clone(),
        _ => {
            let held = holders(Some(&inodes), None, None);
            *last = Some((inodes, held.clone()));
            held
        }
    };
    drop(last);
    // Filters are read only when some tap's holders all run a DHCP client's executable.
    let exe_ok = |pid: u32| {
        std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| {
            super::dhcp_client::KNOWN_DHCP_CLIENT_EXES
                .iter()
                .any(|k| p.as_os_str() == *k)
        })
    };
    let mut filters = None;
    let mut out = Vec::new();
    for t in &taps {
        let on = match t.ifindex {
            0 => "all interfaces".to_string(),
            i => links
                .iter()
                .find(|l| l.index == i)
                .map(|l| l.name.clone())
                .unwrap_or_else(|| format!("ifindex {i}")),
        };
        let by: Vec<&Holder> = held.iter().filter(|h| h.0 == t.inode).collect();
        if !by.is_empty() && by.iter().all(|h| exe_ok(h.1)) {
            let f = filters.get_or_insert_with(|| super::dhcp_client::packet_filters().unwrap_or_default());
            if f.get(&t.inode).is_some_and(|p| super::dhcp_client::dhcp_shaped(p)) {
                continue;
            }
        }
        let who = if by.is_empty() {
            "holder not found".to_string()
        } else {
            by.iter()
                .map(|h| format!("pid {} ({})", h.1, h.2))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(format!("{who}: ETH_P_ALL packet socket on {on} (inode {})", t.inode));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nla(ty: u16, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(data);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn s(t: &str) -> Vec<u8> {
        let mut v = t.as_bytes().to_vec();
        v.push(0);
        v
    }

    /// A filter message as the kernel dumps it: tcmsg, TCA_KIND, TCA_OPTIONS with the
    /// classifier's attributes.
    fn filter_msg(ifindex: u32, parent: u32, prio: u16, kind: &str, options: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 4];
        p.extend_from_slice(&ifindex.to_ne_bytes());
        p.extend_from_slice(&0x800u32.to_ne_bytes());
        p.extend_from_slice(&parent.to_ne_bytes());
        p.extend_from_slice(&((u32::from(prio) << 16) | 0x0300).to_ne_bytes());
        p.extend(nla(TCA_KIND, &s(kind)));
        p.extend(nla(TCA_OPTIONS, options));
        p
    }

    fn actions(kinds: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        for (i, k) in kinds.iter().enumerate() {
            v.extend(nla((i + 1) as u16, &nla(TCA_ACT_KIND, &s(k))));
        }
        v
    }

    /// trial27 HIGH-1: `u32 match u32 0 0 action mirred egress redirect dev eth0` on a
    /// clsact ingress is read as a bypass naming the device, hook and action.
    #[test]
    fn a_u32_filter_with_mirred_goes_around() {
        let opts = [nla(5, &[0u8; 16]), nla(7, &actions(&["mirred"]))].concat();
        let f = parse_filter(&filter_msg(4, TC_H_CLSACT_INGRESS, 49152, "u32", &opts)).unwrap();
        assert_eq!(f.actions, ["mirred"]);
        let why = filter_risk(&f).unwrap();
        assert_eq!(
            filter_words(&f, "t27tap", TC_H_CLSACT_INGRESS, &why),
            "tc filter u32 on t27tap ingress (pref 49152, handle 0x800): actions mirred"
        );
    }

    /// Shaping and policing keep the claim: a u32 hash table entry, a `classid` filter,
    /// gact/police actions; pedit and act_bpf do not.
    #[test]
    fn only_classifying_policing_or_dropping_filters_are_harmless() {
        let table = filter_msg(2, 0x10000, 1, "u32", &nla(4, &1u32.to_ne_bytes()));
        assert_eq!(filter_risk(&parse_filter(&table).unwrap()), None);
        let shaped = [nla(1, &0x10001u32.to_ne_bytes()), nla(7, &actions(&["gact", "police"]))].concat();
        assert_eq!(
            filter_risk(&parse_filter(&filter_msg(2, 0x10000, 1, "flower", &shaped)).unwrap()),
            None
        );
        let rewrite = nla(2, &actions(&["gact", "pedit", "bpf"]));
        let f = parse_filter(&filter_msg(2, TC_H_CLSACT_EGRESS, 1, "matchall", &rewrite)).unwrap();
        assert_eq!(filter_risk(&f).as_deref(), Some("actions pedit, bpf"));
        assert_eq!(hook_words(f.object.parent), "egress");
        assert_eq!(hook_words(TC_H_INGRESS), "ingress");
        assert_eq!(hook_words(0x10001), "egress qdisc");
    }

    /// trial27 HIGH-1b: a BPF classifier can redirect whatever it likes (da mode or not),
    /// with or without actions; an unknown classifier is not trusted.
    #[test]
    fn bpf_and_unknown_classifiers_go_around() {
        let opts = [
            nla(TCA_BPF_NAME, &s("tcbypass.o:[tclo]")),
            nla(TCA_BPF_ID, &57u32.to_ne_bytes()),
        ]
        .concat();
        let f = parse_filter(&filter_msg(1, TC_H_CLSACT_EGRESS, 49152, "bpf", &opts)).unwrap();
        assert_eq!(
            filter_risk(&f).as_deref(),
            Some("BPF program tcbypass.o:[tclo] (id 57)")
        );
        let f = parse_filter(&filter_msg(1, TC_H_INGRESS, 1, "newcls", &nla(1, &[1, 0, 0, 0]))).unwrap();
        assert_eq!(filter_risk(&f).as_deref(), Some("classifier newcls unknown to Cordon"));
    }

    /// The head entry a dump gives per classifier instance (no options) is no filter.
    #[test]
    fn classifier_heads_match_nothing() {
        let mut p = vec![0u8; 4];
        p.extend_from_slice(&1u32.to_ne_bytes());
        p.extend_from_slice(&0u32.to_ne_bytes());
        p.extend_from_slice(&TC_H_CLSACT_EGRESS.to_ne_bytes());
        p.extend_from_slice(&(49152u32 << 16).to_ne_bytes());
        p.extend(nla(TCA_KIND, &s("bpf")));
        let f = parse_filter(&p).unwrap();
        assert!(f.head);
        assert_eq!(filter_risk(&f), None);
    }

    #[test]
    fn filters_are_dumped_below_each_qdisc_block() {
        let q = |kind: &str, handle: u32| TcObject {
            ifindex: 2,
            handle,
            parent: 0xffff_ffff,
            prio: 0,
            kind: kind.into(),
        };
        assert_eq!(
            filter_parents(&q("clsact", 0xffff_0000)),
            [TC_H_CLSACT_INGRESS, TC_H_CLSACT_EGRESS]
        );
        assert_eq!(filter_parents(&q("ingress", 0xffff_0000)), [TC_H_INGRESS]);
        assert_eq!(filter_parents(&q("htb", 0x10000)), [0x10000]);
    }

    #[test]
    fn proc_files_parse() {
        let protocols = "protocol  size sockets  memory press maxhdr  slab module     cl co\nPACKET    1600      2      -1   NI       0   no   kernel      n  n\nXDP       1088      1      -1   NI       0   no   kernel      n  n\n";
        assert_eq!(protocol_sockets(protocols, "XDP"), Some(1));
        assert_eq!(protocol_sockets(protocols, "PACKET"), Some(2));
        assert_eq!(protocol_sockets(protocols, "TCP"), None);
        let packet = "sk               RefCnt Type Proto  Iface R Rmem   User   Inode\n000000006d1d6f05 3      3    0003   2     1 0      0      40213\n00000000ab12cd34 3      2    0800   0     1 0      0      40214\n";
        assert_eq!(
            parse_proc_packet(packet),
            [
                PacketSocket {
                    proto: ETH_P_ALL,
                    ifindex: 2,
                    inode: 40213
                },
                PacketSocket {
                    proto: 0x0800,
                    ifindex: 0,
                    inode: 40214
                }
            ]
        );
    }

    /// trial39 MED-1: bpf(2) refused outright (EPERM, a container's seccomp policy) is no
    /// path around the hooks (nothing in the sandbox can make one either): no bypass, a
    /// note; any other failure to list still counts as one.
    #[test]
    fn a_refused_bpf_listing_is_a_note_not_a_bypass() {
        let eperm = std::io::Error::from_raw_os_error(libc::EPERM);
        assert_eq!(
            listing_failed(
                "BPF programs on this machine cannot be listed",
                &eperm,
                SKIPS_ALL.to_vec()
            ),
            None
        );
        let other = std::io::Error::from_raw_os_error(libc::EINVAL);
        let b = listing_failed(
            "BPF devmaps on this machine cannot be read",
            &other,
            vec![Layer::NetdevEgress],
        )
        .unwrap();
        assert!(
            b.what
                .starts_with("BPF devmaps on this machine cannot be read (Invalid argument"),
            "{}",
            b.what
        );
        assert_eq!(b.skips, [Layer::NetdevEgress]);
        assert!(BPF_REFUSED_NOTE.contains("not seen"));
    }

    /// trial37 LOW-7: a devmap whose entries cannot be read (created write-only) is named
    /// on its own; the other maps are judged as usual (one such map used to make every
    /// devmap "cannot be read", naming none).
    #[test]
    fn an_unreadable_devmap_is_named_and_the_others_judged() {
        let map = |id: u32, ifindexes: Vec<u32>, unreadable: Option<&str>| bpf::Devmap {
            info: bpf::MapInfo {
                map_type: bpf::MAP_TYPE_DEVMAP,
                id,
                key_size: 4,
                value_size: 4,
                max_entries: 1,
                name: format!("m{id}"),
            },
            ifindexes,
            partial: false,
            unreadable: unreadable.map(str::to_string),
        };
        let links = vec![Link {
            index: 2,
            name: "eth0".into(),
            kind: Some("veth".into()),
            flags: 0,
            link: None,
            link_netnsid: None,
            master: None,
            new_netnsid: None,
            xdp: None,
        }];
        let out = devmap_words(
            vec![
                map(7, vec![], Some("Operation not permitted (os error 1)")),
                map(8, vec![9], None),
                map(9, vec![2], None),
            ],
            &links,
            |id| vec![format!("pid {id}0 (x)")],
        );
        let what: Vec<&str> = out.iter().map(|b| b.what.as_str()).collect();
        assert_eq!(what.len(), 2, "{what:?}");
        assert!(
            what[0].starts_with("BPF devmap id 7 \"m7\" cannot be read (Operation not permitted"),
            "{what:?}"
        );
        assert!(
            what[1].starts_with("BPF devmap id 9 \"m9\" holds ifindex 2 (eth0 here"),
            "{what:?}"
        );
        assert_eq!(out[0].holder.as_deref(), Some("pid 70 (x)"));
    }

    #[test]
    fn xdp_attachments_are_bypasses_on_any_device() {
        let mut l = Link {
            index: 5,
            name: "t27tap".into(),
            kind: Some("tun".into()),
            flags: 0,
            link: None,
            link_netnsid: None,
            master: None,
            new_netnsid: None,
            xdp: None,
        };
        assert!(xdp_bypasses(std::slice::from_ref(&l)).is_empty());
        l.xdp = Some(super::super::links::Xdp {
            mode: "generic",
            prog_id: 42,
        });
        let b = xdp_bypasses(&[l]);
        assert_eq!(b[0].what, "XDP program id 42 (generic) on t27tap");
        assert_eq!(b[0].skips, SKIPS_ALL);
    }
}
