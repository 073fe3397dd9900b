//! Hosts as network namespaces on this machine.
//!
//! Host `i` is a namespace with one veth interface, `10.213.S.2/24`, whose
//! other end stays in the caller's namespace as `10.213.S.1/24` (S differs
//! per host and per harness). Hosts cannot reach each other directly (the
//! caller's namespace does not route between them), so everything between
//! hosts goes through whatever the caller runs on the `.1` addresses: the
//! [`Relay`](crate::Relay). Everything is made with `ip` and removed when
//! the [`Hosts`] is dropped.

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Making the namespaces failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostsError {
    /// `ip netns` cannot be used here (not root, no `ip`, or namespaces
    /// disabled): the harness is unavailable, not broken.
    #[error("network namespaces are unavailable: {0}")]
    Unavailable(String),
    /// An `ip` command failed.
    #[error("`ip {command}` failed: {message}")]
    Command {
        /// The arguments.
        command: String,
        /// What `ip` printed.
        message: String,
    },
    /// No free subnet was found.
    #[error("no free subnet for {0} hosts")]
    NoSubnet(usize),
}

/// Harnesses made by this process so far, so concurrent tests pick
/// different names and subnets.
static MADE: AtomicU32 = AtomicU32::new(0);

/// Subnets available: 10.213.0.0/16 split into /24s, `hosts` per harness.
const SLOTS: u32 = 250;

/// Namespaces standing in for hosts; removed on drop.
#[derive(Debug)]
pub struct Hosts {
    names: Vec<String>,
    subnets: Vec<u8>,
}

fn ip(args: &[&str]) -> Result<(), HostsError> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HostsError::Unavailable(format!("cannot run `ip`: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(HostsError::Command {
            command: args.join(" "),
            message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

impl Hosts {
    /// Whether namespaces can be made here: makes and removes one.
    pub fn available() -> Result<(), HostsError> {
        let name = format!(
            "triad-probe-{}-{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::SeqCst)
        );
        ip(&["netns", "add", &name]).map_err(|e| HostsError::Unavailable(e.to_string()))?;
        ip(&["netns", "del", &name]).map_err(|e| HostsError::Unavailable(e.to_string()))
    }

    /// Makes `count` hosts.
    pub fn create(count: usize) -> Result<Hosts, HostsError> {
        Hosts::available()?;
        let count_u32 = u32::try_from(count).map_err(|_| HostsError::NoSubnet(count))?;
        if count == 0 || count_u32 > SLOTS {
            return Err(HostsError::NoSubnet(count));
        }
        let groups = SLOTS / count_u32;
        let start = std::process::id().wrapping_mul(7) + MADE.fetch_add(1, Ordering::SeqCst);
        for attempt in 0..groups {
            let group = (start + attempt) % groups;
            let mut hosts = Hosts {
                names: Vec::new(),
                subnets: Vec::new(),
            };
            let mut clash = false;
            for i in 0..count_u32 {
                let subnet = group * count_u32 + i;
                match hosts.add(subnet) {
                    Ok(()) => {}
                    // Another harness (another test process) holds this
                    // name or subnet: try the next group.
                    Err(HostsError::Command { message, .. }) if message.contains("exists") => {
                        clash = true;
                        break;
                    }
                    Err(other) => return Err(other),
                }
            }
            if !clash {
                return Ok(hosts);
            }
        }
        Err(HostsError::NoSubnet(count))
    }

    fn add(&mut self, subnet: u32) -> Result<(), HostsError> {
        let subnet = u8::try_from(subnet).map_err(|_| HostsError::NoSubnet(1))?;
        let name = format!("triad-h{subnet}");
        let outside = format!("trd{subnet}o");
        let inside = format!("trd{subnet}i");
        ip(&["netns", "add", &name])?;
        // Registered at once, so a failure below still removes it.
        self.names.push(name.clone());
        self.subnets.push(subnet);
        let near = format!("10.213.{subnet}.1/24");
        let far = format!("10.213.{subnet}.2/24");
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        ip(&[
            "link", "add", &outside, "type", "veth", "peer", "name", &inside, "netns", &name,
        ])?;
        ip(&["addr", "add", &near, "dev", &outside])?;
        ip(&["link", "set", &outside, "up"])?;
        ip(&["-n", &name, "addr", "add", &far, "dev", &inside])?;
        ip(&["-n", &name, "link", "set", &inside, "up"])?;
        Ok(())
    }

    /// How many hosts.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Host `i`'s namespace name.
    pub fn namespace(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// Host `i`'s own address (inside its namespace).
    pub fn address(&self, i: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 213, self.subnets[i], 2))
    }

    /// The caller's address facing host `i`: where the relay listens for
    /// host `i`'s traffic and sends traffic to host `i` from.
    pub fn gateway(&self, i: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 213, self.subnets[i], 1))
    }

    /// The command prefix that runs a program on host `i`.
    pub fn launcher(&self, i: usize) -> Vec<String> {
        vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.names[i].clone(),
        ]
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth pair, and with it
        // the other end.
        for name in &self.names {
            let _ = ip(&["netns", "del", name]);
        }
    }
}
