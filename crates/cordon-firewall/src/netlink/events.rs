//! Change notifications: nf_tables (netlink group `NFNLGRP_NFTABLES`) and interfaces
//! (`RTNLGRP_LINK`) of the caller's network namespace, so a watcher repairs tampering, and
//! covers a new interface, as soon as the kernel reports it instead of at the next poll.

use std::time::Duration;

use super::consts::*;
use super::decode::{attrs, NlMsg};
use super::imp::map_err;
use super::socket::Socket;
use crate::FirewallError;

/// What changed since the last [`ChangeWatch::wait`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    /// An object of a table with our name (any family) was added, changed or deleted, or
    /// notifications were lost (socket overrun), so the caller must re-read the kernel.
    pub ours: bool,
    /// An interface appeared, changed or disappeared (or link notifications were lost).
    pub links: bool,
}

impl Changes {
    /// Whether anything changed that needs a look at the kernel.
    pub fn any(self) -> bool {
        self.ours || self.links
    }
}

/// Two netlink sockets subscribed to the change notifications of the namespace of the
/// thread that opened them.
pub struct ChangeWatch {
    table: String,
    nft: Socket,
    link: Socket,
}

impl ChangeWatch {
    /// Subscribes to nf_tables and link notifications; `table` is our table's name.
    ///
    /// # Errors
    /// [`FirewallError::Io`] when the netlink socket cannot be opened or subscribed.
    pub fn open(table: &str) -> Result<ChangeWatch, FirewallError> {
        let ctx = "subscribing to nf_tables and link notifications";
        let nft = Socket::open().map_err(|e| map_err(e, ctx, None))?;
        nft.join_group(libc::NFNLGRP_NFTABLES as u32)
            .map_err(|e| map_err(e, ctx, None))?;
        let link = Socket::open_protocol(libc::NETLINK_ROUTE).map_err(|e| map_err(e, ctx, None))?;
        link.join_group(libc::RTNLGRP_LINK).map_err(|e| map_err(e, ctx, None))?;
        Ok(ChangeWatch {
            table: table.to_string(),
            nft,
            link,
        })
    }

    /// Waits up to `timeout` for notifications, then takes everything queued. Returns
    /// empty [`Changes`] on timeout.
    ///
    /// # Errors
    /// [`FirewallError::Io`] when the socket fails; a timeout is no error.
    pub fn wait(&mut self, timeout: Duration) -> Result<Changes, FirewallError> {
        let mut fds = [
            libc::pollfd {
                fd: self.nft.raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.link.raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: fds is a valid array of two pollfd for the duration of the call.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                return Ok(Changes::default());
            }
            return Err(FirewallError::Io {
                context: "waiting for netlink notifications".into(),
                source: err,
            });
        }
        self.take()
    }

    /// Takes what is queued now without waiting.
    ///
    /// # Errors
    /// As [`ChangeWatch::wait`].
    pub fn take(&mut self) -> Result<Changes, FirewallError> {
        let ctx = "reading netlink notifications";
        let mut c = Changes::default();
        for (ty, payload) in self.nft.drain().map_err(|e| map_err(e, ctx, None))? {
            if ty == 0 || concerns_table(ty, &payload, &self.table) {
                c.ours = true;
            }
        }
        for (ty, _) in self.link.drain().map_err(|e| map_err(e, ctx, None))? {
            if ty == 0 || ty == libc::RTM_NEWLINK || ty == libc::RTM_DELLINK {
                c.links = true;
            }
        }
        Ok(c)
    }
}

/// Whether nf_tables notification `ty` names table `table`: every object message carries
/// its table's name as attribute 1 (`NFTA_TABLE_NAME`, `NFTA_CHAIN_TABLE`,
/// `NFTA_RULE_TABLE`, `NFTA_SET_TABLE`, `NFTA_SET_ELEM_LIST_TABLE`).
fn concerns_table(ty: u16, payload: &[u8], table: &str) -> bool {
    if ty >> 8 != u16::from(NFNL_SUBSYS_NFTABLES_ID) {
        return false;
    }
    let msg = ty & 0xff;
    if msg == NFT_MSG_NEWGEN {
        return false;
    }
    let m = NlMsg {
        ty,
        flags: 0,
        seq: 0,
        payload,
    };
    let Some(body) = m.payload.get(4..) else {
        return false;
    };
    match attrs(body) {
        Ok(list) => list
            .iter()
            .any(|(t, d)| *t == 1 && d.split(|b| *b == 0).next() == Some(table.as_bytes())),
        // Unreadable: assume it might be ours.
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u16, name: &str) -> Vec<u8> {
        let mut p = vec![1u8, 0, 0, 0];
        let len = (4 + name.len() + 1) as u16;
        p.extend_from_slice(&len.to_ne_bytes());
        p.extend_from_slice(&1u16.to_ne_bytes());
        p.extend_from_slice(name.as_bytes());
        p.push(0);
        while p.len() % 4 != 0 {
            p.push(0);
        }
        let _ = ty;
        p
    }

    #[test]
    fn notifications_about_other_tables_are_not_ours() {
        let t = (u16::from(NFNL_SUBSYS_NFTABLES_ID) << 8) | NFT_MSG_NEWRULE;
        assert!(concerns_table(t, &msg(t, "cordon"), "cordon"));
        assert!(!concerns_table(t, &msg(t, "cordonx"), "cordon"));
        assert!(!concerns_table(t, &msg(t, "user"), "cordon"));
        let gen = (u16::from(NFNL_SUBSYS_NFTABLES_ID) << 8) | NFT_MSG_NEWGEN;
        assert!(!concerns_table(gen, &msg(gen, "cordon"), "cordon"));
    }
}
