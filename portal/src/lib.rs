//! The triad web portal: the approvers' and requesters' view of a
//! deployment, served as plain HTML pages by one small HTTP server.
//!
//! # What this crate owns
//!
//! - **Sign-in by signed challenge** ([`signin`]): no passwords. The
//!   browser reads the user's triad key file locally, signs a single-use
//!   challenge with WebCrypto, and sends the signature; the portal checks
//!   it and finds the key in the deployment's roles document, which it
//!   loads as a node does, verified against the three operators' keys
//!   ([`config`]). Sessions are random tokens in `HttpOnly`,
//!   `SameSite=Strict` cookies.
//! - **Approvals** ([`recordings`]): the recordings directory, where
//!   analysts' `.recording` files wait; approvers read each step, approve
//!   (their browser signs the exact approval bytes the portal shows it,
//!   and the portal writes the `.approved` file `triad approve` would) or
//!   reject with a reason; every decision is appended to a log.
//! - **Job request pages** ([`jobs`]): rendered from the nodes' job
//!   records, fetched with the client library under the portal's own key
//!   ([`nodes`]).
//! - The pages ([`pages`], [`html`]) and the server ([`server`]).
//!
//! # What it must not do
//!
//! - **See a private key.** Users' keys stay in their browsers: only
//!   public keys and signatures reach the portal. The portal's own key
//!   signs nothing but its requests for job records; it can neither sign
//!   in as a user nor approve anything.
//! - **Hold a secret value.** Job records carry states, times, handles and
//!   digests of what was sealed to the requester, and the pages show no
//!   more; dummy-data outputs in recordings are what the analyst's client
//!   already put in the file.
//! - **Decide what the nodes decide.** An approval the portal writes is
//!   checked again by every node (roles, table policies, revocations,
//!   expiry); the portal adds no authority of its own.
//! - **Trust what it renders.** Every value from a file, a user or a node
//!   is HTML-escaped, and the pages forbid inline scripts.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod html;
pub mod jobs;
pub mod nodes;
pub mod pages;
pub mod recordings;
pub mod server;
pub mod signin;

pub use config::Config;
pub use error::PortalError;
pub use server::{Portal, RunningPortal, serve, spawn};
