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
//! - The DataFrame API ([`frame`], [`expr`]): secret frames built like
//!   polars or crandas frames (`filter`, `merge`, `with_column`, `select`,
//!   thresholded aggregates, group-bys, `store`), typed here with the plan
//!   checker before they are sent as query plans, and the decoding of what
//!   the nodes reveal ([`answer`]).
//! - The seed notebook's analysis ([`seed`]), shared by `triad demo` and
//!   the `seed_analysis` example.
//!
//! # What it must not do
//!
//! - Send any node more than its two components of a value, or log a
//!   value, share, seed or key.
//! - Trust one node's answer: handles are recomputed here, and every
//!   result component is compared between the two nodes holding it.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod answer;
pub mod cluster;
pub mod connection;
pub mod error;
pub mod expr;
pub mod frame;
pub mod jobs;
pub mod remote;
pub mod schema;
pub mod script;
pub mod seed;
pub mod table;

pub use answer::Value;
pub use connection::ConnectionFile;
pub use error::ClientError;
pub use frame::{GroupBy, SecretFrame};
pub use remote::{Client, QueryReply, UploadOptions, Uploaded};
pub use triad_node::store::Handle;

/// What an analysis script needs: `use triad_client::prelude::*;`.
pub mod prelude {
    pub use crate::answer::Value;
    pub use crate::error::ClientError;
    pub use crate::expr::{
        Expr, Predicate, col, date_days, lit, lit_bool, lit_date, lit_decimal, lit_fixed,
    };
    pub use crate::frame::{Aggregation, GroupBy, How, SecretFrame, agg};
    pub use crate::remote::Client;
    pub use triad_node::store::Handle;
}
