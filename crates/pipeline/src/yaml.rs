//! YAML text to a small node tree that remembers where everything was.
//!
//! Built from saphyr-parser's events rather than a ready-made document type
//! because those keep one value per mapping key: a duplicate key (two
//! actions with one name) would vanish silently. Here a mapping is a list of
//! entries, duplicates included, and the pipeline reader reports them.

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::error::{ErrorKind, Position, Report};

/// Deeper than any pipeline file needs (the format has four levels), and
/// low enough that dropping or walking the tree recursively cannot run out
/// of stack.
const DEPTH_MAX: usize = 16;

/// A YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) position: Position,
    pub(crate) value: Value,
}

/// What a node holds. Scalars stay text: the pipeline format decides what
/// each means, so `version: 1` and a 64-digit handle made only of digits
/// both read as their characters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Scalar {
        text: String,
        /// Plain (unquoted): only a plain empty or `~`/`null` is null.
        plain: bool,
    },
    Sequence(Vec<Node>),
    /// Entries in file order, duplicate keys kept.
    Mapping(Vec<(Node, Node)>),
    /// Something already reported (an alias): any use of it is not checked
    /// further.
    Refused,
}

impl Node {
    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// A short name for the node's shape, for "expected X, found Y".
    pub(crate) fn shape(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "nothing",
            Value::Scalar { .. } => "a string",
            Value::Sequence(_) => "a list",
            Value::Mapping(_) => "a mapping",
            Value::Refused => "an alias",
        }
    }
}

fn position(span: &Span) -> Position {
    Position {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

enum Frame {
    Sequence(Position, Vec<Node>),
    Mapping(Position, Vec<(Node, Node)>, Option<Node>),
}

/// Reads one YAML document. `None` when the text cannot be read as a tree
/// at all (a syntax error, too deep): then the report says why, and nothing
/// else about the file is worth saying.
pub(crate) fn load(text: &str, report: &mut Report) -> Option<Option<Node>> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    for item in Parser::new_from_str(text) {
        let (event, span) = match item {
            Ok(item) => item,
            Err(error) => {
                let marker = error.marker();
                report.push(
                    Position {
                        line: marker.line(),
                        column: marker.col() + 1,
                    },
                    ErrorKind::Syntax,
                    format!("not valid YAML: {}", error.info()),
                );
                return None;
            }
        };
        let at = position(&span);
        let node = match event {
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    // A second document would be ignored by some readers and
                    // merged by others; refuse it so the file means one thing.
                    report.push(
                        at,
                        ErrorKind::Unsupported,
                        "a pipeline file holds one YAML document; this is a second".into(),
                    );
                    break;
                }
                continue;
            }
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => continue,
            Event::Alias(_) => {
                // Aliases let one line stand for a large subtree elsewhere,
                // so the line numbers in errors would point at the wrong
                // text; pipelines are short enough to write out.
                report.push(
                    at,
                    ErrorKind::Unsupported,
                    "YAML aliases (*name) are not supported: write the value out".into(),
                );
                Node {
                    position: at,
                    value: Value::Refused,
                }
            }
            Event::Scalar(text, style, _, _) => Node {
                position: at,
                value: Value::Scalar {
                    text: text.into_owned(),
                    plain: style == ScalarStyle::Plain,
                },
            },
            Event::SequenceStart(_, _) | Event::MappingStart(_, _) => {
                if stack.len() >= DEPTH_MAX {
                    report.push(
                        at,
                        ErrorKind::Unsupported,
                        format!("nested deeper than {DEPTH_MAX} levels"),
                    );
                    return None;
                }
                stack.push(match event {
                    Event::SequenceStart(..) => Frame::Sequence(at, Vec::new()),
                    _ => Frame::Mapping(at, Vec::new(), None),
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Sequence(at, items)) => Node {
                    position: at,
                    value: Value::Sequence(items),
                },
                Some(Frame::Mapping(at, entries, _)) => Node {
                    position: at,
                    value: Value::Mapping(entries),
                },
                // The parser balances starts and ends; a stray end has
                // nothing to close, so there is nothing to attach.
                None => continue,
            },
        };
        match stack.last_mut() {
            None => {
                if root.is_none() {
                    root = Some(node);
                }
            }
            Some(Frame::Sequence(_, items)) => items.push(node),
            Some(Frame::Mapping(_, entries, key)) => match key.take() {
                Some(key) => entries.push((key, node)),
                None => *key = Some(node),
            },
        }
    }
    Some(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> (Option<Option<Node>>, Vec<crate::Error>) {
        let mut report = Report::new("t.yaml");
        let node = load(text, &mut report);
        (node, report.errors)
    }

    #[test]
    fn keeps_duplicate_keys_and_positions() {
        let (node, errors) = tree("a: 1\nb:\n  c: x\na: 2\n");
        assert!(errors.is_empty());
        let node = node.flatten().expect("a mapping");
        let Value::Mapping(entries) = &node.value else {
            panic!("expected a mapping, got {node:?}");
        };
        let keys: Vec<_> = entries
            .iter()
            .map(|(k, _)| (k.position.line, k.position.column))
            .collect();
        assert_eq!(keys, vec![(1, 1), (2, 1), (4, 1)]);
        let Value::Mapping(inner) = &entries[1].1.value else {
            panic!("expected a mapping");
        };
        assert_eq!(inner[0].0.position, Position { line: 3, column: 3 });
    }

    #[test]
    fn refuses_what_the_format_does_not_use() {
        let (_, errors) = tree("a: &x 1\nb: *x\n");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].kind, ErrorKind::Unsupported);
        assert_eq!(errors[0].line, 2);

        let (node, errors) = tree("a: 1\n---\nb: 2\n");
        assert!(node.is_some());
        assert_eq!(errors[0].kind, ErrorKind::Unsupported);
        assert_eq!(errors[0].line, 2);

        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let (node, errors) = tree(&deep);
        assert!(node.is_none());
        assert_eq!(errors[0].kind, ErrorKind::Unsupported);

        // Past 255 levels the scanner itself refuses.
        let deeper = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        let (node, errors) = tree(&deeper);
        assert!(node.is_none());
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn syntax_errors_stop_with_a_position() {
        let (node, errors) = tree("a: [1, 2\nb: 3\n");
        assert!(node.is_none());
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].kind, ErrorKind::Syntax);
        assert!(errors[0].line >= 1);
    }

    #[test]
    fn empty_text_is_an_empty_document() {
        let (node, errors) = tree("# nothing\n");
        assert_eq!(node, Some(None));
        assert!(errors.is_empty());
    }
}
