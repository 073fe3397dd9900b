//! A userspace UDP relay standing in for the links between hosts.
//!
//! Each link has a `listen` socket, where dialing sides send, and per
//! dialer (per source address, as a NAT keeps them) an egress socket that
//! talks to the target, so the target sees each dialer's traffic come from
//! its own egress address and answers there. Each direction has a
//! receiving thread (one `recvmmsg` per batch) that stamps datagrams with
//! their release time, and a sending thread that waits for that time and
//! sends what is due (one `sendmmsg` per batch). Towards the target the
//! dialers share one queue, so the cap is the link's; back towards the
//! dialers each has its own.
//!
//! The bandwidth cap is a single FIFO link per direction: a datagram starts
//! when the link is free, takes `bits / rate` to transmit, then `delay` to
//! arrive. One that would wait longer than the queue allows is dropped, as a
//! router's drop-tail queue does, which is what congestion control reacts
//! to.

use std::collections::VecDeque;
use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg,
};

/// Datagrams per system call.
const BATCH: usize = 32;
/// Large enough for any UDP datagram.
const DATAGRAM_MAX: usize = 65_536;
/// How often idle threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// Socket buffers asked of the OS (capped by `net.core.[rw]mem_max`).
const SOCKET_BUFFER: usize = 8 << 20;
/// Dialers per link (each costs a socket and two threads); datagrams from
/// more are dropped.
const DIALERS_MAX: usize = 64;

/// How a link behaves, the same in both directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Added to every datagram's trip.
    pub delay: Duration,
    /// Bandwidth cap in bits per second; 0 for none.
    pub bits_per_second: u64,
    /// The longest a datagram may wait for the capped link before it is
    /// dropped.
    pub queue: Duration,
}

impl Shape {
    /// Forwarding only.
    pub const fn none() -> Shape {
        Shape {
            delay: Duration::ZERO,
            bits_per_second: 0,
            queue: Duration::ZERO,
        }
    }

    /// Hosts in one data centre: 0.25 ms one way, 10 Gbit/s.
    pub const fn lan() -> Shape {
        Shape {
            delay: Duration::from_micros(250),
            bits_per_second: 10_000_000_000,
            queue: Duration::from_millis(5),
        }
    }

    /// Hosts in different organisations or clouds: 10 ms one way, 1 Gbit/s,
    /// and a queue of about the path's bandwidth-delay product.
    pub const fn wan() -> Shape {
        Shape {
            delay: Duration::from_millis(10),
            bits_per_second: 1_000_000_000,
            queue: Duration::from_millis(25),
        }
    }

    /// This shape with another one-way delay.
    pub const fn with_delay(self, delay: Duration) -> Shape {
        Shape { delay, ..self }
    }

    /// Time to put `bytes` on the link.
    fn transmit(&self, bytes: usize) -> Duration {
        if self.bits_per_second == 0 {
            return Duration::ZERO;
        }
        let nanos = (bytes as u128 * 8 * 1_000_000_000) / u128::from(self.bits_per_second);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// One link to relay.
#[derive(Clone, Debug)]
pub struct LinkSpec {
    /// Where the dialing side sends; the relay binds it (port 0 picks one,
    /// read it back with [`Relay::listen_addr`]).
    pub listen: SocketAddr,
    /// The relay's address towards the target (port 0 for any): where the
    /// target sees the dialer's datagrams come from.
    pub egress: SocketAddr,
    /// The listening side.
    pub target: SocketAddr,
    /// Delay, cap and queue.
    pub shape: Shape,
}

/// Setting up the relay failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// A socket could not be bound or configured.
    #[error("relay socket {address}: {source}")]
    Socket {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No such link.
    #[error("the relay has no link {0}")]
    NoLink(usize),
}

/// What the relay did, over all links and both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RelayReport {
    /// Datagrams forwarded.
    pub datagrams: u64,
    /// Bytes forwarded (UDP payloads).
    pub bytes: u64,
    /// Datagrams dropped: queue full or link cut.
    pub dropped: u64,
    /// CPU time of the relay's threads: the cost of simulating the network,
    /// taken from the same cores the nodes use.
    pub cpu_seconds: f64,
}

#[derive(Debug)]
struct Link {
    listen: SocketAddr,
    /// The address egress sockets bind.
    egress: SocketAddr,
    shape: Mutex<Shape>,
    cut: AtomicBool,
    /// Each dialer's egress socket, by the dialer's address.
    dialers: Mutex<Vec<(SocketAddr, Arc<UdpSocket>)>>,
}

#[derive(Debug, Default)]
struct Counters {
    datagrams: AtomicU64,
    bytes: AtomicU64,
    dropped: AtomicU64,
    /// CPU nanoseconds of threads that have exited.
    exited_cpu_ns: AtomicU64,
    /// Thread ids of running relay threads, for their CPU time.
    threads: Mutex<Vec<u32>>,
    /// Every datagram received while capturing, as a tap on the wire sees
    /// it.
    capture: Mutex<Option<Vec<Vec<u8>>>>,
}

#[derive(Debug)]
struct Packet {
    release: Instant,
    data: Vec<u8>,
    /// The socket to send it from (towards the target: its dialer's egress
    /// socket); `None`: the pipe's own.
    via: Option<Arc<UdpSocket>>,
}

#[derive(Debug)]
struct Queue {
    packets: VecDeque<Packet>,
    /// When the capped link has sent everything queued.
    link_free: Instant,
}

/// One direction of one link: towards the target (from the listen socket,
/// out through each dialer's egress socket), or back towards one dialer.
#[derive(Debug)]
struct Pipe {
    link: Arc<Link>,
    from: Arc<UdpSocket>,
    /// Sends go from here unless a packet names its socket.
    to: Arc<UdpSocket>,
    destination: SocketAddr,
    /// Whether datagrams arriving here come from dialers.
    from_dialers: bool,
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Pipe {
    fn new(
        link: &Arc<Link>,
        from: Arc<UdpSocket>,
        to: Arc<UdpSocket>,
        destination: SocketAddr,
        from_dialers: bool,
    ) -> Arc<Pipe> {
        Arc::new(Pipe {
            link: link.clone(),
            from,
            to,
            destination,
            from_dialers,
            queue: Mutex::new(Queue {
                packets: VecDeque::new(),
                link_free: Instant::now(),
            }),
            ready: Condvar::new(),
        })
    }
}

/// What the relay's threads share.
#[derive(Debug, Default)]
struct Shared {
    counters: Counters,
    stop: AtomicBool,
    pipes: Mutex<Vec<Arc<Pipe>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    /// Starts a pipe's receiving and sending threads.
    fn run(self: &Arc<Shared>, pipe: Arc<Pipe>) -> std::io::Result<()> {
        lock(&self.pipes).push(pipe.clone());
        for sender in [false, true] {
            let (pipe, shared) = (pipe.clone(), self.clone());
            let name = format!("relay-{}", if sender { "tx" } else { "rx" });
            let thread = std::thread::Builder::new().name(name).spawn(move || {
                let tid = register_thread(&shared.counters);
                if sender {
                    send_loop(&pipe, &shared.counters, &shared.stop);
                } else {
                    receive_loop(&pipe, &shared);
                }
                unregister_thread(&shared.counters, tid);
            })?;
            lock(&self.threads).push(thread);
        }
        Ok(())
    }
}

/// A running relay; dropping it stops the threads.
#[derive(Debug)]
pub struct Relay {
    links: Vec<Arc<Link>>,
    shared: Arc<Shared>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A relay thread that panicked leaves consistent data behind (plain
    // values and a queue), so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn bind(address: SocketAddr) -> Result<UdpSocket, RelayError> {
    let failed = |source| RelayError::Socket { address, source };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .map_err(failed)?;
    // The OS caps these; asking for more than it gives is not an error.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&address.into()).map_err(failed)?;
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(POLL)).map_err(failed)?;
    Ok(socket)
}

impl Relay {
    /// Binds every link's sockets and starts forwarding.
    pub fn start(specs: &[LinkSpec]) -> Result<Relay, RelayError> {
        let shared = Arc::new(Shared::default());
        let mut links = Vec::new();
        for spec in specs {
            let listen = Arc::new(bind(spec.listen)?);
            let listen_addr = listen.local_addr().map_err(|source| RelayError::Socket {
                address: spec.listen,
                source,
            })?;
            let link = Arc::new(Link {
                listen: listen_addr,
                egress: spec.egress,
                shape: Mutex::new(spec.shape),
                cut: AtomicBool::new(false),
                dialers: Mutex::new(Vec::new()),
            });
            // Check the egress address binds now, not at the first datagram.
            drop(bind(spec.egress)?);
            let towards_target = Pipe::new(&link, listen.clone(), listen, spec.target, true);
            shared
                .run(towards_target)
                .map_err(|source| RelayError::Socket {
                    address: listen_addr,
                    source,
                })?;
            links.push(link);
        }
        Ok(Relay { links, shared })
    }

    /// Where the dialing side of link `k` sends.
    pub fn listen_addr(&self, k: usize) -> Result<SocketAddr, RelayError> {
        Ok(self.link(k)?.listen)
    }

    /// Changes link `k`'s shape; datagrams already queued keep theirs.
    pub fn set_shape(&self, k: usize, shape: Shape) -> Result<(), RelayError> {
        *lock(&self.link(k)?.shape) = shape;
        Ok(())
    }

    /// Cuts link `k` (every datagram dropped, both ways) or restores it.
    pub fn set_cut(&self, k: usize, cut: bool) -> Result<(), RelayError> {
        self.link(k)?.cut.store(cut, Ordering::SeqCst);
        if cut {
            // Datagrams already on the wire are lost with the link.
            let pipes = lock(&self.shared.pipes).clone();
            for pipe in pipes
                .iter()
                .filter(|p| Arc::ptr_eq(&p.link, &self.links[k]))
            {
                let dropped = {
                    let mut queue = lock(&pipe.queue);
                    let n = queue.packets.len() as u64;
                    queue.packets.clear();
                    n
                };
                self.shared
                    .counters
                    .dropped
                    .fetch_add(dropped, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Starts recording every datagram on every link, both ways, as a tap
    /// on the wire would (for tests that look for plaintext in traffic).
    pub fn start_capture(&self) {
        *lock(&self.shared.counters.capture) = Some(Vec::new());
    }

    /// Stops recording and returns what was recorded.
    pub fn take_capture(&self) -> Vec<Vec<u8>> {
        lock(&self.shared.counters.capture)
            .take()
            .unwrap_or_default()
    }

    /// Totals so far.
    pub fn report(&self) -> RelayReport {
        let counters = &self.shared.counters;
        let running: u64 = lock(&counters.threads)
            .iter()
            .map(|tid| thread_cpu_ns(&format!("/proc/self/task/{tid}/schedstat")))
            .sum();
        let exited = counters.exited_cpu_ns.load(Ordering::Relaxed);
        RelayReport {
            datagrams: counters.datagrams.load(Ordering::Relaxed),
            bytes: counters.bytes.load(Ordering::Relaxed),
            dropped: counters.dropped.load(Ordering::Relaxed),
            cpu_seconds: (running + exited) as f64 / 1e9,
        }
    }

    /// Stops forwarding and returns the totals.
    pub fn stop(mut self) -> RelayReport {
        self.halt();
        self.report()
    }

    fn halt(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for pipe in lock(&self.shared.pipes).iter() {
            pipe.ready.notify_all();
        }
        // Receiving threads may start dialers' pipes until they see the
        // flag, so join until none is left.
        loop {
            let threads: Vec<JoinHandle<()>> = lock(&self.shared.threads).drain(..).collect();
            if threads.is_empty() {
                break;
            }
            for thread in threads {
                let _ = thread.join();
            }
        }
    }

    fn link(&self, k: usize) -> Result<&Arc<Link>, RelayError> {
        self.links.get(k).ok_or(RelayError::NoLink(k))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The calling thread's id, from `/proc/thread-self` (Linux).
fn register_thread(counters: &Counters) -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    let tid: u32 = link.file_name()?.to_str()?.parse().ok()?;
    lock(&counters.threads).push(tid);
    Some(tid)
}

fn unregister_thread(counters: &Counters, tid: Option<u32>) {
    let ns = thread_cpu_ns("/proc/thread-self/schedstat");
    counters.exited_cpu_ns.fetch_add(ns, Ordering::Relaxed);
    if let Some(tid) = tid {
        lock(&counters.threads).retain(|t| *t != tid);
    }
}

/// Nanoseconds on CPU: the first field of a `schedstat` file; 0 where
/// there is none.
fn thread_cpu_ns(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn to_std(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    address
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
}

/// The egress socket of dialer `source` on `pipe`'s link, made (with the
/// pipe back to it) on its first datagram; `None` past [`DIALERS_MAX`] or
/// if the socket cannot be made.
fn egress_for(pipe: &Pipe, shared: &Arc<Shared>, source: SocketAddr) -> Option<Arc<UdpSocket>> {
    let mut dialers = lock(&pipe.link.dialers);
    if let Some((_, socket)) = dialers.iter().find(|(a, _)| *a == source) {
        return Some(socket.clone());
    }
    if dialers.len() >= DIALERS_MAX {
        return None;
    }
    let egress = Arc::new(bind(pipe.link.egress).ok()?);
    let back = Pipe::new(&pipe.link, egress.clone(), pipe.from.clone(), source, false);
    shared.run(back).ok()?;
    dialers.push((source, egress.clone()));
    Some(egress)
}

fn receive_loop(pipe: &Pipe, shared: &Arc<Shared>) {
    let (counters, stop) = (&shared.counters, &shared.stop);
    let fd = pipe.from.as_raw_fd();
    let mut buffers: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; DATAGRAM_MAX]).collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut received: Vec<(usize, Option<SocketAddr>)> = Vec::with_capacity(BATCH);
    while !stop.load(Ordering::Relaxed) {
        received.clear();
        {
            let mut slices: Vec<[IoSliceMut<'_>; 1]> = buffers
                .iter_mut()
                .map(|b| [IoSliceMut::new(b.as_mut_slice())])
                .collect();
            // MSG_WAITFORONE: block (up to the socket's read timeout) for
            // the first datagram, then take whatever else is already there.
            match recvmmsg(
                fd,
                &mut headers,
                slices.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(messages) => received
                    .extend(messages.map(|m| (m.bytes, m.address.as_ref().and_then(to_std)))),
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(_) => {
                    // An ICMP error queued on the socket, say; the next call
                    // goes on.
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
            }
        }
        if received.is_empty() {
            continue;
        }
        // Recorded before anything is forwarded, so a tap sees a request
        // before its answer.
        if let Some(capture) = lock(&counters.capture).as_mut() {
            capture.extend(
                received
                    .iter()
                    .enumerate()
                    .map(|(k, (n, _))| buffers[k][..*n].to_vec()),
            );
        }
        // Towards the target each datagram leaves through its dialer's
        // egress socket.
        let mut via: Vec<Option<Arc<UdpSocket>>> = Vec::with_capacity(received.len());
        for (_, source) in &received {
            via.push(match (pipe.from_dialers, source) {
                (true, Some(source)) => egress_for(pipe, shared, *source),
                _ => None,
            });
        }
        let shape = *lock(&pipe.link.shape);
        let cut = pipe.link.cut.load(Ordering::SeqCst);
        let now = Instant::now();
        let mut dropped = 0;
        {
            let mut queue = lock(&pipe.queue);
            for (k, ((bytes, _), via)) in received.iter().zip(via).enumerate() {
                if cut || (pipe.from_dialers && via.is_none()) {
                    dropped += 1;
                    continue;
                }
                let start = queue.link_free.max(now);
                if shape.bits_per_second > 0 && start - now > shape.queue {
                    dropped += 1;
                    continue;
                }
                queue.link_free = start + shape.transmit(*bytes);
                let release = queue.link_free + shape.delay;
                queue.packets.push_back(Packet {
                    release,
                    data: buffers[k][..*bytes].to_vec(),
                    via,
                });
            }
        }
        pipe.ready.notify_one();
        counters.dropped.fetch_add(dropped, Ordering::Relaxed);
    }
}

fn send_loop(pipe: &Pipe, counters: &Counters, stop: &AtomicBool) {
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut batch: Vec<Packet> = Vec::with_capacity(BATCH);
    loop {
        {
            let mut queue = lock(&pipe.queue);
            loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let now = Instant::now();
                let wait = match queue.packets.front() {
                    Some(first) if first.release <= now => {
                        while batch.len() < BATCH
                            && queue.packets.front().is_some_and(|p| p.release <= now)
                        {
                            if let Some(packet) = queue.packets.pop_front() {
                                batch.push(packet);
                            }
                        }
                        break;
                    }
                    Some(first) => first.release - now,
                    None => POLL,
                };
                queue = pipe
                    .ready
                    .wait_timeout(queue, wait)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
            }
        }
        // One system call per run of datagrams leaving the same socket.
        let mut start = 0;
        while start < batch.len() {
            let socket = batch[start].via.clone().unwrap_or_else(|| pipe.to.clone());
            let mut end = start + 1;
            while end < batch.len()
                && Arc::ptr_eq(batch[end].via.as_ref().unwrap_or(&pipe.to), &socket)
            {
                end += 1;
            }
            let data: Vec<&[u8]> = batch[start..end]
                .iter()
                .map(|p| p.data.as_slice())
                .collect();
            let (sent, bytes) =
                send_batch(socket.as_raw_fd(), &mut headers, &data, pipe.destination);
            counters.datagrams.fetch_add(sent, Ordering::Relaxed);
            counters.bytes.fetch_add(bytes, Ordering::Relaxed);
            counters
                .dropped
                .fetch_add((end - start) as u64 - sent, Ordering::Relaxed);
            start = end;
        }
        batch.clear();
    }
}

/// Sends `batch` to `destination`, as few `sendmmsg` calls as it takes;
/// returns datagrams and bytes sent.
fn send_batch(
    fd: std::os::fd::RawFd,
    headers: &mut MultiHeaders<SockaddrStorage>,
    batch: &[&[u8]],
    destination: SocketAddr,
) -> (u64, u64) {
    let address = SockaddrStorage::from(destination);
    let addresses: Vec<Option<SockaddrStorage>> = vec![Some(address); batch.len()];
    let slices: Vec<[IoSlice<'_>; 1]> = batch.iter().map(|b| [IoSlice::new(b)]).collect();
    let mut done = 0;
    let mut bytes = 0u64;
    let mut failures = 0;
    while done < batch.len() {
        let no_control: [ControlMessage<'_>; 0] = [];
        match sendmmsg(
            fd,
            headers,
            &slices[done..],
            &addresses[done..],
            no_control,
            MsgFlags::empty(),
        ) {
            Ok(results) => {
                let mut n = 0;
                for result in results {
                    bytes += result.bytes as u64;
                    n += 1;
                }
                if n == 0 {
                    break;
                }
                done += n;
            }
            Err(Errno::EINTR) => {}
            Err(_) => {
                // A datagram the OS will not take (no route, say) is lost,
                // as it would be on a real link; skip it.
                failures += 1;
                done += 1;
                if failures > BATCH {
                    break;
                }
            }
        }
    }
    ((done - failures.min(done)) as u64, bytes)
}
