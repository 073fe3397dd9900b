use std::fmt;
use std::io;
use std::path::PathBuf;

use triad_ring::PartyId;

use crate::store::ids::{Handle, UploadId};

/// Everything the store can fail with. Variants name the table (or staged
/// upload), the column and the file concerned; none carries share values,
/// component keys or share checksums, so errors can be logged and shown to
/// the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// The data directory holds files but no store marker: refuse to write
    /// into a directory that is not ours.
    #[error("{path} is not empty and is not a triad node store (no store.json)")]
    NotAStore {
        /// The data directory.
        path: PathBuf,
    },
    /// The store marker cannot be read.
    #[error("{path}: {problem}")]
    Marker {
        /// The marker file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        problem: ManifestProblem,
    },
    /// The data directory was written by a store of another format version.
    #[error(
        "{path}: store format version {found}, this node reads version {supported}; \
         migrate the data directory or run the matching node version"
    )]
    FormatVersion {
        /// The marker file.
        path: PathBuf,
        /// The version it records.
        found: u32,
        /// The version this code reads and writes.
        supported: u32,
    },
    /// The data directory belongs to another party. Serving it would hand
    /// out the wrong shares, and a host holding two parties' shares holds
    /// every value.
    #[error("{path}: this data directory belongs to party {found}, not to {expected}")]
    WrongParty {
        /// The marker file.
        path: PathBuf,
        /// The party index it records.
        found: u32,
        /// The party this node runs as.
        expected: PartyId,
    },
    /// Something in `tables/` or `staging/` the store did not put there.
    #[error("{path}: unexpected entry in the store")]
    UnexpectedEntry {
        /// The entry.
        path: PathBuf,
    },
    /// The upload's metadata or columns are inconsistent.
    #[error("upload {upload_id}: {problem}")]
    InvalidUpload {
        /// The upload.
        upload_id: UploadId,
        /// What is wrong.
        #[source]
        problem: MetadataProblem,
    },
    /// An upload with this id is already staged.
    #[error("upload {upload_id} is already staged")]
    UploadExists {
        /// The upload.
        upload_id: UploadId,
    },
    /// No upload with this id is staged (and none was committed).
    #[error("no staged upload {upload_id}")]
    UnknownUpload {
        /// The upload.
        upload_id: UploadId,
    },
    /// The staging directory exists but its record was never written: the
    /// node stopped while staging. It can only be aborted or cleaned up.
    #[error("upload {upload_id} was not completely staged ({path} is missing)")]
    UploadIncomplete {
        /// The upload.
        upload_id: UploadId,
        /// The missing record.
        path: PathBuf,
    },
    /// The upload was already committed.
    #[error("upload {upload_id} is already committed as table {handle}")]
    AlreadyCommitted {
        /// The upload.
        upload_id: UploadId,
        /// The table it became.
        handle: Handle,
    },
    /// A table with this handle already exists.
    #[error("table {handle} already exists")]
    HandleExists {
        /// The handle.
        handle: Handle,
    },
    /// The three parties' staging reports disagree: the upload must not be
    /// committed.
    #[error("cross-check of upload {upload_id} failed: {problem}")]
    CrossCheck {
        /// The upload.
        upload_id: UploadId,
        /// Where the reports disagree.
        #[source]
        problem: Mismatch,
    },
    /// The agreed upload differs from what this node staged.
    #[error("upload {upload_id} differs from what this node staged: {problem}")]
    NotAsStaged {
        /// The upload.
        upload_id: UploadId,
        /// Where it differs.
        #[source]
        problem: Mismatch,
    },
    /// No committed table has this handle.
    #[error("no table {handle}")]
    UnknownTable {
        /// The handle asked for.
        handle: Handle,
    },
    /// The table has no column of this name.
    #[error("table {handle} has no column {column:?}")]
    UnknownColumn {
        /// The table.
        handle: Handle,
        /// The column asked for.
        column: String,
    },
    /// A column file is missing, unreadable or corrupt.
    #[error("{location}, column {column:?}, file {path}: {problem}")]
    Column {
        /// The table or staged upload.
        location: Location,
        /// The column.
        column: String,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        problem: ColumnProblem,
    },
    /// A table the peers sent to rebuild this node does not fit.
    #[error("restoring table {handle}: {problem}")]
    Restore {
        /// The table.
        handle: Handle,
        /// What is wrong.
        #[source]
        problem: RestoreProblem,
    },
    /// A table manifest or staging record is missing, unreadable or corrupt.
    #[error("{location}, file {path}: {problem}")]
    Manifest {
        /// The table or staged upload.
        location: Location,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        problem: ManifestProblem,
    },
}

/// Why a table sent by the peers cannot be restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreProblem {
    /// Its metadata does not check as a manifest's would.
    #[error("{0}")]
    Metadata(#[source] ManifestProblem),
    /// More columns than the table has.
    #[error("more columns than its {columns}")]
    ExtraColumn {
        /// The table's share columns.
        columns: usize,
    },
    /// A column of the wrong length.
    #[error("column {column:?} has {found} rows, the table {expected}")]
    Rows {
        /// The column.
        column: String,
        /// The table's rows.
        expected: u64,
        /// What arrived.
        found: u64,
    },
    /// Committed before every column arrived.
    #[error("{written} of its {expected} columns written")]
    MissingColumns {
        /// The table's share columns.
        expected: usize,
        /// Columns written.
        written: usize,
    },
}

/// Where a file belongs: a committed table or a staged upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A committed table.
    Table(Handle),
    /// An upload in staging.
    Upload(UploadId),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Table(handle) => write!(f, "table {handle}"),
            Location::Upload(upload_id) => write!(f, "staged upload {upload_id}"),
        }
    }
}

/// What is wrong with a column file. Checked in this order, so that a
/// damaged header is reported as what it is rather than as a checksum
/// failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ColumnProblem {
    /// The file does not exist.
    #[error("missing")]
    Missing,
    /// Reading the file failed.
    #[error("{0}")]
    Io(#[source] io::Error),
    /// Shorter than the fixed header.
    #[error("{bytes} bytes, shorter than the {header_bytes}-byte header")]
    TooShort {
        /// The file's size.
        bytes: u64,
        /// The header's size.
        header_bytes: usize,
    },
    /// The file does not start with the column magic.
    #[error("not a triad column file (bad magic bytes)")]
    BadMagic,
    /// Written by another format version.
    #[error("column format version {found}, this node reads version {supported}")]
    UnsupportedVersion {
        /// The version in the header.
        found: u32,
        /// The version this code reads.
        supported: u32,
    },
    /// Holds another party's shares.
    #[error("holds shares of party {found}, this node is {expected}")]
    WrongParty {
        /// The party index in the header.
        found: u32,
        /// This node's party.
        expected: PartyId,
    },
    /// The header's element count is not the table's row count.
    #[error("header says {found} rows, the manifest says {expected}")]
    RowCount {
        /// The count in the header.
        found: u64,
        /// The manifest's row count.
        expected: u64,
    },
    /// The file's size does not match its element count exactly (truncated,
    /// or with trailing bytes).
    #[error("{actual_bytes} bytes, but {count} rows take exactly {expected_bytes}")]
    Length {
        /// The element count in the header.
        count: u64,
        /// The size that count implies (u128: a corrupt count cannot overflow).
        expected_bytes: u128,
        /// The file's size.
        actual_bytes: u64,
    },
    /// The element count does not fit this machine's address space.
    #[error("{count} rows do not fit in memory on this machine")]
    TooLarge {
        /// The element count in the header.
        count: u64,
    },
    /// The header's checksum does not match the header and payload: the
    /// file was damaged after it was written.
    #[error("checksum mismatch: the file is damaged")]
    Checksum,
    /// The file is intact but is not the file the manifest recorded (for
    /// example a column file copied from another table).
    #[error("intact, but not the file the manifest records")]
    NotInManifest,
}

/// What is wrong with a manifest, staging record or store marker (JSON
/// files of public metadata).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestProblem {
    /// The file does not exist.
    #[error("missing")]
    Missing,
    /// Reading the file failed.
    #[error("{0}")]
    Io(#[source] io::Error),
    /// Not valid JSON of the expected shape.
    #[error("malformed: {0}")]
    Json(#[source] serde_json::Error),
    /// Written by another format version.
    #[error("format version {found}, this node reads version {supported}")]
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
        /// The version this code reads.
        supported: u32,
    },
    /// The party index is not 0, 1 or 2.
    #[error("party index {found} is not 0, 1 or 2")]
    InvalidParty {
        /// The index in the file.
        found: u32,
    },
    /// Written by another party.
    #[error("written by {found}, this node is {expected}")]
    WrongParty {
        /// The party in the file.
        found: PartyId,
        /// This node's party.
        expected: PartyId,
    },
    /// The metadata is inconsistent.
    #[error("{0}")]
    Metadata(#[source] MetadataProblem),
    /// The file's handle does not follow from its contents.
    #[error("records handle {recorded}, but its contents give {computed}")]
    HandleMismatch {
        /// The handle in the file.
        recorded: Handle,
        /// The handle [`handle_for`](crate::store::handle_for) computes.
        computed: Handle,
    },
    /// The manifest sits in the directory of another table.
    #[error("records handle {recorded}, but sits in the directory of table {directory}")]
    DirectoryMismatch {
        /// The handle in the file.
        recorded: Handle,
        /// The handle its directory is named after.
        directory: Handle,
    },
    /// The staging record sits in the directory of another upload.
    #[error("records upload {recorded}, but sits in the directory of upload {directory}")]
    UploadMismatch {
        /// The upload id in the file.
        recorded: UploadId,
        /// The upload id its directory is named after.
        directory: UploadId,
    },
    /// The marker is not a triad node store marker.
    #[error("not a triad node store marker")]
    NotAMarker,
}

/// What is inconsistent in an upload's (or a manifest's) metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataProblem {
    /// There are no share columns.
    #[error("no share columns")]
    NoColumns,
    /// A schema column has an empty name.
    #[error("schema column {position} has an empty name")]
    EmptySchemaName {
        /// Its position in the schema.
        position: usize,
    },
    /// Two schema columns have the same name.
    #[error("schema column {name:?} appears twice")]
    DuplicateSchemaName {
        /// The name.
        name: String,
    },
    /// A schema column has no type tag.
    #[error("schema column {column:?} has an empty type tag")]
    EmptyTypeTag {
        /// The column.
        column: String,
    },
    /// A declared range is empty.
    #[error("schema column {column:?} declares min {min} > max {max}")]
    InvertedRange {
        /// The column.
        column: String,
        /// Declared minimum.
        min: i128,
        /// Declared maximum.
        max: i128,
    },
    /// A share column has an empty name.
    #[error("share column {position} has an empty name")]
    EmptyColumnName {
        /// Its position.
        position: usize,
    },
    /// Two share columns have the same name.
    #[error("share column {name:?} appears twice")]
    DuplicateColumnName {
        /// The name.
        name: String,
    },
    /// A share column's length is not the row count.
    #[error("share column {column:?} has {length} elements, the table has {rows} rows")]
    ColumnLength {
        /// The column.
        column: String,
        /// Its length.
        length: u64,
        /// The declared row count.
        rows: u64,
    },
    /// A record lists a different number of checksums than columns.
    #[error("{columns} columns but {checksums} checksums")]
    ChecksumCount {
        /// Columns listed.
        columns: usize,
        /// Checksums listed.
        checksums: usize,
    },
}

/// Where staging reports (or a report and the agreed upload) disagree.
/// Names columns and component indices, never digest values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Mismatch {
    /// The reports are not from parties 0, 1 and 2, in that order.
    #[error("report {position} comes from {found}")]
    PartyOrder {
        /// Position in the list of reports.
        position: usize,
        /// The party that wrote it.
        found: PartyId,
    },
    /// A report is for another upload.
    #[error("{party} reports another upload id")]
    UploadId {
        /// The party.
        party: PartyId,
    },
    /// Owner, row count or schema differ.
    #[error("{party} reports another owner, row count or schema")]
    Metadata {
        /// The party.
        party: PartyId,
    },
    /// The share columns' names or order differ.
    #[error("{party} reports other share columns")]
    ColumnNames {
        /// The party.
        party: PartyId,
    },
    /// The two holders of a component report different digests: the client
    /// sent them different shares (or keys), or a file was damaged.
    #[error("column {column:?}: {first} and {second} hold different component {component}")]
    Component {
        /// The column.
        column: String,
        /// The component index (component `i` is party `i`'s `own`).
        component: usize,
        /// One holder.
        first: PartyId,
        /// The other.
        second: PartyId,
    },
    /// The agreed digest of a component this node holds is not the one it
    /// staged.
    #[error("column {column:?}: component {component} is not the one this node staged")]
    Staged {
        /// The column.
        column: String,
        /// The component index.
        component: usize,
    },
}

impl StoreError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
}
