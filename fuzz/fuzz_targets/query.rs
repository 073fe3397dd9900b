//! `Query::decode`: query plans from clients (in call headers) and from
//! approved scripts' steps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_plan::Query;

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = Query::decode(data) {
        // Canonical: every plan has one encoding.
        assert_eq!(query.encode(), data);
        let _ = query.digest();
        let _ = query.inputs();
    }
});
