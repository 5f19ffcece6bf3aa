//! Machine-wide BPF objects, read with bpf(2): the maps an XDP program in ANY network
//! namespace can send frames through onto this namespace's devices (trial31 HIGH-A), and
//! the global id counters that show a BPF program, link or map was created since the last
//! look (trial31 MED-E).
//!
//! Kernel facts this rests on (`kernel/bpf/syscall.c`, `kernel/bpf/devmap.c`, Linux 6.x):
//! * BPF object ids are global, not per network namespace: `BPF_MAP_GET_NEXT_ID`,
//!   `BPF_PROG_GET_NEXT_ID` and `BPF_LINK_GET_NEXT_ID` list every map, program and link on
//!   the machine (CAP_SYS_ADMIN), and ids are handed out cyclically upwards (`idr_alloc_cyclic`),
//!   so a higher id than the highest seen means something was created since.
//! * A devmap (`BPF_MAP_TYPE_DEVMAP`, `_HASH`) entry holds a device, resolved from an
//!   ifindex in the network namespace of the process that UPDATED it; any XDP program that
//!   uses the map, attached in any namespace, can `bpf_redirect_map()` frames into that
//!   device, and they are transmitted by `dev_map_enqueue`/`generic_xdp_tx` — past the
//!   netdev egress hook and every qdisc. Read back from user space the entry gives only the
//!   ifindex (`struct bpf_devmap_val`), not the namespace. The kernel drops an entry when
//!   its device is unregistered or leaves its namespace, so an entry names a live device.
//! * Every other way an XDP or tc program sends a frame (`XDP_TX`, `bpf_redirect`,
//!   `bpf_redirect_neigh`) resolves the target in the namespace of the device the program
//!   runs on, so a program in another namespace reaches this namespace's devices only
//!   through a devmap (`bpf_redirect_peer` enters the peer's receive path, which our
//!   hooks see). `cpumap` and `xskmap` entries redirect to a CPU or an AF_XDP socket of
//!   the receiving device's own namespace.
//!
//! Hand-written with libc's `syscall`, as [`super::around`]'s `BPF_PROG_QUERY`: six
//! read-only commands on fixed-layout `union bpf_attr` records; the Rust BPF libraries
//! (`aya`, `libbpf-rs`) load and attach programs and bring far more than this needs.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

// linux/bpf.h commands (`libc` has none of them).
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
const BPF_MAP_GET_NEXT_ID: libc::c_long = 12;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_GET_NEXT_ID: libc::c_long = 31;
/// `BPF_F_RDONLY`: open a map for reading only.
const BPF_F_RDONLY: u32 = 1 << 3;

/// `BPF_MAP_TYPE_DEVMAP`: an array of devices (key: index, value: ifindex).
pub const MAP_TYPE_DEVMAP: u32 = 14;
/// `BPF_MAP_TYPE_DEVMAP_HASH`: a hash of devices (key: any u32, value: ifindex).
pub const MAP_TYPE_DEVMAP_HASH: u32 = 25;

/// `BPF_PROG_TYPE_SCHED_CLS`: a tc (cls_bpf) or tcx program.
pub const PROG_TYPE_SCHED_CLS: u32 = 3;
/// `BPF_PROG_TYPE_SCHED_ACT`: a tc action program.
pub const PROG_TYPE_SCHED_ACT: u32 = 4;
/// `BPF_PROG_TYPE_XDP`.
pub const PROG_TYPE_XDP: u32 = 6;

/// How many map ids of one program are read at most.
pub const PROG_MAPS_READ: usize = 64;

/// How many entries of one devmap are read at most (a lookup each; the array kind is
/// read slot by slot). A map with more is reported as not read in full.
pub const DEVMAP_READ_LIMIT: u32 = 4096;

/// The kinds of BPF object with a global id counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Object {
    /// Programs (`BPF_PROG_GET_NEXT_ID`).
    Prog,
    /// Maps (`BPF_MAP_GET_NEXT_ID`).
    Map,
    /// Links (`BPF_LINK_GET_NEXT_ID`; Linux ≥ 5.8).
    Link,
}

impl Object {
    fn next_cmd(self) -> libc::c_long {
        match self {
            Object::Prog => BPF_PROG_GET_NEXT_ID,
            Object::Map => BPF_MAP_GET_NEXT_ID,
            Object::Link => BPF_LINK_GET_NEXT_ID,
        }
    }
}

fn bpf(cmd: libc::c_long, attr: &mut [u8]) -> std::io::Result<libc::c_long> {
    // SAFETY: every caller passes a buffer laid out as the `union bpf_attr` member of
    // `cmd`, whose pointers (if any) point at live buffers of the sizes given; the kernel
    // reads and writes at most `attr.len()` bytes of it.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The next id of kind `kind` above `start` (`*_GET_NEXT_ID`), or `None` when there is
/// none.
///
/// # Errors
/// The syscall's error: `EPERM` without CAP_SYS_ADMIN, `EINVAL`/`ENOSYS` on a kernel
/// without the command.
pub fn next_id(kind: Object, start: u32) -> std::io::Result<Option<u32>> {
    // union bpf_attr: start_id, next_id, open_flags.
    let mut attr = [0u8; 12];
    attr[0..4].copy_from_slice(&start.to_ne_bytes());
    match bpf(kind.next_cmd(), &mut attr) {
        Ok(_) => Ok(Some(u32_at(&attr, 4))),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The highest id of kind `kind` in use now, looking upwards from `from` (0: from the
/// start); `from` itself when nothing higher exists.
///
/// # Errors
/// As [`next_id`].
pub fn highest_id(kind: Object, from: u32) -> std::io::Result<u32> {
    let mut id = from;
    while let Some(next) = next_id(kind, id)? {
        id = next;
    }
    Ok(id)
}

/// The machine's BPF id counters and this namespace's AF_XDP socket count: cheap to read
/// (a few syscalls and one small `/proc` file), so a watcher can look every few
/// milliseconds whether something that could go around the hooks was just created, and
/// then check at once (trial31 MED-E: a tcx program living 100 ms fell between two 1 s
/// checks). A higher id than before means a program, link or map was created since.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// The highest BPF program id in use.
    pub prog: u32,
    /// The highest BPF link id in use.
    pub link: u32,
    /// The highest BPF map id in use.
    pub map: u32,
    /// AF_XDP sockets in the reader's network namespace ([`super::around::xdp_sockets`]).
    pub xdp_sockets: u64,
}

impl Counters {
    /// Reads the counters, looking for ids above `prev`'s (all from the start without).
    /// An id that cannot be read (no BPF, no privilege) reads as the previous value: no
    /// change is claimed from a failure.
    pub fn read(prev: Option<&Counters>) -> Counters {
        let p = prev.copied().unwrap_or_default();
        Counters {
            prog: highest_id(Object::Prog, p.prog).unwrap_or(p.prog),
            link: highest_id(Object::Link, p.link).unwrap_or(p.link),
            map: highest_id(Object::Map, p.map).unwrap_or(p.map),
            xdp_sockets: super::around::xdp_sockets().unwrap_or(p.xdp_sockets),
        }
    }
}

/// What `BPF_OBJ_GET_INFO_BY_FD` says of a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapInfo {
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    /// Its global id.
    pub id: u32,
    /// Key and value sizes in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Capacity in entries.
    pub max_entries: u32,
    /// The name its creator gave (at most 15 bytes; empty when none).
    pub name: String,
}

/// Parses the first 40 bytes of a `struct bpf_map_info`: type, id, key_size,
/// value_size, max_entries, map_flags, `name[16]`.
pub fn parse_map_info(b: &[u8]) -> Option<MapInfo> {
    let b = b.get(..40)?;
    let name = &b[24..40];
    let end = name.iter().position(|c| *c == 0).unwrap_or(name.len());
    Some(MapInfo {
        map_type: u32_at(b, 0),
        id: u32_at(b, 4),
        key_size: u32_at(b, 8),
        value_size: u32_at(b, 12),
        max_entries: u32_at(b, 16),
        name: String::from_utf8_lossy(&name[..end]).into_owned(),
    })
}

/// What `BPF_OBJ_GET_INFO_BY_FD` says of a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgInfo {
    /// `BPF_PROG_TYPE_*`.
    pub prog_type: u32,
    /// Its global id.
    pub id: u32,
    /// The name its loader gave (at most 15 bytes; empty when none).
    pub name: String,
    /// The ids of the maps it uses (at most [`PROG_MAPS_READ`]).
    pub map_ids: Vec<u32>,
}

/// Parses the first 80 bytes of a `struct bpf_prog_info`: type, id, …, `nr_map_ids` at
/// 52, `name[16]` at 64; returns the info without map ids and the map count the kernel
/// reported.
pub fn parse_prog_info(b: &[u8]) -> Option<(ProgInfo, u32)> {
    let b = b.get(..80)?;
    let name = &b[64..80];
    let end = name.iter().position(|c| *c == 0).unwrap_or(name.len());
    Some((
        ProgInfo {
            prog_type: u32_at(b, 0),
            id: u32_at(b, 4),
            name: String::from_utf8_lossy(&name[..end]).into_owned(),
            map_ids: Vec::new(),
        },
        u32_at(b, 52),
    ))
}

/// Opens program `id` (a descriptor to read its info); `None` when it is gone.
fn prog_fd(id: u32) -> std::io::Result<Option<OwnedFd>> {
    // union bpf_attr: prog_id, next_id, open_flags.
    let mut attr = [0u8; 12];
    attr[0..4].copy_from_slice(&id.to_ne_bytes());
    match bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) {
        // SAFETY: a new descriptor the kernel just handed to this process only.
        Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn prog_info(fd: &OwnedFd) -> std::io::Result<ProgInfo> {
    let mut ids = [0u32; PROG_MAPS_READ];
    let mut info = [0u8; 128];
    // struct bpf_prog_info: nr_map_ids (u32) at 52, map_ids (u64 pointer) at 56.
    info[52..56].copy_from_slice(&(ids.len() as u32).to_ne_bytes());
    info[56..64].copy_from_slice(&(ids.as_mut_ptr() as u64).to_ne_bytes());
    let mut attr = [0u8; 16];
    attr[0..4].copy_from_slice(&(fd.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(info.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(info.as_mut_ptr() as u64).to_ne_bytes());
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let (mut p, n) = parse_prog_info(&info).ok_or_else(|| std::io::Error::other("short bpf_prog_info"))?;
    p.map_ids = ids[..(n as usize).min(ids.len())].to_vec();
    Ok(p)
}

/// Every BPF program on the machine whose type is among `types`, with the maps it uses.
///
/// # Errors
/// When the programs cannot be listed or one cannot be read (`EPERM` without
/// CAP_SYS_ADMIN). A kernel without BPF (`ENOSYS`) or without program ids (`EINVAL`) has
/// none: an empty list.
pub fn programs(types: &[u32]) -> std::io::Result<Vec<ProgInfo>> {
    let mut out = Vec::new();
    let mut id = 0;
    loop {
        let next = match next_id(Object::Prog, id) {
            Ok(Some(n)) => n,
            Ok(None) => break,
            Err(e) if id == 0 && matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EINVAL)) => break,
            Err(e) => return Err(e),
        };
        id = next;
        let Some(fd) = prog_fd(id)? else {
            continue; // gone since it was listed
        };
        let info = prog_info(&fd)?;
        if types.contains(&info.prog_type) {
            out.push(info);
        }
    }
    Ok(out)
}

/// What the kernel says of map `id`; `None` when it is gone.
///
/// # Errors
/// As [`devmaps`].
pub fn map_by_id(id: u32) -> std::io::Result<Option<MapInfo>> {
    match map_fd(id)? {
        Some(fd) => map_info(&fd).map(Some),
        None => Ok(None),
    }
}

/// Opens map `id` for reading; `None` when it is gone.
fn map_fd(id: u32) -> std::io::Result<Option<OwnedFd>> {
    // union bpf_attr: map_id, next_id, open_flags.
    let mut attr = [0u8; 12];
    attr[0..4].copy_from_slice(&id.to_ne_bytes());
    attr[8..12].copy_from_slice(&BPF_F_RDONLY.to_ne_bytes());
    match bpf(BPF_MAP_GET_FD_BY_ID, &mut attr) {
        // SAFETY: a new descriptor the kernel just handed to this process only.
        Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn map_info(fd: &OwnedFd) -> std::io::Result<MapInfo> {
    let mut info = [0u8; 128];
    // union bpf_attr, info: bpf_fd, info_len, info (u64 pointer).
    let mut attr = [0u8; 16];
    attr[0..4].copy_from_slice(&(fd.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(info.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(info.as_mut_ptr() as u64).to_ne_bytes());
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    parse_map_info(&info).ok_or_else(|| std::io::Error::other("short bpf_map_info"))
}

/// Looks `key` up in map `fd` into `value`; false when the key has no entry.
fn lookup(fd: &OwnedFd, key: &[u8], value: &mut [u8]) -> std::io::Result<bool> {
    // union bpf_attr, elem: map_fd, pad, key (u64 pointer), value (u64 pointer), flags.
    let mut attr = [0u8; 32];
    attr[0..4].copy_from_slice(&(fd.as_raw_fd() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(key.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(value.as_mut_ptr() as u64).to_ne_bytes());
    match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The key after `key` in map `fd` (`None` key: the first), or `None` at the end.
fn next_key(fd: &OwnedFd, key: Option<&[u8]>, next: &mut [u8]) -> std::io::Result<bool> {
    let mut attr = [0u8; 24];
    attr[0..4].copy_from_slice(&(fd.as_raw_fd() as u32).to_ne_bytes());
    if let Some(k) = key {
        attr[8..16].copy_from_slice(&(k.as_ptr() as u64).to_ne_bytes());
    }
    attr[16..24].copy_from_slice(&(next.as_mut_ptr() as u64).to_ne_bytes());
    match bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A devmap on this machine and the interface indexes its entries hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Devmap {
    /// The map as the kernel describes it.
    pub info: MapInfo,
    /// The ifindexes its entries hold (sorted, without repeats), each an index in the
    /// namespace of whoever filled the entry (not knowable from here).
    pub ifindexes: Vec<u32>,
    /// Entries were left unread (more than [`DEVMAP_READ_LIMIT`]).
    pub partial: bool,
    /// Why its entries cannot be read (a map created `BPF_F_WRONLY` refuses every lookup
    /// with `EPERM`), when they cannot: it is judged on its own, the other maps as usual
    /// (trial37 LOW-7: one such map made every devmap unreadable, naming none).
    pub unreadable: Option<String>,
}

/// Reads the ifindexes of devmap `fd` (`info`): slot by slot for the array kind, key by
/// key for the hash kind, at most [`DEVMAP_READ_LIMIT`] entries.
fn devmap_entries(fd: &OwnedFd, info: &MapInfo) -> std::io::Result<Devmap> {
    let mut value = vec![0u8; (info.value_size as usize).max(4)];
    let mut out = Devmap {
        info: info.clone(),
        ifindexes: Vec::new(),
        partial: false,
        unreadable: None,
    };
    let mut take = |value: &[u8]| {
        let i = u32_at(value, 0);
        if i != 0 && !out.ifindexes.contains(&i) {
            out.ifindexes.push(i);
        }
    };
    if info.map_type == MAP_TYPE_DEVMAP {
        for k in 0..info.max_entries.min(DEVMAP_READ_LIMIT) {
            if lookup(fd, &k.to_ne_bytes(), &mut value)? {
                take(&value);
            }
        }
        out.partial = info.max_entries > DEVMAP_READ_LIMIT;
    } else {
        let mut key = vec![0u8; (info.key_size as usize).max(4)];
        let mut next = key.clone();
        let mut first = true;
        let mut read = 0;
        while next_key(fd, (!first).then_some(&key[..]), &mut next)? {
            first = false;
            if read == DEVMAP_READ_LIMIT {
                out.partial = true;
                break;
            }
            read += 1;
            key.copy_from_slice(&next);
            if lookup(fd, &key, &mut value)? {
                take(&value);
            }
        }
    }
    out.ifindexes.sort_unstable();
    Ok(out)
}

/// Every devmap on the machine (both kinds) with the ifindexes it holds.
///
/// # Errors
/// When the maps cannot be listed or a devmap cannot be read (`EPERM` without
/// CAP_SYS_ADMIN). A kernel without BPF (`ENOSYS`) or without map ids (`EINVAL`) has no
/// devmaps: an empty list.
pub fn devmaps() -> std::io::Result<Vec<Devmap>> {
    let mut out = Vec::new();
    let mut id = 0;
    loop {
        let next = match next_id(Object::Map, id) {
            Ok(Some(n)) => n,
            Ok(None) => break,
            Err(e) if id == 0 && matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EINVAL)) => break,
            Err(e) => return Err(e),
        };
        id = next;
        let Some(fd) = map_fd(id)? else {
            continue; // gone since it was listed
        };
        let info = map_info(&fd)?;
        if info.map_type == MAP_TYPE_DEVMAP || info.map_type == MAP_TYPE_DEVMAP_HASH {
            out.push(devmap_entries(&fd, &info).unwrap_or_else(|e| Devmap {
                info: info.clone(),
                ifindexes: Vec::new(),
                partial: false,
                unreadable: Some(e.to_string()),
            }));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prog_info_parses() {
        let mut b = vec![0u8; 128];
        b[0..4].copy_from_slice(&PROG_TYPE_XDP.to_ne_bytes());
        b[4..8].copy_from_slice(&91u32.to_ne_bytes());
        b[52..56].copy_from_slice(&2u32.to_ne_bytes());
        b[64..71].copy_from_slice(b"xdp_fwd");
        let (p, n) = parse_prog_info(&b).unwrap();
        assert_eq!(
            (p.prog_type, p.id, p.name.as_str(), n),
            (PROG_TYPE_XDP, 91, "xdp_fwd", 2)
        );
        assert_eq!(parse_prog_info(&b[..79]), None);
    }

    #[test]
    fn map_info_parses() {
        let mut b = vec![0u8; 80];
        b[0..4].copy_from_slice(&MAP_TYPE_DEVMAP.to_ne_bytes());
        b[4..8].copy_from_slice(&17u32.to_ne_bytes());
        b[8..12].copy_from_slice(&4u32.to_ne_bytes());
        b[12..16].copy_from_slice(&8u32.to_ne_bytes());
        b[16..20].copy_from_slice(&64u32.to_ne_bytes());
        b[24..30].copy_from_slice(b"tx_map");
        assert_eq!(
            parse_map_info(&b),
            Some(MapInfo {
                map_type: MAP_TYPE_DEVMAP,
                id: 17,
                key_size: 4,
                value_size: 8,
                max_entries: 64,
                name: "tx_map".into()
            })
        );
        assert_eq!(parse_map_info(&b[..39]), None);
    }
}
