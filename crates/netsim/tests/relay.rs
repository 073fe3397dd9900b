//! The relay forwards both ways, adds its delay, holds to its cap, drops
//! on a cut link and forwards again when it is restored; hosts in
//! namespaces reach each other only through it.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use triad_netsim::{Hosts, LinkSpec, Relay, Shape};

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

fn socket() -> UdpSocket {
    let s = UdpSocket::bind(loopback()).expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    s
}

/// A relay between a dialer socket and a target socket on loopback.
fn relay(shape: Shape) -> (Relay, UdpSocket, UdpSocket) {
    let (dialer, target) = (socket(), socket());
    let relay = Relay::start(&[LinkSpec {
        listen: loopback(),
        egress: loopback(),
        target: target.local_addr().expect("addr"),
        shape,
    }])
    .expect("relay");
    dialer
        .connect(relay.listen_addr(0).expect("link"))
        .expect("connect");
    (relay, dialer, target)
}

/// Sends `message` from the dialer, echoes it back from the target, and
/// returns the round-trip time.
fn round_trip(dialer: &UdpSocket, target: &UdpSocket, message: &[u8]) -> Option<Duration> {
    let start = Instant::now();
    dialer.send(message).expect("send");
    let mut buffer = vec![0u8; 65_536];
    let (n, from) = target.recv_from(&mut buffer).ok()?;
    assert_eq!(&buffer[..n], message, "the target got other bytes");
    target.send_to(&buffer[..n], from).expect("echo");
    let n = dialer.recv(&mut buffer).ok()?;
    assert_eq!(&buffer[..n], message, "the dialer got other bytes back");
    Some(start.elapsed())
}

#[test]
fn forwards_both_ways_with_its_delay() {
    let (relay, dialer, target) = relay(Shape::none().with_delay(Duration::from_millis(20)));
    for k in 0..5u8 {
        let rtt = round_trip(&dialer, &target, &[k; 1200]).expect("forwarded");
        assert!(
            rtt >= Duration::from_millis(40),
            "round trip {rtt:?} under 2 x 20 ms"
        );
        assert!(rtt < Duration::from_millis(400), "round trip {rtt:?}");
    }
    // A large datagram (loopback MTU) goes through whole.
    round_trip(&dialer, &target, &[7u8; 60_000]).expect("large datagram");
    relay.set_shape(0, Shape::none()).expect("link");
    let rtt = round_trip(&dialer, &target, b"fast").expect("forwarded");
    assert!(
        rtt < Duration::from_millis(40),
        "round trip {rtt:?} after removing the delay"
    );
    let report = relay.stop();
    assert_eq!(report.datagrams, 14);
    assert_eq!(report.dropped, 0);
    assert!(report.cpu_seconds > 0.0, "relay CPU time not measured");
}

#[test]
fn a_cut_link_drops_everything_until_restored() {
    let (relay, dialer, target) = relay(Shape::none());
    relay.start_capture();
    round_trip(&dialer, &target, b"before").expect("forwarded");
    assert_eq!(
        relay.take_capture(),
        vec![b"before".to_vec(), b"before".to_vec()]
    );
    relay.set_cut(0, true).expect("link");
    target
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    assert_eq!(round_trip(&dialer, &target, b"during"), None);
    relay.set_cut(0, false).expect("link");
    target
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    round_trip(&dialer, &target, b"after").expect("forwarded after restore");
    let report = relay.stop();
    assert!(report.dropped >= 1, "{report:?}");
}

#[test]
fn the_cap_paces_a_burst() {
    // 8 Mbit/s: 100 datagrams of 1,000 bytes take 100 ms on the link.
    let shape = Shape {
        delay: Duration::ZERO,
        bits_per_second: 8_000_000,
        queue: Duration::from_secs(1),
    };
    let (relay, dialer, target) = relay(shape);
    let start = Instant::now();
    for _ in 0..100 {
        dialer.send(&[1u8; 1000]).expect("send");
    }
    let mut buffer = [0u8; 2000];
    for _ in 0..100 {
        target.recv(&mut buffer).expect("every datagram arrives");
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(95),
        "burst took {elapsed:?}"
    );
    // A queue shorter than the burst drops its tail.
    relay
        .set_shape(
            0,
            Shape {
                queue: Duration::from_millis(10),
                ..shape
            },
        )
        .expect("link");
    for _ in 0..100 {
        dialer.send(&[1u8; 1000]).expect("send");
    }
    std::thread::sleep(Duration::from_millis(300));
    let report = relay.stop();
    assert!(report.dropped >= 50, "{report:?}");
}

/// Runs Python on host `i` (a fresh machine has Python 3, and the test
/// binary cannot enter a namespace itself).
fn python_on(hosts: &Hosts, i: usize, program: &str) -> std::process::Command {
    let mut command = std::process::Command::new("ip");
    command.args([
        "netns",
        "exec",
        hosts.namespace(i),
        "python3",
        "-c",
        program,
    ]);
    command
}

#[test]
fn hosts_reach_each_other_only_through_the_relay() {
    let hosts = match Hosts::create(2) {
        Ok(hosts) => hosts,
        Err(error @ triad_netsim::HostsError::Unavailable(_)) => {
            eprintln!("SKIPPED: {error}");
            return;
        }
        Err(error) => panic!("{error}"),
    };
    // Host 1 echoes one datagram, then exits.
    let echo = format!(
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('{}',9000))\n\
         d,a=s.recvfrom(65536)\ns.sendto(d,a)\nprint(a[0])",
        hosts.address(1)
    );
    let server = python_on(&hosts, 1, &echo)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python on host 1");
    // Host 0 has no route to host 1.
    let direct = format!(
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.sendto(b'x',('{}',9000))",
        hosts.address(1)
    );
    let out = python_on(&hosts, 0, &direct)
        .output()
        .expect("python on host 0");
    assert!(
        !out.status.success(),
        "host 0 sent to host 1 directly; the relay would be bypassed"
    );
    // Through the relay: listening on host 0's gateway, sending from host
    // 1's, 5 ms each way.
    let relay = Relay::start(&[LinkSpec {
        listen: SocketAddr::new(hosts.gateway(0), 0),
        egress: SocketAddr::new(hosts.gateway(1), 0),
        target: SocketAddr::new(hosts.address(1), 9000),
        shape: Shape::none().with_delay(Duration::from_millis(5)),
    }])
    .expect("relay");
    let via = relay.listen_addr(0).expect("link");
    let client = format!(
        "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(1)\n\
         t=time.monotonic()\nfor _ in range(50):\n  s.sendto(b'ping',('{}',{}))\n  \
         try:\n    d=s.recv(100); assert d==b'ping'; print(time.monotonic()-t); break\n  \
         except socket.timeout: pass",
        via.ip(),
        via.port()
    );
    let out = python_on(&hosts, 0, &client)
        .output()
        .expect("python on host 0");
    let rtt: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no echo through the relay: {out:?}"));
    assert!(rtt >= 0.010, "round trip {rtt} s under 2 x 5 ms");
    let server = server.wait_with_output().expect("echo server");
    assert_eq!(
        String::from_utf8_lossy(&server.stdout).trim(),
        hosts.gateway(1).to_string(),
        "host 1 should see the relay's egress address"
    );
    drop(relay);
    let names: Vec<String> = (0..2).map(|i| hosts.namespace(i).to_owned()).collect();
    drop(hosts);
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let listed = String::from_utf8_lossy(&listed.stdout);
    for name in names {
        assert!(!listed.contains(&name), "{name} left behind");
    }
}

#[test]
fn each_dialer_gets_its_own_answers() {
    let (relay, first, target) = relay(Shape::none());
    let second = socket();
    second
        .connect(relay.listen_addr(0).expect("link"))
        .expect("connect");
    let mut buffer = [0u8; 100];
    first.send(b"one").expect("send");
    let (_, from_first) = target.recv_from(&mut buffer).expect("first");
    second.send(b"two").expect("send");
    let (_, from_second) = target.recv_from(&mut buffer).expect("second");
    assert_ne!(
        from_first, from_second,
        "two dialers share one egress address"
    );
    // Answered in the other order, each reaches its own dialer.
    target.send_to(b"for two", from_second).expect("answer");
    target.send_to(b"for one", from_first).expect("answer");
    let n = first.recv(&mut buffer).expect("first's answer");
    assert_eq!(&buffer[..n], b"for one");
    let n = second.recv(&mut buffer).expect("second's answer");
    assert_eq!(&buffer[..n], b"for two");
}
