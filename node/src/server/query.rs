//! Query plans on the node: stored tables as the plan checker and the
//! executor see them, and query results as tables the store keeps.
//!
//! # Share columns of a schema column
//!
//! The client encodes schema column `c` into share columns as
//! [`share_columns`] says: `c` for one-word types, `c#0`, `c#1`, ... for
//! strings (one per 8 bytes of width, even for a string of one limb), and
//! `c#valid` (1 where present) if `c` is nullable. A table a query stored
//! also has the share column [`MASK_COLUMN`]: the secret 0/1 row mask of
//! the rows the query selected. It is not part of the public schema.
//!
//! Nothing here logs, and errors name handles and columns only.

use std::collections::{BTreeMap, BTreeSet};

use triad_exec::{ExecError, SecretColumn, SecretTable, TableSource};
use triad_plan::{ColumnInfo, TableSchema, Ty};
use triad_ring::{Arith, PartyId};

use crate::store::{ColumnSchema, MASK_COLUMN, Store, StoreError, TableInfo};

/// The share column holding the validity of nullable column `column`.
pub fn valid_column(column: &str) -> String {
    format!("{column}#valid")
}

/// The share columns holding the value limbs of column `name` of type
/// `ty` (its validity column, if any, is [`valid_column`]).
pub fn limb_columns(name: &str, ty: Ty) -> Vec<String> {
    match ty {
        Ty::String(_) => (0..ty.limbs()).map(|i| format!("{name}#{i}")).collect(),
        _ => vec![name.to_owned()],
    }
}

/// Every share column of schema column `column`, in upload order: value
/// limbs, then validity.
pub fn share_columns(column: &ColumnInfo) -> Vec<String> {
    let mut names = limb_columns(&column.name, column.ty);
    if column.nullable {
        names.push(valid_column(&column.name));
    }
    names
}

/// The public description of a stored schema column, or why queries
/// cannot use it (an unknown type tag).
pub fn column_info(column: &ColumnSchema) -> Result<ColumnInfo, String> {
    let ty = Ty::from_tag(&column.type_tag).ok_or_else(|| {
        format!(
            "column {:?} has type {:?}, which queries do not support",
            column.name, column.type_tag
        )
    })?;
    Ok(ColumnInfo {
        name: column.name.clone(),
        ty,
        min: column.min,
        max: column.max,
        nullable: column.nullable,
    })
}

/// The public schema of a stored table as the plan checker sees it.
pub fn table_schema(info: &TableInfo) -> Result<TableSchema, String> {
    let columns = info
        .schema
        .iter()
        .map(column_info)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|why| format!("table {}: {why}", info.handle))?;
    Ok(TableSchema {
        rows: info.rows,
        columns,
    })
}

/// One input table, read and verified.
#[derive(Debug)]
struct Loaded {
    schema: TableSchema,
    columns: BTreeMap<String, Arith>,
    mask: Option<Arith>,
    /// Table frames of the plan still to load it.
    uses: usize,
}

/// The input tables of one query, read from the store (and verified
/// against their checksums) before the protocol starts, so that a damaged
/// file makes all three nodes refuse together instead of one of them
/// dropping out half way. [`TableSource::load`] then hands the executor
/// only the columns it asks for, and frees a table's columns at its last
/// use.
#[derive(Debug, Default)]
pub struct StoreTables {
    tables: BTreeMap<String, Loaded>,
}

impl StoreTables {
    /// Reads the share columns of each input table (`inputs`: handle as
    /// the plan writes it, with its metadata) that the plan uses
    /// (`needed`, from `triad_exec::input_columns`; all of them where a
    /// handle has no entry), once per distinct handle. A table listed `n`
    /// times is loaded `n` times by the executor.
    pub fn read(
        store: &Store,
        inputs: &[(String, TableInfo)],
        needed: &BTreeMap<String, BTreeSet<String>>,
    ) -> Result<StoreTables, ReadError> {
        let mut tables: BTreeMap<String, Loaded> = BTreeMap::new();
        for (text, info) in inputs {
            if let Some(loaded) = tables.get_mut(text) {
                loaded.uses += 1;
                continue;
            }
            let schema = table_schema(info).map_err(ReadError::Schema)?;
            let mut columns = BTreeMap::new();
            let wanted = needed.get(text);
            for column in &schema.columns {
                if wanted.is_some_and(|w| !w.contains(&column.name)) {
                    continue;
                }
                for name in share_columns(column) {
                    if !info.columns.iter().any(|c| c.name == name) {
                        return Err(ReadError::MissingShareColumn {
                            handle: info.handle.to_string(),
                            column: column.name.clone(),
                            share_column: name,
                        });
                    }
                    let shares = store.read_column(&info.handle, &name)?;
                    columns.insert(name, shares);
                }
            }
            let mask = if info.columns.iter().any(|c| c.name == MASK_COLUMN) {
                Some(store.read_column(&info.handle, MASK_COLUMN)?)
            } else {
                None
            };
            tables.insert(
                text.clone(),
                Loaded {
                    schema,
                    columns,
                    mask,
                    uses: 1,
                },
            );
        }
        Ok(StoreTables { tables })
    }
}

/// Why the input tables could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A schema column queries cannot use.
    #[error("{0}")]
    Schema(String),
    /// The table lacks a share column its schema implies.
    #[error("table {handle} has no share column {share_column:?} for column {column:?}")]
    MissingShareColumn {
        /// The table.
        handle: String,
        /// The schema column.
        column: String,
        /// The share column expected.
        share_column: String,
    },
    /// Reading failed (a damaged or missing file).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TableSource for StoreTables {
    fn load(&mut self, handle: &str, columns: &BTreeSet<String>) -> Result<SecretTable, ExecError> {
        let fail = |reason: String| ExecError::Table {
            handle: handle.to_owned(),
            reason,
        };
        let loaded = self
            .tables
            .get_mut(handle)
            .ok_or_else(|| fail("not among the query's inputs".into()))?;
        if let Some(name) = columns
            .iter()
            .find(|name| loaded.schema.column(name).is_none())
        {
            return Err(fail(format!("no column {name:?}")));
        }
        loaded.uses = loaded.uses.saturating_sub(1);
        let last = loaded.uses == 0;
        let rows = usize::try_from(loaded.schema.rows)
            .map_err(|_| fail("too many rows for this machine".into()))?;
        let wanted: Vec<ColumnInfo> = loaded
            .schema
            .columns
            .iter()
            .filter(|c| columns.contains(&c.name))
            .cloned()
            .collect();
        let shares = &mut loaded.columns;
        let mut pick = |name: &str| -> Result<Arith, ExecError> {
            let found = if last {
                shares.remove(name)
            } else {
                shares.get(name).cloned()
            };
            found.ok_or_else(|| fail(format!("share column {name:?} was not read")))
        };
        let mut out = Vec::with_capacity(wanted.len());
        for info in wanted {
            let limbs = limb_columns(&info.name, info.ty)
                .iter()
                .map(|name| pick(name))
                .collect::<Result<Vec<_>, _>>()?;
            let valid = if info.nullable {
                Some(pick(&valid_column(&info.name))?)
            } else {
                None
            };
            out.push(SecretColumn { info, limbs, valid });
        }
        let mask = if last {
            loaded.mask.take()
        } else {
            loaded.mask.clone()
        };
        let table = SecretTable {
            rows,
            columns: out,
            mask,
        };
        if last {
            self.tables.remove(handle);
        }
        Ok(table)
    }
}

/// A query's result table as the store keeps it: public schema, row
/// count, and share columns (with [`MASK_COLUMN`] last).
#[derive(Debug)]
pub struct DerivedTable {
    /// Public schema.
    pub schema: Vec<ColumnSchema>,
    /// Rows stored (selected or not).
    pub rows: u64,
    /// Share columns by name.
    pub columns: Vec<(String, Arith)>,
}

/// Lays out `table` (this node's shares, as party `party`) for the store:
/// each column's limbs and validity under the names [`share_columns`]
/// gives, then the row mask (a public mask of ones if the table has none;
/// a validity column of ones for a nullable column without one).
pub fn derived_table(table: SecretTable, party: PartyId) -> Result<DerivedTable, String> {
    let rows = table.rows;
    let ones = || Arith::public(party, &vec![1u64; rows]);
    let check = |name: &str, shares: &Arith| {
        if shares.len() == rows {
            Ok(())
        } else {
            Err(format!(
                "share column {name:?} has {} rows, the table {rows}",
                shares.len()
            ))
        }
    };
    let mut schema = Vec::with_capacity(table.columns.len());
    let mut columns = Vec::new();
    for column in table.columns {
        let SecretColumn {
            mut info,
            limbs,
            valid,
        } = column;
        let names = limb_columns(&info.name, info.ty);
        if names.len() != limbs.len() {
            return Err(format!(
                "column {:?} has {} limbs, its type {} needs {}",
                info.name,
                limbs.len(),
                info.ty,
                names.len()
            ));
        }
        for (name, shares) in names.into_iter().zip(limbs) {
            check(&name, &shares)?;
            columns.push((name, shares));
        }
        // A column that carries a validity is nullable, whatever its
        // description says; a nullable one without stores all present.
        info.nullable |= valid.is_some();
        if info.nullable {
            let name = valid_column(&info.name);
            let valid = valid.unwrap_or_else(ones);
            check(&name, &valid)?;
            columns.push((name, valid));
        }
        schema.push(ColumnSchema {
            name: info.name,
            type_tag: info.ty.tag(),
            min: info.min,
            max: info.max,
            nullable: info.nullable,
        });
    }
    let mask = table.mask.unwrap_or_else(ones);
    check(MASK_COLUMN, &mask)?;
    columns.push((MASK_COLUMN.to_owned(), mask));
    Ok(DerivedTable {
        schema,
        rows: rows as u64,
        columns,
    })
}
