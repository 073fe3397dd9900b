//! The JSON files of the store: the table manifest, the staging record and
//! the store marker. They hold metadata that is public by design (schemas
//! with declared ranges, row counts, handles, keyed component digests),
//! plus, in the manifest and staging record only, the column files' plain
//! checksums, which must stay on this node (see [`column`](super::column)).
//!
//! Every decoder first reads `format_version` alone, so that a file from
//! another version is reported as such rather than as malformed JSON, then
//! decodes the whole file refusing unknown fields (a typo in a hand-edited
//! manifest must not be silently ignored), then checks consistency.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use triad_ring::PartyId;

use crate::store::STORE_FORMAT_VERSION;
use crate::store::error::{ManifestProblem, MetadataProblem};
use crate::store::ids::{Digest, Handle, OwnerKey, UploadId};
use crate::store::upload::{AgreedUpload, StagedUpload, derived_handle, handle_for};

/// File name of a table's manifest, in its directory.
pub(crate) const MANIFEST_FILE: &str = "manifest.json";

/// File name of an upload's staging record, in its staging directory.
pub(crate) const STAGED_FILE: &str = "staged.json";

/// File name of the store marker, in the data directory.
pub(crate) const MARKER_FILE: &str = "store.json";

/// What the marker's `format` field says.
const MARKER_FORMAT: &str = "triad-node store";

/// One column of a table's public schema, as the data owner declared it.
/// The store keeps it verbatim and checks only that it is well formed; how
/// schema columns map to share columns (a validity column for a nullable
/// one, several limbs for a string) is the frame layer's business.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSchema {
    /// Column name, unique in the schema.
    pub name: String,
    /// The client's type name (for example `"i64"`, `"date"`, `"bool"`);
    /// opaque to the store.
    pub type_tag: String,
    /// Declared minimum: public, and what range proofs start from.
    pub min: i128,
    /// Declared maximum.
    pub max: i128,
    /// Whether the column has a validity bit.
    pub nullable: bool,
}

/// Which namespace of the deployment a table lives in: requests see only
/// the tables of their own mode's namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Namespace {
    /// Real data: queried through approved scripts (or by its owner).
    #[default]
    Production,
    /// Dummy data for designing scripts; any query runs on it at once.
    Design,
}

/// Who may approve scripts reading a table, and what it stands for: set by
/// the owner at upload, the same on all three nodes (they compare it before
/// committing), public.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TablePolicy {
    /// Its namespace.
    pub namespace: Namespace,
    /// For a dummy table: the production table it stands for (same schema
    /// and ranges), so that recorded scripts name that table.
    // No `skip_serializing_if` here: the policy also travels in bincode,
    // which has no field names to tell a skipped field by.
    #[serde(default)]
    pub dummy_for: Option<Handle>,
    /// Approvers (ed25519 public keys, hex) who must all sign a script
    /// reading the table; empty means any one user with the approver role.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// A query result derived from tables its requester did not own (a
    /// step of an approved script): its owner may delete it, but queries
    /// it only through approved scripts, as it would its sources.
    #[serde(default)]
    pub restricted: bool,
    /// For a table a step of an approved script stored on production
    /// data: that script and step, as `triad_auth::output_reference`, so
    /// that another approved script (a pipeline's later action) may name
    /// it by what made it rather than by its handle.
    #[serde(default)]
    pub made_by: Option<String>,
}

impl TablePolicy {
    fn is_default(&self) -> bool {
        *self == TablePolicy::default()
    }
}

/// Public metadata of a committed table: what [`Store::tables`] lists. Safe
/// to send to clients and peers; it holds no values and no plain digest of
/// any share.
///
/// [`Store::tables`]: crate::store::Store::tables
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableInfo {
    /// The table's handle.
    pub handle: Handle,
    /// The upload it came from.
    pub upload_id: UploadId,
    /// Who uploaded it (and may delete it).
    pub owner: OwnerKey,
    /// Commit time, unix seconds, as the caller gave it.
    pub created_at: u64,
    /// Row count (public).
    pub rows: u64,
    /// The declared schema.
    pub schema: Vec<ColumnSchema>,
    /// The share columns, in upload order.
    pub columns: Vec<ColumnInfo>,
    /// For a table a query stored (rather than a client uploaded): the
    /// digest of the signed request that made it, from which its handle
    /// follows ([`derived_handle`](crate::store::derived_handle)).
    #[serde(default)]
    pub derived_from: Option<Digest>,
    /// Namespace, dummy link and approvers.
    #[serde(default)]
    pub policy: TablePolicy,
}

impl TableInfo {
    /// Whether a query stored this table: its share columns then include
    /// the secret row mask [`MASK_COLUMN`](crate::store::MASK_COLUMN), and
    /// its rows include rows the query did not select.
    pub fn is_derived(&self) -> bool {
        self.derived_from.is_some()
    }
}

/// A share column of a table, with the keyed digests of its three
/// components that the handle commits to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnInfo {
    /// Column name, unique in the table.
    pub name: String,
    /// Keyed digest of component `i` at index `i` (see
    /// [`component_digest`](crate::store::component_digest)).
    pub digests: [Digest; 3],
}

/// Checks a schema: non-empty unique names, type tags, `min <= max`.
pub(crate) fn check_schema(schema: &[ColumnSchema]) -> Result<(), MetadataProblem> {
    let mut names = BTreeSet::new();
    for (position, column) in schema.iter().enumerate() {
        if column.name.is_empty() {
            return Err(MetadataProblem::EmptySchemaName { position });
        }
        if !names.insert(column.name.as_str()) {
            return Err(MetadataProblem::DuplicateSchemaName {
                name: column.name.clone(),
            });
        }
        if column.type_tag.is_empty() {
            return Err(MetadataProblem::EmptyTypeTag {
                column: column.name.clone(),
            });
        }
        if column.min > column.max {
            return Err(MetadataProblem::InvertedRange {
                column: column.name.clone(),
                min: column.min,
                max: column.max,
            });
        }
    }
    Ok(())
}

/// Checks share column names: at least one, non-empty, unique.
pub(crate) fn check_column_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Result<(), MetadataProblem> {
    let mut seen = BTreeSet::new();
    for (position, name) in names.into_iter().enumerate() {
        if name.is_empty() {
            return Err(MetadataProblem::EmptyColumnName { position });
        }
        if !seen.insert(name) {
            return Err(MetadataProblem::DuplicateColumnName {
                name: name.to_owned(),
            });
        }
    }
    if seen.is_empty() {
        return Err(MetadataProblem::NoColumns);
    }
    Ok(())
}

/// Checks a table's public metadata as its manifest's decoder does:
/// schema, column names, and that the handle follows from the contents
/// (for a derived table, from the request that made it). A node restoring
/// a table from what its peers sent checks the same before writing it.
pub(crate) fn check_info(info: &TableInfo) -> Result<(), ManifestProblem> {
    check_schema(&info.schema).map_err(ManifestProblem::Metadata)?;
    check_column_names(info.columns.iter().map(|c| c.name.as_str()))
        .map_err(ManifestProblem::Metadata)?;
    let computed = match &info.derived_from {
        Some(request) => derived_handle(request),
        None => handle_for(&AgreedUpload {
            upload_id: info.upload_id.clone(),
            owner: info.owner.clone(),
            rows: info.rows,
            schema: info.schema.clone(),
            columns: info.columns.clone(),
            policy: info.policy.clone(),
        }),
    };
    if computed != info.handle {
        return Err(ManifestProblem::HandleMismatch {
            recorded: info.handle,
            computed,
        });
    }
    Ok(())
}

/// Party indices as plain numbers in JSON.
pub(crate) mod party_index {
    use serde::{Deserialize, Deserializer, Serializer, de};
    use triad_ring::PartyId;

    pub(crate) fn serialize<S: Serializer>(party: &PartyId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(party.index() as u32)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PartyId, D::Error> {
        let index = u32::deserialize(d)?;
        PartyId::from_index(index as usize)
            .ok_or_else(|| de::Error::custom(format_args!("party index {index} is not 0, 1 or 2")))
    }
}

/// Reads `format_version` alone and checks it.
fn check_version(bytes: &[u8]) -> Result<(), ManifestProblem> {
    #[derive(Deserialize)]
    struct Version {
        format_version: u32,
    }
    let Version { format_version } =
        serde_json::from_slice(bytes).map_err(ManifestProblem::Json)?;
    if format_version != STORE_FORMAT_VERSION {
        return Err(ManifestProblem::UnsupportedVersion {
            found: format_version,
            supported: STORE_FORMAT_VERSION,
        });
    }
    Ok(())
}

fn party_from_index(index: u32) -> Result<PartyId, ManifestProblem> {
    PartyId::from_index(index as usize).ok_or(ManifestProblem::InvalidParty { found: index })
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Plain structs of strings and integers: serialisation cannot fail.
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// A committed table as this node stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// The party that wrote it.
    pub(crate) party: PartyId,
    /// Public metadata.
    pub(crate) info: TableInfo,
    /// Checksum of each column file, in column order; node-private.
    pub(crate) checksums: Vec<Digest>,
}

/// The manifest's JSON shape: flat, for people reading it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestRepr {
    format_version: u32,
    party: u32,
    handle: Handle,
    upload_id: UploadId,
    owner: OwnerKey,
    created_at: u64,
    rows: u64,
    schema: Vec<ColumnSchema>,
    columns: Vec<ManifestColumn>,
    /// Only in manifests of derived tables, so that an upload's manifest
    /// reads the same as before derived tables existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    derived_from: Option<Digest>,
    /// Absent for a production table with the default policy, for the
    /// same reason.
    #[serde(default, skip_serializing_if = "TablePolicy::is_default")]
    policy: TablePolicy,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestColumn {
    name: String,
    digests: [Digest; 3],
    checksum: Digest,
}

impl Manifest {
    /// The manifest's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let info = &self.info;
        to_json(&ManifestRepr {
            format_version: STORE_FORMAT_VERSION,
            party: self.party.index() as u32,
            handle: info.handle,
            upload_id: info.upload_id.clone(),
            owner: info.owner.clone(),
            created_at: info.created_at,
            rows: info.rows,
            schema: info.schema.clone(),
            columns: info
                .columns
                .iter()
                .zip(&self.checksums)
                .map(|(column, checksum)| ManifestColumn {
                    name: column.name.clone(),
                    digests: column.digests,
                    checksum: *checksum,
                })
                .collect(),
            derived_from: info.derived_from,
            policy: info.policy.clone(),
        })
    }

    /// Decodes and checks a manifest: version, party index, metadata, and
    /// that its handle follows from its contents (for a derived table, from
    /// the request that made it).
    pub(crate) fn decode(bytes: &[u8]) -> Result<Manifest, ManifestProblem> {
        check_version(bytes)?;
        let repr: ManifestRepr = serde_json::from_slice(bytes).map_err(ManifestProblem::Json)?;
        let party = party_from_index(repr.party)?;
        let (columns, checksums) = repr
            .columns
            .into_iter()
            .map(|c| {
                let info = ColumnInfo {
                    name: c.name,
                    digests: c.digests,
                };
                (info, c.checksum)
            })
            .unzip();
        let info = TableInfo {
            handle: repr.handle,
            upload_id: repr.upload_id,
            owner: repr.owner,
            created_at: repr.created_at,
            rows: repr.rows,
            schema: repr.schema,
            columns,
            derived_from: repr.derived_from,
            policy: repr.policy,
        };
        check_info(&info)?;
        Ok(Manifest {
            party,
            info,
            checksums,
        })
    }
}

/// Decodes a table manifest and checks it as [`Store::open`] does (format
/// version, party index, schema, column names, and that the recorded handle
/// follows from the contents); returns its public part. Never panics,
/// whatever the bytes; exposed for fuzzing and inspection tools.
///
/// [`Store::open`]: crate::store::Store::open
pub fn decode_manifest(bytes: &[u8]) -> Result<TableInfo, ManifestProblem> {
    Manifest::decode(bytes).map(|manifest| manifest.info)
}

/// What `staged.json` holds: this party's report and the checksums of the
/// files it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StagingRecord {
    pub(crate) format_version: u32,
    pub(crate) staged: StagedUpload,
    pub(crate) checksums: Vec<Digest>,
}

impl StagingRecord {
    pub(crate) fn new(staged: StagedUpload, checksums: Vec<Digest>) -> StagingRecord {
        StagingRecord {
            format_version: STORE_FORMAT_VERSION,
            staged,
            checksums,
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        to_json(self)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<StagingRecord, ManifestProblem> {
        check_version(bytes)?;
        let record: StagingRecord = serde_json::from_slice(bytes).map_err(ManifestProblem::Json)?;
        let staged = &record.staged;
        check_schema(&staged.schema).map_err(ManifestProblem::Metadata)?;
        check_column_names(staged.columns.iter().map(|c| c.name.as_str()))
            .map_err(ManifestProblem::Metadata)?;
        if record.checksums.len() != staged.columns.len() {
            return Err(ManifestProblem::Metadata(MetadataProblem::ChecksumCount {
                columns: staged.columns.len(),
                checksums: record.checksums.len(),
            }));
        }
        Ok(record)
    }
}

/// The store marker: says the directory is a store, of which version, for
/// which party.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkerRepr {
    format: String,
    format_version: u32,
    party: u32,
}

/// The marker's bytes for `party`.
pub(crate) fn encode_marker(party: PartyId) -> Vec<u8> {
    to_json(&MarkerRepr {
        format: MARKER_FORMAT.to_owned(),
        format_version: STORE_FORMAT_VERSION,
        party: party.index() as u32,
    })
}

/// A decoded marker: version and party index, unchecked (the store reports
/// each mismatch with its own error).
pub(crate) struct Marker {
    pub(crate) format_version: u32,
    pub(crate) party: u32,
}

pub(crate) fn decode_marker(bytes: &[u8]) -> Result<Marker, ManifestProblem> {
    // Lenient first pass: the version and party decide what to report,
    // even for a marker written by a later version with more fields.
    #[derive(Deserialize)]
    struct Lenient {
        format: String,
        format_version: u32,
        party: u32,
    }
    let lenient: Lenient = serde_json::from_slice(bytes).map_err(ManifestProblem::Json)?;
    if lenient.format != MARKER_FORMAT {
        return Err(ManifestProblem::NotAMarker);
    }
    if lenient.format_version == STORE_FORMAT_VERSION {
        let _: MarkerRepr = serde_json::from_slice(bytes).map_err(ManifestProblem::Json)?;
    }
    Ok(Marker {
        format_version: lenient.format_version,
        party: lenient.party,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(tag: &[u8]) -> Digest {
        blake3::hash(tag).into()
    }

    fn manifest() -> Manifest {
        let agreed = AgreedUpload {
            upload_id: "u1".parse().unwrap_or_else(|_| unreachable!()),
            owner: "ab".parse().unwrap_or_else(|_| unreachable!()),
            rows: 2,
            schema: vec![ColumnSchema {
                name: "age".into(),
                type_tag: "i64".into(),
                min: -(1i128 << 100),
                max: i128::from(u64::MAX),
                nullable: false,
            }],
            columns: vec![ColumnInfo {
                name: "age".into(),
                digests: [digest(b"0"), digest(b"1"), digest(b"2")],
            }],
            // Not the default, so that round trips cover the policy.
            policy: TablePolicy {
                namespace: Namespace::Design,
                dummy_for: Some("cd".repeat(32).parse().unwrap_or_else(|_| unreachable!())),
                approvers: vec!["ef".repeat(32)],
                restricted: true,
                made_by: Some(format!("output:{}:2", "ab".repeat(32))),
            },
        };
        Manifest {
            party: PartyId::P1,
            info: TableInfo {
                handle: handle_for(&agreed),
                upload_id: agreed.upload_id,
                owner: agreed.owner,
                created_at: 1_700_000_000,
                rows: agreed.rows,
                schema: agreed.schema,
                columns: agreed.columns,
                derived_from: None,
                policy: agreed.policy,
            },
            checksums: vec![digest(b"c")],
        }
    }

    #[test]
    fn manifest_roundtrip_keeps_wide_ranges() {
        let m = manifest();
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes).ok(), Some(m));
    }

    #[test]
    fn edited_manifest_is_refused() {
        let text = String::from_utf8(manifest().encode()).unwrap_or_default();
        let rows = text.replace("\"rows\": 2", "\"rows\": 3");
        assert!(matches!(
            Manifest::decode(rows.as_bytes()),
            Err(ManifestProblem::HandleMismatch { .. })
        ));
        let version = text.replace("\"format_version\": 1", "\"format_version\": 7");
        assert!(matches!(
            Manifest::decode(version.as_bytes()),
            Err(ManifestProblem::UnsupportedVersion { found: 7, .. })
        ));
        let extra = text.replacen('{', "{\"surprise\": 1,", 1);
        assert!(matches!(
            Manifest::decode(extra.as_bytes()),
            Err(ManifestProblem::Json(_))
        ));
    }

    #[test]
    fn marker_roundtrip() {
        let marker = decode_marker(&encode_marker(PartyId::P2));
        assert!(matches!(
            marker,
            Ok(Marker {
                format_version: STORE_FORMAT_VERSION,
                party: 2
            })
        ));
        assert!(matches!(
            decode_marker(br#"{"format":"x","format_version":1,"party":0}"#),
            Err(ManifestProblem::NotAMarker)
        ));
    }
}
