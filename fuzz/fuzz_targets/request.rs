//! `SignedRequest::from_bytes`: the signed request every client call
//! carries, decoded before anything is verified.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_auth::SignedRequest;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = SignedRequest::from_bytes(data) {
        // Strict decoding: one request, one encoding, one digest.
        assert_eq!(request.to_bytes(), data);
        let _ = request.verify();
        let _ = request.digest();
    }
});
