//! Answering a peer operator's status probe ([`Body::Status`](crate::api::Body::Status)): which
//! versions this node runs and which roles document it serves, so that
//! `triad-node check` on another host can compare them before the mesh
//! would refuse.
//!
//! The probe is signed with one of the three operator keys (the keys that
//! sign the roles document), not a user's key; it is checked like a
//! request (signature, deployment, age, nonce) but never reaches the
//! engine, so a node answers it whether or not the mesh is up. It is
//! answered before the API version check: telling the prober which
//! version this node speaks is the point.

use triad_auth::SignedRequest;

use super::{Shared, auth_error, check_signed, refuse};
use crate::api::{self, ApiError, CallHeader, ErrorKind, NodeStatus, Reply};

/// The reply to a status probe carried by `header`.
pub(super) fn answer(shared: &Shared, header: &CallHeader) -> Result<Reply, ApiError> {
    let config = &shared.config;
    let request = SignedRequest::from_bytes(&header.request).map_err(auth_error)?;
    if request.request.deployment != config.deployment {
        return Err(refuse(
            ErrorKind::Unauthorized,
            format!(
                "request for deployment {}, this node serves {}",
                request.request.deployment, config.deployment
            ),
        ));
    }
    let signer = request.request.signer;
    if !shared.operators.contains(&signer) {
        return Err(refuse(
            ErrorKind::Unauthorized,
            format!(
                "a status probe is signed with an operator key; {} is none of the three",
                signer.fingerprint()
            ),
        ));
    }
    check_signed(shared, header.body.digest(), &request)?;
    tracing::info!(operator = %signer.fingerprint(), "status probe answered");
    Ok(Reply::Status(NodeStatus {
        // PartyId indexes are 0..=2.
        node: config.party.index() as u8,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        api_version: api::API_VERSION,
        net_protocol_version: triad_net::NET_PROTOCOL_VERSION,
        roles_serial: config.roles.serial(),
        roles_digest: config.roles.digest(),
        mesh_up: shared.mesh_up.load(std::sync::atomic::Ordering::SeqCst),
        waiting_to_be_rebuilt: super::recovery::is_marked(&config.data_dir),
    }))
}
