//! `Script::decode` and `ApprovedScript::decode`: recorded scripts and the
//! `.approved` content sent with every authorized query and job.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_auth::{ApprovedScript, Script};

fuzz_target!(|data: &[u8]| {
    if let Ok(script) = Script::decode(data) {
        assert_eq!(script.encode(), data);
        let _ = script.digest();
    }
    if let Ok(approved) = ApprovedScript::decode(data) {
        assert_eq!(approved.encode(), data);
        let deployment = approved.script.deployment;
        let _ = approved.check(&deployment, &[], 0);
    }
});
