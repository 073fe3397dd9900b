//! The node side of an upload: stage on all three nodes, cross-check the
//! digests of the components each pair shares, agree on one handle, commit.
//!
//! # Why the digests are keyed
//!
//! Party `i` holds components `i` and `i + 1` of every value; the third,
//! component `i + 2`, is `x - x_i - x_{i+1}`. A plain hash of component
//! `i + 2` in party `i`'s hands is therefore a hash of the column itself:
//! for a low-entropy column (a boolean, a small range, a few rows) party `i`
//! enumerates candidate columns until the hash matches, and learns every
//! value. So no party may ever see an unkeyed hash of a component it does
//! not hold, and a handle computed by all three from plain component
//! hashes would leak exactly that.
//!
//! Instead each component is digested with a 32-byte key known to its two
//! holders only ([`ComponentKeys`]): party `i` uses key `k_i` for its `own`
//! and `k_{i+1}` for its `next`. The client draws the three keys fresh per
//! upload from the OS generator and sends key `k_c` with component `c` to
//! its two holders, never to the third party (a pair of nodes could instead
//! derive it from their pairwise key). A keyed BLAKE3 is a PRF, so the
//! third party learns nothing from the digest; the two holders, who both
//! hold the component, compute the same digest and can compare.
//!
//! # The exchange
//!
//! 1. Each node stages its two components ([`Store::stage`]) and gets a
//!    [`StagedUpload`]: public metadata and, per column, the keyed digests
//!    of its `own` and `next` components.
//! 2. The nodes exchange their reports. [`combine`] checks that the three
//!    agree on the upload id, owner, row count, schema and column names,
//!    and that the two holders of each component report the same digest
//!    (party `c`'s `own` against party `c - 1`'s `next`); it returns the
//!    [`AgreedUpload`] with all three digests of every column.
//! 3. Every node computes the same handle from it ([`handle_for`]) and
//!    commits ([`Store::commit`]). The client, which knows the keys and all
//!    components, can compute the handle itself and check the nodes' answer.
//!
//! [`Store::stage`]: crate::store::Store::stage
//! [`Store::commit`]: crate::store::Store::commit

use std::fmt;

use serde::{Deserialize, Serialize};
use triad_ring::{Arith, PartyId};

use crate::store::column::le_bytes;
use crate::store::error::{Mismatch, StoreError};
use crate::store::ids::{Digest, Handle, OwnerKey, UploadId};
use crate::store::manifest::{ColumnInfo, ColumnSchema, TablePolicy, party_index};

const COMPONENT_DIGEST_DOMAIN: &[u8] = b"triad-node component digest v1";
const HANDLE_CONTEXT: &str = "triad-node table handle v1";
const DERIVED_CONTEXT: &str = "triad-node derived table v1";

/// The share column holding a derived table's secret row mask (1 for rows
/// the query selected, 0 for the others). Not part of the public schema;
/// an upload may not use the name (share columns starting with `#` are
/// reserved).
pub const MASK_COLUMN: &str = "#mask";

/// Keys for the keyed digests of this party's two components: `own` is the
/// key of component `i`, `next` of component `i + 1`, for party `i`. Both
/// holders of a component get the same key; the third party must never see
/// it. Secret: `Debug` shows nothing, and the store never writes them.
#[derive(Clone, PartialEq, Eq)]
pub struct ComponentKeys {
    /// Key of this party's `own` component.
    pub own: [u8; 32],
    /// Key of this party's `next` component.
    pub next: [u8; 32],
}

impl fmt::Debug for ComponentKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ComponentKeys(..)")
    }
}

/// One party's part of an upload, as the node received it from the client.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The client's id for the upload, the same on all three nodes.
    pub upload_id: UploadId,
    /// The data owner.
    pub owner: OwnerKey,
    /// The public schema.
    pub schema: Vec<ColumnSchema>,
    /// Row count; every share column has exactly this many elements.
    pub rows: u64,
    /// Namespace, dummy link and approvers.
    pub policy: TablePolicy,
    /// Keys for the digests of this party's two components.
    pub keys: ComponentKeys,
    /// Share columns by name, in the order the table keeps them.
    pub columns: Vec<(String, Arith)>,
}

/// What one party reports after staging: everything the three must agree
/// on. Public: safe to send to the other two nodes and to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagedUpload {
    /// The upload.
    pub upload_id: UploadId,
    /// The party that staged it.
    #[serde(with = "party_index")]
    pub party: PartyId,
    /// The data owner.
    pub owner: OwnerKey,
    /// Row count.
    pub rows: u64,
    /// The public schema.
    pub schema: Vec<ColumnSchema>,
    /// Keyed digests of this party's components, per share column.
    pub columns: Vec<StagedColumn>,
    /// Namespace, dummy link and approvers.
    #[serde(default)]
    pub policy: TablePolicy,
}

/// Keyed digests of one column's components held by the reporting party.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagedColumn {
    /// Column name.
    pub name: String,
    /// Digest of component `i` (the reporter's `own`).
    pub own: Digest,
    /// Digest of component `i + 1` (the reporter's `next`).
    pub next: Digest,
}

/// An upload the three parties agree on: public metadata and the keyed
/// digests of all three components of every column. Its handle is
/// [`handle_for`] of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgreedUpload {
    /// The upload.
    pub upload_id: UploadId,
    /// The data owner.
    pub owner: OwnerKey,
    /// Row count.
    pub rows: u64,
    /// The public schema.
    pub schema: Vec<ColumnSchema>,
    /// Per share column, the digests of components 0, 1 and 2.
    pub columns: Vec<ColumnInfo>,
    /// Namespace, dummy link and approvers.
    #[serde(default)]
    pub policy: TablePolicy,
}

fn put(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// Keyed digest of component `component` (the `own` of party `component`)
/// of column `column` of upload `upload_id`:
///
/// ```text
/// BLAKE3-keyed(key; len || "triad-node component digest v1"
///     || len || upload id || len || column name
///     || component index: u32 LE || element count: u64 LE
///     || the component's elements as u64 LE)
/// ```
///
/// where `len` is the following field's byte length as u64 LE. The client
/// computes the same to check the handle the nodes return.
pub fn component_digest(
    key: &[u8; 32],
    upload_id: &UploadId,
    column: &str,
    component: PartyId,
    values: &[u64],
) -> Digest {
    let mut hasher = blake3::Hasher::new_keyed(key);
    put(&mut hasher, COMPONENT_DIGEST_DOMAIN);
    put(&mut hasher, upload_id.as_str().as_bytes());
    put(&mut hasher, column.as_bytes());
    hasher.update(&(component.index() as u32).to_le_bytes());
    hasher.update(&(values.len() as u64).to_le_bytes());
    hasher.update(&le_bytes(values));
    hasher.finalize().into()
}

/// This party's report for column `name` holding `shares`.
pub(crate) fn staged_column(
    party: PartyId,
    keys: &ComponentKeys,
    upload_id: &UploadId,
    name: &str,
    shares: &Arith,
) -> StagedColumn {
    let (own, next) = shares.components();
    StagedColumn {
        name: name.to_owned(),
        own: component_digest(&keys.own, upload_id, name, party, own),
        next: component_digest(&keys.next, upload_id, name, party.next(), next),
    }
}

/// The handle of an agreed upload: 64 hex characters, the same on all
/// three nodes and computable by the client.
///
/// ```text
/// BLAKE3-derive-key("triad-node table handle v1";
///     len || upload id || len || owner key (hex) || rows: u64 LE
///     || schema count: u64 LE || per schema column:
///          len || name || len || type tag || min: i128 LE || max: i128 LE
///          || nullable: u8
///     || column count: u64 LE || per share column:
///          len || name || digest 0 || digest 1 || digest 2)
/// ```
///
/// It commits to the data through the keyed digests of all three
/// components, and to the public metadata, so nodes that were sent
/// different schemas (or shares) end up with different handles and the
/// upload fails instead of committing inconsistent tables.
pub fn handle_for(upload: &AgreedUpload) -> Handle {
    let mut hasher = blake3::Hasher::new_derive_key(HANDLE_CONTEXT);
    put(&mut hasher, upload.upload_id.as_str().as_bytes());
    put(&mut hasher, upload.owner.as_str().as_bytes());
    hasher.update(&upload.rows.to_le_bytes());
    hasher.update(&(upload.schema.len() as u64).to_le_bytes());
    for column in &upload.schema {
        put(&mut hasher, column.name.as_bytes());
        put(&mut hasher, column.type_tag.as_bytes());
        hasher.update(&column.min.to_le_bytes());
        hasher.update(&column.max.to_le_bytes());
        hasher.update(&[u8::from(column.nullable)]);
    }
    hasher.update(&(upload.columns.len() as u64).to_le_bytes());
    for column in &upload.columns {
        put(&mut hasher, column.name.as_bytes());
        for digest in &column.digests {
            hasher.update(digest.as_bytes());
        }
    }
    Handle::from_bytes(*hasher.finalize().as_bytes())
}

/// The handle of a table stored by a query: derived from the digest of the
/// signed request alone, so the requester knows it in advance and the
/// three nodes agree on it without comparing anything else.
///
/// ```text
/// BLAKE3-derive-key("triad-node derived table v1"; request digest)
/// ```
pub fn derived_handle(request: &Digest) -> Handle {
    let mut hasher = blake3::Hasher::new_derive_key(DERIVED_CONTEXT);
    hasher.update(request.as_bytes());
    Handle::from_bytes(*hasher.finalize().as_bytes())
}

/// The upload id a derived table is staged and recorded under:
/// `query-` and the first 16 bytes of the request digest in hex.
pub fn derived_upload_id(request: &Digest) -> UploadId {
    let hex: String = request.as_bytes()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // 38 characters of a-z, 0-9 and '-': always a valid upload id.
    format!("query-{hex}")
        .parse()
        .unwrap_or_else(|_| unreachable!("a valid upload id"))
}

/// Cross-checks the three parties' reports (in party order) and returns
/// the upload they agree on. Fails if the reports differ in any public
/// field or if the two holders of any component disagree on its digest.
pub fn combine(reports: [&StagedUpload; 3]) -> Result<AgreedUpload, StoreError> {
    let first = reports[0];
    let fail = |problem| StoreError::CrossCheck {
        upload_id: first.upload_id.clone(),
        problem,
    };
    for (position, report) in reports.iter().enumerate() {
        if report.party.index() != position {
            return Err(fail(Mismatch::PartyOrder {
                position,
                found: report.party,
            }));
        }
    }
    for report in &reports[1..] {
        let party = report.party;
        if report.upload_id != first.upload_id {
            return Err(fail(Mismatch::UploadId { party }));
        }
        if (&report.owner, report.rows, &report.schema, &report.policy)
            != (&first.owner, first.rows, &first.schema, &first.policy)
        {
            return Err(fail(Mismatch::Metadata { party }));
        }
        let names = |r: &StagedUpload| r.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        if names(report) != names(first) {
            return Err(fail(Mismatch::ColumnNames { party }));
        }
    }
    let mut columns = Vec::with_capacity(first.columns.len());
    for (j, column) in first.columns.iter().enumerate() {
        let mut digests = [column.own; 3];
        for holder in PartyId::ALL {
            // Component c is party c's `own` and party c - 1's `next`.
            let other = holder.prev();
            let own = reports[holder.index()].columns[j].own;
            let next = reports[other.index()].columns[j].next;
            if own != next {
                return Err(fail(Mismatch::Component {
                    column: column.name.clone(),
                    component: holder.index(),
                    first: holder,
                    second: other,
                }));
            }
            digests[holder.index()] = own;
        }
        columns.push(ColumnInfo {
            name: column.name.clone(),
            digests,
        });
    }
    Ok(AgreedUpload {
        upload_id: first.upload_id.clone(),
        owner: first.owner.clone(),
        rows: first.rows,
        schema: first.schema.clone(),
        columns,
        policy: first.policy.clone(),
    })
}

/// Checks that `agreed` is what `party` staged (`staged`).
pub(crate) fn check_as_staged(
    staged: &StagedUpload,
    agreed: &AgreedUpload,
) -> Result<(), Mismatch> {
    let party = staged.party;
    if (&staged.owner, staged.rows, &staged.schema, &staged.policy)
        != (&agreed.owner, agreed.rows, &agreed.schema, &agreed.policy)
    {
        return Err(Mismatch::Metadata { party });
    }
    if staged.columns.len() != agreed.columns.len()
        || staged
            .columns
            .iter()
            .zip(&agreed.columns)
            .any(|(s, a)| s.name != a.name)
    {
        return Err(Mismatch::ColumnNames { party });
    }
    for (s, a) in staged.columns.iter().zip(&agreed.columns) {
        for (component, digest) in [(party, s.own), (party.next(), s.next)] {
            if a.digests[component.index()] != digest {
                return Err(Mismatch::Staged {
                    column: s.name.clone(),
                    component: component.index(),
                });
            }
        }
    }
    Ok(())
}
