//! HTML building blocks: escaping, the page frame with its stylesheet, and
//! the UTC times and durations the pages show.
//!
//! Pages are built with `format!` and [`escape`]: every value that came
//! from a file, a user or a node goes through [`escape`] (or [`attr`]),
//! and nothing else is interpolated. The page frame loads one script,
//! `/static/portal.js`, from the portal itself; the Content-Security-Policy
//! the server sends forbids inline scripts, so an escaping mistake cannot
//! become script execution.

use std::fmt::Write as _;

/// The stylesheet, inline in every page: plain, readable, no external
/// fonts or images.
pub const CSS: &str = "
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 0 auto; padding: 1rem 1.5rem;
       color: #1d1d1f; background: #fbfbfb; line-height: 1.45; }
header { display: flex; gap: 1.25rem; align-items: baseline; border-bottom: 1px solid #ccc;
         padding-bottom: .5rem; margin-bottom: 1rem; flex-wrap: wrap; }
header .brand { font-weight: 700; }
header .who { margin-left: auto; color: #555; }
a { color: #0b5394; }
h1 { font-size: 1.6rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #e1e1e1; }
h3 { font-size: 1.05rem; margin-bottom: .25rem; }
dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dl.fields dt { font-weight: 600; color: #444; }
dl.fields dd { margin: 0; overflow-wrap: anywhere; }
code, pre { font-family: ui-monospace, monospace; font-size: .9rem; }
pre { background: #f1f1f1; padding: .75rem; overflow-x: auto; border-radius: 4px; }
table.list { border-collapse: collapse; width: 100%; }
table.list th, table.list td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #e1e1e1;
                               vertical-align: top; }
table.list td code { word-break: break-all; }
.status { display: inline-block; padding: 0 .45rem; border-radius: 3px; font-size: .9rem; }
.status.succeeded, .status.approved { background: #d8f0d8; }
.status.failed, .status.rejected { background: #f6d5d5; }
.status.running, .status.pending { background: #fbeec5; }
.status.skipped { background: #e4e4e4; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 4px; padding: .75rem 1rem; margin: .75rem 0; }
.notice { background: #eef4fb; border-left: 4px solid #0b5394; padding: .5rem .75rem; }
.error { background: #fbeaea; border-left: 4px solid #b00020; padding: .5rem .75rem; }
.muted { color: #666; }
form.inline { display: inline; }
label { display: block; margin: .5rem 0 .25rem; font-weight: 600; }
textarea { width: 100%; min-height: 4rem; }
button { padding: .35rem .9rem; font-size: 1rem; }
";

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a value for a double-quoted attribute (the same rules).
pub fn attr(text: &str) -> String {
    escape(text)
}

/// Who is signed in, for the page header.
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    /// Their name in the roles document.
    pub name: &'a str,
    /// Their roles, for the header.
    pub roles: &'a [triad_auth::Role],
}

/// A whole page: title, navigation, who is signed in, and `body` (already
/// HTML).
pub fn page(title: &str, viewer: Option<Viewer<'_>>, body: &str) -> String {
    let mut nav = String::from("<a class=\"brand\" href=\"/\">triad portal</a>");
    if let Some(viewer) = viewer {
        nav.push_str("<a href=\"/recordings\">Approvals</a><a href=\"/jobs\">Job requests</a>");
        if viewer.roles.contains(&triad_auth::Role::Analyst) {
            nav.push_str("<a href=\"/upload\">Submit a recording</a>");
        }
        let roles: Vec<&str> = viewer.roles.iter().map(|r| r.name()).collect();
        let _ = write!(
            nav,
            "<span class=\"who\">Signed in as <strong id=\"viewer\">{}</strong> ({}) \
             <form class=\"inline\" method=\"post\" action=\"/logout\">\
             <button type=\"submit\">Sign out</button></form></span>",
            escape(viewer.name),
            escape(&roles.join(", "))
        );
    } else {
        nav.push_str("<span class=\"who\"><a href=\"/login\">Sign in</a></span>");
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · triad portal</title>\n<style>{CSS}</style>\n\
         <script src=\"/static/portal.js\" defer></script>\n</head>\n<body>\n\
         <header>{nav}</header>\n<main>\n{body}\n</main>\n</body>\n</html>\n",
        escape(title)
    )
}

/// An error page's body.
pub fn error_body(message: &str) -> String {
    format!(
        "<h1>Something went wrong</h1>\n<p class=\"error\" id=\"error\">{}</p>\n\
         <p><a href=\"/\">Back to the start page</a></p>",
        escape(message)
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Unix seconds as `YYYY-MM-DD hh:mm:ss UTC`.
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// A duration as `hh:mm:ss` (hours grow past 99 if they must).
pub fn hms(secs: u64) -> String {
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_every_special_character() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn times_are_utc_and_durations_hh_mm_ss() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(4_102_444_799), "2099-12-31 23:59:59 UTC");
        assert_eq!(hms(23), "00:00:23");
        assert_eq!(hms(3 * 3600 + 61), "03:01:01");
        assert_eq!(hms(100 * 3600), "100:00:00");
    }

    #[test]
    fn the_page_frame_escapes_title_and_viewer() {
        let roles = [triad_auth::Role::Approver];
        let html = page(
            "<t>",
            Some(Viewer {
                name: "<eve>",
                roles: &roles,
            }),
            "<p>body</p>",
        );
        assert!(html.contains("<title>&lt;t&gt; · triad portal</title>"));
        assert!(html.contains("&lt;eve&gt;"));
        assert!(!html.contains("<eve>"));
        assert!(html.contains("<p>body</p>"));
        assert!(!html.contains("Submit a recording"));
    }
}
