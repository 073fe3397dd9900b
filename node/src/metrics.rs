//! What an operator's monitoring scrapes: request counts by kind and
//! outcome, bytes exchanged with each peer, query run times, the number of
//! stored tables, and the build, in the Prometheus text exposition format
//! (version 0.0.4) on `GET /metrics`.
//!
//! Counters live in atomics that the request path bumps without a lock; the
//! page is rendered from them on each scrape. The HTTP side is a minimal
//! HTTP/1.1 responder on its own TCP port (`metrics_listen`): one request
//! per connection, a head of at most [`HEAD_BYTES_MAX`] bytes read within
//! [`EXCHANGE_TIMEOUT`], at most [`CONNECTIONS_MAX`] connections at once,
//! then the connection is closed. No HTTP library: the protocol needed is
//! a request line in and a fixed response out.
//!
//! # What it must not show
//!
//! Labels are drawn from fixed sets: request kinds ([`KINDS`]), outcomes
//! (`ok` or an [`ErrorKind`] name), peer indexes and versions. No handle,
//! user name, key, digest or value ever becomes a label, so the page tells
//! a reader how busy the node is and nothing about what it holds.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use triad_ring::{PartyId, Transport, TransportError};

use crate::api::{self, Body, ErrorKind, Reply};

/// Request kinds, as [`Body::kind`] names them, in [`kind_index`] order,
/// then `unknown` for calls whose header could not be read.
pub const KINDS: [&str; 14] = [
    "upload",
    "tables",
    "sum",
    "count",
    "delete",
    "query",
    "close-script",
    "submit-job",
    "cancel-job",
    "jobs",
    "job",
    "status",
    "cancel-query",
    "unknown",
];

/// The index of `unknown` in [`KINDS`].
const UNKNOWN_KIND: usize = KINDS.len() - 1;

/// Every refusal kind, in [`status_index`] order (after `ok`).
const ERROR_KINDS: [ErrorKind; 18] = [
    ErrorKind::BadRequest,
    ErrorKind::Unauthorized,
    ErrorKind::Replayed,
    ErrorKind::Expired,
    ErrorKind::UnknownHandle,
    ErrorKind::UnknownColumn,
    ErrorKind::NotAgreed,
    ErrorKind::CrossCheckFailed,
    ErrorKind::PeerUnavailable,
    ErrorKind::MemoryBudget,
    ErrorKind::Storage,
    ErrorKind::Internal,
    ErrorKind::BadPlan,
    ErrorKind::ThresholdNotMet,
    ErrorKind::NotUnique,
    ErrorKind::NoMatchingAuthorization,
    ErrorKind::Job,
    ErrorKind::Cancelled,
];

/// `ok` and one status per refusal kind.
const STATUSES: usize = 1 + ERROR_KINDS.len();

/// Upper bounds (seconds) of the query-time histogram's buckets; `+Inf`
/// follows.
pub const QUERY_BUCKETS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The most bytes of request head the responder reads.
pub const HEAD_BYTES_MAX: usize = 4096;

/// How long one scrape may take, from accepting the connection to the
/// last byte of the response.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections served at once; further ones wait in the listen backlog.
pub const CONNECTIONS_MAX: usize = 16;

/// The request kind a call is counted under: its position in [`KINDS`].
/// Exhaustive, so that a new kind of request cannot go uncounted.
pub fn kind_index(body: &Body) -> usize {
    match body {
        Body::Upload(_) => 0,
        Body::ListTables => 1,
        Body::Sum { .. } => 2,
        Body::Count { .. } => 3,
        Body::Delete { .. } => 4,
        Body::Query { .. } => 5,
        Body::CloseScript { .. } => 6,
        Body::SubmitJob(_) => 7,
        Body::CancelJob { .. } => 8,
        Body::Jobs => 9,
        Body::Job { .. } => 10,
        Body::Status => 11,
        Body::CancelQuery => 12,
    }
}

/// The kind a call whose header could not be read is counted under.
pub fn unknown_kind() -> usize {
    UNKNOWN_KIND
}

/// The status a reply is counted under: 0 for `ok`, else one past the
/// refusal kind's position in `ERROR_KINDS`.
fn status_index(reply: &Reply) -> usize {
    let Reply::Refused(error) = reply else {
        return 0;
    };
    1 + match error.kind {
        ErrorKind::BadRequest => 0,
        ErrorKind::Unauthorized => 1,
        ErrorKind::Replayed => 2,
        ErrorKind::Expired => 3,
        ErrorKind::UnknownHandle => 4,
        ErrorKind::UnknownColumn => 5,
        ErrorKind::NotAgreed => 6,
        ErrorKind::CrossCheckFailed => 7,
        ErrorKind::PeerUnavailable => 8,
        ErrorKind::MemoryBudget => 9,
        ErrorKind::Storage => 10,
        ErrorKind::Internal => 11,
        ErrorKind::BadPlan => 12,
        ErrorKind::ThresholdNotMet => 13,
        ErrorKind::NotUnique => 14,
        ErrorKind::NoMatchingAuthorization => 15,
        ErrorKind::Job => 16,
        ErrorKind::Cancelled => 17,
    }
}

fn status_name(index: usize) -> String {
    match index.checked_sub(1) {
        None => "ok".to_owned(),
        Some(i) => format!("{:?}", ERROR_KINDS[i]),
    }
}

/// One node's counters. Shared by the request handlers, the engine and the
/// metrics responder.
#[derive(Debug)]
pub struct Metrics {
    /// This node, left out of the per-peer series.
    me: PartyId,
    /// Replies by kind and status, `KINDS.len() × STATUSES`, row-major.
    requests: Vec<AtomicU64>,
    /// Frame payload bytes sent to each party over the mesh, by index.
    peer_sent: [AtomicU64; 3],
    /// Frame payload bytes received from each party, by index.
    peer_received: [AtomicU64; 3],
    /// Queries per bucket of [`QUERY_BUCKETS`] (not cumulative), then the
    /// ones above the last bound.
    query_buckets: [AtomicU64; QUERY_BUCKETS.len() + 1],
    /// Sum of query times, in microseconds.
    query_micros: AtomicU64,
}

/// Values read at scrape time rather than counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Tables this node holds (both namespaces).
    pub tables: usize,
    /// Whether the node is connected to both peers.
    pub mesh_up: bool,
}

impl Metrics {
    /// Zeroed counters for node `me`.
    pub fn new(me: PartyId) -> Metrics {
        Metrics {
            me,
            requests: (0..KINDS.len() * STATUSES)
                .map(|_| AtomicU64::new(0))
                .collect(),
            peer_sent: Default::default(),
            peer_received: Default::default(),
            query_buckets: Default::default(),
            query_micros: AtomicU64::new(0),
        }
    }

    /// Counts one reply to a call of kind `kind` (from [`kind_index`] or
    /// [`unknown_kind`]).
    pub fn count_reply(&self, kind: usize, reply: &Reply) {
        let kind = kind.min(UNKNOWN_KIND);
        self.requests[kind * STATUSES + status_index(reply)].fetch_add(1, Ordering::Relaxed);
    }

    /// Records one query protocol run of `seconds`.
    pub fn observe_query(&self, seconds: f64) {
        let bucket = QUERY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(QUERY_BUCKETS.len());
        self.query_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        // Float to integer casts saturate; a negative time counts as 0.
        let micros = (seconds * 1e6) as u64;
        self.query_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn sent(&self, to: PartyId, bytes: u64) {
        self.peer_sent[to.index()].fetch_add(bytes, Ordering::Relaxed);
    }

    fn received(&self, from: PartyId, bytes: u64) {
        self.peer_received[from.index()].fetch_add(bytes, Ordering::Relaxed);
    }

    /// The page: every series, in the text exposition format 0.0.4.
    pub fn render(&self, gauges: Gauges) -> String {
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = self.write(&mut out, gauges);
        out
    }

    fn write(&self, out: &mut String, gauges: Gauges) -> std::fmt::Result {
        writeln!(
            out,
            "# HELP triad_build_info The node's version and the versions of the protocols it speaks."
        )?;
        writeln!(out, "# TYPE triad_build_info gauge")?;
        writeln!(
            out,
            "triad_build_info{{version=\"{}\",api_version=\"{}\",net_protocol_version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            api::API_VERSION,
            triad_net::NET_PROTOCOL_VERSION
        )?;
        writeln!(
            out,
            "# HELP triad_requests_total Client calls answered, by request kind and outcome (ok or the refusal kind)."
        )?;
        writeln!(out, "# TYPE triad_requests_total counter")?;
        for (kind, name) in KINDS.iter().enumerate() {
            for status in 0..STATUSES {
                let count = self.requests[kind * STATUSES + status].load(Ordering::Relaxed);
                if count > 0 {
                    writeln!(
                        out,
                        "triad_requests_total{{kind=\"{name}\",status=\"{}\"}} {count}",
                        status_name(status)
                    )?;
                }
            }
        }
        let peers: Vec<PartyId> = PartyId::ALL.into_iter().filter(|p| *p != self.me).collect();
        for (name, help, counters) in [
            (
                "triad_peer_bytes_sent_total",
                "Frame payload bytes sent to each peer over the node-to-node mesh.",
                &self.peer_sent,
            ),
            (
                "triad_peer_bytes_received_total",
                "Frame payload bytes received from each peer over the node-to-node mesh.",
                &self.peer_received,
            ),
        ] {
            writeln!(out, "# HELP {name} {help}")?;
            writeln!(out, "# TYPE {name} counter")?;
            for peer in &peers {
                writeln!(
                    out,
                    "{name}{{peer=\"{}\"}} {}",
                    peer.index(),
                    counters[peer.index()].load(Ordering::Relaxed)
                )?;
            }
        }
        writeln!(
            out,
            "# HELP triad_query_seconds Time this node spent running query protocols."
        )?;
        writeln!(out, "# TYPE triad_query_seconds histogram")?;
        let mut cumulative = 0u64;
        for (bound, count) in QUERY_BUCKETS.iter().zip(&self.query_buckets) {
            cumulative += count.load(Ordering::Relaxed);
            writeln!(
                out,
                "triad_query_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            )?;
        }
        cumulative += self.query_buckets[QUERY_BUCKETS.len()].load(Ordering::Relaxed);
        writeln!(
            out,
            "triad_query_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        )?;
        let micros = self.query_micros.load(Ordering::Relaxed);
        writeln!(
            out,
            "triad_query_seconds_sum {}.{:06}",
            micros / 1_000_000,
            micros % 1_000_000
        )?;
        writeln!(out, "triad_query_seconds_count {cumulative}")?;
        writeln!(
            out,
            "# HELP triad_tables_stored Tables this node holds, design and production."
        )?;
        writeln!(out, "# TYPE triad_tables_stored gauge")?;
        writeln!(out, "triad_tables_stored {}", gauges.tables)?;
        writeln!(
            out,
            "# HELP triad_mesh_up Whether this node is connected to both other nodes (1) or not (0)."
        )?;
        writeln!(out, "# TYPE triad_mesh_up gauge")?;
        writeln!(out, "triad_mesh_up {}", u8::from(gauges.mesh_up))
    }
}

/// A transport that counts the bytes of every frame it moves, per peer,
/// into a node's [`Metrics`]. Frame payloads only: the framing and QUIC's
/// and TLS's own bytes are not counted.
#[derive(Debug)]
pub struct Counted<T> {
    inner: T,
    metrics: Arc<Metrics>,
}

impl<T> Counted<T> {
    /// Counts what `inner` moves into `metrics`.
    pub fn new(inner: T, metrics: Arc<Metrics>) -> Counted<T> {
        Counted { inner, metrics }
    }

    /// The transport, no longer counted.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: Transport> Transport for Counted<T> {
    fn send(&mut self, to: PartyId, message: Vec<u64>) -> Result<(), TransportError> {
        let bytes = message.len() as u64 * 8;
        self.inner.send(to, message)?;
        self.metrics.sent(to, bytes);
        Ok(())
    }

    fn recv(&mut self, from: PartyId) -> Result<Vec<u64>, TransportError> {
        let message = self.inner.recv(from)?;
        self.metrics.received(from, message.len() as u64 * 8);
        Ok(message)
    }

    fn part_words(&self) -> Option<usize> {
        self.inner.part_words()
    }

    fn send_parts(
        &mut self,
        to: PartyId,
        words: usize,
        next_part: &mut dyn FnMut() -> Vec<u64>,
    ) -> Result<(), TransportError> {
        self.inner.send_parts(to, words, next_part)?;
        self.metrics.sent(to, words as u64 * 8);
        Ok(())
    }
}

/// Binds the metrics port (TCP), so that a taken port fails the node's
/// start rather than a background task.
pub fn bind(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Answers scrapes on `listener` with `render()` until the runtime stops.
/// Must run inside a tokio runtime with I/O and time enabled.
pub async fn serve(
    listener: std::net::TcpListener,
    render: impl Fn() -> String + Send + Sync + 'static,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, "metrics listener unusable; no metrics served");
            return;
        }
    };
    let render = Arc::new(render);
    let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!(%error, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let render = render.clone();
        tokio::spawn(async move {
            let answered = tokio::time::timeout(EXCHANGE_TIMEOUT, answer(&stream, &*render)).await;
            if let Ok(Err(error)) = answered {
                tracing::debug!(%error, "metrics: scrape failed");
            }
            close(stream);
            drop(slot);
        });
    }
}

/// What a request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
    Malformed,
}

/// Routes a request head: `GET /metrics` (any query string) is the page,
/// any other well-formed request line is not found.
fn route(head: &[u8]) -> Route {
    let Some(end) = head.iter().position(|b| *b == b'\n') else {
        return Route::Malformed;
    };
    let Ok(line) = std::str::from_utf8(&head[..end]) else {
        return Route::Malformed;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::Malformed;
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || target.is_empty() {
        return Route::Malformed;
    }
    let path = target.split('?').next().unwrap_or_default();
    if method == "GET" && path == "/metrics" {
        Route::Metrics
    } else {
        Route::NotFound
    }
}

/// Reads the request head (up to its blank line, the end of the stream or
/// [`HEAD_BYTES_MAX`]) and writes the response.
async fn answer(
    stream: &tokio::net::TcpStream,
    render: &(dyn Fn() -> String + Send + Sync),
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    let complete = loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break true;
        }
        let room = HEAD_BYTES_MAX - head.len();
        if room == 0 {
            break false;
        }
        stream.readable().await?;
        let want = room.min(buffer.len());
        match stream.try_read(&mut buffer[..want]) {
            Ok(0) => break false,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(error) => return Err(error),
        }
    };
    let route = if complete {
        route(&head)
    } else {
        Route::Malformed
    };
    let response = match route {
        Route::Metrics => response("200 OK", CONTENT_TYPE, &render()),
        Route::NotFound => response("404 Not Found", "text/plain", "not found\n"),
        Route::Malformed => response("400 Bad Request", "text/plain", "bad request\n"),
    };
    write_all(stream, response.as_bytes()).await
}

/// The content type of the text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn write_all(stream: &tokio::net::TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Ends the connection: our side first (so the client reads the whole
/// response before the close), then the socket.
fn close(stream: tokio::net::TcpStream) {
    if let Ok(stream) = stream.into_std() {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiError;

    fn refused(kind: ErrorKind) -> Reply {
        Reply::Refused(ApiError::new(kind, "table 00ab belongs to another user"))
    }

    #[test]
    fn every_refusal_kind_has_its_own_status() {
        for (i, kind) in ERROR_KINDS.iter().enumerate() {
            assert_eq!(status_index(&refused(*kind)), i + 1);
            assert_eq!(status_name(i + 1), format!("{kind:?}"));
        }
        assert_eq!(status_index(&Reply::Deleted), 0);
    }

    #[test]
    fn kinds_are_named_as_the_bodies_name_themselves() {
        let bodies = [
            Body::ListTables,
            Body::Jobs,
            Body::Job { job: "j".into() },
            Body::CancelJob { job: "j".into() },
            Body::Status,
            Body::CancelQuery,
        ];
        for body in bodies {
            assert_eq!(KINDS[kind_index(&body)], body.kind());
        }
    }

    #[test]
    fn the_page_is_the_text_exposition_format() {
        let metrics = Metrics::new(PartyId::P1);
        metrics.count_reply(kind_index(&Body::ListTables), &Reply::Tables(Vec::new()));
        metrics.count_reply(kind_index(&Body::ListTables), &Reply::Tables(Vec::new()));
        metrics.count_reply(
            kind_index(&Body::Delete {
                handle: "00".repeat(32).parse().unwrap(),
            }),
            &refused(ErrorKind::UnknownHandle),
        );
        metrics.count_reply(unknown_kind(), &refused(ErrorKind::BadRequest));
        metrics.observe_query(0.004);
        metrics.observe_query(0.2);
        metrics.observe_query(1000.0);
        let mut transport = Counted::new(NullTransport, Arc::new(Metrics::new(PartyId::P1)));
        transport.send(PartyId::P0, vec![1, 2, 3]).unwrap();
        transport.recv(PartyId::P2).unwrap();
        let peers = transport.metrics.render(Gauges::default());
        assert!(peers.contains("triad_peer_bytes_sent_total{peer=\"0\"} 24\n"));
        assert!(peers.contains("triad_peer_bytes_sent_total{peer=\"2\"} 0\n"));
        assert!(peers.contains("triad_peer_bytes_received_total{peer=\"2\"} 40\n"));
        assert!(
            !peers.contains("peer=\"1\""),
            "no series for the node itself"
        );

        let page = metrics.render(Gauges {
            tables: 4,
            mesh_up: true,
        });
        let expected = [
            "# TYPE triad_requests_total counter\n",
            "triad_requests_total{kind=\"tables\",status=\"ok\"} 2\n",
            "triad_requests_total{kind=\"delete\",status=\"UnknownHandle\"} 1\n",
            "triad_requests_total{kind=\"unknown\",status=\"BadRequest\"} 1\n",
            "# TYPE triad_query_seconds histogram\n",
            "triad_query_seconds_bucket{le=\"0.01\"} 1\n",
            "triad_query_seconds_bucket{le=\"0.1\"} 1\n",
            "triad_query_seconds_bucket{le=\"0.25\"} 2\n",
            "triad_query_seconds_bucket{le=\"300\"} 2\n",
            "triad_query_seconds_bucket{le=\"+Inf\"} 3\n",
            "triad_query_seconds_sum 1000.204000\n",
            "triad_query_seconds_count 3\n",
            "triad_tables_stored 4\n",
            "triad_mesh_up 1\n",
        ];
        for line in expected {
            assert!(page.contains(line), "missing {line:?} in\n{page}");
        }
        let build = format!(
            "triad_build_info{{version=\"{}\",api_version=\"{}\",net_protocol_version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION"),
            api::API_VERSION,
            triad_net::NET_PROTOCOL_VERSION
        );
        assert!(page.contains(&build), "{page}");
        // Counters that never moved are left out; messages never appear.
        assert!(!page.contains("kind=\"upload\""));
        assert!(!page.contains("00ab"));
        // Every line is a comment or `name{labels} value`.
        for line in page.lines() {
            if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(series.starts_with("triad_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        assert!(page.ends_with('\n'));
    }

    #[test]
    fn only_get_metrics_is_served() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"GET /metrics/x HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::Malformed);
        assert_eq!(
            route(b"\xff\xfe /metrics HTTP/1.1\r\n\r\n"),
            Route::Malformed
        );
        assert_eq!(route(b"GET /metrics SMTP/1.1\r\n\r\n"), Route::Malformed);
    }

    #[test]
    fn a_scrape_over_tcp_gets_the_page_and_a_closed_connection() {
        use std::io::{Read, Write};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = listener.local_addr().unwrap();
        runtime.spawn(serve(listener, || "triad_up 1\n".to_owned()));
        let fetch = |request: &[u8]| {
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream.write_all(request).unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            response
        };
        let page = fetch(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
        assert!(page.contains("Content-Type: text/plain; version=0.0.4"));
        assert!(page.ends_with("\r\n\r\ntriad_up 1\n"), "{page}");
        let missing = fetch(b"GET /secrets HTTP/1.1\r\n\r\n");
        assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
        // A head that never ends is cut at the limit (exactly: bytes left
        // unread would turn the close into a reset).
        let long = [b'a'; HEAD_BYTES_MAX];
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = stream.write_all(&long);
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    }

    /// Sends nowhere; every receive gets five words.
    #[derive(Debug)]
    struct NullTransport;

    impl Transport for NullTransport {
        fn send(&mut self, _: PartyId, _: Vec<u64>) -> Result<(), TransportError> {
            Ok(())
        }

        fn recv(&mut self, _: PartyId) -> Result<Vec<u64>, TransportError> {
            Ok(vec![0; 5])
        }
    }
}
