//! The bodies of the sign-in, start, approval and upload pages. Each is a
//! pure function of what it shows, so that tests can read them without a
//! server.

use std::fmt::Write as _;

use serde_json::Value as Json;
use triad_auth::{Role, UserPublicKey};

use crate::html::{attr, escape, utc};
use crate::recordings::{APPROVAL_DAYS_MAX, Entry, REASON_CHARS_MAX, Status, Unreadable};

/// Who is looking at a page, with what they may do.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Their key.
    pub key: UserPublicKey,
    /// Their name in the roles document.
    pub name: String,
    /// Their roles.
    pub roles: Vec<Role>,
}

impl Viewer {
    /// Whether they hold `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// For the page frame.
    pub fn frame(&self) -> crate::html::Viewer<'_> {
        crate::html::Viewer {
            name: &self.name,
            roles: &self.roles,
        }
    }
}

/// The sign-in page: the challenge to sign travels in data attributes,
/// which the page's script reads.
pub fn login(challenge_id: &str, to_sign_hex: &str, deployment: &str) -> String {
    format!(
        "<h1>Sign in</h1>\n\
         <p>Choose your triad key file (the one <code>triad keygen</code> made). Your browser \
         reads it and signs a one-time challenge with it; the key itself never leaves this \
         computer, and the portal only receives the signature and your public key.</p>\n\
         <form id=\"login-form\" data-challenge=\"{}\" data-sign=\"{}\">\n\
         <label for=\"key-file\">Key file</label>\n\
         <input type=\"file\" id=\"key-file\" name=\"key-file\">\n\
         <p><button type=\"submit\" id=\"sign-in\">Sign in</button></p>\n</form>\n\
         <p id=\"message\" hidden></p>\n\
         <p class=\"muted\">Deployment <code>{}</code>.</p>",
        attr(challenge_id),
        attr(to_sign_hex),
        escape(deployment)
    )
}

/// The start page.
pub fn home(viewer: &Viewer, pending: usize) -> String {
    let mut body = format!(
        "<h1>Welcome, {}</h1>\n<ul>\n<li><a href=\"/recordings\">Recorded scripts and \
         approvals</a> ({pending} pending)</li>\n<li><a href=\"/jobs\">Job requests</a></li>\n",
        escape(&viewer.name)
    );
    if viewer.has(Role::Analyst) {
        body.push_str("<li><a href=\"/upload\">Submit a recording for approval</a></li>\n");
    }
    body.push_str("</ul>");
    body
}

/// The status's CSS class, which is also the id of its section in the
/// list.
fn status_class(status: &Status) -> &'static str {
    match status {
        Status::Pending => "pending",
        Status::Approved(_) => "approved",
        Status::Rejected(_) => "rejected",
    }
}

fn status_badge(status: &Status) -> String {
    let text = match status {
        Status::Approved(views) => format!("approved ({})", views.len()),
        other => status_class(other).to_owned(),
    };
    format!(
        "<span class=\"status {}\">{}</span>",
        status_class(status),
        escape(&text)
    )
}

/// The recordings list: pending first, then approved (to which further
/// approvers may add their signature), then rejected, then unreadable.
pub fn recordings(
    entries: &[Entry],
    unreadable: &[Unreadable],
    name_of: &dyn Fn(&str) -> String,
) -> String {
    let mut body = String::from("<h1>Recorded scripts</h1>\n");
    let sections = [
        ("pending", "Waiting for approval"),
        ("approved", "Approved"),
        ("rejected", "Rejected"),
    ];
    for (id, title) in sections {
        let rows: Vec<&Entry> = entries
            .iter()
            .filter(|e| status_class(&e.status) == id)
            .collect();
        let _ = writeln!(body, "<h2>{title}</h2>");
        if rows.is_empty() {
            let _ = writeln!(body, "<p class=\"muted\" id=\"{id}-none\">None.</p>");
            continue;
        }
        let _ = writeln!(
            body,
            "<table class=\"list\" id=\"{id}\"><thead><tr><th>Recording</th><th>Analyst</th>\
             <th>Steps</th><th>Digest</th><th>Status</th></tr></thead><tbody>"
        );
        for entry in rows {
            let _ = writeln!(
                body,
                "<tr><td><a href=\"/recordings/{id}\">{name}</a></td><td>{analyst}</td>\
                 <td>{steps}</td><td><code>{digest}</code></td><td>{status}</td></tr>",
                id = attr(&entry.id),
                name = escape(&entry.recording.name),
                analyst = escape(&name_of(&entry.recording.analyst)),
                steps = entry.recording.steps.len(),
                digest = escape(&entry.recording.digest[..16.min(entry.recording.digest.len())]),
                status = status_badge(&entry.status),
            );
        }
        body.push_str("</tbody></table>\n");
    }
    if !unreadable.is_empty() {
        body.push_str(
            "<h2>Unreadable</h2>\n<p>These files do not check as recordings and cannot be \
             approved:</p>\n<ul id=\"unreadable\">\n",
        );
        for item in unreadable {
            let _ = writeln!(
                body,
                "<li><code>{}</code>: {}</li>",
                escape(&item.id),
                escape(&item.problem)
            );
        }
        body.push_str("</ul>\n");
    }
    body
}

fn pretty(json: &Json) -> String {
    serde_json::to_string_pretty(json).unwrap_or_else(|_| json.to_string())
}

/// One recording, its steps and what the viewer may do with it.
pub fn recording(entry: &Entry, viewer: &Viewer, name_of: &dyn Fn(&str) -> String) -> String {
    let recording = &entry.recording;
    let mut body = format!(
        "<h1>Recording: <span id=\"recording-name\">{name}</span></h1>\n\
         <dl class=\"fields\">\n\
         <dt>Status</dt><dd id=\"status\">{status}</dd>\n\
         <dt>Analyst</dt><dd id=\"analyst\">{analyst} <span class=\"muted\">(key \
         <code>{analyst_key}</code>)</span></dd>\n\
         <dt>Script digest</dt><dd><code id=\"digest\">{digest}</code></dd>\n\
         <dt>Deployment</dt><dd><code>{deployment}</code></dd>\n\
         <dt>File</dt><dd><code>{id}.recording</code></dd>\n</dl>\n",
        name = escape(&recording.name),
        status = status_badge(&entry.status),
        analyst = escape(&name_of(&recording.analyst)),
        analyst_key = escape(&recording.analyst),
        digest = escape(&recording.digest),
        deployment = escape(&recording.deployment),
        id = escape(&entry.id),
    );
    body.push_str("<h2>Production tables it reads</h2>\n");
    if entry.handles.is_empty() {
        body.push_str("<p class=\"muted\">None.</p>\n");
    } else {
        body.push_str("<ul id=\"handles\">\n");
        for handle in &entry.handles {
            let _ = writeln!(body, "<li><code>{}</code></li>", escape(handle));
        }
        body.push_str("</ul>\n");
    }
    let _ = writeln!(
        body,
        "<h2>Steps ({})</h2>\n<p>Each step is shown as the nodes will check it: the plan decoded \
         from the bytes the approval signs, with the output it gave on dummy data when it was \
         recorded.</p>",
        recording.steps.len()
    );
    for step in &recording.steps {
        let inputs: Vec<String> = step
            .inputs
            .iter()
            .map(|i| format!("<code>{}</code>", escape(i)))
            .collect();
        let _ = writeln!(
            body,
            "<div class=\"card step\" id=\"step-{n}\">\n<h3>Step {n}{allow}</h3>\n\
             <dl class=\"fields\"><dt>Reads</dt><dd class=\"inputs\">{inputs}</dd></dl>\n\
             <details open><summary>Plan</summary><pre class=\"plan\"><code>{plan}</code></pre>\
             </details>\n\
             <p><strong>On dummy data:</strong></p><pre class=\"dummy-output\"><code>{output}\
             </code></pre>\n</div>",
            n = step.step,
            allow = if step.allow_errors {
                " <span class=\"muted\">(a threshold not met here does not stop the script)\
                 </span>"
            } else {
                ""
            },
            inputs = if inputs.is_empty() {
                "-".into()
            } else {
                inputs.join(", ")
            },
            plan = escape(&pretty(&step.plan)),
            output = escape(&pretty(&step.dummy_output)),
        );
    }
    match &entry.status {
        Status::Approved(views) => {
            body.push_str("<h2>Approvals</h2>\n<ul id=\"approvals\">\n");
            for view in views {
                let _ = writeln!(
                    body,
                    "<li>{} <span class=\"muted\">(key <code>{}</code>)</span>, valid until {}</li>",
                    escape(&name_of(&view.approver)),
                    escape(&view.approver),
                    utc(view.expires_at)
                );
            }
            let _ = writeln!(
                body,
                "</ul>\n<p>The approved script is <code>{}.approved</code> in the portal's \
                 recordings directory.</p>",
                escape(&entry.id)
            );
        }
        Status::Rejected(rejection) => {
            let _ = writeln!(
                body,
                "<h2>Rejected</h2>\n<dl class=\"fields\" id=\"rejection\">\
                 <dt>By</dt><dd>{} <span class=\"muted\">(key <code>{}</code>)</span></dd>\
                 <dt>When</dt><dd>{}</dd><dt>Why</dt><dd id=\"reason\">{}</dd></dl>",
                escape(&rejection.rejected_by_name),
                escape(&rejection.rejected_by),
                utc(rejection.rejected_at),
                escape(&rejection.reason)
            );
        }
        Status::Pending => {}
    }
    body.push_str(&decision_forms(entry, viewer));
    body
}

/// The approve and reject forms, where the viewer may use them.
fn decision_forms(entry: &Entry, viewer: &Viewer) -> String {
    if !viewer.has(Role::Approver) {
        return "<p class=\"muted\">Only approvers can approve or reject recordings.</p>".into();
    }
    if entry.script.analyst == viewer.key {
        return "<p class=\"muted\">You recorded this script: another approver must decide on \
                it.</p>"
            .into();
    }
    let already = match &entry.status {
        Status::Rejected(_) => return String::new(),
        Status::Approved(views) => views.iter().any(|v| v.approver == viewer.key.to_string()),
        Status::Pending => false,
    };
    let id = attr(&entry.id);
    let mut body = format!(
        "<h2>Approve</h2>\n\
         <p>{intro} Choose your key file again: your browser signs the approval with it, and \
         only the signature is sent.</p>\n\
         <form id=\"approve-form\" data-user-key=\"{key}\" \
         data-prepare=\"/recordings/{id}/prepare\" data-approve=\"/recordings/{id}/approve\">\n\
         <label for=\"days\">Valid for (days)</label>\n\
         <input type=\"number\" id=\"days\" name=\"days\" value=\"30\" min=\"1\" max=\"{max}\">\n\
         <label for=\"approve-key-file\">Key file</label>\n\
         <input type=\"file\" id=\"approve-key-file\">\n\
         <p><button type=\"submit\" id=\"approve\">Sign the approval</button></p>\n</form>\n\
         <p id=\"approve-message\" hidden></p>\n",
        intro = if already {
            "You approved this script already; signing again replaces your approval \
             (with a new expiry)."
        } else {
            "You sign the script's digest for this analyst, these production tables and this \
             deployment, until the expiry."
        },
        key = attr(&viewer.key.to_string()),
        max = APPROVAL_DAYS_MAX,
    );
    if matches!(entry.status, Status::Pending) {
        let _ = write!(
            body,
            "<h2>Reject</h2>\n<form id=\"reject-form\" method=\"post\" \
             action=\"/recordings/{id}/reject\">\n\
             <label for=\"reason\">Why (the analyst reads this)</label>\n\
             <textarea id=\"reason\" name=\"reason\" maxlength=\"{REASON_CHARS_MAX}\" \
             required></textarea>\n\
             <p><button type=\"submit\" id=\"reject\">Reject</button></p>\n</form>\n"
        );
    }
    body
}

/// The page where analysts submit a recording.
pub fn upload() -> String {
    "<h1>Submit a recording</h1>\n\
     <p>Choose the <code>.recording</code> file your script wrote (<code>Client::end</code>). \
     The portal checks it, and approvers see it in their list.</p>\n\
     <form id=\"upload-form\">\n<label for=\"recording-file\">Recording</label>\n\
     <input type=\"file\" id=\"recording-file\" accept=\".recording,application/json\">\n\
     <p><button type=\"submit\" id=\"submit\">Submit</button></p>\n</form>\n\
     <p id=\"message\" hidden></p>"
        .into()
}
