//! `Schema::from_toml_str`: a data owner's table schema. Needs the
//! `client` feature: `cargo +nightly fuzz run schema --features client`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_client::schema::Schema;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(schema) = Schema::from_toml_str(&text, "fuzz.toml") {
        let again = Schema::from_toml_str(&schema.to_toml_string(), "again.toml")
            .expect("a schema writes out as a schema");
        assert_eq!(again, schema);
    }
});
