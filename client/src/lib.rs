//! The triad client: reads a data owner's table (CSV or Parquet, with
//! polars) against a schema of declared types and ranges, secret-shares it
//! here, and talks to the three nodes over QUIC with their certificates
//! pinned. Results come back sealed to a key that only this client holds
//! and are reconstructed only here.
//!
//! # What this crate owns
//!
//! - The schema file and the table encoding ([`schema`], [`table`]): every
//!   bad cell is refused before anything is sent, naming file, row and
//!   column, never the value.
//! - The connection file ([`connection`]) and the signed requests, dealing
//!   and reconstruction ([`remote`]).
//! - The local three-node cluster of the demo and the tests ([`cluster`]).
//!
//! # What it must not do
//!
//! - Send any node more than its two components of a value, or log a
//!   value, share, seed or key.
//! - Trust one node's answer: handles are recomputed here, and every
//!   result component is compared between the two nodes holding it.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cluster;
pub mod connection;
pub mod error;
pub mod remote;
pub mod schema;
pub mod table;

pub use connection::ConnectionFile;
pub use error::ClientError;
pub use remote::{Client, Uploaded};
