//! The oblivious sort-based join (ALGORITHMS.md, Merge): stack both sides,
//! sort by (not selected, packed key, side), find equal neighbours, check
//! uniqueness with two revealed bits, then give each row of the many side
//! the unique side's columns, by a neighbour shift when both sides are
//! unique and by a segmented copy-forward otherwise. The output has one row
//! per input row and a secret mask: its size says nothing about matches.
//!
//! Revealed to the nodes: whether each side's keys are unique among its
//! selected rows (two bits). Message sizes and rounds depend only on the
//! row counts and on those bits.

use std::collections::BTreeSet;

use triad_plan::{How, MergeKey, TableSchema};
use triad_ring::{Arith, Bits, Session, SortAlgorithm, SortKey, Transport};

use crate::{ExecError, SecretColumn, SecretTable};

/// Widest packed limb: leaves the sort room for the row position.
const LIMB_BITS: u32 = 62;

fn zeros(n: usize) -> Arith {
    Arith::zeros(n)
}

fn reverse(x: &Arith) -> Arith {
    let (own, next) = x.components();
    let flip = |v: &[u64]| v.iter().rev().copied().collect::<Vec<u64>>();
    Arith::from_components(flip(own), flip(next)).unwrap_or_else(|_| x.clone())
}

/// `[0, x_0, ..., x_{n-2}]`: each row gets its predecessor's value.
fn shift_down(x: &Arith) -> Arith {
    let n = x.len();
    if n == 0 {
        return x.clone();
    }
    Arith::concat(&[&zeros(1), &x.slice(0..n - 1)])
}

/// `[x_1, ..., x_{n-1}, 0]`: each row gets its successor's value.
fn shift_up(x: &Arith) -> Arith {
    let n = x.len();
    if n == 0 {
        return x.clone();
    }
    Arith::concat(&[&x.slice(1..n), &zeros(1)])
}

fn one_minus<T: Transport>(s: &Session<T>, x: &Arith) -> Arith {
    x.neg().add_public(s.id(), 1)
}

/// Payload columns carried through the sort, with where each landed.
struct Stack {
    columns: Vec<Arith>,
}

impl Stack {
    fn push(&mut self, column: Arith) -> usize {
        self.columns.push(column);
        self.columns.len() - 1
    }
}

/// Where one output column's limbs and validity sit in the sorted payload.
struct Carried {
    name: String,
    side: Side,
    limbs: Vec<usize>,
    valid: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Key,
    Left,
    Right,
}

fn selected<T: Transport>(
    s: &mut Session<T>,
    table: &SecretTable,
    keys: &[&str],
) -> Result<Arith, ExecError> {
    let mut valid = table.mask.clone();
    for key in keys {
        if let Some(v) = table.column(key).and_then(|c| c.valid.clone()) {
            valid = crate::expr::and_valid(s, valid, Some(v))?;
        }
    }
    Ok(valid.unwrap_or_else(|| s.public(&vec![1; table.rows])))
}

fn limb0<'a>(table: &'a SecretTable, name: &str) -> Result<&'a Arith, ExecError> {
    table
        .column(name)
        .and_then(|c| c.limbs.first())
        .ok_or_else(|| ExecError::Unsupported(format!("merge column {name:?} was not loaded")))
}

/// Joins `l` and `r`; see the module documentation.
#[allow(clippy::too_many_arguments)]
pub(crate) fn merge<T: Transport>(
    s: &mut Session<T>,
    l: &SecretTable,
    r: &SecretTable,
    how: How,
    keys: &[MergeKey],
    left_columns: &[(String, String)],
    right_columns: &[(String, String)],
    schema: &TableSchema,
    needed: &BTreeSet<String>,
    algorithm: SortAlgorithm,
) -> Result<SecretTable, ExecError> {
    let (nl, nr) = (l.rows, r.rows);
    let n = nl + nr;
    let id = s.id();

    // Rows that take part: selected and with no null key.
    let lk: Vec<&str> = keys.iter().map(|k| k.left.as_str()).collect();
    let rk: Vec<&str> = keys.iter().map(|k| k.right.as_str()).collect();
    let ml = selected(s, l, &lk)?;
    let mr = selected(s, r, &rk)?;
    let m = Arith::concat(&[&ml, &mr]);
    let mut tag_values = vec![0u64; nl];
    tag_values.resize(n, 1);
    let tag = s.public(&tag_values);

    // Key parts, most significant first: unselected rows sort last, then
    // the key, then the side (left first within equal keys).
    let mut parts: Vec<(Arith, u32, bool)> = vec![(one_minus(s, &m), 1, false)];
    for k in keys {
        if k.width > LIMB_BITS {
            return Err(ExecError::Unsupported(format!(
                "merge key {:?} spans {} bits; at most {LIMB_BITS} are supported",
                k.left, k.width
            )));
        }
        let offset = |x: &Arith| x.add_public(id, (k.min as i64).wrapping_neg() as u64);
        let stacked = Arith::concat(&[&offset(limb0(l, &k.left)?), &offset(limb0(r, &k.right)?)]);
        parts.push((stacked, k.width, false));
    }
    parts.push((tag.clone(), 1, true));
    // Limbs: (value, width, ends with the side bit, only the side bit).
    let mut limbs: Vec<(Arith, u32, bool, bool)> = Vec::new();
    for (part, width, is_tag) in parts {
        match limbs.last_mut() {
            Some((value, w, ends, _)) if *w + width <= LIMB_BITS => {
                *value = value.mul_public(1u64 << width).add(&part)?;
                *w += width;
                *ends = is_tag;
            }
            _ => limbs.push((part, width, is_tag, is_tag)),
        }
    }

    let mut stack = Stack {
        columns: Vec::new(),
    };
    let limb_at: Vec<usize> = limbs.iter().map(|l| stack.push(l.0.clone())).collect();
    let tag_at = stack.push(tag);
    let m_at = stack.push(m);
    // A left join keeps selected left rows whose key is null: they carry
    // their selection separately from `m`, which also needs a non-null key.
    let sel_at = if how == How::Left {
        let sel = l.mask.clone().unwrap_or_else(|| s.public(&vec![1; nl]));
        Some(stack.push(Arith::concat(&[&sel, &zeros(nr)])))
    } else {
        None
    };

    let ones_l = || s.public(&vec![1; nl]);
    let ones_r = || s.public(&vec![1; nr]);
    let mut carried: Vec<Carried> = Vec::new();
    for (k, info) in keys.iter().zip(&schema.columns) {
        if !needed.contains(&info.name) {
            continue;
        }
        let value = Arith::concat(&[limb0(l, &k.left)?, limb0(r, &k.right)?]);
        let limbs = vec![stack.push(value)];
        let valid = if info.nullable {
            let lv = l
                .column(&k.left)
                .and_then(|c| c.valid.clone())
                .unwrap_or_else(ones_l);
            let rv = r
                .column(&k.right)
                .and_then(|c| c.valid.clone())
                .unwrap_or_else(ones_r);
            Some(stack.push(Arith::concat(&[&lv, &rv])))
        } else {
            None
        };
        carried.push(Carried {
            name: info.name.clone(),
            side: Side::Key,
            limbs,
            valid,
        });
    }
    for (side, table, columns, other) in [
        (Side::Left, l, left_columns, nr),
        (Side::Right, r, right_columns, nl),
    ] {
        for (src, out) in columns {
            if !needed.contains(out) {
                continue;
            }
            let c = table.column(src).ok_or_else(|| {
                ExecError::Unsupported(format!("merge column {src:?} was not loaded"))
            })?;
            let place = |x: &Arith| match side {
                Side::Right => Arith::concat(&[&zeros(other), x]),
                _ => Arith::concat(&[x, &zeros(other)]),
            };
            let limbs = c.limbs.iter().map(|x| stack.push(place(x))).collect();
            let valid = c.valid.as_ref().map(|v| stack.push(place(v)));
            carried.push(Carried {
                name: out.clone(),
                side,
                limbs,
                valid,
            });
        }
    }

    if n < 2 {
        // Nothing can match: a left join keeps its selected left rows with
        // null right columns, an inner join keeps nothing.
        let mask = match sel_at {
            Some(i) => stack.columns[i].clone(),
            None => zeros(n),
        };
        let nulls: Vec<Option<Arith>> = carried
            .iter()
            .map(|c| (c.side == Side::Right).then(|| zeros(n)))
            .collect();
        return Ok(assemble(
            s,
            schema,
            &carried,
            &stack.columns,
            mask,
            |_| None,
            |k| nulls[k].clone(),
        ));
    }

    let key = SortKey::new(limbs.iter().map(|(v, w, _, _)| (v.clone(), *w)).collect())?;
    let refs: Vec<&Arith> = stack.columns.iter().collect();
    let sorted = s.sort(&key, &refs, algorithm)?;
    drop(refs);
    let t = &sorted[tag_at];
    let m = &sorted[m_at];

    // e[i] = 1 when row i has the same (selected, key) as row i - 1.
    let mut e_bits: Option<Bits> = None;
    for ((_, width, ends_with_tag, only_tag), at) in limbs.iter().zip(&limb_at) {
        if *only_tag {
            continue;
        }
        let value = if *ends_with_tag {
            sorted[*at].sub(t)?
        } else {
            sorted[*at].clone()
        };
        let eq = s.eq(&value.slice(1..n), &value.slice(0..n - 1), *width)?;
        e_bits = Some(match e_bits {
            Some(acc) => s.and(&acc, &eq)?,
            None => eq,
        });
    }
    let e_bits = e_bits.ok_or_else(|| ExecError::Unsupported("merge without keys".into()))?;
    let e = Arith::concat(&[&zeros(1), &s.inject(&e_bits)?]);

    // Duplicates on one side: equal neighbours that are both on that side.
    let prods = s.mul_many(&[(&e, m), (&t.slice(1..n), &t.slice(0..n - 1))])?;
    let a = prods[0].clone();
    let tt = Arith::concat(&[&zeros(1), &prods[1]]);
    let t_prev = shift_down(t);
    // (1 - t_i)(1 - t_{i-1}) = 1 - t_i - t_{i-1} + t_i t_{i-1}.
    let ll = one_minus(s, t).sub(&t_prev)?.add(&tt)?;
    let dups = s.inner_products(&[(&a, &tt), (&a, &ll)])?;
    let none = s.eq(&dups, &zeros(2), 64)?;
    let unique = s.reveal_bits(&none)?;
    let (right_unique, left_unique) = (unique[0], unique[1]);

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Plan {
        Shift,
        Copy,
        LeftJoinOntoMany,
    }
    // u_is_right: the unique side whose columns move is the right one.
    let (u_is_right, plan) = match (left_unique, right_unique, how) {
        (true, true, How::Inner) => (false, Plan::Shift),
        (true, true, How::Left) => (true, Plan::Shift),
        (false, true, _) => (true, Plan::Copy),
        (true, false, How::Inner) => (false, Plan::Copy),
        (true, false, How::Left) => (false, Plan::LeftJoinOntoMany),
        (false, false, _) => return Err(ExecError::NotUnique),
    };
    // Put the unique side first within each key: reverse when it is the
    // right side (it sorted after the left).
    let orient = |x: &Arith| if u_is_right { reverse(x) } else { x.clone() };
    let columns: Vec<Arith> = sorted.iter().map(orient).collect();
    // a[i]: row i is selected and continues row i - 1's key. Reversed, row
    // j's predecessor is the original row n - j.
    let a = if u_is_right {
        reverse(&shift_up(&a))
    } else {
        a
    };
    let t = &columns[tag_at];
    let m = &columns[m_at];
    let sel = sel_at.map(|i| &columns[i]);
    let u = if u_is_right {
        t.clone()
    } else {
        one_minus(s, t)
    };
    let u_side = if u_is_right { Side::Right } else { Side::Left };

    // Indices of the unique side's payload, moved to the many side's rows.
    let moving: Vec<usize> = carried
        .iter()
        .filter(|c| c.side == u_side)
        .flat_map(|c| c.limbs.iter().copied().chain(c.valid))
        .collect();
    let mut moved: Vec<Option<Arith>> = vec![None; columns.len()];
    let (mask, matched) = match plan {
        Plan::Shift => {
            for &i in &moving {
                moved[i] = Some(shift_down(&columns[i]));
            }
            let mask = match sel {
                Some(sel) => sel.clone(),
                None => a.clone(),
            };
            (mask, a)
        }
        Plan::Copy | Plan::LeftJoinOntoMany => {
            // Unselected rows each start their own segment, so nothing is
            // copied into or out of them.
            let starts = one_minus(s, &a);
            let mut values: Vec<&Arith> = vec![&u];
            values.extend(moving.iter().map(|&i| &columns[i]));
            let copied = s.copy_forward(&starts, &values)?;
            for (&i, c) in moving.iter().zip(&copied[1..]) {
                moved[i] = Some(c.clone());
            }
            let start_is_u = &copied[0];
            let many = one_minus(s, &u);
            match (plan, how) {
                (Plan::LeftJoinOntoMany, _) => {
                    // Right rows that matched, and selected left rows that
                    // did not (including those with a null key).
                    let sel = sel.ok_or_else(|| ExecError::Unsupported("left join".into()))?;
                    let next_match = shift_up(&a);
                    let p = s.mul_many(&[
                        (t, start_is_u),
                        (&one_minus(s, t), &one_minus(s, &next_match)),
                    ])?;
                    let q = s.mul_many(&[(&p[0], m), (&p[1], sel)])?;
                    (q[0].add(&q[1])?, t.clone())
                }
                (_, How::Inner) => {
                    let p = s.mul(&many, m)?;
                    let mask = s.mul(&p, start_is_u)?;
                    (mask, start_is_u.clone())
                }
                (_, How::Left) => {
                    let sel = sel.ok_or_else(|| ExecError::Unsupported("left join".into()))?;
                    (sel.clone(), start_is_u.clone())
                }
            }
        }
    };

    // Validity of the unique side's columns in a left join: only where a
    // match brought them. In the left-join-onto-many plan the right side
    // (the many side) is null on left rows.
    let null_where_unmatched = how == How::Left;
    let needs_matched: Vec<bool> = carried
        .iter()
        .map(|c| match plan {
            Plan::LeftJoinOntoMany => null_where_unmatched && c.side == Side::Right,
            _ => null_where_unmatched && c.side == u_side,
        })
        .collect();
    let mut validity: Vec<Option<Arith>> = Vec::with_capacity(carried.len());
    for (c, needs) in carried.iter().zip(&needs_matched) {
        let own = c
            .valid
            .map(|i| moved[i].clone().unwrap_or_else(|| columns[i].clone()));
        validity.push(if *needs {
            match own {
                Some(v) => Some(s.mul(&v, &matched)?),
                None => Some(matched.clone()),
            }
        } else {
            own
        });
    }
    Ok(assemble(
        s,
        schema,
        &carried,
        &columns,
        mask,
        |i| moved[i].clone(),
        |k| validity[k].clone(),
    ))
}

fn assemble<T: Transport>(
    s: &Session<T>,
    schema: &TableSchema,
    carried: &[Carried],
    columns: &[Arith],
    mask: Arith,
    moved: impl Fn(usize) -> Option<Arith>,
    validity: impl Fn(usize) -> Option<Arith>,
) -> SecretTable {
    let n = mask.len();
    let mut out = Vec::new();
    for info in &schema.columns {
        let Some(k) = carried.iter().position(|c| c.name == info.name) else {
            continue;
        };
        let c = &carried[k];
        let limbs = c
            .limbs
            .iter()
            .map(|&i| moved(i).unwrap_or_else(|| columns[i].clone()))
            .collect();
        let valid = if info.nullable {
            Some(
                validity(k)
                    .or_else(|| c.valid.map(|i| columns[i].clone()))
                    .unwrap_or_else(|| s.public(&vec![1; n])),
            )
        } else {
            None
        };
        out.push(SecretColumn {
            info: info.clone(),
            limbs,
            valid,
        });
    }
    SecretTable {
        rows: n,
        columns: out,
        mask: Some(mask),
    }
}
