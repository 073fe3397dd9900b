//! The decoders of bytes from disk never panic, and a column file with any
//! byte changed never decodes.

use proptest::prelude::*;
use triad_node::store::{
    AgreedUpload, ColumnInfo, ColumnSchema, Digest, StagedUpload, decode_column, decode_manifest,
    encode_column, handle_for,
};
use triad_ring::{Arith, PartyId};

fn party() -> impl Strategy<Value = PartyId> {
    (0usize..3).prop_map(|i| PartyId::from_index(i).expect("0..3"))
}

fn shares() -> impl Strategy<Value = Arith> {
    (0usize..40).prop_flat_map(|n| {
        (
            prop::collection::vec(any::<u64>(), n),
            prop::collection::vec(any::<u64>(), n),
        )
            .prop_map(|(own, next)| Arith::from_components(own, next).expect("equal lengths"))
    })
}

/// A valid manifest's bytes, written the way the store writes them.
fn manifest_bytes(rows: u64, min: i128, name: &str) -> Vec<u8> {
    let digest = |b: &[u8]| Digest::from_bytes(*blake3::hash(b).as_bytes());
    let agreed = AgreedUpload {
        upload_id: "u".parse().expect("id"),
        owner: "0a".parse().expect("owner"),
        rows,
        schema: vec![ColumnSchema {
            name: name.to_owned(),
            type_tag: "i64".into(),
            min,
            max: i128::MAX,
            nullable: true,
        }],
        columns: vec![ColumnInfo {
            name: name.to_owned(),
            digests: [digest(b"0"), digest(b"1"), digest(b"2")],
        }],
        policy: Default::default(),
    };
    let handle = handle_for(&agreed);
    // The manifest's layout, assembled from serialised parts (a
    // serde_json::Value cannot hold the i128 range bounds).
    let text = format!(
        r#"{{"format_version": 1, "party": 0, "handle": {}, "upload_id": "u", "owner": "0a",
            "created_at": 5, "rows": {rows}, "schema": {},
            "columns": [{{"name": {}, "digests": {}, "checksum": {}}}]}}"#,
        json(&handle),
        json(&agreed.schema),
        json(&name),
        json(&agreed.columns[0].digests),
        json(&digest(b"c")),
    );
    text.into_bytes()
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("json")
}

proptest! {
    #[test]
    fn column_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), p in party()) {
        let _ = decode_column(&bytes, p);
    }

    #[test]
    fn column_decoder_survives_lying_headers(
        shares in shares(),
        p in party(),
        count in any::<u64>(),
        cut in 0usize..2000,
    ) {
        let mut bytes = encode_column(p, &shares);
        bytes[16..24].copy_from_slice(&count.to_le_bytes());
        bytes.truncate(cut);
        prop_assert!(decode_column(&bytes, p).is_err() || count == shares.len() as u64);
    }

    #[test]
    fn any_changed_byte_is_caught(
        shares in shares(),
        p in party(),
        at in any::<prop::sample::Index>(),
        mask in 1u8..,
    ) {
        let mut bytes = encode_column(p, &shares);
        prop_assert_eq!(decode_column(&bytes, p).ok(), Some(shares));
        let at = at.index(bytes.len());
        bytes[at] ^= mask;
        prop_assert!(decode_column(&bytes, p).is_err());
    }

    #[test]
    fn manifest_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode_manifest(&bytes);
    }

    #[test]
    fn manifest_decoder_survives_mutations(
        rows in any::<u64>(),
        min in any::<i128>(),
        name in "\\PC{1,12}",
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let bytes = manifest_bytes(rows, min, &name);
        prop_assert!(decode_manifest(&bytes).is_ok());
        let mut bad = bytes.clone();
        for (at, byte) in edits {
            let at = at.index(bad.len());
            bad[at] = byte;
        }
        let _ = decode_manifest(&bad);
    }

    #[test]
    fn staged_report_decoder_never_panics(text in "\\PC{0,200}") {
        // Reports come from peers; decoding them must not panic either.
        let _ = serde_json::from_str::<StagedUpload>(&text);
    }
}
