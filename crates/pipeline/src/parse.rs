//! The node tree to a [`Pipeline`]: every key, type and name, nothing that
//! needs more than one action at a time (that is `validate`'s).
//!
//! Reading goes on past every problem, keeping what it can, so that the
//! checks across actions still run and the analyst sees every error in one
//! pass. A value that could not be read is left out (or, for a script,
//! left empty) and the problem is already in the report.

use std::collections::BTreeMap;

use crate::error::{ErrorKind, Position, Report};
use crate::model::{Action, Input, InputSource, Level, Output, OutputKind, Pipeline, Spanned};
use crate::yaml::{Node, Value};
use crate::{VERSION, yaml};

/// Names are referred to as `action.output` and shown in pages and paths:
/// no dots, no spaces, nothing a file system or a URL treats specially.
const NAME_CHARS_MAX: usize = 64;

pub(crate) fn is_valid_name(name: &str) -> bool {
    (1..=NAME_CHARS_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn name_problem(what: &str, name: &str) -> String {
    format!("{what} name {name:?} is not allowed: use 1 to {NAME_CHARS_MAX} of A-Z a-z 0-9 _ -")
}

/// Reads the text; `None` when it is not a YAML tree at all.
pub(crate) fn read(text: &str, report: &mut Report) -> Option<Pipeline> {
    let root = yaml::load(text, report)?;
    let file = report.file.to_owned();
    let mut pipeline = Pipeline {
        version: VERSION,
        actions: Vec::new(),
        file,
    };
    let top = Position { line: 1, column: 1 };
    let Some(root) = root else {
        report.push(
            top,
            ErrorKind::MissingKey,
            "the file is empty: a pipeline has \"version\" and \"actions\"".into(),
        );
        return Some(pipeline);
    };
    let Some(entries) = mapping(&root, "the top level", report) else {
        return Some(pipeline);
    };
    let fields = Fields::read(
        entries,
        &["version", "actions"],
        |key, first| format!("key {key:?} is given twice at the top level (first at line {first})"),
        |key| format!("unknown key {key:?} at the top level (a pipeline has version and actions)"),
        report,
    );

    match fields.get("version") {
        None => report.push(
            root.position,
            ErrorKind::MissingKey,
            format!("missing key \"version\" (write version: {VERSION})"),
        ),
        Some(node) => match scalar(node, "version", report) {
            Some(text) if text == VERSION.to_string() => {}
            Some(text) => report.push(
                node.position,
                ErrorKind::UnsupportedVersion,
                format!("version {text:?} is not supported: this triad reads version {VERSION}"),
            ),
            None => {}
        },
    }

    match fields.get("actions") {
        None => report.push(
            root.position,
            ErrorKind::MissingKey,
            "missing key \"actions\"".into(),
        ),
        Some(node) if node.is_null() => report.push(
            node.position,
            ErrorKind::MissingKey,
            "\"actions\" lists no action".into(),
        ),
        Some(node) => {
            if let Some(entries) = mapping(node, "\"actions\"", report) {
                if entries.is_empty() {
                    report.push(
                        node.position,
                        ErrorKind::MissingKey,
                        "\"actions\" lists no action".into(),
                    );
                }
                let actions = entries_of(
                    entries,
                    |name, first| {
                        (
                            ErrorKind::DuplicateAction,
                            format!("action {name:?} is defined twice (first at line {first})"),
                        )
                    },
                    report,
                );
                for entry in actions {
                    pipeline.actions.push(action(&entry, report));
                }
            }
        }
    }
    Some(pipeline)
}

fn action(entry: &Entry, report: &mut Report) -> Action {
    let name = entry.key;
    if !is_valid_name(name) {
        report.push(
            entry.position,
            ErrorKind::InvalidName,
            name_problem("action", name),
        );
    }
    let mut action = Action {
        name: name.to_owned(),
        position: entry.position,
        script: Spanned {
            value: String::new(),
            position: entry.position,
        },
        needs: Vec::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
    };
    let Some(entries) = mapping(entry.value, &format!("action {name:?}"), report) else {
        return action;
    };
    let fields = Fields::read(
        entries,
        &["script", "needs", "inputs", "outputs"],
        |key, first| {
            format!("key {key:?} is given twice in action {name:?} (first at line {first})")
        },
        |key| format!("unknown key {key:?} in action {name:?}"),
        report,
    );

    match fields.get("script") {
        None => report.push(
            entry.position,
            ErrorKind::MissingKey,
            format!("action {name:?} has no \"script\""),
        ),
        Some(node) => {
            if let Some(text) = scalar(node, "\"script\"", report) {
                if text.is_empty() || node.is_null() {
                    report.push(
                        node.position,
                        ErrorKind::MissingKey,
                        format!("action {name:?} has an empty \"script\""),
                    );
                } else {
                    action.script = Spanned {
                        value: text.to_owned(),
                        position: node.position,
                    };
                }
            }
        }
    }

    if let Some(node) = fields.get("needs") {
        action.needs = needs(node, name, report);
    }
    if let Some(node) = fields.get("inputs") {
        action.inputs = inputs(node, name, report);
    }
    match fields.get("outputs") {
        None => report.push(
            entry.position,
            ErrorKind::MissingKey,
            format!("action {name:?} has no \"outputs\""),
        ),
        Some(node) => action.outputs = outputs(node, name, report),
    }
    action
}

fn needs(node: &Node, action: &str, report: &mut Report) -> Vec<Spanned<String>> {
    let mut needs: Vec<Spanned<String>> = Vec::new();
    if node.is_null() {
        return needs;
    }
    let items = match &node.value {
        Value::Sequence(items) => items,
        Value::Refused => return needs,
        _ => {
            report.push(
                node.position,
                ErrorKind::WrongType,
                format!(
                    "\"needs\" of action {action:?} is a list (needs: [name, ...]), found {}",
                    node.shape()
                ),
            );
            return needs;
        }
    };
    for item in items {
        let Some(text) = scalar(item, "an entry of \"needs\"", report) else {
            continue;
        };
        if let Some(first) = needs.iter().find(|n| n.value == text) {
            report.push(
                item.position,
                ErrorKind::DuplicateNeed,
                format!(
                    "action {action:?} lists {text:?} in \"needs\" twice (first at line {})",
                    first.position.line
                ),
            );
            continue;
        }
        needs.push(Spanned {
            value: text.to_owned(),
            position: item.position,
        });
    }
    needs
}

fn inputs(node: &Node, action: &str, report: &mut Report) -> Vec<Input> {
    let mut inputs = Vec::new();
    if node.is_null() {
        return inputs;
    }
    let Some(entries) = mapping(node, &format!("\"inputs\" of action {action:?}"), report) else {
        return inputs;
    };
    let entries = entries_of(
        entries,
        |name, first| {
            (
                ErrorKind::DuplicateKey,
                format!(
                    "input {name:?} is given twice in action {action:?} (first at line {first})"
                ),
            )
        },
        report,
    );
    for entry in entries {
        if !is_valid_name(entry.key) {
            report.push(
                entry.position,
                ErrorKind::InvalidName,
                name_problem("input", entry.key),
            );
        }
        let Some(text) = scalar(entry.value, &format!("input {:?}", entry.key), report) else {
            continue;
        };
        match input_source(text) {
            Ok(source) => inputs.push(Input {
                name: entry.key.to_owned(),
                source,
                position: entry.value.position,
            }),
            Err(problem) => report.push(
                entry.value.position,
                ErrorKind::InvalidInput,
                format!(
                    "input {:?} of action {action:?} is {text:?}: {problem}",
                    entry.key
                ),
            ),
        }
    }
    inputs
}

fn input_source(text: &str) -> Result<InputSource, &'static str> {
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            // Handles are compared as text on the nodes: an uppercase
            // spelling would name no table.
            return Err("handles are written in lowercase hex");
        }
        return Ok(InputSource::Handle(text.to_owned()));
    }
    match text.split_once('.') {
        Some((action, output)) if is_valid_name(action) && is_valid_name(output) => {
            Ok(InputSource::Output {
                action: action.to_owned(),
                output: output.to_owned(),
            })
        }
        _ => Err("expected a handle (64 lowercase hex digits) or action.output"),
    }
}

fn outputs(node: &Node, action: &str, report: &mut Report) -> Vec<Output> {
    let mut outputs: Vec<Output> = Vec::new();
    let empty = || format!("action {action:?} declares no outputs");
    if node.is_null() {
        report.push(node.position, ErrorKind::MissingKey, empty());
        return outputs;
    }
    let Some(entries) = mapping(node, &format!("\"outputs\" of action {action:?}"), report) else {
        return outputs;
    };
    let levels = Fields::read(
        entries,
        &[
            Level::HighlySensitive.key(),
            Level::ModeratelySensitive.key(),
        ],
        |key, first| {
            format!(
                "level {key:?} is given twice in the outputs of action {action:?} (first at line {first})"
            )
        },
        |key| {
            format!(
                "unknown privacy level {key:?} in action {action:?} (expected highly_sensitive or moderately_sensitive)"
            )
        },
        report,
    );
    for level in [Level::HighlySensitive, Level::ModeratelySensitive] {
        let Some(node) = levels.get(level.key()) else {
            continue;
        };
        if node.is_null() {
            continue;
        }
        let Some(entries) = mapping(
            node,
            &format!("{:?} of action {action:?}", level.key()),
            report,
        ) else {
            continue;
        };
        let entries = entries_of(
            entries,
            |name, first| {
                (
                    ErrorKind::DuplicateOutput,
                    format!(
                        "output {name:?} is declared twice in action {action:?} (first at line {first})"
                    ),
                )
            },
            report,
        );
        for entry in entries {
            if !is_valid_name(entry.key) {
                report.push(
                    entry.position,
                    ErrorKind::InvalidName,
                    name_problem("output", entry.key),
                );
            }
            // Names are per action (others write `action.output`), so the
            // only clash is one action using a name under both levels.
            if let Some(first) = outputs.iter().find(|o| o.name == entry.key) {
                report.push(
                    entry.position,
                    ErrorKind::DuplicateOutput,
                    format!(
                        "output {:?} of action {action:?} is declared under both {} and {} (first at line {})",
                        entry.key,
                        first.level.key(),
                        level.key(),
                        first.position.line
                    ),
                );
                continue;
            }
            let Some(text) = scalar(entry.value, &format!("output {:?}", entry.key), report) else {
                continue;
            };
            let kind = match text {
                "table" => OutputKind::Table,
                "aggregates" => OutputKind::Aggregates,
                other => {
                    report.push(
                        entry.value.position,
                        ErrorKind::UnknownOutputKind,
                        format!(
                            "unknown output kind {other:?} for output {:?} of action {action:?} (expected table or aggregates)",
                            entry.key
                        ),
                    );
                    continue;
                }
            };
            outputs.push(Output {
                name: entry.key.to_owned(),
                level,
                kind,
                position: entry.position,
            });
        }
    }
    // Only when nothing at all is written under `outputs`: a level or kind
    // already reported wrong would otherwise be reported twice.
    let declared_any = entries.iter().any(|(_, value)| match &value.value {
        Value::Mapping(entries) => !entries.is_empty(),
        _ => !value.is_null(),
    });
    if outputs.is_empty() && !declared_any {
        report.push(node.position, ErrorKind::MissingKey, empty());
    }
    outputs
}

/// One mapping entry with a string key.
struct Entry<'a> {
    key: &'a str,
    position: Position,
    value: &'a Node,
}

/// The entries of a mapping, each key once: later repeats are reported as
/// `duplicate` says and dropped, so the first definition is the one read.
fn entries_of<'a>(
    entries: &'a [(Node, Node)],
    duplicate: impl Fn(&str, usize) -> (ErrorKind, String),
    report: &mut Report,
) -> Vec<Entry<'a>> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (key, value) in entries {
        let text = match &key.value {
            Value::Scalar { text, .. } => text.as_str(),
            Value::Refused => continue,
            _ => {
                report.push(
                    key.position,
                    ErrorKind::WrongType,
                    format!("keys are strings, found {}", key.shape()),
                );
                continue;
            }
        };
        if let Some(first) = seen.get(text) {
            let (kind, message) = duplicate(text, *first);
            report.push(key.position, kind, message);
            continue;
        }
        seen.insert(text, key.position.line);
        out.push(Entry {
            key: text,
            position: key.position,
            value,
        });
    }
    out
}

/// A mapping's known keys.
struct Fields<'a> {
    entries: Vec<Entry<'a>>,
}

impl<'a> Fields<'a> {
    fn read(
        entries: &'a [(Node, Node)],
        allowed: &[&str],
        duplicate: impl Fn(&str, usize) -> String,
        unknown: impl Fn(&str) -> String,
        report: &mut Report,
    ) -> Fields<'a> {
        let entries = entries_of(
            entries,
            |key, first| (ErrorKind::DuplicateKey, duplicate(key, first)),
            report,
        );
        let mut known = Vec::new();
        for entry in entries {
            if allowed.contains(&entry.key) {
                known.push(entry);
            } else {
                let hint = suggestion(entry.key, allowed);
                report.push(
                    entry.position,
                    ErrorKind::UnknownKey,
                    format!("{}{hint}", unknown(entry.key)),
                );
            }
        }
        Fields { entries: known }
    }

    fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries.iter().find(|e| e.key == key).map(|e| e.value)
    }
}

/// The node as a mapping's entries, or a report that it is not one.
fn mapping<'a>(node: &'a Node, what: &str, report: &mut Report) -> Option<&'a [(Node, Node)]> {
    match &node.value {
        Value::Mapping(entries) => Some(entries),
        Value::Refused => None,
        _ => {
            report.push(
                node.position,
                ErrorKind::WrongType,
                format!(
                    "{what} is a mapping (key: value lines), found {}",
                    node.shape()
                ),
            );
            None
        }
    }
}

/// The node as text, or a report that it is not a scalar.
fn scalar<'a>(node: &'a Node, what: &str, report: &mut Report) -> Option<&'a str> {
    match &node.value {
        Value::Scalar { text, .. } => Some(text),
        Value::Refused => None,
        _ => {
            report.push(
                node.position,
                ErrorKind::WrongType,
                format!("{what} is a single value, found {}", node.shape()),
            );
            None
        }
    }
}

/// ` (did you mean "x"?)` when `word` is a likely typo of a candidate.
pub(crate) fn suggestion(word: &str, candidates: &[&str]) -> String {
    // Long words are never typos of short keys, and the distance is
    // quadratic: don't spend it on a pasted paragraph.
    if word.len() > 2 * NAME_CHARS_MAX {
        return String::new();
    }
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2 && *d < c.len().min(word.len().max(1)))
        .min()
        .map(|(_, c)| format!(" (did you mean {c:?}?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "merge_tables", "step-2", &"x".repeat(64)] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "a.b", "a b", "é", &"x".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn input_sources() {
        let handle = "0123456789abcdef".repeat(4);
        assert_eq!(
            input_source(&handle),
            Ok(InputSource::Handle(handle.clone()))
        );
        assert!(input_source(&handle.to_uppercase()).is_err());
        assert!(input_source(&handle[1..]).is_err());
        assert_eq!(
            input_source("merge.merged"),
            Ok(InputSource::Output {
                action: "merge".into(),
                output: "merged".into()
            })
        );
        for bad in ["merge", "a.b.c", ".x", "x.", "a b.c"] {
            assert!(input_source(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn suggestions() {
        let keys = ["script", "needs", "inputs", "outputs"];
        assert_eq!(suggestion("nedes", &keys), " (did you mean \"needs\"?)");
        assert_eq!(suggestion("output", &keys), " (did you mean \"outputs\"?)");
        assert_eq!(suggestion("run", &keys), "");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
