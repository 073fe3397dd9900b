//! `SignedRoles::from_toml`: the roles document every node loads, and the
//! file operators pass between each other to sign.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_auth::{SignedRoles, UserPublicKey};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(roles) = SignedRoles::from_toml(text) {
        let _ = roles.document.validate();
        let _ = roles.document.digest();
        let operators = [1u8, 2, 3].map(|b| UserPublicKey::from_bytes([b; 32]));
        let _ = roles.verify(&roles.document.deployment, &operators);
        let _ = roles.to_toml();
    }
});
