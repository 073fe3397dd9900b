//! Which frames and columns a query really uses, so merges carry and
//! tables load only those.

use std::collections::BTreeSet;

use triad_plan::{Checked, CheckedOp, CheckedOutput, TypedExpr, TypedKind};

use crate::{ExecError, SecretTable};

/// How many later frames (and the output) read each frame.
pub(crate) fn uses(checked: &Checked) -> Vec<usize> {
    let mut uses = vec![0usize; checked.frames.len()];
    let mut add = |id: u32| {
        if let Some(u) = uses.get_mut(id as usize) {
            *u += 1;
        }
    };
    for frame in &checked.frames {
        match &frame.op {
            CheckedOp::Table { .. } => {}
            CheckedOp::Filter { input, .. }
            | CheckedOp::WithColumn { input, .. }
            | CheckedOp::Select { input, .. } => add(*input),
            CheckedOp::Merge { left, right, .. } => {
                add(*left);
                add(*right);
            }
        }
    }
    match &checked.output {
        CheckedOutput::Aggregate { frame, .. }
        | CheckedOutput::GroupBy { frame, .. }
        | CheckedOutput::Store { frame } => add(*frame),
    }
    // Frames nobody reads are skipped; their inputs need not be kept for
    // them either.
    for index in (0..checked.frames.len()).rev() {
        if uses[index] == 0 {
            let mut drop_use = |id: u32| uses[id as usize] = uses[id as usize].saturating_sub(1);
            match &checked.frames[index].op {
                CheckedOp::Table { .. } => {}
                CheckedOp::Filter { input, .. }
                | CheckedOp::WithColumn { input, .. }
                | CheckedOp::Select { input, .. } => drop_use(*input),
                CheckedOp::Merge { left, right, .. } => {
                    drop_use(*left);
                    drop_use(*right);
                }
            }
        }
    }
    uses
}

/// The frame `id` for one of its readers: the last reader takes it, the
/// others get a copy.
pub(crate) fn take(
    frames: &mut [Option<SecretTable>],
    remaining: &mut [usize],
    id: u32,
) -> Result<SecretTable, ExecError> {
    let id = id as usize;
    let missing = || ExecError::Unsupported(format!("frame {id} was not computed"));
    let left = remaining.get_mut(id).ok_or_else(missing)?;
    *left = left.saturating_sub(1);
    if *left == 0 {
        frames
            .get_mut(id)
            .and_then(Option::take)
            .ok_or_else(missing)
    } else {
        frames.get(id).and_then(Option::clone).ok_or_else(missing)
    }
}

pub(crate) fn expr_columns(expr: &TypedExpr, out: &mut BTreeSet<String>) {
    match &expr.kind {
        TypedKind::Column(name) => {
            out.insert(name.clone());
        }
        TypedKind::Literal(_) => {}
        TypedKind::Rescale { expr, .. }
        | TypedKind::Not(expr)
        | TypedKind::IsNull(expr)
        | TypedKind::Truth(expr) => expr_columns(expr, out),
        TypedKind::Arith { left, right, .. }
        | TypedKind::Compare { left, right, .. }
        | TypedKind::Logic { left, right, .. } => {
            expr_columns(left, out);
            expr_columns(right, out);
        }
    }
}

/// For each frame, the columns its readers need from it.
pub(crate) fn needed_columns(checked: &Checked) -> Vec<BTreeSet<String>> {
    let mut needed: Vec<BTreeSet<String>> = vec![BTreeSet::new(); checked.frames.len()];
    match &checked.output {
        CheckedOutput::Aggregate { frame, column, .. } => {
            if let (Some(set), Some(c)) = (needed.get_mut(*frame as usize), column) {
                set.insert(c.name.clone());
            }
        }
        CheckedOutput::GroupBy {
            frame,
            keys,
            aggregations,
            ..
        } => {
            if let Some(set) = needed.get_mut(*frame as usize) {
                set.extend(keys.iter().map(|k| k.name.clone()));
                set.extend(
                    aggregations
                        .iter()
                        .filter_map(|(_, c)| c.as_ref().map(|c| c.name.clone())),
                );
            }
        }
        CheckedOutput::Store { frame } => {
            if let Some(f) = checked.frames.get(*frame as usize) {
                needed[*frame as usize] = f.schema.columns.iter().map(|c| c.name.clone()).collect();
            }
        }
    }
    for index in (0..checked.frames.len()).rev() {
        let mine = needed[index].clone();
        match &checked.frames[index].op {
            CheckedOp::Table { .. } => {}
            CheckedOp::Filter { input, predicate } => {
                let set = &mut needed[*input as usize];
                set.extend(mine);
                expr_columns(predicate, set);
            }
            CheckedOp::WithColumn { input, name, expr } => {
                let set = &mut needed[*input as usize];
                let computes = mine.contains(name);
                set.extend(mine.into_iter().filter(|c| c != name));
                if computes {
                    expr_columns(expr, set);
                }
            }
            CheckedOp::Select { input, .. } => needed[*input as usize].extend(mine),
            CheckedOp::Merge {
                left,
                right,
                keys,
                left_columns,
                right_columns,
                ..
            } => {
                let pick = |columns: &[(String, String)]| -> Vec<String> {
                    columns
                        .iter()
                        .filter(|(_, out)| mine.contains(out))
                        .map(|(src, _)| src.clone())
                        .collect()
                };
                let l = pick(left_columns);
                let r = pick(right_columns);
                needed[*left as usize].extend(keys.iter().map(|k| k.left.clone()).chain(l));
                needed[*right as usize].extend(keys.iter().map(|k| k.right.clone()).chain(r));
            }
        }
    }
    needed
}
