//! Checks across actions: needs, cycles, what inputs read, levels against
//! kinds, and scripts against outputs; and the run order of actions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use crate::error::{Error, ErrorKind, Position, Report};
use crate::model::{Action, InputSource, Level, OutputKind, Pipeline, ScriptBindings, ScriptInfo};
use crate::parse::suggestion;

/// The actions a pipeline's needs connect, by index into `actions`.
struct Graph<'p> {
    pipeline: &'p Pipeline,
    index: HashMap<&'p str, usize>,
    /// For each action, the actions it needs (known, not itself) and where
    /// the need is written.
    needs: Vec<Vec<(usize, Position)>>,
}

impl<'p> Graph<'p> {
    fn new(pipeline: &'p Pipeline) -> Graph<'p> {
        let mut index = HashMap::new();
        for (i, action) in pipeline.actions.iter().enumerate() {
            // Parsing already refused a second action of one name.
            index.entry(action.name.as_str()).or_insert(i);
        }
        let needs = pipeline
            .actions
            .iter()
            .enumerate()
            .map(|(i, action)| {
                action
                    .needs
                    .iter()
                    .filter_map(|need| {
                        index
                            .get(need.value.as_str())
                            .filter(|&&j| j != i)
                            .map(|&j| (j, need.position))
                    })
                    .collect()
            })
            .collect();
        Graph {
            pipeline,
            index,
            needs,
        }
    }

    fn names(&self) -> Vec<&'p str> {
        self.pipeline
            .actions
            .iter()
            .map(|a| a.name.as_str())
            .collect()
    }

    /// Cycles among the actions `keep` allows, each once: a depth-first
    /// search reports one cycle per edge back into its path, rotated to
    /// start at the cycle's first action in file order so that the same
    /// cycle found from two places is one.
    fn cycles(&self, keep: &[bool]) -> Vec<Vec<usize>> {
        const WHITE: u8 = 0;
        const GREY: u8 = 1;
        const BLACK: u8 = 2;
        let mut state = vec![WHITE; self.needs.len()];
        let mut found = BTreeSet::new();
        // Iterative: a long chain of needs must not exhaust the stack.
        for start in 0..self.needs.len() {
            if state[start] != WHITE || !keep[start] {
                continue;
            }
            state[start] = GREY;
            let mut path: Vec<(usize, usize)> = vec![(start, 0)];
            while let Some(top) = path.last_mut() {
                let (v, next) = *top;
                let Some(&(w, _)) = self.needs[v].get(next) else {
                    state[v] = BLACK;
                    path.pop();
                    continue;
                };
                top.1 += 1;
                if !keep[w] {
                    continue;
                }
                match state[w] {
                    WHITE => {
                        state[w] = GREY;
                        path.push((w, 0));
                    }
                    GREY => {
                        if let Some(from) = path.iter().position(|&(u, _)| u == w) {
                            let mut cycle: Vec<usize> =
                                path[from..].iter().map(|&(u, _)| u).collect();
                            let first = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
                            cycle.rotate_left(first);
                            found.insert(cycle);
                        }
                    }
                    _ => {}
                }
            }
        }
        found.into_iter().collect()
    }

    fn cycle_error(&self, cycle: &[usize]) -> Error {
        let actions = &self.pipeline.actions;
        let mut names: Vec<&str> = cycle.iter().map(|&i| actions[i].name.as_str()).collect();
        names.push(&actions[cycle[0]].name);
        // At the need that leaves the cycle's first action, so that the
        // report has one place and it does not depend on search order.
        let next = cycle.get(1).copied().unwrap_or(cycle[0]);
        let position = self.needs[cycle[0]]
            .iter()
            .find(|(j, _)| *j == next)
            .map_or(actions[cycle[0]].position, |(_, p)| *p);
        Error::at(
            &self.pipeline.file,
            position,
            ErrorKind::Cycle,
            format!("dependency cycle: {}", names.join(" -> ")),
        )
    }
}

pub(crate) fn validate(
    pipeline: &Pipeline,
    check_script: &dyn Fn(&Path) -> Result<ScriptInfo, String>,
    report: &mut Report,
) {
    let graph = Graph::new(pipeline);
    let names = graph.names();
    let mut scripts: BTreeMap<&str, Result<ScriptInfo, String>> = BTreeMap::new();
    for action in &pipeline.actions {
        check_needs(&graph, &names, action, report);
        check_inputs(&graph, action, report);
        check_levels(action, report);
        // Empty when parsing already reported the script missing.
        if !action.script.value.is_empty() {
            let script = scripts
                .entry(action.script.value.as_str())
                .or_insert_with(|| check_script(Path::new(&action.script.value)));
            check_script_outputs(action, script, report);
        }
    }
    for action in &pipeline.actions {
        if let Some(Ok(ScriptInfo {
            bindings: Some(bindings),
            ..
        })) = scripts.get(action.script.value.as_str())
        {
            check_bindings(&graph, &scripts, action, bindings, report);
        }
    }
    let keep = vec![true; pipeline.actions.len()];
    for cycle in graph.cycles(&keep) {
        report.errors.push(graph.cycle_error(&cycle));
    }
}

fn check_needs(graph: &Graph, names: &[&str], action: &Action, report: &mut Report) {
    let name = &action.name;
    for need in &action.needs {
        if need.value == *name {
            report.push(
                need.position,
                ErrorKind::SelfNeed,
                format!("action {name:?} needs itself"),
            );
        } else if !graph.index.contains_key(need.value.as_str()) {
            report.push(
                need.position,
                ErrorKind::UnknownNeed,
                format!(
                    "action {name:?} needs {:?}, which is not an action of this pipeline{}",
                    need.value,
                    suggestion(&need.value, names)
                ),
            );
        }
    }
}

fn check_inputs(graph: &Graph, action: &Action, report: &mut Report) {
    let name = &action.name;
    for input in &action.inputs {
        let InputSource::Output {
            action: source,
            output,
        } = &input.source
        else {
            continue;
        };
        let reads = format!(
            "input {:?} of action {name:?} reads \"{source}.{output}\"",
            input.name
        );
        if source == name {
            report.push(
                input.position,
                ErrorKind::SelfNeed,
                format!("{reads}, an output of the action itself"),
            );
            continue;
        }
        let Some(&j) = graph.index.get(source.as_str()) else {
            report.push(
                input.position,
                ErrorKind::UnknownAction,
                format!("{reads}, but there is no action {source:?}"),
            );
            continue;
        };
        if !action.needs.iter().any(|n| n.value == *source) {
            // Without the need, nothing makes the source run first.
            report.push(
                input.position,
                ErrorKind::InputNotNeeded,
                format!("{reads}, but {source:?} is not in the needs of {name:?}"),
            );
        }
        match graph.pipeline.actions[j]
            .outputs
            .iter()
            .find(|o| o.name == *output)
        {
            None => report.push(
                input.position,
                ErrorKind::UnknownOutput,
                format!("{reads}, but action {source:?} declares no output {output:?}"),
            ),
            Some(o) if o.kind == OutputKind::Aggregates => report.push(
                input.position,
                ErrorKind::InputNotTable,
                format!("{reads}, which is revealed aggregates: scripts read tables on the nodes"),
            ),
            Some(_) => {}
        }
    }
}

fn check_levels(action: &Action, report: &mut Report) {
    for output in &action.outputs {
        let problem = match (output.level, output.kind) {
            (Level::ModeratelySensitive, OutputKind::Table) => {
                "secret tables are highly_sensitive (they stay on the nodes, never revealed)"
            }
            (Level::HighlySensitive, OutputKind::Aggregates) => {
                "revealed aggregates are moderately_sensitive (highly_sensitive outputs are never revealed)"
            }
            _ => continue,
        };
        report.push(
            output.position,
            ErrorKind::LevelClash,
            format!(
                "output {:?} of action {:?} is {} under {}; {problem}",
                output.name,
                action.name,
                output.kind.described(),
                output.level.key()
            ),
        );
    }
}

fn check_script_outputs(action: &Action, script: &Result<ScriptInfo, String>, report: &mut Report) {
    let path = &action.script.value;
    let name = &action.name;
    let info = match script {
        Ok(info) => info,
        Err(reason) => {
            report.push(
                action.script.position,
                ErrorKind::ScriptNotApproved,
                format!("script {path:?} of action {name:?} is not an approved script: {reason}"),
            );
            return;
        }
    };
    for output in &action.outputs {
        let missing = match output.kind {
            OutputKind::Table if !info.stores => "stores no table",
            OutputKind::Aggregates if !info.reveals => "reveals nothing",
            _ => continue,
        };
        report.push(
            output.position,
            ErrorKind::ScriptMismatch,
            format!(
                "output {:?} of action {name:?} is {}, but script {path:?} {missing}",
                output.name,
                output.kind.described()
            ),
        );
    }
    let tables = action
        .outputs
        .iter()
        .filter(|o| o.kind == OutputKind::Table)
        .count();
    let stored = info.bindings.as_ref().map(|b| b.stored_steps.len());
    if let Some(stored) = stored
        && tables > 0
        && stored != tables
    {
        report.push(
            action.script.position,
            ErrorKind::ScriptMismatch,
            format!(
                "action {name:?} declares {tables} table output(s), but script {path:?} stores {stored}: the table outputs name its storing steps in order"
            ),
        );
    }
    // Whatever a script reveals must be labelled, or it would leave the
    // nodes without a level for the release review to see.
    // (Not when the action has no outputs at all: that is reported already.)
    if info.reveals
        && !action.outputs.is_empty()
        && !action
            .outputs
            .iter()
            .any(|o| o.kind == OutputKind::Aggregates)
    {
        report.push(
            action.script.position,
            ErrorKind::ScriptMismatch,
            format!(
                "script {path:?} reveals aggregates, but action {name:?} declares no aggregates output for them"
            ),
        );
    }
}

/// The inputs are exactly the tables the script reads. An action's
/// `table` outputs, in file order, are the tables its script's storing
/// steps make, in step order; so an input `a.o` is one step of `a`'s
/// script, which the reading script must name by that script and step.
fn check_bindings(
    graph: &Graph,
    scripts: &BTreeMap<&str, Result<ScriptInfo, String>>,
    action: &Action,
    info: &ScriptBindings,
    report: &mut Report,
) {
    let name = &action.name;
    let path = &action.script.value;
    let mut provided = BTreeSet::new();
    for input in &action.inputs {
        match &input.source {
            InputSource::Handle(handle) => {
                if !info.reads.contains(handle) {
                    report.push(
                        input.position,
                        ErrorKind::InputMismatch,
                        format!(
                            "input {:?} of action {name:?} is table {handle}, which script {path:?} does not read",
                            input.name
                        ),
                    );
                }
            }
            InputSource::Output {
                action: source,
                output,
            } => {
                let Some(&j) = graph.index.get(source.as_str()) else {
                    continue; // reported by check_inputs
                };
                let producer = &graph.pipeline.actions[j];
                let Some(Ok(ScriptInfo {
                    digest,
                    bindings: Some(made),
                    ..
                })) = scripts.get(producer.script.value.as_str())
                else {
                    continue; // its script is reported on its own action
                };
                let Some(k) = producer
                    .outputs
                    .iter()
                    .filter(|o| o.kind == OutputKind::Table)
                    .position(|o| o.name == *output)
                else {
                    continue; // reported by check_inputs
                };
                let Some(&step) = made.stored_steps.get(k) else {
                    continue; // reported by check_script_outputs
                };
                let reference = (digest.clone(), step);
                if !info.reads_outputs.contains(&reference) {
                    report.push(
                        input.position,
                        ErrorKind::InputMismatch,
                        format!(
                            "input {:?} of action {name:?} is \"{source}.{output}\" (step {step} of script {:?}), which script {path:?} does not read",
                            input.name, producer.script.value
                        ),
                    );
                }
                provided.insert(reference);
            }
        }
    }
    for handle in &info.reads {
        let listed = action
            .inputs
            .iter()
            .any(|i| matches!(&i.source, InputSource::Handle(h) if h == handle));
        if !listed {
            report.push(
                action.script.position,
                ErrorKind::InputMismatch,
                format!("script {path:?} of action {name:?} reads table {handle}, which no input of the action lists"),
            );
        }
    }
    for (digest, step) in &info.reads_outputs {
        if !provided.contains(&(digest.clone(), *step)) {
            let short = digest.get(..16).unwrap_or(digest);
            report.push(
                action.script.position,
                ErrorKind::InputMismatch,
                format!(
                    "script {path:?} of action {name:?} reads the table step {step} of script {short}… stores, which no input of the action names"
                ),
            );
        }
    }
}

pub(crate) fn order<'p>(
    pipeline: &'p Pipeline,
    requested: &[&str],
) -> Result<Vec<&'p Action>, Error> {
    let graph = Graph::new(pipeline);
    let actions = &pipeline.actions;
    let mut wanted = vec![false; actions.len()];
    let mut work = Vec::new();
    for name in requested {
        let Some(&i) = graph.index.get(name) else {
            return Err(Error::unplaced(
                &pipeline.file,
                ErrorKind::UnknownAction,
                format!(
                    "there is no action {name:?} in this pipeline{}",
                    suggestion(name, &graph.names())
                ),
            ));
        };
        work.push(i);
    }
    while let Some(i) = work.pop() {
        if std::mem::replace(&mut wanted[i], true) {
            continue;
        }
        for need in &actions[i].needs {
            match graph.index.get(need.value.as_str()) {
                Some(&j) if j == i => {
                    return Err(Error::at(
                        &pipeline.file,
                        need.position,
                        ErrorKind::SelfNeed,
                        format!("action {:?} needs itself", actions[i].name),
                    ));
                }
                Some(&j) => work.push(j),
                None => {
                    return Err(Error::at(
                        &pipeline.file,
                        need.position,
                        ErrorKind::UnknownNeed,
                        format!(
                            "action {:?} needs {:?}, which is not an action of this pipeline",
                            actions[i].name, need.value
                        ),
                    ));
                }
            }
        }
    }

    // Kahn's algorithm, always taking the ready action that comes first in
    // the file: the order is then a function of the file alone, not of the
    // order actions were requested in.
    let mut waiting: Vec<usize> = graph.needs.iter().map(Vec::len).collect();
    let mut needed_by: Vec<Vec<usize>> = vec![Vec::new(); actions.len()];
    for (i, needs) in graph.needs.iter().enumerate() {
        for &(j, _) in needs {
            needed_by[j].push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..actions.len())
        .filter(|&i| wanted[i] && waiting[i] == 0)
        .collect();
    let mut ordered = Vec::new();
    let mut done = vec![false; actions.len()];
    while let Some(i) = ready.pop_first() {
        ordered.push(&actions[i]);
        done[i] = true;
        for &k in &needed_by[i] {
            waiting[k] -= 1;
            if wanted[k] && waiting[k] == 0 {
                ready.insert(k);
            }
        }
    }
    let left: Vec<bool> = (0..actions.len()).map(|i| wanted[i] && !done[i]).collect();
    if left.iter().any(|&l| l) {
        let cycles = graph.cycles(&left);
        return Err(match cycles.first() {
            Some(cycle) => graph.cycle_error(cycle),
            // Every action left waits on another left one, so some cycle
            // runs among them; this only guards the invariant.
            None => Error::unplaced(
                &pipeline.file,
                ErrorKind::Cycle,
                "the requested actions need each other in a cycle".into(),
            ),
        });
    }
    Ok(ordered)
}
