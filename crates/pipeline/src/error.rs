//! The one error type: a located problem in a pipeline file.

/// A place in the pipeline file, both numbers counted from 1 as editors
/// show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Position {
    /// The line, from 1.
    pub line: usize,
    /// The column in characters, from 1.
    pub column: usize,
}

/// One problem in a pipeline file. Parsing and validation return all of
/// them at once, sorted by position, so that an analyst fixes a file in one
/// pass rather than one error per run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {}", .file, location(.line, .column), .message)]
#[non_exhaustive]
pub struct Error {
    /// The pipeline file's name as the caller gave it, so that messages from
    /// several files stay apart.
    pub file: String,
    /// The line, from 1; 0 when the problem is not at one place (the file
    /// cannot be read, an action asked of [`Pipeline::order`] does not
    /// exist).
    ///
    /// [`Pipeline::order`]: crate::Pipeline::order
    pub line: usize,
    /// The column, from 1, when the problem is at one place.
    pub column: Option<usize>,
    /// What kind of problem, for callers that react to some.
    pub kind: ErrorKind,
    /// The problem, for people: names the action, key or output concerned.
    pub message: String,
}

fn location(line: &usize, column: &Option<usize>) -> String {
    match (*line, *column) {
        (0, _) => String::new(),
        (line, None) => format!(":{line}"),
        (line, Some(column)) => format!(":{line}:{column}"),
    }
}

impl Error {
    pub(crate) fn at(file: &str, position: Position, kind: ErrorKind, message: String) -> Error {
        Error {
            file: file.to_owned(),
            line: position.line,
            column: (position.line > 0).then_some(position.column),
            kind,
            message,
        }
    }

    pub(crate) fn unplaced(file: &str, kind: ErrorKind, message: String) -> Error {
        Error {
            file: file.to_owned(),
            line: 0,
            column: None,
            kind,
            message,
        }
    }

    fn sort_key(&self) -> (usize, usize, ErrorKind, &str) {
        (
            self.line,
            self.column.unwrap_or(0),
            self.kind,
            self.message.as_str(),
        )
    }
}

/// What kind of problem an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file cannot be read, or is larger than [`TEXT_BYTES_MAX`].
    ///
    /// [`TEXT_BYTES_MAX`]: crate::TEXT_BYTES_MAX
    Io,
    /// The text is not YAML. Parsing stops here: what follows cannot be
    /// trusted to mean anything.
    Syntax,
    /// YAML that this format refuses: aliases, several documents, nesting
    /// deeper than any pipeline needs.
    Unsupported,
    /// A value of the wrong shape: a list where a mapping belongs, a key
    /// that is not a string.
    WrongType,
    /// A key this format does not know, at any level.
    UnknownKey,
    /// A required key is missing (`version`, `actions`, `script`,
    /// `outputs`), or `outputs` declares nothing.
    MissingKey,
    /// A key given twice in one mapping, other than an action or an output.
    DuplicateKey,
    /// Two actions with one name. YAML parsers usually keep the last
    /// silently; here it is an error.
    DuplicateAction,
    /// One action declares an output name twice, within a level or under
    /// both levels.
    DuplicateOutput,
    /// `needs` lists an action twice.
    DuplicateNeed,
    /// `version` is not one this crate reads.
    UnsupportedVersion,
    /// An action, input or output name outside `[A-Za-z0-9_-]{1,64}`.
    InvalidName,
    /// An output kind other than `table` or `aggregates`.
    UnknownOutputKind,
    /// An input that is neither a 64-hex handle nor `action.output`.
    InvalidInput,
    /// `needs` names an action the pipeline does not have.
    UnknownNeed,
    /// An action needs itself, or reads its own output.
    SelfNeed,
    /// Actions that need each other round in a circle.
    Cycle,
    /// An input reads an action that does not exist (or, from
    /// [`Pipeline::order`], a requested action that does not exist).
    ///
    /// [`Pipeline::order`]: crate::Pipeline::order
    UnknownAction,
    /// An input reads an action that is not in the action's `needs`.
    InputNotNeeded,
    /// An input reads an output its action does not declare.
    UnknownOutput,
    /// An input reads revealed aggregates, which are not a table on the
    /// nodes.
    InputNotTable,
    /// A `table` under `moderately_sensitive`, or `aggregates` under
    /// `highly_sensitive`.
    LevelClash,
    /// The script is missing or not an approved script.
    ScriptNotApproved,
    /// The script does not do what the outputs say: a table output from a
    /// script that stores nothing, aggregates from one that reveals nothing,
    /// or a script that reveals with no `moderately_sensitive` output.
    ScriptMismatch,
    /// The action's inputs are not the tables its script reads: a handle
    /// the script reads that no input lists, an input the script does not
    /// read, or another action's table the script reads through no input.
    InputMismatch,
}

/// Errors as handed back: sorted by place, then kind and message, without
/// repeats.
pub(crate) fn finish(mut errors: Vec<Error>) -> Vec<Error> {
    errors.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    errors.dedup();
    errors
}

/// Collects errors against one file name.
#[derive(Debug)]
pub(crate) struct Report<'a> {
    pub(crate) file: &'a str,
    pub(crate) errors: Vec<Error>,
}

impl<'a> Report<'a> {
    pub(crate) fn new(file: &'a str) -> Report<'a> {
        Report {
            file,
            errors: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, position: Position, kind: ErrorKind, message: String) {
        self.errors
            .push(Error::at(self.file, position, kind, message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_line_and_column() {
        let error = Error::at(
            "triad.yaml",
            Position {
                line: 12,
                column: 5,
            },
            ErrorKind::UnknownKey,
            "unknown key \"nedes\" in action \"monthly_sums\"".into(),
        );
        assert_eq!(
            error.to_string(),
            "triad.yaml:12:5: unknown key \"nedes\" in action \"monthly_sums\""
        );
        let unplaced = Error::unplaced("p.yaml", ErrorKind::Io, "cannot read".into());
        assert_eq!(unplaced.to_string(), "p.yaml: cannot read");
    }
}
