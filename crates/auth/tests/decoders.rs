//! Every decoder of outside bytes, fed arbitrary input through the public
//! API: errors, never panics. (The crate's unit tests cover the nonce log
//! and key file parsers directly, with more cases.)

use std::fs;
use std::path::PathBuf;

use proptest::prelude::*;
use triad_auth::{
    DeploymentId, Digest, Nonce, NonceStore, RequestDigest, ResultSecret, Sealed, SignedRequest,
    UserKey, UserPublicKey, X25519Public, open,
};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("triad-auth-fuzz-{name}-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    dir
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn signed_requests_from_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..320)) {
        if let Ok(request) = SignedRequest::from_bytes(&bytes) {
            prop_assert_eq!(request.to_bytes(), bytes);
            let _ = request.verify();
        }
    }

    #[test]
    fn hex_values_from_arbitrary_text(text in "\\PC{0,140}") {
        let _ = text.parse::<UserPublicKey>();
        let _ = text.parse::<X25519Public>();
        let _ = text.parse::<DeploymentId>();
        let _ = text.parse::<Digest>();
        let _ = text.parse::<RequestDigest>();
        let _ = text.parse::<Nonce>();
    }

    #[test]
    fn sealed_results_from_arbitrary_bytes(
        ephemeral in any::<[u8; 32]>(),
        ciphertext in proptest::collection::vec(any::<u8>(), 0..80),
        context in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let secret = ResultSecret::generate().unwrap();
        let sealed = Sealed { ephemeral_public: X25519Public::from_bytes(ephemeral), ciphertext };
        prop_assert!(open(&secret, &context, &sealed).is_err());
    }
}

proptest! {
    // Each case touches the file system: fewer of them.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn key_files_with_arbitrary_contents(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let dir = temp_dir("key");
        let path = dir.join("user.key");
        fs::write(&path, &bytes).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        prop_assert!(UserKey::load(&path).is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn nonce_logs_with_arbitrary_contents(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        valid_header in any::<bool>(),
    ) {
        let dir = temp_dir("nonces");
        let _ = fs::remove_dir_all(&dir);
        let log = {
            // A fresh store's log is a valid header; arbitrary bytes follow.
            let store = NonceStore::open(&dir).unwrap();
            store.path().to_path_buf()
        };
        let mut contents = if valid_header { fs::read(&log).unwrap() } else { Vec::new() };
        contents.extend_from_slice(&bytes);
        fs::write(&log, &contents).unwrap();
        if let Ok(store) = NonceStore::open(&dir) {
            prop_assert!(store.discarded_tail_bytes() <= 64);
        }
        fs::remove_dir_all(dir).unwrap();
    }
}
