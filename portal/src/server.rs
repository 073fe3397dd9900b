//! The HTTP server: routes, sessions, and turning every error into a page
//! (or, for the page script's calls, a JSON message); nothing a visitor
//! sends can panic a handler, and a panic in blocking work becomes an
//! error page too.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json};
use serde::Deserialize;
use triad_auth::{Approval, Role, UserPublicKey};

use crate::config::Config;
use crate::error::PortalError;
use crate::html::{self, now_secs};
use crate::jobs::{self, DirJobSource, JobSource, NoJobSource};
use crate::pages::{self, Viewer};
use crate::recordings::{RECORDING_BYTES_MAX, Recordings, Status};
use crate::signin::{self, Challenge, Expiring, Sessions};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "triad_portal_session";

/// The page script, served from the portal itself.
const SCRIPT: &str = include_str!("portal.js");

/// What the pages may load: the portal's own script, the inline
/// stylesheet, and requests back to the portal; nothing else.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'unsafe-inline'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// An approval built for an approver, waiting for their signature.
#[derive(Debug)]
struct PendingApproval {
    recording: String,
    approval: Approval,
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct Portal {
    config: Config,
    recordings: Recordings,
    challenges: Expiring<Challenge>,
    approvals: Expiring<PendingApproval>,
    sessions: Sessions,
    jobs: Arc<dyn JobSource>,
}

impl Portal {
    /// A portal for `config`, reading job records from where it says.
    pub fn new(config: Config) -> Result<Portal, PortalError> {
        let jobs: Arc<dyn JobSource> = match (&config.jobs_dir, &config.connection) {
            (Some(dir), _) => Arc::new(DirJobSource::new(dir)),
            (None, Some(connection)) => Arc::new(crate::nodes::NodeJobSource::new(
                connection,
                config.key.as_deref(),
            )?),
            (None, None) => Arc::new(NoJobSource),
        };
        Ok(Portal::with_jobs(config, jobs))
    }

    /// A portal for `config` reading job records from `jobs`.
    pub fn with_jobs(config: Config, jobs: Arc<dyn JobSource>) -> Portal {
        Portal {
            recordings: Recordings::new(&config.recordings, config.deployment),
            config,
            challenges: Expiring::default(),
            approvals: Expiring::default(),
            sessions: Sessions::default(),
            jobs,
        }
    }

    /// The routes.
    pub fn router(self: Arc<Portal>) -> Router {
        Router::new()
            .route("/", get(home))
            .route("/login", get(login_page).post(login))
            .route("/logout", post(logout))
            .route("/static/portal.js", get(script))
            .route("/recordings", get(recordings_page))
            .route("/recordings/{id}", get(recording_page))
            .route("/recordings/{id}/prepare", post(prepare_approval))
            .route("/recordings/{id}/approve", post(approve))
            .route("/recordings/{id}/reject", post(reject))
            .route(
                "/upload",
                get(upload_page)
                    .post(upload)
                    .layer(DefaultBodyLimit::max(RECORDING_BYTES_MAX)),
            )
            .route("/jobs", get(jobs_page))
            .route("/jobs/{id}", get(job_page))
            .fallback(not_found)
            .with_state(self)
    }

    fn session_token(headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == SESSION_COOKIE)
            .map(|(_, value)| value.to_owned())
    }

    /// The signed-in user, looked up in the roles document on every
    /// request.
    fn viewer(&self, headers: &HeaderMap) -> Result<Viewer, PortalError> {
        let token = Portal::session_token(headers).ok_or(PortalError::NotSignedIn)?;
        let key = self
            .sessions
            .user(&token, now_secs())
            .ok_or(PortalError::NotSignedIn)?;
        let user = self
            .config
            .roles
            .user(&key)
            .ok_or(PortalError::NotSignedIn)?;
        Ok(Viewer {
            key,
            name: user.name.clone(),
            roles: user.roles.clone(),
        })
    }

    fn require(&self, headers: &HeaderMap, role: Role) -> Result<Viewer, PortalError> {
        let viewer = self.viewer(headers)?;
        if viewer.has(role) {
            Ok(viewer)
        } else {
            Err(PortalError::Forbidden {
                user: viewer.name,
                role,
            })
        }
    }

    /// A user's name for pages: the roles document's, or the key's
    /// fingerprint for a key it does not list.
    fn name_of(&self, key_hex: &str) -> String {
        match key_hex.parse::<UserPublicKey>() {
            Ok(key) => match self.config.roles.user(&key) {
                Some(user) => user.name.clone(),
                None => format!("unknown key {}", key.fingerprint()),
            },
            Err(_) => "an invalid key".into(),
        }
    }
}

/// Refuses a state-changing request another site's page sent: browsers
/// say where a request comes from (`Sec-Fetch-Site`, or else `Origin`),
/// and it must be this portal. The session cookie is `SameSite=Strict`
/// too; this is the second lock.
fn same_origin(headers: &HeaderMap) -> Result<(), PortalError> {
    let refused = || {
        PortalError::BadRequest("this request came from another site's page and was refused".into())
    };
    if let Some(site) = headers.get("sec-fetch-site") {
        return if site.as_bytes() == b"same-origin" {
            Ok(())
        } else {
            Err(refused())
        };
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin = origin.to_str().unwrap_or("");
    let host_of_origin = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    if host_of_origin == Some(host) {
        Ok(())
    } else {
        Err(refused())
    }
}

fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(headers);
    response
}

fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn page(title: &str, viewer: Option<&Viewer>, body: &str) -> Response {
    html_response(
        StatusCode::OK,
        html::page(title, viewer.map(Viewer::frame), body),
    )
}

fn status_of(error: &PortalError) -> StatusCode {
    StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// An error as a page: a visitor who is not signed in is sent to sign in.
fn error_page(error: PortalError, viewer: Option<&Viewer>) -> Response {
    if matches!(error, PortalError::NotSignedIn) {
        return redirect("/login");
    }
    if error.status() >= 500 {
        tracing::warn!(%error, "error page");
    }
    html_response(
        status_of(&error),
        html::page(
            "Error",
            viewer.map(Viewer::frame),
            &html::error_body(&error.to_string()),
        ),
    )
}

/// An error for the page script, which shows `error`.
/// The viewer of a state-changing JSON call from the portal's own page,
/// who must hold `role`, and the call's body; or what to answer instead.
fn json_call<T>(
    portal: &Portal,
    headers: &HeaderMap,
    role: Role,
    request: Result<Json<T>, JsonRejection>,
) -> Result<(Viewer, T), PortalError> {
    let viewer = same_origin(headers).and_then(|()| portal.require(headers, role))?;
    match request {
        Ok(Json(request)) => Ok((viewer, request)),
        Err(e) => Err(PortalError::BadRequest(e.body_text())),
    }
}

fn json_error(error: PortalError) -> Response {
    let mut response = (
        status_of(&error),
        Json(serde_json::json!({ "error": error.to_string() })),
    )
        .into_response();
    secure_headers(response.headers_mut());
    response
}

fn json_ok(value: serde_json::Value) -> Response {
    let mut response = Json(value).into_response();
    secure_headers(response.headers_mut());
    response
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Runs file and signature work off the async threads; a panic there is
/// an error, not a dead connection.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PortalError> + Send + 'static,
) -> Result<T, PortalError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(PortalError::Conflict(format!(
            "the portal failed while handling this request ({e}); nothing was changed"
        )))
    })
}

async fn script() -> Response {
    let mut response = SCRIPT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    secure_headers(headers);
    response
}

async fn not_found(State(portal): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    let viewer = portal.viewer(&headers).ok();
    error_page(
        PortalError::NotFound("there is no such page".into()),
        viewer.as_ref(),
    )
}

async fn home(State(portal): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    let viewer = match portal.viewer(&headers) {
        Ok(viewer) => viewer,
        Err(error) => return error_page(error, None),
    };
    let listed = {
        let portal = portal.clone();
        blocking(move || portal.recordings.list()).await
    };
    match listed {
        Ok((entries, _)) => {
            let pending = entries
                .iter()
                .filter(|e| matches!(e.status, Status::Pending))
                .count();
            page("Start", Some(&viewer), &pages::home(&viewer, pending))
        }
        Err(error) => error_page(error, Some(&viewer)),
    }
}

async fn login_page(State(portal): State<Arc<Portal>>) -> Response {
    let now = now_secs();
    let expires_at = now + portal.config.file.challenge_secs;
    let issued = Challenge::new(&portal.config.deployment, expires_at).and_then(|challenge| {
        let to_sign = challenge.to_sign_hex();
        let id = portal.challenges.insert(challenge, now, expires_at)?;
        Ok((id, to_sign))
    });
    match issued {
        Ok((id, to_sign)) => page(
            "Sign in",
            None,
            &pages::login(&id, &to_sign, &portal.config.deployment.to_string()),
        ),
        Err(error) => error_page(error, None),
    }
}

/// What the sign-in page's script posts.
#[derive(Debug, Deserialize)]
struct LoginAnswer {
    challenge: String,
    public_key: String,
    signature: String,
}

async fn login(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    answer: Result<Json<LoginAnswer>, JsonRejection>,
) -> Response {
    let result = (|| {
        same_origin(&headers)?;
        let Json(answer) = answer.map_err(|e| PortalError::BadRequest(e.body_text()))?;
        let now = now_secs();
        let challenge = portal.challenges.take(&answer.challenge, now)?;
        let key = signin::verify_answer(
            &challenge,
            &answer.public_key,
            &answer.signature,
            &portal.config.roles,
        )?;
        let max_age = portal.config.file.session_hours * 3600;
        let token = portal.sessions.open(key, now, now + max_age)?;
        Ok((key, token, max_age))
    })();
    match result {
        Ok((key, token, max_age)) => {
            let name = portal.name_of(&key.to_string());
            tracing::info!(user = %name, key = %key.fingerprint(), "signed in");
            let cookie = format!(
                "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
                if portal.config.file.secure_cookies {
                    "; Secure"
                } else {
                    ""
                }
            );
            let mut response = json_ok(serde_json::json!({ "redirect": "/" }));
            match HeaderValue::from_str(&cookie) {
                Ok(value) => {
                    response.headers_mut().insert(header::SET_COOKIE, value);
                    response
                }
                Err(_) => json_error(PortalError::Conflict("could not set the cookie".into())),
            }
        }
        Err(error) => {
            tracing::info!(%error, "sign-in refused");
            json_error(error)
        }
    }
}

async fn logout(State(portal): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    if let Err(error) = same_origin(&headers) {
        return error_page(error, None);
    }
    if let Some(token) = Portal::session_token(&headers) {
        portal.sessions.close(&token);
    }
    let mut response = redirect("/login");
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "triad_portal_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

async fn recordings_page(State(portal): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    let viewer = match portal.viewer(&headers) {
        Ok(viewer) => viewer,
        Err(error) => return error_page(error, None),
    };
    let listed = {
        let portal = portal.clone();
        blocking(move || portal.recordings.list()).await
    };
    match listed {
        Ok((entries, unreadable)) => page(
            "Recorded scripts",
            Some(&viewer),
            &pages::recordings(&entries, &unreadable, &|key| portal.name_of(key)),
        ),
        Err(error) => error_page(error, Some(&viewer)),
    }
}

async fn recording_page(
    State(portal): State<Arc<Portal>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let viewer = match portal.viewer(&headers) {
        Ok(viewer) => viewer,
        Err(error) => return error_page(error, None),
    };
    let entry = {
        let portal = portal.clone();
        blocking(move || portal.recordings.get(&id)).await
    };
    match entry {
        Ok(entry) => page(
            &format!("Recording {}", entry.recording.name),
            Some(&viewer),
            &pages::recording(&entry, &viewer, &|key| portal.name_of(key)),
        ),
        Err(error) => error_page(error, Some(&viewer)),
    }
}

/// What the approve form's script posts first.
#[derive(Debug, Deserialize)]
struct PrepareRequest {
    days: u64,
}

async fn prepare_approval(
    State(portal): State<Arc<Portal>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    request: Result<Json<PrepareRequest>, JsonRejection>,
) -> Response {
    let (viewer, days) = match json_call(&portal, &headers, Role::Approver, request) {
        Ok((viewer, request)) => (viewer, request.days),
        Err(error) => return json_error(error),
    };
    let prepared = {
        let portal = portal.clone();
        blocking(move || {
            let now = now_secs();
            let (_, approval) = portal.recordings.approval(&id, viewer.key, days, now)?;
            let to_sign = signin::domain_hex(triad_auth::APPROVAL_DOMAIN, &approval.signed_bytes());
            let token = portal.approvals.insert(
                PendingApproval {
                    recording: id,
                    approval,
                },
                now,
                now + portal.config.file.challenge_secs,
            )?;
            Ok((token, to_sign))
        })
        .await
    };
    match prepared {
        Ok((token, to_sign)) => json_ok(serde_json::json!({ "token": token, "sign": to_sign })),
        Err(error) => json_error(error),
    }
}

/// What the approve form's script posts with the signature.
#[derive(Debug, Deserialize)]
struct ApproveRequest {
    token: String,
    signature: String,
}

async fn approve(
    State(portal): State<Arc<Portal>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    request: Result<Json<ApproveRequest>, JsonRejection>,
) -> Response {
    let (viewer, request) = match json_call(&portal, &headers, Role::Approver, request) {
        Ok(call) => call,
        Err(error) => return json_error(error),
    };
    let done = {
        let portal = portal.clone();
        let viewer = viewer.clone();
        let id = id.clone();
        blocking(move || {
            let now = now_secs();
            let pending = portal.approvals.take(&request.token, now)?;
            if pending.recording != id || pending.approval.approver != viewer.key {
                return Err(PortalError::BadRequest(
                    "this approval was prepared for another recording or user".into(),
                ));
            }
            let signature = signin::parse_signature(&request.signature)?;
            portal
                .recordings
                .add_approval(&id, pending.approval, signature, &viewer.name, now)
        })
        .await
    };
    match done {
        Ok(_) => {
            tracing::info!(recording = %id, approver = %viewer.name, "approved");
            json_ok(serde_json::json!({ "redirect": format!("/recordings/{id}") }))
        }
        Err(error) => json_error(error),
    }
}

/// The reject form.
#[derive(Debug, Deserialize)]
struct RejectForm {
    reason: String,
}

async fn reject(
    State(portal): State<Arc<Portal>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<RejectForm>, FormRejection>,
) -> Response {
    let viewer = match same_origin(&headers).and_then(|()| portal.require(&headers, Role::Approver))
    {
        Ok(viewer) => viewer,
        Err(error) => return error_page(error, None),
    };
    let reason = match form {
        Ok(Form(form)) => form.reason,
        Err(e) => return error_page(PortalError::BadRequest(e.body_text()), Some(&viewer)),
    };
    let done = {
        let portal = portal.clone();
        let viewer = viewer.clone();
        let id = id.clone();
        blocking(move || {
            if portal.recordings.get(&id)?.script.analyst == viewer.key {
                return Err(PortalError::BadRequest(
                    "you recorded this script: another approver must decide on it".into(),
                ));
            }
            portal
                .recordings
                .reject(&id, viewer.key, &viewer.name, &reason, now_secs())
        })
        .await
    };
    match done {
        Ok(_) => {
            tracing::info!(recording = %id, approver = %viewer.name, "rejected");
            redirect(&format!("/recordings/{id}"))
        }
        Err(error) => error_page(error, Some(&viewer)),
    }
}

async fn upload_page(State(portal): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    match portal.require(&headers, Role::Analyst) {
        Ok(viewer) => page("Submit a recording", Some(&viewer), &pages::upload()),
        Err(error) => {
            let viewer = portal.viewer(&headers).ok();
            error_page(error, viewer.as_ref())
        }
    }
}

async fn upload(State(portal): State<Arc<Portal>>, headers: HeaderMap, body: Bytes) -> Response {
    let viewer = match same_origin(&headers).and_then(|()| portal.require(&headers, Role::Analyst))
    {
        Ok(viewer) => viewer,
        Err(error) => return json_error(error),
    };
    let submitted = {
        let portal = portal.clone();
        let key = viewer.key;
        blocking(move || portal.recordings.submit(&body, key)).await
    };
    match submitted {
        Ok(id) => {
            tracing::info!(recording = %id, analyst = %viewer.name, "submitted");
            json_ok(serde_json::json!({ "redirect": format!("/recordings/{id}") }))
        }
        Err(error) => json_error(error),
    }
}

async fn jobs_page(State(portal): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    let viewer = match portal.viewer(&headers) {
        Ok(viewer) => viewer,
        Err(error) => return error_page(error, None),
    };
    let source = portal.jobs.clone();
    match blocking(move || source.jobs()).await {
        Ok(list) => page(
            "Job requests",
            Some(&viewer),
            &jobs::render_list(&list, now_secs()),
        ),
        Err(error) => error_page(error, Some(&viewer)),
    }
}

async fn job_page(
    State(portal): State<Arc<Portal>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let viewer = match portal.viewer(&headers) {
        Ok(viewer) => viewer,
        Err(error) => return error_page(error, None),
    };
    let source = portal.jobs.clone();
    match blocking(move || source.job(&id)).await {
        Ok(job) => page(
            &format!("Job request {}", job.id),
            Some(&viewer),
            &jobs::render_job(&job, now_secs()),
        ),
        Err(error) => error_page(error, Some(&viewer)),
    }
}

/// A portal serving on a thread of its own until dropped.
#[derive(Debug)]
pub struct RunningPortal {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningPortal {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RunningPortal {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, PortalError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("triad-portal")
        .enable_all()
        .build()
        .map_err(|source| PortalError::Io {
            path: "tokio runtime".into(),
            source,
        })
}

/// Binds `listen` and serves `portal` on a new thread until the returned
/// handle is dropped (tests, and anything that embeds the portal).
pub fn spawn(portal: Portal, listen: SocketAddr) -> Result<RunningPortal, PortalError> {
    let runtime = runtime()?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(listen))
        .map_err(|source| PortalError::Io {
            path: listen.to_string().into(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| PortalError::Io {
        path: listen.to_string().into(),
        source,
    })?;
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let router = Arc::new(portal).router();
    let thread = std::thread::Builder::new()
        .name("triad-portal-server".into())
        .spawn(move || {
            let served = runtime.block_on(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stop.await;
                    })
                    .await
            });
            if let Err(error) = served {
                tracing::warn!(%error, "the portal stopped");
            }
            runtime.shutdown_background();
        })
        .map_err(|source| PortalError::Io {
            path: "server thread".into(),
            source,
        })?;
    Ok(RunningPortal {
        addr,
        shutdown: Some(shutdown),
        thread: Some(thread),
    })
}

/// Binds `listen` and serves `portal` on this thread, for ever.
pub fn serve(portal: Portal, listen: SocketAddr) -> Result<(), PortalError> {
    let runtime = runtime()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| PortalError::Io {
                path: listen.to_string().into(),
                source,
            })?;
        tracing::info!(address = %listen, "portal listening");
        axum::serve(listener, Arc::new(portal).router())
            .await
            .map_err(|source| PortalError::Io {
                path: listen.to_string().into(),
                source,
            })
    })
}
