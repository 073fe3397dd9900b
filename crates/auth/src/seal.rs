//! Result sealing: a node encrypts its result shares to the x25519 key the
//! client put into its signed request, so that only that client can read
//! them, and only in the context of that request.
//!
//! # Construction
//!
//! For each sealed message the node draws a fresh ephemeral x25519 secret
//! `e` from the OS generator and computes
//!
//! ```text
//! shared = X25519(e, recipient)
//! key    = BLAKE3-derive_key("triad/seal/v1",
//!                            shared || e_public || recipient || context)
//! sealed = (e_public, ChaCha20-Poly1305(key, nonce = 0, plaintext))
//! ```
//!
//! Everything before `context` has a fixed width, so the hashed bytes are
//! unambiguous. Hashing in both public keys binds the key to this exchange
//! (the recommendation of RFC 7748 section 6.1 and what HPKE does), and the
//! context binds it to one request and one node ([`ResultContext`]): a
//! sealed result moved to another request, node or output no longer opens.
//!
//! # Why a zero nonce is safe
//!
//! ChaCha20-Poly1305 fails only if one key encrypts two messages under one
//! nonce. Here every key encrypts exactly one message: it comes from an
//! ephemeral secret drawn for this seal alone and dropped (zeroized) right
//! after, and the ephemeral public key is hashed into it too, so two seals
//! share a key only if the OS generator repeats 256 bits. With one message
//! per key the nonce has nothing to distinguish, and a constant is as good
//! as any: HPKE's single-shot mode and libsodium's sealed boxes rely on the
//! same argument.
//!
//! # What sealing does not do
//!
//! It does not authenticate the sender: the result key travels in the
//! request, so anyone who sees the request can seal something to it. A
//! client must take sealed results only from a channel authenticated to the
//! node (and it checks that the replicated components agree). Nor does it
//! hide the plaintext's length.

use std::fmt;

use chacha20poly1305::aead::Aead;
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit};
use serde::{Deserialize, Serialize};
use x25519_dalek::{PublicKey, SharedSecret, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use crate::bytes::{hex_from_str, public_bytes};
use crate::error::AuthError;
use crate::request::RequestDigest;

/// The BLAKE3 key-derivation context of sealing keys. A new construction
/// gets a new context.
pub const SEAL_DOMAIN: &str = "triad/seal/v1";

/// Prefix of [`ResultContext::to_bytes`], so that a result context can
/// never equal a context some other use of [`seal`] builds.
const RESULT_CONTEXT_LABEL: &[u8; 15] = b"triad/result/v1";

/// An x25519 public key (32 bytes): a client's result key, or a node's
/// ephemeral sealing key. Public.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct X25519Public([u8; 32]);

public_bytes!(X25519Public, 32);
hex_from_str!(X25519Public, "x25519 public key");

/// The client's secret result key, one per request: its public half goes
/// into the signed request, and it opens what the three nodes seal to it.
/// Reusable (the client opens one message per node with it), zeroized on
/// drop, never serialised; `Debug` shows the public half only.
pub struct ResultSecret {
    secret: StaticSecret,
}

impl fmt::Debug for ResultSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResultSecret")
            .field("public", &self.public())
            .finish_non_exhaustive()
    }
}

impl ResultSecret {
    /// A fresh key from the OS generator.
    pub fn generate() -> Result<ResultSecret, AuthError> {
        Ok(ResultSecret {
            secret: random_secret()?,
        })
    }

    /// The public half, for [`Request::result_key`](crate::Request::result_key).
    pub fn public(&self) -> X25519Public {
        X25519Public(PublicKey::from(&self.secret).to_bytes())
    }
}

/// An encrypted message for the holder of one [`ResultSecret`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The sender's ephemeral x25519 public key, single-use.
    pub ephemeral_public: X25519Public,
    /// ChaCha20-Poly1305 ciphertext and its 16-byte tag.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("ephemeral_public", &self.ephemeral_public)
            .field("ciphertext_bytes", &self.ciphertext.len())
            .finish()
    }
}

/// What a sealed result is bound to: it opens only with the same context,
/// so a result cannot be passed off as another request's, another node's,
/// or another output of the same request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResultContext {
    /// The digest of the signed request the result answers.
    pub request: RequestDigest,
    /// The index of the node (party) that sealed it.
    pub node: u32,
    /// Which of the request's results this is, from 0, for requests that
    /// reveal more than one.
    pub output: u32,
}

impl ResultContext {
    /// The context bytes for [`seal`] and [`open`]: a label, the request
    /// digest, then node and output as u32 little-endian.
    pub fn to_bytes(&self) -> [u8; 55] {
        let mut bytes = [0u8; 55];
        bytes[..15].copy_from_slice(RESULT_CONTEXT_LABEL);
        bytes[15..47].copy_from_slice(self.request.as_bytes());
        bytes[47..51].copy_from_slice(&self.node.to_le_bytes());
        bytes[51..].copy_from_slice(&self.output.to_le_bytes());
        bytes
    }
}

/// Encrypts `plaintext` for the holder of `recipient`'s secret, bound to
/// `context` (usually [`ResultContext::to_bytes`]). Refuses the low-order
/// recipient keys, to which nothing can be sealed secretly.
pub fn seal(
    recipient: &X25519Public,
    context: &[u8],
    plaintext: &[u8],
) -> Result<Sealed, AuthError> {
    let ephemeral = random_secret()?;
    let ephemeral_public = X25519Public(PublicKey::from(&ephemeral).to_bytes());
    let shared = ephemeral.diffie_hellman(&PublicKey::from(recipient.0));
    drop(ephemeral);
    if !shared.was_contributory() {
        return Err(AuthError::WeakResultKey { key: *recipient });
    }
    let ciphertext = cipher(&shared, &ephemeral_public, recipient, context)
        .encrypt(&zero_nonce(), plaintext)
        .map_err(|_| AuthError::SealTooLong {
            bytes: plaintext.len(),
        })?;
    Ok(Sealed {
        ephemeral_public,
        ciphertext,
    })
}

/// Refuses the low-order result keys [`seal`] would refuse, so that a node
/// can tell before it runs a request, not after. Clamped x25519 scalars are
/// multiples of the cofactor, so every secret gives these points an all-zero
/// shared secret: one fixed secret is enough to test.
pub(crate) fn check_result_key(key: &X25519Public) -> Result<(), AuthError> {
    let probe = StaticSecret::from([1; 32]);
    if probe
        .diffie_hellman(&PublicKey::from(key.0))
        .was_contributory()
    {
        Ok(())
    } else {
        Err(AuthError::WeakResultKey { key: *key })
    }
}

/// Decrypts a [`Sealed`] message with the recipient's secret and the
/// context it was sealed with. Any mismatch (another key, another context,
/// a changed byte) is [`AuthError::SealOpen`], deliberately without saying
/// which.
pub fn open(secret: &ResultSecret, context: &[u8], sealed: &Sealed) -> Result<Vec<u8>, AuthError> {
    let shared = secret
        .secret
        .diffie_hellman(&PublicKey::from(sealed.ephemeral_public.0));
    // A low-order ephemeral key makes the shared secret a constant anyone
    // can compute: no honest sender uses one.
    if !shared.was_contributory() {
        return Err(AuthError::SealOpen);
    }
    cipher(&shared, &sealed.ephemeral_public, &secret.public(), context)
        .decrypt(&zero_nonce(), sealed.ciphertext.as_slice())
        .map_err(|_| AuthError::SealOpen)
}

/// The single-use cipher for one exchange (see the module documentation).
fn cipher(
    shared: &SharedSecret,
    ephemeral_public: &X25519Public,
    recipient: &X25519Public,
    context: &[u8],
) -> ChaCha20Poly1305 {
    let mut hasher = blake3::Hasher::new_derive_key(SEAL_DOMAIN);
    hasher.update(shared.as_bytes());
    hasher.update(&ephemeral_public.0);
    hasher.update(&recipient.0);
    hasher.update(context);
    let key = Zeroizing::new(hasher.finalize());
    // The hasher's state was computed from the shared secret too.
    hasher.zeroize();
    ChaCha20Poly1305::new(Key::from_slice(key.as_bytes()))
}

/// See "Why a zero nonce is safe" in the module documentation.
fn zero_nonce() -> chacha20poly1305::Nonce {
    chacha20poly1305::Nonce::default()
}

fn random_secret() -> Result<StaticSecret, AuthError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut()).map_err(AuthError::Randomness)?;
    Ok(StaticSecret::from(*bytes))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn context(node: u32) -> [u8; 55] {
        ResultContext {
            request: RequestDigest::from_bytes([8; 32]),
            node,
            output: 0,
        }
        .to_bytes()
    }

    #[test]
    fn seal_and_open_round_trip() {
        let secret = ResultSecret::generate().unwrap();
        for plaintext in [&b""[..], b"x", &[0xab; 5000]] {
            let sealed = seal(&secret.public(), &context(1), plaintext).unwrap();
            assert_eq!(sealed.ciphertext.len(), plaintext.len() + 16);
            assert_eq!(open(&secret, &context(1), &sealed).unwrap(), plaintext);
        }
    }

    /// A message sealed by a separate implementation of the construction in
    /// the module documentation (Python: `cryptography` for x25519 and
    /// ChaCha20-Poly1305, a reference BLAKE3 for `derive_key`), with fixed
    /// secrets 0x11.. (recipient) and 0x22.. (ephemeral).
    #[test]
    fn opens_a_message_sealed_by_an_independent_implementation() {
        let secret = ResultSecret {
            secret: StaticSecret::from([0x11; 32]),
        };
        let context = ResultContext {
            request: RequestDigest::from_bytes([8; 32]),
            node: 2,
            output: 1,
        }
        .to_bytes();
        let sealed = Sealed {
            ephemeral_public: "0faa684ed28867b97f4a6a2dee5df8ce974e76b7018e3f22a1c4cf2678570f20"
                .parse()
                .unwrap(),
            ciphertext: crate::bytes::decode_hex::<28>(
                "d86d84732832a026c26349be829c8044a623520e74516e2f26db135d",
            )
            .unwrap()
            .to_vec(),
        };
        assert_eq!(open(&secret, &context, &sealed).unwrap(), b"result share");
    }

    #[test]
    fn each_seal_uses_a_fresh_key() {
        let secret = ResultSecret::generate().unwrap();
        let a = seal(&secret.public(), &context(0), b"same").unwrap();
        let b = seal(&secret.public(), &context(0), b"same").unwrap();
        assert_ne!(a.ephemeral_public, b.ephemeral_public);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn the_wrong_key_does_not_open() {
        let secret = ResultSecret::generate().unwrap();
        let other = ResultSecret::generate().unwrap();
        let sealed = seal(&secret.public(), &context(0), b"share").unwrap();
        assert!(matches!(
            open(&other, &context(0), &sealed),
            Err(AuthError::SealOpen)
        ));
    }

    #[test]
    fn tampering_anywhere_does_not_open() {
        let secret = ResultSecret::generate().unwrap();
        let sealed = seal(&secret.public(), &context(0), b"a result share").unwrap();
        for index in 0..sealed.ciphertext.len() {
            let mut tampered = sealed.clone();
            tampered.ciphertext[index] ^= 0x01;
            assert!(open(&secret, &context(0), &tampered).is_err(), "{index}");
        }
        let mut truncated = sealed.clone();
        truncated.ciphertext.pop();
        assert!(open(&secret, &context(0), &truncated).is_err());
        let mut ephemeral = *sealed.ephemeral_public.as_bytes();
        ephemeral[0] ^= 0x01;
        let swapped = Sealed {
            ephemeral_public: X25519Public::from_bytes(ephemeral),
            ..sealed
        };
        assert!(open(&secret, &context(0), &swapped).is_err());
    }

    #[test]
    fn another_context_does_not_open() {
        let secret = ResultSecret::generate().unwrap();
        let sealed = seal(&secret.public(), &context(0), b"share").unwrap();
        assert!(matches!(
            open(&secret, &context(1), &sealed),
            Err(AuthError::SealOpen)
        ));
        let another_request = ResultContext {
            request: RequestDigest::from_bytes([9; 32]),
            node: 0,
            output: 0,
        };
        assert!(open(&secret, &another_request.to_bytes(), &sealed).is_err());
        let another_output = ResultContext {
            output: 1,
            ..another_request
        };
        assert!(open(&secret, &another_output.to_bytes(), &sealed).is_err());
        assert!(open(&secret, b"", &sealed).is_err());
    }

    #[test]
    fn low_order_keys_are_refused() {
        // The all-zero point has small order: the shared secret would be
        // zero whatever the ephemeral secret.
        let weak = X25519Public::from_bytes([0; 32]);
        assert!(matches!(
            seal(&weak, b"", b"x"),
            Err(AuthError::WeakResultKey { .. })
        ));
        assert!(check_result_key(&weak).is_err());
        // u = 0, 1 and p - 1 (p = 2^255 - 19) have small order, on the curve
        // or on its twist.
        let mut minus_one = [0xff; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        for u in [0u8, 1] {
            let mut bytes = [0u8; 32];
            bytes[0] = u;
            assert!(check_result_key(&X25519Public::from_bytes(bytes)).is_err());
        }
        assert!(check_result_key(&X25519Public::from_bytes(minus_one)).is_err());
        let good = ResultSecret::generate().unwrap().public();
        assert!(check_result_key(&good).is_ok());
        let secret = ResultSecret::generate().unwrap();
        let forged = Sealed {
            ephemeral_public: weak,
            ciphertext: vec![0; 32],
        };
        assert!(matches!(
            open(&secret, b"", &forged),
            Err(AuthError::SealOpen)
        ));
    }

    #[test]
    fn debug_shows_no_secret() {
        let secret = ResultSecret::generate().unwrap();
        let shown = format!("{secret:?}");
        assert!(shown.contains(&secret.public().to_string()), "{shown}");
        let secret_hex = crate::bytes::encode_hex(&secret.secret.to_bytes()[..8]);
        assert!(!shown.contains(&secret_hex), "{shown}");
    }

    proptest! {
        #[test]
        fn opening_arbitrary_bytes_never_panics(
            ephemeral in any::<[u8; 32]>(),
            ciphertext in proptest::collection::vec(any::<u8>(), 0..100),
            context in proptest::collection::vec(any::<u8>(), 0..60),
        ) {
            let secret = ResultSecret::generate().unwrap();
            let sealed = Sealed {
                ephemeral_public: X25519Public::from_bytes(ephemeral),
                ciphertext,
            };
            prop_assert!(open(&secret, &context, &sealed).is_err());
        }
    }
}
