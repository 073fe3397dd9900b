//! Test tooling: the network between three triad nodes on one machine.
//!
//! [`Hosts`] puts each node in its own network namespace, joined to the
//! caller's namespace by a veth pair, so node traffic really crosses
//! interfaces. [`Relay`] forwards UDP between the nodes (and between
//! clients and nodes) with a configured one-way delay, a bandwidth cap and
//! a bounded queue, and can cut a link or slow it while traffic flows; the
//! kernels this runs on have no `netem`.
//!
//! This crate is for benchmarks and fault tests. Nodes and clients must not
//! depend on it: nothing here authenticates or encrypts anything, and the
//! relay sees every datagram it forwards.

mod hosts;
mod relay;

pub use hosts::{Hosts, HostsError};
pub use relay::{LinkSpec, Relay, RelayError, RelayReport, Shape};
