//! A simulated network for a local cluster: each node on its own host (a
//! network namespace, where `ip netns` works) and every link, node to node
//! and client to node, through the relay with a LAN or WAN shape.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

use anyhow::Context;
use triad_client::cluster::Placement;
use triad_netsim::{Hosts, HostsError, LinkSpec, Relay, Shape};

/// Node pairs in relay link order: the higher index dials the lower.
pub const NODE_LINKS: [(usize, usize); 3] = [(1, 0), (2, 0), (2, 1)];

/// The relay link between nodes `a` and `b` (either order).
pub fn node_link(a: usize, b: usize) -> usize {
    let pair = (a.max(b), a.min(b));
    NODE_LINKS.iter().position(|p| *p == pair).unwrap_or(0)
}

/// The relay link from clients to node `i`.
pub fn client_link(i: usize) -> usize {
    NODE_LINKS.len() + i
}

/// Every relay link touching node `i`.
pub fn links_of(i: usize) -> Vec<usize> {
    let mut links: Vec<usize> = (0..3)
        .filter(|j| *j != i)
        .map(|j| node_link(i, j))
        .collect();
    links.push(client_link(i));
    links
}

/// Hosts (when available), the relay, and where the nodes go.
#[derive(Debug)]
pub struct Network {
    /// The relay; shape, cut and measure links through it.
    pub relay: Relay,
    /// Where the nodes listen and dial, and how they are started.
    pub placement: Placement,
    /// The namespaces, or `None` when the nodes share this host's loopback.
    pub hosts: Option<Hosts>,
}

impl Network {
    /// "namespaces" or "loopback".
    pub fn kind(&self) -> &'static str {
        if self.hosts.is_some() {
            "namespaces"
        } else {
            "loopback"
        }
    }
}

fn free_port(ip: IpAddr) -> anyhow::Result<u16> {
    Ok(UdpSocket::bind(SocketAddr::new(ip, 0))?
        .local_addr()?
        .port())
}

/// Builds the network. Without namespaces (not root, or no `ip`), the
/// nodes stay on loopback behind the same relay, and the reason is
/// returned beside it so callers can say so.
pub fn simulated(shape: Shape) -> anyhow::Result<(Network, Option<String>)> {
    let (hosts, fallback) = match Hosts::create(3) {
        Ok(hosts) => (Some(hosts), None),
        Err(error @ HostsError::Unavailable(_)) => (None, Some(error.to_string())),
        Err(error) => return Err(error).context("making the hosts"),
    };
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let own = |i: usize| hosts.as_ref().map_or(loopback, |h| h.address(i));
    let gateway = |i: usize| hosts.as_ref().map_or(loopback, |h| h.gateway(i));
    let mut listen = [SocketAddr::new(loopback, 0); 3];
    let mut client_listen = listen;
    for i in 0..3 {
        // On a host of its own a node can take fixed ports.
        let (p, c) = match hosts {
            Some(_) => (7000, 7100),
            None => (free_port(loopback)?, free_port(loopback)?),
        };
        listen[i] = SocketAddr::new(own(i), p);
        client_listen[i] = SocketAddr::new(own(i), c);
    }
    let mut specs = Vec::new();
    for (dialer, target) in NODE_LINKS {
        specs.push(LinkSpec {
            listen: SocketAddr::new(gateway(dialer), 0),
            egress: SocketAddr::new(gateway(target), 0),
            target: listen[target],
            shape,
        });
    }
    for (i, target) in client_listen.iter().enumerate() {
        specs.push(LinkSpec {
            listen: SocketAddr::new(gateway(i), 0),
            egress: SocketAddr::new(gateway(i), 0),
            target: *target,
            shape,
        });
    }
    let relay = Relay::start(&specs)?;
    let mut dial = [listen; 3];
    for (dialer, target) in NODE_LINKS {
        dial[dialer][target] = relay.listen_addr(node_link(dialer, target))?;
    }
    let mut client_dial = client_listen;
    for (i, address) in client_dial.iter_mut().enumerate() {
        *address = relay.listen_addr(client_link(i))?;
    }
    let launchers = match &hosts {
        Some(h) => [h.launcher(0), h.launcher(1), h.launcher(2)],
        None => Default::default(),
    };
    Ok((
        Network {
            relay,
            placement: Placement {
                listen,
                client_listen,
                dial,
                client_dial,
                launchers,
            },
            hosts,
        },
        fallback,
    ))
}
