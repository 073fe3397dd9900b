use std::path::Path;

use proptest::prelude::*;

use super::*;

fn handle(prefix: &str) -> String {
    prefix.repeat(64 / prefix.len())
}

/// The seed-like pipeline: a merge that stores, a sum that reveals.
fn base() -> String {
    format!(
        "\
version: 1
actions:
  merge_tables:
    script: scripts/merge.approved
    inputs:
      party1: {}
      party2: {}
    outputs:
      highly_sensitive:
        merged: table
  monthly_sums:
    script: scripts/sums.approved
    needs: [merge_tables]
    inputs:
      merged: merge_tables.merged
    outputs:
      moderately_sensitive:
        sums: aggregates
",
        handle("3f2a"),
        handle("9b1c")
    )
}

/// Three approved scripts: one stores, one reveals, one does both.
fn scripts(path: &Path) -> Result<ScriptInfo, String> {
    let (stores, reveals) = match path.to_str() {
        Some("scripts/merge.approved") => (true, false),
        Some("scripts/sums.approved") => (false, true),
        Some("scripts/both.approved") => (true, true),
        _ => return Err("no such file".into()),
    };
    Ok(ScriptInfo {
        digest: "00".repeat(32),
        stores,
        reveals,
        bindings: None,
    })
}

fn errors(text: &str) -> Vec<Error> {
    match load_str(text, "triad.yaml", &scripts) {
        Ok(_) => Vec::new(),
        Err(errors) => errors,
    }
}

fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "edit target {from:?}");
    text.replacen(from, to, 1)
}

#[test]
fn the_base_pipeline_is_valid() {
    let pipeline = load_str(&base(), "triad.yaml", &scripts).expect("valid");
    assert_eq!(pipeline.version, 1);
    let merge = pipeline.action("merge_tables").expect("merge_tables");
    assert_eq!(merge.script.value, "scripts/merge.approved");
    assert_eq!(
        merge.script.position,
        Position {
            line: 4,
            column: 13
        }
    );
    assert_eq!(merge.inputs[0].source, InputSource::Handle(handle("3f2a")));
    let sums = pipeline.action("monthly_sums").expect("monthly_sums");
    assert_eq!(sums.needs[0].value, "merge_tables");
    assert_eq!(
        sums.inputs[0].source,
        InputSource::Output {
            action: "merge_tables".into(),
            output: "merged".into()
        }
    );
    assert_eq!(sums.outputs[0].level, Level::ModeratelySensitive);
    assert_eq!(sums.outputs[0].kind, OutputKind::Aggregates);
}

const THIRD_ACTION: &str = "  report:
    script: scripts/both.approved
    needs: [monthly_sums]
    inputs:
      sums: monthly_sums.sums
    outputs:
      moderately_sensitive:
        report: aggregates
";

/// Each problem alone, by an edit of the base pipeline: the kinds and lines
/// reported must be exactly these.
#[test]
fn each_error_alone_with_its_line() {
    use ErrorKind::*;
    let h1 = handle("3f2a");
    // (what, text, the errors' lines and kinds)
    type Case = (&'static str, String, Vec<(usize, ErrorKind)>);
    let cases: Vec<Case> = vec![
        (
            "unknown top-level key",
            edit(&base(), "version: 1\n", "version: 1\nexpectations: 3\n"),
            vec![(2, UnknownKey)],
        ),
        (
            "unknown action key",
            edit(
                &base(),
                "    needs: [merge_tables]\n",
                "    needs: [merge_tables]\n    run: x\n",
            ),
            vec![(14, UnknownKey)],
        ),
        (
            "unknown privacy level",
            format!("{}      low_sensitive:\n        x: table\n", base()),
            vec![(19, UnknownKey)],
        ),
        (
            "missing version",
            edit(&base(), "version: 1\n", ""),
            vec![(1, MissingKey)],
        ),
        (
            "missing actions",
            "version: 1\n".into(),
            vec![(1, MissingKey)],
        ),
        (
            "missing script",
            edit(&base(), "    script: scripts/sums.approved\n", ""),
            vec![(11, MissingKey)],
        ),
        (
            "missing outputs",
            edit(
                &base(),
                "    outputs:\n      moderately_sensitive:\n        sums: aggregates\n",
                "",
            ),
            vec![(11, MissingKey)],
        ),
        (
            "empty outputs",
            edit(
                &base(),
                "      moderately_sensitive:\n        sums: aggregates\n",
                "",
            ),
            vec![(16, MissingKey)],
        ),
        (
            "unsupported version",
            edit(&base(), "version: 1", "version: \"3.0\""),
            vec![(1, UnsupportedVersion)],
        ),
        (
            "unknown need",
            edit(&base(), "[merge_tables]", "[merge_tables, extract]"),
            vec![(13, UnknownNeed)],
        ),
        (
            "needs itself",
            edit(&base(), "[merge_tables]", "[merge_tables, monthly_sums]"),
            vec![(13, SelfNeed)],
        ),
        (
            "duplicate need",
            edit(&base(), "[merge_tables]", "[merge_tables, merge_tables]"),
            vec![(13, DuplicateNeed)],
        ),
        (
            "input not in needs",
            edit(&base(), "    needs: [merge_tables]\n", ""),
            vec![(14, InputNotNeeded)],
        ),
        (
            "input reads an undeclared output",
            edit(&base(), "merge_tables.merged", "merge_tables.joined"),
            vec![(15, UnknownOutput)],
        ),
        (
            "input reads an unknown action",
            edit(&base(), "merge_tables.merged", "extract.merged"),
            vec![(15, UnknownAction)],
        ),
        (
            "input reads its own action",
            edit(&base(), "merge_tables.merged", "monthly_sums.sums"),
            vec![(15, SelfNeed)],
        ),
        (
            "input reads revealed aggregates",
            format!("{}{THIRD_ACTION}", base()),
            vec![(23, InputNotTable)],
        ),
        (
            "input is a path",
            edit(&base(), "merge_tables.merged", "output/merged.csv"),
            vec![(15, InvalidInput)],
        ),
        (
            "input handle in uppercase",
            edit(&base(), &h1, &h1.to_uppercase()),
            vec![(6, InvalidInput)],
        ),
        (
            "duplicate output in a level",
            edit(
                &base(),
                "        merged: table\n",
                "        merged: table\n        merged: table\n",
            ),
            vec![(11, DuplicateOutput)],
        ),
        (
            "one output under both levels",
            edit(
                &base(),
                "        merged: table\n",
                "        merged: table\n      moderately_sensitive:\n        merged: aggregates\n",
            ),
            vec![(12, DuplicateOutput)],
        ),
        (
            "a table under moderately_sensitive",
            edit(
                &edit(&base(), "scripts/sums.approved", "scripts/both.approved"),
                "        sums: aggregates\n",
                "        sums: aggregates\n        extra: table\n",
            ),
            vec![(19, LevelClash)],
        ),
        (
            "aggregates under highly_sensitive",
            edit(
                &edit(&base(), "scripts/merge.approved", "scripts/both.approved"),
                "        merged: table\n",
                "        merged: table\n        counts: aggregates\n",
            ),
            vec![(11, LevelClash)],
        ),
        (
            "duplicate action",
            format!(
                "{}  monthly_sums:\n    script: scripts/sums.approved\n    outputs:\n      moderately_sensitive:\n        sums: aggregates\n",
                base()
            ),
            vec![(19, DuplicateAction)],
        ),
        (
            "duplicate key in an action",
            edit(
                &base(),
                "    script: scripts/sums.approved\n",
                "    script: scripts/sums.approved\n    script: scripts/sums.approved\n",
            ),
            vec![(13, DuplicateKey)],
        ),
        (
            "action name with a dot",
            edit(&base(), "  monthly_sums:", "  monthly.sums:"),
            vec![(11, InvalidName)],
        ),
        (
            "unknown output kind",
            edit(
                &base(),
                "        sums: aggregates\n",
                "        sums: aggregates\n        plot: figure\n",
            ),
            vec![(19, UnknownOutputKind)],
        ),
        (
            "inputs as a list",
            edit(
                &base(),
                &format!("      party1: {h1}\n      party2: {}\n", handle("9b1c")),
                &format!("      - {h1}\n"),
            ),
            vec![(6, WrongType)],
        ),
        (
            "script not approved",
            edit(
                &base(),
                "scripts/merge.approved",
                "scripts/missing.approved",
            ),
            vec![(4, ScriptNotApproved)],
        ),
        (
            "script does not do what outputs say",
            edit(&base(), "scripts/merge.approved", "scripts/sums.approved"),
            vec![(4, ScriptMismatch), (10, ScriptMismatch)],
        ),
        (
            "alias",
            edit(
                &edit(
                    &base(),
                    "script: scripts/merge.approved",
                    "script: &s scripts/merge.approved",
                ),
                "    script: scripts/sums.approved",
                "    script: *s",
            ),
            vec![(12, Unsupported)],
        ),
        (
            "syntax error stops everything",
            edit(&base(), "[merge_tables]", "[merge_tables"),
            vec![(14, Syntax)],
        ),
        (
            "cycle of two",
            edit(
                &base(),
                "    script: scripts/merge.approved\n",
                "    script: scripts/merge.approved\n    needs: [monthly_sums]\n",
            ),
            vec![(5, Cycle)],
        ),
        (
            "empty file",
            "# nothing yet\n".into(),
            vec![(1, MissingKey)],
        ),
    ];
    for (name, text, expected) in cases {
        let found: Vec<(usize, ErrorKind)> =
            errors(&text).iter().map(|e| (e.line, e.kind)).collect();
        assert_eq!(found, expected, "{name}: {:#?}\n{text}", errors(&text));
    }
}

#[test]
fn messages_name_file_line_column_and_what() {
    let text = edit(
        &base(),
        "    needs: [merge_tables]",
        "    nedes: [merge_tables]",
    );
    let rendered: Vec<String> = errors(&text).iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        vec![
            "triad.yaml:13:5: unknown key \"nedes\" in action \"monthly_sums\" (did you mean \"needs\"?)",
            "triad.yaml:15:15: input \"merged\" of action \"monthly_sums\" reads \"merge_tables.merged\", \
             but \"merge_tables\" is not in the needs of \"monthly_sums\"",
        ]
    );
}

#[test]
fn several_errors_are_all_reported_sorted() {
    let text = format!(
        "\
version: 2
extra: true
actions:
  merge_tables:
    script: scripts/missing.approved
    inputs:
      party1: not-a-handle
    outputs:
      moderately_sensitive:
        merged: table
  monthly_sums:
    script: scripts/sums.approved
    needs: [merge_tables, nowhere]
    inputs:
      merged: merge_tables.merged
      other: {}
    outptus:
      moderately_sensitive:
        sums: aggregates
  monthly_sums:
    script: scripts/sums.approved
",
        handle("ab")
    );
    let found: Vec<(usize, ErrorKind)> = errors(&text).iter().map(|e| (e.line, e.kind)).collect();
    use ErrorKind::*;
    assert_eq!(
        found,
        vec![
            (1, UnsupportedVersion),
            (2, UnknownKey),
            (5, ScriptNotApproved),
            (7, InvalidInput),
            (10, LevelClash),
            (11, MissingKey),
            (13, UnknownNeed),
            (17, UnknownKey),
            (20, DuplicateAction),
        ]
    );
    let lines: Vec<usize> = errors(&text).iter().map(|e| e.line).collect();
    assert!(lines.is_sorted());
}

const CYCLE_OF_THREE: &str = "\
version: 1
actions:
  a:
    script: scripts/merge.approved
    needs: [c]
    outputs:
      highly_sensitive:
        t: table
  b:
    script: scripts/merge.approved
    needs: [a]
    outputs:
      highly_sensitive:
        t: table
  c:
    script: scripts/merge.approved
    needs: [b]
    outputs:
      highly_sensitive:
        t: table
";

#[test]
fn a_cycle_of_three_is_reported_once_with_its_path() {
    let errors = errors(CYCLE_OF_THREE);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].kind, ErrorKind::Cycle);
    assert_eq!(errors[0].line, 5);
    assert_eq!(
        errors[0].to_string(),
        "triad.yaml:5:13: dependency cycle: a -> c -> b -> a"
    );
    let pipeline = Pipeline::parse(CYCLE_OF_THREE, "triad.yaml").expect("structure is fine");
    let error = pipeline.order(&["b"]).expect_err("a cycle");
    assert_eq!(error.kind, ErrorKind::Cycle);
    assert!(error.message.ends_with("a -> c -> b -> a"), "{error}");
}

#[test]
fn two_separate_cycles_are_both_reported() {
    let text = format!(
        "{CYCLE_OF_THREE}  d:\n    script: scripts/merge.approved\n    needs: [e]\n    outputs:\n      highly_sensitive:\n        t: table\n  e:\n    script: scripts/merge.approved\n    needs: [d]\n    outputs:\n      highly_sensitive:\n        t: table\n"
    );
    let messages: Vec<String> = errors(&text).into_iter().map(|e| e.message).collect();
    assert_eq!(
        messages,
        vec![
            "dependency cycle: a -> c -> b -> a",
            "dependency cycle: d -> e -> d"
        ]
    );
}

fn names<'a>(actions: &[&'a Action]) -> Vec<&'a str> {
    actions.iter().map(|a| a.name.as_str()).collect()
}

#[test]
fn order_runs_needs_first_and_is_deterministic() {
    let pipeline = Pipeline::parse(&base(), "triad.yaml").expect("valid");
    let order = pipeline.order(&["monthly_sums"]).expect("ordered");
    assert_eq!(names(&order), vec!["merge_tables", "monthly_sums"]);
    let order = pipeline.order(&["merge_tables"]).expect("ordered");
    assert_eq!(names(&order), vec!["merge_tables"]);
    assert!(pipeline.order(&[]).expect("ordered").is_empty());

    // A diamond listed out of order: d needs b and c, both need a.
    let text = "\
version: 1
actions:
  d:
    script: scripts/merge.approved
    needs: [c, b]
    outputs: {highly_sensitive: {t: table}}
  c:
    script: scripts/merge.approved
    needs: [a]
    outputs: {highly_sensitive: {t: table}}
  b:
    script: scripts/merge.approved
    needs: [a]
    outputs: {highly_sensitive: {t: table}}
  a:
    script: scripts/merge.approved
    outputs: {highly_sensitive: {t: table}}
  unrelated:
    script: scripts/merge.approved
    outputs: {highly_sensitive: {t: table}}
";
    let pipeline = load_str(text, "triad.yaml", &scripts).expect("valid");
    for requested in [&["d"][..], &["b", "d", "c"], &["d", "d"]] {
        let order = pipeline.order(requested).expect("ordered");
        assert_eq!(names(&order), vec!["a", "c", "b", "d"], "{requested:?}");
    }
    let error = pipeline.order(&["d", "e"]).expect_err("unknown");
    assert_eq!(error.kind, ErrorKind::UnknownAction);
    assert_eq!(error.line, 0);
    let pipeline = Pipeline::parse(&base(), "triad.yaml").expect("valid");
    let error = pipeline.order(&["monthly_sum"]).expect_err("unknown");
    assert_eq!(
        error.to_string(),
        "triad.yaml: there is no action \"monthly_sum\" in this pipeline (did you mean \"monthly_sums\"?)"
    );
}

#[test]
fn digest_ignores_formatting_and_sees_values() {
    let pipeline = Pipeline::parse(&base(), "triad.yaml").expect("valid");
    let reformatted = format!(
        "\
# The seed analysis, reformatted.
actions:
  monthly_sums:   # sums per month
    outputs: {{moderately_sensitive: {{sums: aggregates}}}}
    inputs: {{merged: 'merge_tables.merged'}}
    needs:
      - merge_tables
    script: \"scripts/sums.approved\"

  merge_tables:
    outputs:
        highly_sensitive:
            merged: table
    script: scripts/merge.approved
    inputs:
        party2: {}
        party1: {}
version: '1'
",
        handle("9b1c"),
        handle("3f2a")
    );
    let other = Pipeline::parse(&reformatted, "other.yaml").expect("valid");
    assert_eq!(pipeline.canonical(), other.canonical());
    assert_eq!(pipeline.digest(), other.digest());
    assert_eq!(pipeline.digest().to_string().len(), 64);

    for (from, to) in [
        ("sums: aggregates", "totals: aggregates"),
        ("scripts/sums.approved", "scripts/sums2.approved"),
        ("merged: merge_tables.merged", "table: merge_tables.merged"),
        ("party1: 3f2a", "party1: 4f2a"),
    ] {
        let changed = Pipeline::parse(&edit(&base(), from, to), "triad.yaml").expect("valid");
        assert_ne!(pipeline.digest(), changed.digest(), "{from} -> {to}");
    }
}

#[test]
fn load_resolves_scripts_next_to_the_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir(dir.path().join("scripts")).expect("scripts directory");
    for name in ["merge.approved", "sums.approved"] {
        std::fs::write(dir.path().join("scripts").join(name), "{}").expect("script");
    }
    let path = dir.path().join("triad.yaml");
    std::fs::write(&path, base()).expect("pipeline");
    let check = |script: &Path| {
        if !script.is_file() {
            return Err(format!("{} does not exist", script.display()));
        }
        let reveals = script.ends_with("sums.approved");
        Ok(ScriptInfo {
            digest: String::new(),
            stores: !reveals,
            reveals,
            bindings: None,
        })
    };
    let pipeline = load(&path, &check).expect("valid");
    assert_eq!(pipeline.file(), path.display().to_string());

    std::fs::remove_file(dir.path().join("scripts/sums.approved")).expect("remove");
    let errors = load(&path, &check).expect_err("missing script");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, ErrorKind::ScriptNotApproved);
    assert_eq!(errors[0].line, 12);
    assert!(
        errors[0].message.contains("does not exist"),
        "{}",
        errors[0]
    );

    let errors = load(&dir.path().join("absent.yaml"), &check).expect_err("no file");
    assert_eq!(errors[0].kind, ErrorKind::Io);
    assert_eq!(errors[0].line, 0);
}

#[test]
fn oversized_text_is_refused_unread() {
    let text = format!("version: 1\n#{}\n", "x".repeat(TEXT_BYTES_MAX));
    let errors = Pipeline::parse(&text, "big.yaml").expect_err("too big");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, ErrorKind::Io);
}

#[test]
fn a_long_chain_of_needs_does_not_exhaust_the_stack() {
    let length = 5000;
    let chain = |first_needs: &str| {
        let mut text = String::from("version: 1\nactions:\n");
        for i in 0..length {
            let needs = match i {
                0 => first_needs.to_owned(),
                _ => format!("a{}", i - 1),
            };
            text.push_str(&format!(
                "  a{i}:\n    script: scripts/merge.approved\n    needs: [{needs}]\n    outputs: {{highly_sensitive: {{t: table}}}}\n"
            ));
        }
        text
    };
    let last = format!("a{}", length - 1);
    let pipeline = load_str(&chain(""), "long.yaml", &scripts).expect("valid");
    let order = pipeline.order(&[&last]).expect("ordered");
    assert_eq!(order.len(), length);
    assert_eq!(order[0].name, "a0");

    let errors = errors(&chain(&last));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, ErrorKind::Cycle);
}

fn exercise(text: &str) {
    let _ = load_str(text, "fuzz.yaml", &scripts);
    if let Ok(pipeline) = Pipeline::parse(text, "fuzz.yaml") {
        let names: Vec<&str> = pipeline.actions.iter().map(|a| a.name.as_str()).collect();
        let _ = pipeline.order(&names);
        let _ = pipeline.digest();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        exercise(&text);
    }

    #[test]
    fn yaml_like_text_never_panics(text in "[a-z_:\\-\\[\\]{}#&*!|>'\"., \n0-9]{0,300}") {
        exercise(&text);
    }

    #[test]
    fn edited_pipelines_never_panic(
        cut in 0usize..600,
        length in 0usize..40,
        insert in "[a-z_:\\-\\[\\]{}#&*!|>'\"., \n]{0,12}",
    ) {
        let text = base();
        let start = cut.min(text.len());
        let end = (start + length).min(text.len());
        let edited = format!("{}{}{}", &text[..start], insert, &text[end..]);
        exercise(&edited);
    }
}

/// Scripts that say what they read: merge reads the two handles and
/// stores at step 2; sums reads merge's step 2.
fn bound_scripts(path: &Path) -> Result<ScriptInfo, String> {
    let merge = "aa".repeat(32);
    let (digest, stores, reveals, bindings) = match path.to_str() {
        Some("scripts/merge.approved") => (
            merge.clone(),
            true,
            false,
            ScriptBindings {
                stored_steps: vec![2],
                reads: vec![handle("3f2a"), handle("9b1c")],
                reads_outputs: vec![],
            },
        ),
        Some("scripts/sums.approved") => (
            "bb".repeat(32),
            false,
            true,
            ScriptBindings {
                stored_steps: vec![],
                reads: vec![],
                reads_outputs: vec![(merge, 2)],
            },
        ),
        _ => return Err("no such file".into()),
    };
    Ok(ScriptInfo {
        digest,
        stores,
        reveals,
        bindings: Some(bindings),
    })
}

#[test]
fn inputs_must_be_what_the_scripts_read() {
    let bound = |text: &str| match load_str(text, "triad.yaml", &bound_scripts) {
        Ok(_) => Vec::new(),
        Err(errors) => errors,
    };
    assert_eq!(bound(&base()), Vec::new());

    // A handle the script does not read, in place of one it does.
    let errors = bound(&edit(&base(), &handle("9b1c"), &handle("77")));
    let kinds: Vec<_> = errors.iter().map(|e| (e.kind, e.line)).collect();
    assert_eq!(
        kinds,
        vec![(ErrorKind::InputMismatch, 4), (ErrorKind::InputMismatch, 7)],
        "{errors:#?}"
    );
    assert!(errors[0].message.contains(&handle("9b1c")), "{}", errors[0]);
    assert!(errors[1].message.contains(&handle("77")), "{}", errors[1]);

    // The sums script reads merge's table, but no input names it.
    let errors = bound(&edit(
        &base(),
        "    inputs:\n      merged: merge_tables.merged\n",
        "",
    ));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].kind, ErrorKind::InputMismatch);
    assert!(
        errors[0].message.contains("step 2 of script"),
        "{}",
        errors[0]
    );

    // Two table outputs for a script that stores one.
    let errors = bound(&edit(
        &base(),
        "        merged: table\n",
        "        merged: table\n        other: table\n",
    ));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].kind, ErrorKind::ScriptMismatch);
    assert!(errors[0].message.contains("stores 1"), "{}", errors[0]);
}
