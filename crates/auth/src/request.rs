//! Requests: what a client asks the nodes to do, signed over a canonical
//! encoding (laid out in the crate documentation).

use std::fmt;

use bincode::config::{Configuration, Fixint, LittleEndian, NoLimit};
use serde::{Deserialize, Serialize};

use crate::bytes::{hex_from_str, public_bytes};
use crate::error::AuthError;
use crate::key::{UserKey, UserPublicKey};
use crate::seal::X25519Public;

/// The request format this build speaks; the first field of every request.
/// Changing the encoding or the meaning of a field means a new version
/// (and a new [`REQUEST_DOMAIN`]).
pub const REQUEST_VERSION: u32 = 1;

/// Prefixed to the encoded request before signing, so that a request
/// signature can never be mistaken for a signature over anything else a
/// user key signs (an approval, a users document).
pub const REQUEST_DOMAIN: &[u8] = b"triad/request/v1";

/// The longest encoded [`SignedRequest`]: a request with an approval (197
/// bytes) and its signature (64). Longer input is refused before decoding.
pub const REQUEST_BYTES_MAX: usize = 197 + 64;

/// bincode's standard configuration with fixed-width integers: see the
/// crate documentation for the layout this gives.
const ENCODING: Configuration<LittleEndian, Fixint, NoLimit> =
    bincode::config::standard().with_fixed_int_encoding();

/// Which namespace of the deployment a request runs in, signed so that a
/// design-mode request cannot be replayed as an authorized one.
///
/// The order of the variants is part of the signed encoding (variant index
/// as u32): design is 0, authorized is 1. Only append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Unapproved queries on dummy tables only.
    Design,
    /// A step of an approved script, on production tables.
    Authorized,
}

/// Names one deployment (one set of three nodes and their users), so that
/// a request signed for one deployment is refused by every other.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeploymentId([u8; 32]);

public_bytes!(DeploymentId, 32);
hex_from_str!(DeploymentId, "deployment id");

/// A 32-byte BLAKE3 digest of canonical bytes: a plan, a command, an
/// approval.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

public_bytes!(Digest, 32);
hex_from_str!(Digest, "digest");

impl Digest {
    /// The BLAKE3 digest of `bytes`. The bytes must be a canonical encoding
    /// that says what they are (a plan or which command), since the digest
    /// alone does not.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }
}

/// The digest of a request: BLAKE3 of exactly the bytes its signature
/// covers. Nodes compare it among themselves before executing, and bind
/// sealed results to it ([`ResultContext`](crate::ResultContext)).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestDigest([u8; 32]);

public_bytes!(RequestDigest, 32);
hex_from_str!(RequestDigest, "request digest");

/// 16 random bytes that make each request unique, so that the nodes can
/// refuse a replay ([`NonceStore`](crate::NonceStore)). 128 bits make a
/// collision between a signer's honest requests negligible.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nonce([u8; 16]);

public_bytes!(Nonce, 16);
hex_from_str!(Nonce, "nonce");

impl Nonce {
    /// A fresh nonce from the OS generator.
    pub fn generate() -> Result<Nonce, AuthError> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(AuthError::Randomness)?;
        Ok(Nonce(nonce))
    }
}

/// An ed25519 signature (64 bytes). Public.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; 64]);

public_bytes!(Signature, 64);

/// Which approved script a request runs, and which step of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ApprovalStep {
    /// Digest of the `.approved` file's canonical encoding, so that the
    /// approval a node checks is the one the analyst signed for.
    pub approval: Digest,
    /// The step's index in the script, from 0: nodes run a script's steps
    /// in order only.
    pub step: u32,
}

/// What a client asks the nodes to do. Every field is signed; the field
/// order is the encoding's order and must not change within a version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Request {
    /// The format version, [`REQUEST_VERSION`]; first, so that a future
    /// decoder can tell formats apart before anything else.
    pub version: u32,
    /// The deployment the request is for; nodes refuse any other.
    pub deployment: DeploymentId,
    /// Design (dummy tables) or authorized (production tables).
    pub mode: Mode,
    /// Digest of the canonical plan or command the request carries; the
    /// nodes recompute it from the bytes they receive.
    pub body: Digest,
    /// The approval and step this request claims to run, for authorized
    /// requests.
    pub approval: Option<ApprovalStep>,
    /// Makes the request unique, against replay.
    pub nonce: Nonce,
    /// When the client issued the request, in unix seconds; bounds how long
    /// its nonce must be remembered.
    pub issued_at: u64,
    /// The client's fresh x25519 key for this request: nodes seal result
    /// shares to it, so only this client can read them.
    pub result_key: X25519Public,
    /// Who signs the request. Part of the signed bytes, so that a signature
    /// cannot be claimed for another key.
    pub signer: UserPublicKey,
}

impl Request {
    /// The exact bytes a signature covers: [`REQUEST_DOMAIN`] followed by
    /// the canonical encoding.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(REQUEST_DOMAIN.len() + REQUEST_BYTES_MAX);
        bytes.extend_from_slice(REQUEST_DOMAIN);
        bincode::serde::encode_into_std_write(self, &mut bytes, ENCODING)
            // Every field is fixed-size or an option of fixed-size fields,
            // all of which bincode's serde encoder supports, and writing to
            // a Vec cannot fail: encoding a request never fails.
            .expect("a request always encodes");
        bytes
    }

    /// BLAKE3 of [`Request::signed_bytes`].
    pub fn digest(&self) -> RequestDigest {
        RequestDigest(*blake3::hash(&self.signed_bytes()).as_bytes())
    }

    /// Signs the request. Refuses a request of another version than this
    /// build's or one that names another signer than `key`.
    pub fn sign(self, key: &UserKey) -> Result<SignedRequest, AuthError> {
        check_version(self.version)?;
        let public = key.public();
        if self.signer != public {
            return Err(AuthError::SignerMismatch {
                named: self.signer,
                key: public,
            });
        }
        let signature = key.sign(&self.signed_bytes());
        Ok(SignedRequest {
            request: self,
            signature,
        })
    }
}

/// A request and its sender's signature: what travels from the client to
/// each node. Decoding one does not verify it; call
/// [`SignedRequest::verify`] (or let
/// [`NonceStore::check_and_record`](crate::NonceStore::check_and_record) do
/// it).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignedRequest {
    /// The request.
    pub request: Request,
    /// ed25519 signature by `request.signer` over the request's
    /// [`signed_bytes`](Request::signed_bytes).
    pub signature: Signature,
}

impl fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRequest")
            .field("digest", &self.digest())
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

impl SignedRequest {
    /// Checks that the request is of this build's version, that its
    /// signature verifies under the key it names, with ed25519's strict
    /// rules (`verify_strict`: canonical encodings only, no small-order
    /// keys) so that no second valid signature can be made from the first,
    /// and that its result key is one results can be sealed to.
    pub fn verify(&self) -> Result<(), AuthError> {
        check_version(self.request.version)?;
        let key = self.request.signer.verifying_key()?;
        let signature = ed25519_dalek::Signature::from_bytes(self.signature.as_bytes());
        key.verify_strict(&self.request.signed_bytes(), &signature)
            .map_err(|_| AuthError::BadSignature {
                signer: self.request.signer,
            })?;
        crate::seal::check_result_key(&self.request.result_key)
    }

    /// The request's digest ([`Request::digest`]). The signature is not
    /// part of it: the nodes must agree on what was signed and by whom (the
    /// signer is in the signed bytes); strict verification stops anyone but
    /// the signer from making a second valid signature, and a second one
    /// from the signer would authorize the same request.
    pub fn digest(&self) -> RequestDigest {
        self.request.digest()
    }

    /// The canonical encoding of the request followed by the signature (no
    /// domain prefix): what a client sends.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(REQUEST_BYTES_MAX);
        bincode::serde::encode_into_std_write(self, &mut bytes, ENCODING)
            // As in `Request::signed_bytes`, plus 64 fixed bytes.
            .expect("a signed request always encodes");
        bytes
    }

    /// Decodes [`SignedRequest::to_bytes`], strictly: any input this
    /// accepts re-encodes to the same bytes. Does not verify the signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<SignedRequest, AuthError> {
        if bytes.len() > REQUEST_BYTES_MAX {
            return Err(AuthError::RequestTooLong {
                bytes: bytes.len(),
                bytes_max: REQUEST_BYTES_MAX,
            });
        }
        let (request, read) = bincode::serde::decode_from_slice::<SignedRequest, _>(
            bytes,
            ENCODING.with_limit::<REQUEST_BYTES_MAX>(),
        )
        .map_err(AuthError::RequestDecode)?;
        if read != bytes.len() {
            return Err(AuthError::RequestTrailingBytes {
                trailing: bytes.len() - read,
            });
        }
        Ok(request)
    }
}

fn check_version(version: u32) -> Result<(), AuthError> {
    if version == REQUEST_VERSION {
        Ok(())
    } else {
        Err(AuthError::RequestVersion {
            expected: REQUEST_VERSION,
            actual: version,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::bytes::encode_hex;

    /// A request with every field fixed, signed by a fixed key.
    fn golden() -> SignedRequest {
        golden_with(true)
    }

    fn golden_with(approval: bool) -> SignedRequest {
        let key = UserKey::from_seed(&[7; 32]);
        Request {
            version: REQUEST_VERSION,
            deployment: DeploymentId([1; 32]),
            mode: Mode::Authorized,
            body: Digest([2; 32]),
            approval: approval.then_some(ApprovalStep {
                approval: Digest([3; 32]),
                step: 5,
            }),
            nonce: Nonce([4; 16]),
            issued_at: 1_700_000_000,
            result_key: X25519Public::from_bytes([6; 32]),
            signer: key.public(),
        }
        .sign(&key)
        .unwrap()
    }

    fn request_for(key: &UserKey) -> Request {
        Request {
            version: REQUEST_VERSION,
            deployment: DeploymentId([1; 32]),
            mode: Mode::Design,
            body: Digest::of(b"plan"),
            approval: None,
            nonce: Nonce::generate().unwrap(),
            issued_at: 1_700_000_000,
            result_key: X25519Public::from_bytes([6; 32]),
            signer: key.public(),
        }
    }

    /// The expected bytes are written out from the layout table in the
    /// crate documentation; the signer, digest and signature were computed
    /// independently (Python `cryptography` for ed25519, a reference BLAKE3).
    #[test]
    fn canonical_encoding_is_stable() {
        let signed = golden();
        let bytes = signed.request.signed_bytes();
        let mut expected = encode_hex(REQUEST_DOMAIN);
        expected += "01000000"; // version
        expected += &"01".repeat(32); // deployment
        expected += "01000000"; // mode: authorized
        expected += &"02".repeat(32); // body
        expected += "01"; // approval: some
        expected += &"03".repeat(32); // approval digest
        expected += "05000000"; // step
        expected += &"04".repeat(16); // nonce
        expected += "00f1536500000000"; // issued_at 1_700_000_000
        expected += &"06".repeat(32); // result key
        expected += "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"; // signer
        assert_eq!(encode_hex(&bytes), expected);
        assert_eq!(bytes.len(), REQUEST_DOMAIN.len() + 197);
        assert_eq!(
            signed.digest().to_string(),
            "1390b48760488c2039941b08a691af80454d41e73fae1fb26a00d5d6a72cd4a5"
        );
        assert_eq!(
            signed.signature.to_string(),
            "a0b1fe7f1778ed1d0a3173c207b0afb7562d1aacbe465e68a7af85a552c6760c\
             70f7074060605766662666e6e39a2a1e52ad3793aa06e10f28eee4354ba17c0c"
        );
        // The wire form is the encoding without the prefix, then the
        // signature.
        let wire = signed.to_bytes();
        assert_eq!(&wire[..197], &bytes[REQUEST_DOMAIN.len()..]);
        assert_eq!(&wire[197..], signed.signature.as_bytes());
        assert_eq!(wire.len(), REQUEST_BYTES_MAX);
    }

    #[test]
    fn design_mode_without_approval_encodes_as_documented() {
        let key = UserKey::from_seed(&[7; 32]);
        let request = request_for(&key);
        let bytes = request.signed_bytes();
        let body = &bytes[REQUEST_DOMAIN.len()..];
        assert_eq!(body.len(), 161);
        assert_eq!(&body[36..40], &[0, 0, 0, 0], "mode design is 0");
        assert_eq!(body[72], 0, "no approval");
    }

    #[test]
    fn sign_verify_round_trip_through_bytes() {
        let key = UserKey::generate().unwrap();
        let signed = request_for(&key).sign(&key).unwrap();
        signed.verify().unwrap();
        let decoded = SignedRequest::from_bytes(&signed.to_bytes()).unwrap();
        assert_eq!(decoded, signed);
        decoded.verify().unwrap();
        assert_eq!(decoded.digest(), signed.digest());
    }

    #[test]
    fn any_changed_field_breaks_the_signature() {
        let key = UserKey::generate().unwrap();
        let signed = request_for(&key).sign(&key).unwrap();
        let changes: [fn(&mut Request); 7] = [
            |r| r.deployment = DeploymentId([9; 32]),
            |r| r.mode = Mode::Authorized,
            |r| r.body = Digest::of(b"another plan"),
            |r| {
                r.approval = Some(ApprovalStep {
                    approval: Digest([0; 32]),
                    step: 0,
                })
            },
            |r| r.nonce = Nonce([0; 16]),
            |r| r.issued_at += 1,
            |r| r.result_key = X25519Public::from_bytes([7; 32]),
        ];
        for change in changes {
            let mut tampered = signed.clone();
            change(&mut tampered.request);
            assert_ne!(tampered.digest(), signed.digest());
            let error = tampered.verify().unwrap_err();
            assert!(matches!(error, AuthError::BadSignature { .. }), "{error}");
        }
        // Claiming another signer: the signature is not theirs.
        let mut claimed = signed.clone();
        claimed.request.signer = UserKey::generate().unwrap().public();
        assert!(matches!(
            claimed.verify(),
            Err(AuthError::BadSignature { .. })
        ));
        // A flipped signature bit.
        let mut flipped = signed.clone();
        let mut signature = *flipped.signature.as_bytes();
        signature[10] ^= 1;
        flipped.signature = Signature::from_bytes(signature);
        assert!(matches!(
            flipped.verify(),
            Err(AuthError::BadSignature { .. })
        ));
    }

    #[test]
    fn sign_refuses_another_signer_and_versions() {
        let key = UserKey::generate().unwrap();
        let other = UserKey::generate().unwrap();
        let error = request_for(&other).sign(&key).unwrap_err();
        assert!(matches!(error, AuthError::SignerMismatch { .. }), "{error}");
        let mut future = request_for(&key);
        future.version = 2;
        assert!(matches!(
            future.clone().sign(&key),
            Err(AuthError::RequestVersion {
                expected: 1,
                actual: 2
            })
        ));
        let mut signed = request_for(&key).sign(&key).unwrap();
        signed.request.version = 2;
        assert!(matches!(
            signed.verify(),
            Err(AuthError::RequestVersion { .. })
        ));
    }

    #[test]
    fn a_low_order_result_key_is_refused_at_verification() {
        let key = UserKey::generate().unwrap();
        let mut request = request_for(&key);
        request.result_key = X25519Public::from_bytes([0; 32]);
        let signed = request.sign(&key).unwrap();
        assert!(matches!(
            signed.verify(),
            Err(AuthError::WeakResultKey { .. })
        ));
    }

    #[test]
    fn decoding_is_strict() {
        let key = UserKey::generate().unwrap();
        let bytes = request_for(&key).sign(&key).unwrap().to_bytes();
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            SignedRequest::from_bytes(&trailing),
            Err(AuthError::RequestTrailingBytes { trailing: 1 })
        ));
        assert!(matches!(
            SignedRequest::from_bytes(&bytes[..bytes.len() - 1]),
            Err(AuthError::RequestDecode(_))
        ));
        // Option tag 2 and mode 2 do not exist.
        for offset in [36, 72] {
            let mut bad = bytes.clone();
            bad[offset] = 2;
            assert!(matches!(
                SignedRequest::from_bytes(&bad),
                Err(AuthError::RequestDecode(_))
            ));
        }
        assert!(matches!(
            SignedRequest::from_bytes(&[0; REQUEST_BYTES_MAX + 1]),
            Err(AuthError::RequestTooLong { .. })
        ));
    }

    #[test]
    fn json_rendering_uses_hex_and_round_trips() {
        let signed = golden();
        let json = serde_json::to_value(&signed).unwrap();
        assert_eq!(json["request"]["nonce"], "04".repeat(16));
        assert_eq!(json["request"]["mode"], "authorized");
        assert_eq!(json["signature"], signed.signature.to_string());
        let back: SignedRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back, signed);
        // The signed bytes do not depend on the rendering.
        assert_eq!(back.digest(), signed.digest());
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics_and_is_canonical(
            bytes in proptest::collection::vec(any::<u8>(), 0..300)
        ) {
            if let Ok(request) = SignedRequest::from_bytes(&bytes) {
                prop_assert_eq!(request.to_bytes(), bytes);
                let _ = request.verify();
            }
        }

        #[test]
        fn decoding_mutated_requests_never_panics_and_is_canonical(
            flips in proptest::collection::vec((0usize..REQUEST_BYTES_MAX, any::<u8>()), 1..4),
            with_approval in any::<bool>(),
        ) {
            let signed = golden_with(with_approval);
            let mut bytes = signed.to_bytes();
            for (offset, value) in flips {
                if let Some(byte) = bytes.get_mut(offset) {
                    *byte = value;
                }
            }
            if let Ok(request) = SignedRequest::from_bytes(&bytes) {
                prop_assert_eq!(request.to_bytes(), bytes);
                if request != signed {
                    prop_assert!(request.verify().is_err());
                }
            }
        }
    }
}
