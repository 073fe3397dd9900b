//! Sign-in by signed challenge, and sessions.
//!
//! The portal never sees a private key. To sign in, the browser reads the
//! user's key file locally, imports its ed25519 seed into WebCrypto and
//! signs a challenge the portal issued; the portal checks the signature
//! and looks the public key up in the roles document.
//!
//! A challenge is 32 random bytes from the OS generator with an expiry,
//! answerable once (it is removed when an answer arrives, whatever the
//! outcome). The message signed names the deployment, the challenge and
//! its expiry, and is signed in the domain [`LOGIN_DOMAIN`] with
//! [`UserKey::sign_in_domain`](triad_auth::UserKey::sign_in_domain)'s
//! rule (`domain || message`), so a login signature can never be passed
//! off as an approval, a request or any other signature triad checks. The
//! page receives the exact bytes to sign, domain included, as hex.
//!
//! A session is a random 32-byte token in an `HttpOnly`, `SameSite=Strict`
//! cookie, mapped here (in memory only) to the user's public key. Each
//! request looks the key up in the roles document again, so a user who is
//! not in it, or whose key it revokes, has no session.

use std::collections::HashMap;
use std::sync::Mutex;

use triad_auth::{DeploymentId, Signature, UserPublicKey, VerifiedRoles};

use crate::error::PortalError;

/// The signature domain of portal sign-in challenges. No other domain
/// triad signs in is a prefix of it, nor it of another.
pub const LOGIN_DOMAIN: &str = "triad/portal-login/v1";

/// The most challenges or pending approvals kept at once: a bound on the
/// memory anonymous visitors can make the portal use.
const OUTSTANDING_MAX: usize = 10_000;

/// `N` bytes from the OS generator.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], PortalError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| PortalError::Randomness(e.to_string()))?;
    Ok(bytes)
}

/// Single-use values that expire: sign-in challenges and approvals
/// waiting for their signature.
#[derive(Debug)]
pub struct Expiring<T> {
    entries: Mutex<HashMap<String, (u64, T)>>,
}

impl<T> Default for Expiring<T> {
    fn default() -> Self {
        Expiring {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Expiring<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, T)>> {
        // A panic while holding the lock cannot leave the map half
        // updated (each operation is one insert or remove).
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `value` until `expires_at` under a fresh random id, which it
    /// returns.
    pub fn insert(&self, value: T, now: u64, expires_at: u64) -> Result<String, PortalError> {
        let id = hex::encode(random_bytes::<32>()?);
        let mut entries = self.lock();
        entries.retain(|_, (expiry, _)| *expiry >= now);
        if entries.len() >= OUTSTANDING_MAX {
            return Err(PortalError::Conflict(
                "too many sign-ins or approvals are in progress; try again in a few minutes".into(),
            ));
        }
        entries.insert(id.clone(), (expires_at, value));
        Ok(id)
    }

    /// Removes and returns the value under `id` if it has not expired. An
    /// id is answerable once, whether the answer is accepted or not.
    pub fn take(&self, id: &str, now: u64) -> Result<T, PortalError> {
        match self.lock().remove(id) {
            None => Err(PortalError::BadRequest(
                "this challenge is unknown or was already used: reload the page and try again"
                    .into(),
            )),
            Some((expiry, _)) if expiry < now => Err(PortalError::BadRequest(
                "this challenge expired: reload the page and try again".into(),
            )),
            Some((_, value)) => Ok(value),
        }
    }
}

/// A sign-in challenge: the message the browser signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The message, without the domain.
    pub message: Vec<u8>,
}

impl Challenge {
    /// A fresh challenge for `deployment`, valid until `expires_at`.
    pub fn new(deployment: &DeploymentId, expires_at: u64) -> Result<Challenge, PortalError> {
        let nonce = random_bytes::<32>()?;
        let message = format!(
            "triad portal sign-in\ndeployment {deployment}\nchallenge {}\nexpires {expires_at}\n",
            hex::encode(nonce)
        );
        Ok(Challenge {
            message: message.into_bytes(),
        })
    }

    /// The exact bytes the browser signs, as hex: the domain, then the
    /// message.
    pub fn to_sign_hex(&self) -> String {
        domain_hex(LOGIN_DOMAIN, &self.message)
    }
}

/// `domain || message` as hex: what a browser must sign for a signature
/// that [`UserPublicKey::verify_in_domain`] accepts.
pub fn domain_hex(domain: &str, message: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(domain.len() + message.len());
    bytes.extend_from_slice(domain.as_bytes());
    bytes.extend_from_slice(message);
    hex::encode(bytes)
}

/// Parses a signature sent by a browser: 128 hex digits.
pub fn parse_signature(text: &str) -> Result<[u8; 64], PortalError> {
    let mut bytes = [0u8; 64];
    hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| {
        PortalError::BadRequest("the signature is not 128 hex digits (64 bytes)".into())
    })?;
    Ok(bytes)
}

/// Checks an answer to `challenge` and finds the signer in `roles`.
/// Refusals say why: a key that is revoked, or not in the document, or a
/// signature that does not verify.
pub fn verify_answer(
    challenge: &Challenge,
    public_key: &str,
    signature: &str,
    roles: &VerifiedRoles,
) -> Result<UserPublicKey, PortalError> {
    let key: UserPublicKey = public_key.trim().parse().map_err(|e| {
        PortalError::SignIn(format!("the key file's public key is not usable: {e}"))
    })?;
    let signature = Signature::from_bytes(parse_signature(signature)?);
    key.verify_in_domain(LOGIN_DOMAIN, &challenge.message, &signature)
        .map_err(|_| {
            PortalError::SignIn(
                "the signature does not verify: the key file is damaged, or its public line \
                 is not its secret's"
                    .into(),
            )
        })?;
    if roles.is_key_revoked(&key) {
        return Err(PortalError::SignIn(format!(
            "the key {} has been revoked in the deployment's roles document",
            key.fingerprint()
        )));
    }
    if roles.user(&key).is_none() {
        return Err(PortalError::SignIn(format!(
            "the key {} is not a user of this deployment (it is not in the roles document); \
             ask the operators to add it",
            key.fingerprint()
        )));
    }
    Ok(key)
}

/// The signed-in users, by session token. In memory only: a restarted
/// portal signs everyone out.
#[derive(Debug, Default)]
pub struct Sessions {
    sessions: Expiring<UserPublicKey>,
}

impl Sessions {
    /// A new session for `key`, returning its token.
    pub fn open(
        &self,
        key: UserPublicKey,
        now: u64,
        expires_at: u64,
    ) -> Result<String, PortalError> {
        self.sessions.insert(key, now, expires_at)
    }

    /// The key of the session `token`, if it exists and has not expired.
    pub fn user(&self, token: &str, now: u64) -> Option<UserPublicKey> {
        let entries = self.sessions.lock();
        match entries.get(token) {
            Some((expiry, key)) if *expiry >= now => Some(*key),
            _ => None,
        }
    }

    /// Ends the session `token`.
    pub fn close(&self, token: &str) {
        self.sessions.lock().remove(token);
    }
}

#[cfg(test)]
mod tests {
    use triad_auth::{Role, RoleUser, RolesDocument, SignedRoles, UserKey};

    use super::*;

    fn roles(users: &[(&str, &UserKey)], revoked: &[&UserKey]) -> VerifiedRoles {
        let deployment = DeploymentId::from_bytes([3; 32]);
        let mut document = RolesDocument::new(deployment, 1);
        for (name, key) in users {
            document.users.push(RoleUser {
                name: name.to_string(),
                public_key: key.public(),
                roles: vec![Role::Approver],
            });
        }
        document.revoked_keys = revoked.iter().map(|k| k.public()).collect();
        let operators = [0, 1, 2].map(|_| UserKey::generate().unwrap());
        let mut signed = SignedRoles::unsigned(document);
        for (node, key) in operators.iter().enumerate() {
            signed.sign(node as u8, key);
        }
        signed
            .verify(&deployment, &[0, 1, 2].map(|i| operators[i].public()))
            .unwrap()
    }

    /// What the page's JavaScript does: sign the bytes given as hex.
    fn browser_sign(key: &UserKey, challenge: &Challenge) -> String {
        let bytes = hex::decode(challenge.to_sign_hex()).unwrap();
        let (domain, message) = bytes.split_at(LOGIN_DOMAIN.len());
        assert_eq!(domain, LOGIN_DOMAIN.as_bytes());
        key.sign_in_domain(LOGIN_DOMAIN, message).to_string()
    }

    #[test]
    fn a_known_key_signs_in_and_others_are_refused_with_the_reason() {
        let alice = UserKey::generate().unwrap();
        let mallory = UserKey::generate().unwrap();
        let revoked = UserKey::generate().unwrap();
        let roles = roles(&[("alice", &alice), ("old", &revoked)], &[&revoked]);
        let challenge = Challenge::new(roles.deployment(), 100).unwrap();

        let ok = verify_answer(
            &challenge,
            &alice.public().to_string(),
            &browser_sign(&alice, &challenge),
            &roles,
        )
        .unwrap();
        assert_eq!(ok, alice.public());

        let error = verify_answer(
            &challenge,
            &mallory.public().to_string(),
            &browser_sign(&mallory, &challenge),
            &roles,
        )
        .unwrap_err();
        assert!(error.to_string().contains("not a user"), "{error}");

        let error = verify_answer(
            &challenge,
            &revoked.public().to_string(),
            &browser_sign(&revoked, &challenge),
            &roles,
        )
        .unwrap_err();
        assert!(error.to_string().contains("revoked"), "{error}");

        // Mallory's signature presented with Alice's key.
        let error = verify_answer(
            &challenge,
            &alice.public().to_string(),
            &browser_sign(&mallory, &challenge),
            &roles,
        )
        .unwrap_err();
        assert!(error.to_string().contains("does not verify"), "{error}");

        // A signature on another challenge.
        let other = Challenge::new(roles.deployment(), 100).unwrap();
        assert_ne!(other, challenge);
        assert!(
            verify_answer(
                &other,
                &alice.public().to_string(),
                &browser_sign(&alice, &challenge),
                &roles
            )
            .is_err()
        );
        assert!(verify_answer(&challenge, "zz", "00", &roles).is_err());
    }

    #[test]
    fn challenges_are_single_use_and_expire() {
        let store = Expiring::default();
        let id = store.insert(1u32, 10, 20).unwrap();
        assert_eq!(store.take(&id, 15).unwrap(), 1);
        assert!(store.take(&id, 15).is_err());
        let id = store.insert(2u32, 10, 20).unwrap();
        let error = store.take(&id, 21).unwrap_err();
        assert!(error.to_string().contains("expired"), "{error}");
        assert!(store.take("nonsense", 0).is_err());
    }

    #[test]
    fn sessions_expire_and_close() {
        let sessions = Sessions::default();
        let key = UserKey::generate().unwrap().public();
        let token = sessions.open(key, 0, 100).unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(sessions.user(&token, 50), Some(key));
        assert_eq!(sessions.user(&token, 101), None);
        assert_eq!(sessions.user("other", 50), None);
        sessions.close(&token);
        assert_eq!(sessions.user(&token, 50), None);
    }
}
