//! Networks as dockerd 20.10 takes them (issue 14, item 6): subnets with host bits set are
//! normalised, names may hold spaces, IPAM JSON with `null` fields is accepted; `--ipv6`
//! networks are dual-stack (an IPv4 subnet from the pool and the given IPv6 one, or one from
//! the IPv6 pool as Docker 28 picks it), with IPv6 addresses, routes, published ports on
//! `[::]` (and `[::1]` through the daemon's relay, TCP and UDP) and NAT for IPv6; IPv6
//! subnets overlapping host routes are refused. Addresses are ULA
//! (fd00::/8) only, and traffic goes only to containers and namespaces the tests make.

use crate::Test;
use crate::harness::TestEnv;
use crate::network::{ForwardDrop, Outside, sh};

pub const TESTS: &[Test] = &[
    (
        "net_subnet_host_bits_and_names_with_spaces",
        net_subnet_host_bits_and_names_with_spaces,
    ),
    ("net_ipam_json_with_nulls", net_ipam_json_with_nulls),
    (
        "net_ipv6_dual_stack_create_inspect_and_refusals",
        net_ipv6_dual_stack_create_inspect_and_refusals,
    ),
    (
        "net_ipv6_containers_talk_and_inspect",
        net_ipv6_containers_talk_and_inspect,
    ),
    (
        "net_ipv6_published_ports_egress_and_cleanup",
        net_ipv6_published_ports_egress_and_cleanup,
    ),
    (
        "net_ipv6_default_bridge_by_daemon_flags",
        net_ipv6_default_bridge_by_daemon_flags,
    ),
    (
        "net_ipv6_udp_published_port_on_loopback",
        net_ipv6_udp_published_port_on_loopback,
    ),
    (
        "net_ipv6_published_on_loopback_only",
        net_ipv6_published_on_loopback_only,
    ),
    (
        "net_ipv6_subnet_overlapping_a_host_route_creates_nothing",
        net_ipv6_subnet_overlapping_a_host_route_creates_nothing,
    ),
    (
        "net_ipv6_default_pool_from_engine_id_and_daemon_pools",
        net_ipv6_default_pool_from_engine_id_and_daemon_pools,
    ),
];

fn net_subnet_host_bits_and_names_with_spaces(env: &TestEnv) {
    let d = |args: &[&str]| env.docker(args).unwrap();
    d(&[
        "network",
        "create",
        "--subnet",
        "10.236.7.9/24",
        "my spaced net",
    ])
    .ok();
    let subnet = d(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        "my spaced net",
    ])
    .ok();
    assert_eq!(subnet, "10.236.7.0/24", "host bits cleared, as dockerd");
    let out = d(&[
        "run",
        "--rm",
        "--network",
        "my spaced net",
        "busybox",
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ])
    .ok();
    assert!(out.contains("10.236.7.2/24"), "{out}");
    let names = d(&["network", "ls", "--format", "{{.Name}}"]).ok();
    assert!(names.lines().any(|l| l == "my spaced net"), "{names}");
    d(&["network", "rm", "my spaced net"]).ok();
}

fn net_ipam_json_with_nulls(env: &TestEnv) {
    let body = r#"{"Name":"nullipam","Driver":null,"Internal":null,"Attachable":null,
        "Options":null,"Labels":null,"EnableIPv6":null,
        "IPAM":{"Driver":null,"Options":null,
                "Config":[{"Subnet":"10.237.0.0/24","Gateway":null,"IPRange":null,
                           "AuxiliaryAddresses":null}]}}"#;
    let (status, out) = env.api("POST", "/networks/create", Some(body));
    assert_eq!(status, 201, "{out}");
    let gateway = env
        .docker(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
            "nullipam",
        ])
        .unwrap()
        .ok();
    assert_eq!(gateway, "10.237.0.1");
    let (status, out) = env.api(
        "POST",
        "/networks/create",
        Some(r#"{"Name":"nullconfig","IPAM":{"Driver":"default","Config":null}}"#),
    );
    assert_eq!(status, 201, "{out}");
    env.berth(&["network", "rm", "nullipam", "nullconfig"]).ok();
}

fn net_ipv6_dual_stack_create_inspect_and_refusals(env: &TestEnv) {
    let d = |args: &[&str]| env.docker(args).unwrap();
    // Host bits set in the IPv6 subnet are cleared, as for IPv4.
    create_v6(env, "v6net", "fd00:db8:14::7/64");
    let (status, body) = env.api("GET", "/networks/v6net", None);
    assert_eq!(status, 200, "{body}");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["EnableIPv6"], true, "{info}");
    let config = info["IPAM"]["Config"].as_array().unwrap();
    assert_eq!(
        config.len(),
        2,
        "an IPv4 subnet from the pool and the IPv6 one: {info}"
    );
    assert!(
        !config[0]["Subnet"].as_str().unwrap().contains(':'),
        "{info}"
    );
    assert_eq!(config[1]["Subnet"], "fd00:db8:14::/64");
    assert_eq!(config[1]["Gateway"], "fd00:db8:14::1");
    // The bridge holds the IPv6 gateway, usable at once (no DAD).
    let bridge = format!("br-{}", &info["Id"].as_str().unwrap()[..12]);
    let (_, addrs) = sh("ip", &["-6", "-o", "addr", "show", "dev", &bridge]);
    assert!(addrs.contains("fd00:db8:14::1/64"), "{addrs}");
    assert!(!addrs.contains("tentative"), "{addrs}");

    // A gateway and an ip-range of one's own choosing.
    d(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.238.0.0/24",
        "--subnet",
        "fd00:db8:15::/64",
        "--gateway",
        "fd00:db8:15::fe",
        "--ip-range",
        "fd00:db8:15::100/120",
        "v6own",
    ])
    .ok();
    let cfg = d(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}} {{.IPRange}};{{end}}",
        "v6own",
    ])
    .ok();
    assert_eq!(
        cfg,
        "10.238.0.0/24 10.238.0.1 ;fd00:db8:15::/64 fd00:db8:15::fe fd00:db8:15::100/120;"
    );
    let ip = global_v6_of(env, "v6own");
    assert!(
        ip.contains("fd00:db8:15::100/64"),
        "first of the range: {ip}"
    );

    refusals_create_nothing(env);
    d(&["network", "rm", "v6net", "v6own"]).ok();
    let (_, routes) = sh("ip", &["-6", "route", "show", "fd00:db8:14::/64"]);
    assert!(routes.trim().is_empty(), "route left: {routes}");
}

/// Bad IPv6 input is refused in Docker's words and creates nothing (`v6net`,
/// fd00:db8:14::/64, exists).
fn refusals_create_nothing(env: &TestEnv) {
    let d = |args: &[&str]| env.docker(args).unwrap();
    // Refusals, in Docker's words, that create nothing.
    let before = env.berth(&["network", "ls", "-q"]).ok();
    let refused = |args: &[&str], words: &str| {
        let r = d(args);
        assert_ne!(r.code, 0, "{args:?}");
        assert!(r.stderr.contains(words), "{args:?}: {r:?}");
    };
    refused(
        &[
            "network",
            "create",
            "--ipv6",
            "--subnet",
            "fd00:db8:14:0:1::/80",
            "v6overlap",
        ],
        "Pool overlaps with other one on this address space",
    );
    // (The docker CLI checks a gateway against its subnet itself; the API is berth's.)
    let (status, out) = env.api(
        "POST",
        "/networks/create",
        Some(
            r#"{"Name":"v6badgw","EnableIPv6":true,"IPAM":{"Config":[
                {"Subnet":"fd00:db8:16::/64","Gateway":"fd00:db8:17::1"}]}}"#,
        ),
    );
    assert_eq!(status, 400, "{out}");
    assert!(
        out.contains("is not within subnet fd00:db8:16::/64"),
        "{out}"
    );
    refused(
        &[
            "network",
            "create",
            "--subnet",
            "fd00:db8:18::/64",
            "v6noflag",
        ],
        "needs --ipv6",
    );
    // --ip6 outside the subnet, and on a network without IPv6.
    refused(
        &[
            "run",
            "--rm",
            "--network",
            "v6net",
            "--ip6",
            "fd00:db8:99::5",
            "busybox",
            "true",
        ],
        "does not belong to any of network",
    );
    assert_eq!(
        env.berth(&["network", "ls", "-q"]).ok(),
        before,
        "nothing created"
    );
}

fn net_ipv6_containers_talk_and_inspect(env: &TestEnv) {
    let d = |args: &[&str]| env.docker(args).unwrap();
    create_v6(env, "v6talk", "fd00:db8:24::/64");
    d(&[
        "run",
        "-d",
        "--name",
        "v6a",
        "--network",
        "v6talk",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    d(&[
        "run",
        "-d",
        "--name",
        "v6b",
        "--network",
        "v6talk",
        "--ip6",
        "fd00:db8:24::99",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    // Container inspect: per network and at the top level.
    let tpl = "{{.NetworkSettings.GlobalIPv6Address}} {{.NetworkSettings.GlobalIPv6PrefixLen}} \
               {{.NetworkSettings.IPv6Gateway}} \
               {{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}} {{.IPv6Gateway}} \
               {{.GlobalIPv6PrefixLen}} {{.IPAMConfig.IPv6Address}}{{end}}";
    assert_eq!(
        d(&["inspect", "-f", tpl, "v6b"]).ok(),
        "fd00:db8:24::99 64 fd00:db8:24::1 fd00:db8:24::99 fd00:db8:24::1 64 fd00:db8:24::99"
    );
    let a6 = env.inspect("v6a", "{{.NetworkSettings.GlobalIPv6Address}}");
    assert_eq!(a6, "fd00:db8:24::2", "containers from ::2");
    let members = d(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}}={{.IPv6Address}} {{end}}",
        "v6talk",
    ])
    .ok();
    assert!(members.contains("v6a=fd00:db8:24::2/64"), "{members}");
    assert!(members.contains("v6b=fd00:db8:24::99/64"), "{members}");
    // Inside: the address (no DAD pending), the default route, /etc/hosts.
    // (accept_dad=0: the link-local address is usable at once too.)
    let addr = d(&["exec", "v6a", "ip", "-6", "-o", "addr", "show", "eth0"]).ok();
    assert!(addr.contains("fd00:db8:24::2/64"), "{addr}");
    assert!(!addr.contains("tentative"), "{addr}");
    let route = d(&["exec", "v6a", "ip", "-6", "route", "show", "default"]).ok();
    assert!(route.contains("via fd00:db8:24::1 dev eth0"), "{route}");
    let hosts = d(&["exec", "v6b", "cat", "/etc/hosts"]).ok();
    let id = env.inspect("v6b", "{{.Config.Hostname}}");
    assert!(hosts.contains(&format!("fd00:db8:24::99\t{id}")), "{hosts}");
    assert!(hosts.contains("fe00::0\tip6-localnet"), "{hosts}");
    // Both ways over IPv6, and to the gateway.
    for (from, to) in [
        ("v6a", "fd00:db8:24::99"),
        ("v6b", "fd00:db8:24::2"),
        ("v6a", "fd00:db8:24::1"),
    ] {
        let r = d(&["exec", from, "ping", "-6", "-c", "1", "-W", "3", to]);
        assert_eq!(r.code, 0, "{from} → {to}: {r:?}");
    }
    // The embedded DNS answers AAAA with the IPv6 address, A with the IPv4 one.
    let aaaa = d(&["exec", "v6a", "nslookup", "-type=AAAA", "v6b"]).ok();
    assert!(aaaa.contains("fd00:db8:24::99"), "{aaaa}");
    let a = d(&["exec", "v6a", "nslookup", "-type=A", "v6b"]).ok();
    assert!(
        !a.contains("fd00:db8:24::99") && a.contains("Address"),
        "{a}"
    );
    d(&["rm", "-f", "v6a", "v6b"]).ok();
    d(&["network", "rm", "v6talk"]).ok();
}

/// A network namespace with a veth pair to the host, IPv6 only: the "outside world".
/// An outside peer for IPv6 egress: `<net>::1/64` on the host side, `::2` inside, no route
/// back from inside.
fn outside6(net: &str) -> Outside {
    Outside::with_addrs(
        "6",
        &format!("{net}::1/64"),
        &format!("{net}::2/64"),
        &["nodad"],
    )
}

/// GET over HTTP with curl (5 s at most), the body or None.
/// A host port free right now on IPv6 (and IPv4): TCP, or UDP with `udp`.
fn free_port6(udp: bool) -> u16 {
    let addr = if udp {
        std::net::UdpSocket::bind("[::]:0").unwrap().local_addr()
    } else {
        std::net::TcpListener::bind("[::]:0").unwrap().local_addr()
    };
    addr.unwrap().port()
}

/// The global IPv6 addresses (`ip -6 -o addr` lines) of `eth0` in a new container on
/// `network`.
fn global_v6_of(env: &TestEnv, network: &str) -> String {
    let args = [
        "run",
        "--rm",
        "--network",
        network,
        "busybox",
        "ip",
        "-6",
        "-o",
    ];
    let show = ["addr", "show", "eth0", "scope", "global"];
    env.docker(&[&args[..], &show[..]].concat()).unwrap().ok()
}

/// `network create --ipv6 --subnet SUBNET NAME` through the docker CLI.
fn create_v6(env: &TestEnv, name: &str, subnet: &str) {
    env.docker(&["network", "create", "--ipv6", "--subnet", subnet, name])
        .unwrap()
        .ok();
}

fn http_get(url: &str) -> Option<String> {
    let (ok, out) = sh("curl", &["-s", "-g", "-m", "5", url]);
    ok.then(|| out.trim().to_string())
}

fn net_ipv6_published_ports_egress_and_cleanup(env: &TestEnv) {
    let d = |args: &[&str]| env.docker(args).unwrap();
    let _drop = ForwardDrop::set("ip6tables");
    create_v6(env, "v6pub", "fd00:db8:34::/64");
    let port = free_port6(false);
    d(&[
        "run",
        "-d",
        "--name",
        "v6web",
        "--network",
        "v6pub",
        "-p",
        &format!("{port}:80"),
        "busybox",
        "sh",
        "-c",
        "mkdir -p /w && echo v6web > /w/index.html && exec httpd -f -p [::]:80 -h /w",
    ])
    .ok();
    let shown = d(&["ps", "--format", "{{.Ports}}", "--filter", "name=v6web"]).ok();
    assert_eq!(
        shown,
        format!("0.0.0.0:{port}->80/tcp, [::]:{port}->80/tcp"),
        "as dockerd shows it"
    );
    let lines = d(&["port", "v6web"]).ok();
    assert_eq!(
        lines,
        format!("80/tcp -> 0.0.0.0:{port}\n80/tcp -> [::]:{port}")
    );
    let (_, body) = env.api(
        "GET",
        "/containers/json?filters=%7B%22name%22%3A%5B%22v6web%22%5D%7D",
        None,
    );
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ips: Vec<&str> = list[0]["Ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["IP"].as_str().unwrap())
        .collect();
    assert_eq!(ips, ["0.0.0.0", "::"], "{body}");
    // Reached over IPv6 on the host's own addresses, loopback included, and over IPv4.
    assert!(
        env.eventually(10, || http_get(&format!("http://127.0.0.1:{port}/"))
            .as_deref()
            == Some("v6web")),
        "IPv4 loopback"
    );
    assert_eq!(
        http_get(&format!("http://[fd00:db8:34::1]:{port}/")).as_deref(),
        Some("v6web"),
        "the bridge's IPv6 address"
    );
    assert_eq!(
        http_get(&format!("http://[::1]:{port}/")).as_deref(),
        Some("v6web"),
        "IPv6 loopback"
    );

    // Egress: masqueraded (the outside has no route back to fd00:db8:34::/64), under an
    // ip6tables FORWARD DROP policy.
    let mut outside = outside6("fd00:db8:35");
    let dir = env.root.join("outside6-www");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "outside6\n").unwrap();
    outside.serve(&dir, "[::]:8000");
    let fetch = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 fd00:db8:35::2 8000 | tail -n 1";
    let mut got = String::new();
    let reached = env.eventually(10, || {
        got = d(&["exec", "v6web", "sh", "-c", fetch]).stdout;
        got.trim() == "outside6"
    });
    assert!(reached, "egress over IPv6: {got:?}");

    // A daemon restart keeps all of it: addresses, DNAT, the [::1] proxy.
    env.stop_daemon(libc::SIGTERM);
    env.start_daemon();
    for url in [
        format!("http://[::1]:{port}/"),
        format!("http://[fd00:db8:34::1]:{port}/"),
    ] {
        assert!(
            env.eventually(10, || http_get(&url).as_deref() == Some("v6web")),
            "{url} after a restart"
        );
    }

    removing_leaves_nothing(env, port);
}

/// Removing the container and the network takes the rules, routes and accepts along.
fn removing_leaves_nothing(env: &TestEnv, port: u16) {
    let d = |args: &[&str]| env.docker(args).unwrap();
    // Everything goes with the container and the network: rules, routes, devices.
    let table = env.bridge.clone();
    d(&["rm", "-f", "v6web"]).ok();
    let (_, rules) = sh("nft", &["list", "table", "ip6", &table]);
    assert!(!rules.contains(&format!("dport {port}")), "{rules}");
    d(&["network", "rm", "v6pub"]).ok();
    let (exists, rules) = sh("nft", &["list", "table", "ip6", &table]);
    assert!(!exists, "no dual-stack network left, no ip6 table: {rules}");
    let (_, f6) = sh("ip6tables", &["-w", "5", "-S", "FORWARD"]);
    assert!(!f6.contains("br-"), "ip6tables accepts left: {f6}");
    let (_, routes) = sh("ip", &["-6", "route", "show", "fd00:db8:34::/64"]);
    assert!(routes.trim().is_empty(), "route left: {routes}");
}

fn net_ipv6_default_bridge_by_daemon_flags(env: &TestEnv) {
    env.stop_daemon(libc::SIGTERM);
    env.start_daemon_with(&["--ipv6", "--fixed-cidr-v6", "fd00:db8:44::/64"]);
    let d = |args: &[&str]| env.docker(args).unwrap();
    assert_eq!(
        d(&["network", "inspect", "-f", "{{.EnableIPv6}}", "bridge"]).ok(),
        "true"
    );
    let out = d(&[
        "run", "--rm", "busybox", "sh", "-c",
        "ip -6 -o addr show eth0 scope global && ping -6 -c 1 -W 3 fd00:db8:44::1 >/dev/null && echo pong",
    ])
    .ok();
    assert!(out.contains("fd00:db8:44::2/64"), "{out}");
    assert!(out.ends_with("pong"), "{out}");
    // `--ipv6` alone: a subnet from the IPv6 pools (Docker 28), kept across restarts.
    let v6_of_bridge = || {
        d(&[
            "network",
            "inspect",
            "-f",
            "{{.EnableIPv6}} {{range .IPAM.Config}}{{.Subnet}} {{end}}",
            "bridge",
        ])
        .ok()
    };
    for _ in 0..2 {
        env.stop_daemon(libc::SIGTERM);
        env.start_daemon_with(&[
            "--ipv6",
            "--default-address-pool",
            "base=fd00:db8:45::/63,size=64",
        ]);
        assert!(
            v6_of_bridge().starts_with("true ") && v6_of_bridge().ends_with(" fd00:db8:45::/64"),
            "{}",
            v6_of_bridge()
        );
        let out = global_v6_of(env, "bridge");
        assert!(out.contains("fd00:db8:45::2/64"), "{out}");
    }
    // Without the flags again: the default bridge is IPv4-only once more.
    env.stop_daemon(libc::SIGTERM);
    env.start_daemon();
    assert_eq!(
        d(&["network", "inspect", "-f", "{{.EnableIPv6}}", "bridge"]).ok(),
        "false"
    );
    let out = d(&[
        "run", "--rm", "busybox", "ip", "-6", "-o", "addr", "show", "scope", "global",
    ])
    .ok();
    assert!(out.is_empty(), "{out}");
    let (_, f6) = sh("ip6tables", &["-w", "5", "-S", "FORWARD"]);
    assert!(
        !f6.split_whitespace().any(|w| w == env.bridge),
        "ip6tables accepts of the default bridge left: {f6}"
    );
}

/// A UDP echo server for a busybox container: the host's python3 (its `/usr` mounted
/// read-only at `/host/usr`), answering each datagram on port 5353 with `pong:` before it,
/// for a minute.
const UDP_ECHO: &str =
    "ln -s host/usr/lib /lib && ln -s host/usr/lib64 /lib64 && exec /host/usr/bin/python3 -c '
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind((\"::\", 5353))
s.settimeout(60)
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(b\"pong:\" + data, peer)
'";

/// Sends `msg` to `to` from a fresh socket until an answer comes (at most `secs` tries of
/// one second): the answer and where it came from.
fn udp_ask(to: &str, msg: &str, secs: u32) -> Option<(String, std::net::SocketAddr)> {
    let local = if to.starts_with('[') {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let socket = std::net::UdpSocket::bind(local).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(1)))
        .unwrap();
    let mut buf = [0u8; 2048];
    for _ in 0..secs {
        socket.send_to(msg.as_bytes(), to).unwrap();
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            return Some((String::from_utf8_lossy(&buf[..n]).into_owned(), from));
        }
    }
    None
}

/// `-p PORT:5353/udp` on a dual-stack network: `[::1]:PORT` answers through the daemon's
/// userland relay (as docker-proxy does), replies coming from `[::1]:PORT`; the relay goes
/// with the container and the port is free again.
fn net_ipv6_udp_published_port_on_loopback(env: &TestEnv) {
    let d = |args: &[&str]| env.docker(args).unwrap();
    create_v6(env, "v6udp", "fd00:db8:36::/64");
    let port = free_port6(true);
    d(&[
        "run",
        "-d",
        "--name",
        "v6udp",
        "--network",
        "v6udp",
        "-p",
        &format!("{port}:5353/udp"),
        "-v",
        "/usr:/host/usr:ro",
        "busybox",
        "/bin/sh",
        "-c",
        UDP_ECHO,
    ])
    .ok();
    assert_eq!(
        d(&["port", "v6udp"]).ok(),
        format!("5353/udp -> 0.0.0.0:{port}\n5353/udp -> [::]:{port}")
    );
    let v4 = udp_ask(&format!("127.0.0.1:{port}"), "four", 10);
    assert_eq!(v4.map(|(text, _)| text).as_deref(), Some("pong:four"));
    for msg in ["six", "again"] {
        let (text, from) = udp_ask(&format!("[::1]:{port}"), msg, 5).expect("an answer on [::1]");
        assert_eq!(text, format!("pong:{msg}"));
        assert_eq!(
            from.to_string(),
            format!("[::1]:{port}"),
            "answered from the port"
        );
    }
    d(&["rm", "-f", "v6udp"]).ok();
    assert!(
        env.eventually(5, || std::net::UdpSocket::bind(("::", port)).is_ok()),
        "port {port} still held after the container went"
    );
    assert_eq!(udp_ask(&format!("[::1]:{port}"), "gone", 1), None);
    d(&["network", "rm", "v6udp"]).ok();
}

/// A veth pair of the test's own, one end with an IPv6 address, so the host has an on-link
/// route to its /64 (no traffic goes anywhere; not every kernel here has `dummy`); removed
/// with the guard.
struct HostRoute6(&'static str);

impl HostRoute6 {
    fn add(name: &'static str, addr: &str) -> Self {
        let _ = sh("ip", &["link", "del", name]);
        let peer = format!("{name}p");
        for args in [
            vec!["link", "add", name, "type", "veth", "peer", "name", &peer],
            vec!["-6", "addr", "add", addr, "dev", name, "nodad"],
            vec!["link", "set", &peer, "up"],
            vec!["link", "set", name, "up"],
        ] {
            let (ok, out) = sh("ip", &args);
            assert!(ok, "ip {args:?}: {out}");
        }
        Self(name)
    }
}

impl Drop for HostRoute6 {
    fn drop(&mut self) {
        let _ = sh("ip", &["link", "del", self.0]);
    }
}

/// What a refused create could have left: networks, bridges, the ip6 table's rules.
fn host_network_state(env: &TestEnv) -> (String, String, String) {
    let networks = env.berth(&["network", "ls", "-q"]).ok();
    let (_, links) = sh("ip", &["-o", "link", "show", "type", "bridge"]);
    let bridges: Vec<&str> = links.lines().filter_map(|l| l.split(": ").nth(1)).collect();
    let (_, rules) = sh("nft", &["list", "table", "ip6", &env.bridge]);
    (networks, bridges.join(" "), rules)
}

/// An IPv6 subnet that overlaps a host route (or, already, another network) is refused in
/// one line of Docker's words, and nothing is created: no network, bridge or rule.
fn net_ipv6_subnet_overlapping_a_host_route_creates_nothing(env: &TestEnv) {
    let d = |args: &[&str]| env.docker(args).unwrap();
    let _route = HostRoute6::add("b6route0", "fd00:db8:77::1/64");
    create_v6(env, "v6routeok", "fd00:db8:78::/64");
    let before = host_network_state(env);
    for (subnet, other) in [
        ("fd00:db8:77::/64", "host route fd00:db8:77::/64"),
        ("fd00:db8:77:0:8000::/80", "host route fd00:db8:77::/64"),
        ("fd00:db8:77::/48", "host route fd00:db8:77::/64"),
        ("fd00:db8::/32", "v6routeok"),
        ("fd00:db8:78::/80", "v6routeok"),
    ] {
        let r = d(&["network", "create", "--ipv6", "--subnet", subnet, "v6route"]);
        assert_ne!(r.code, 0, "{subnet}: {r:?}");
        assert_eq!(
            r.stderr.trim(),
            format!(
                "Error response from daemon: invalid pool request: Pool overlaps with other one \
                 on this address space ({subnet} overlaps {other})"
            ),
            "{subnet}"
        );
        assert_eq!(host_network_state(env), before, "{subnet}: nothing created");
    }
    // The same through the API, dual-stack with an IPv4 subnet that is free.
    let (status, body) = env.api(
        "POST",
        "/networks/create",
        Some(
            r#"{"Name":"v6route","EnableIPv6":true,"IPAM":{"Config":[
                {"Subnet":"10.239.0.0/24"},{"Subnet":"fd00:db8:77::/64"}]}}"#,
        ),
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(host_network_state(env), before, "nothing created");
    d(&["network", "rm", "v6routeok"]).ok();
}

/// Docker 27+'s default IPv6 pool, as the test computes it here: the ULA /48 whose Global
/// ID is the low 40 bits of the first 8 bytes of SHA-256(engine id). Its `n`-th /64, and
/// the address `host` in it.
fn ula_64(engine_id: &str, n: u128, host: u128) -> std::net::Ipv6Addr {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(engine_id.as_bytes());
    let gid = u64::from_be_bytes(digest[..8].try_into().unwrap()) & ((1 << 40) - 1);
    std::net::Ipv6Addr::from((0xfd_u128 << 120) | (u128::from(gid) << 80) | (n << 64) | host)
}

fn v6_subnet_of(env: &TestEnv, network: &str) -> (String, String) {
    let out = env
        .berth(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}};{{end}}",
            network,
        ])
        .ok();
    let v6 = out
        .split(';')
        .find(|c| c.contains(':'))
        .unwrap_or_else(|| panic!("no IPv6 subnet: {out}"));
    let (subnet, gateway) = v6.split_once(' ').unwrap();
    (subnet.to_string(), gateway.to_string())
}

/// `network create --ipv6 NAME` without an IPv6 subnet takes one as Docker 28 does: a /64
/// of the ULA /48 derived from the engine id, skipping host routes and other networks; with
/// IPv6 `default-address-pools` configured, from those, until they are used up.
fn net_ipv6_default_pool_from_engine_id_and_daemon_pools(env: &TestEnv) {
    let d = |args: &[&str]| env.docker(args).unwrap();
    let engine_id = d(&["info", "-f", "{{.ID}}"]).ok();
    let ula = |n, host| ula_64(&engine_id, n, host).to_string();
    {
        // The pool's first /64 is a host route here: the network gets the second.
        let _route = HostRoute6::add("b6pool0", &format!("{}/64", ula(0, 1)));
        d(&["network", "create", "--ipv6", "v6pool1"]).ok();
        d(&["network", "create", "--ipv6", "v6pool2"]).ok();
    }
    assert_eq!(
        v6_subnet_of(env, "v6pool1"),
        (format!("{}/64", ula(1, 0)), ula(1, 1))
    );
    assert_eq!(v6_subnet_of(env, "v6pool2").0, format!("{}/64", ula(2, 0)));
    let out = global_v6_of(env, "v6pool1");
    assert!(out.contains(&format!("{}/64", ula(1, 2))), "{out}");
    d(&["network", "rm", "v6pool1", "v6pool2"]).ok();

    // Configured IPv6 pools replace the derived one, and run out.
    env.stop_daemon(libc::SIGTERM);
    env.start_daemon_with(&["--default-address-pool", "base=fd00:db8:80::/63,size=64"]);
    d(&["network", "create", "--ipv6", "v6pool1"]).ok();
    d(&["network", "create", "--ipv6", "v6pool2"]).ok();
    assert_eq!(v6_subnet_of(env, "v6pool1").0, "fd00:db8:80::/64");
    assert_eq!(v6_subnet_of(env, "v6pool2").0, "fd00:db8:80:1::/64");
    let before = host_network_state(env);
    let r = d(&["network", "create", "--ipv6", "v6pool3"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            1,
            "Error response from daemon: all predefined address pools have been fully subnetted"
        )
    );
    assert_eq!(host_network_state(env), before, "nothing created");
    d(&["network", "rm", "v6pool1"]).ok();
    d(&["network", "create", "--ipv6", "v6pool3"]).ok();
    assert_eq!(v6_subnet_of(env, "v6pool3").0, "fd00:db8:80::/64");
    d(&["network", "rm", "v6pool2", "v6pool3"]).ok();
    env.stop_daemon(libc::SIGTERM);
    env.start_daemon();
}

/// `-p [::1]:PORT:CPORT` (TCP and UDP): published on IPv6 loopback only, reached there
/// through the relay as docker-proxy does (a DNAT of `::1` would be dropped by the kernel),
/// and not on the host's other addresses.
fn net_ipv6_published_on_loopback_only(env: &TestEnv) {
    let d = |args: &[&str]| env.docker(args).unwrap();
    create_v6(env, "v6lo", "fd00:db8:37::/64");
    let port = free_port6(false);
    let uport = free_port6(true);
    d(&[
        "run",
        "-d",
        "--name",
        "v6lo",
        "--network",
        "v6lo",
        "-p",
        &format!("[::1]:{port}:80"),
        "-p",
        &format!("[::1]:{uport}:5353/udp"),
        "-v",
        "/usr:/host/usr:ro",
        "busybox",
        "/bin/sh",
        "-c",
        &format!(
            "mkdir -p /w && echo v6lo > /w/index.html && httpd -p [::]:80 -h /w && {UDP_ECHO}"
        ),
    ])
    .ok();
    assert_eq!(
        d(&["port", "v6lo"]).ok(),
        format!("80/tcp -> [::1]:{port}\n5353/udp -> [::1]:{uport}")
    );
    assert!(
        env.eventually(10, || http_get(&format!("http://[::1]:{port}/")).as_deref()
            == Some("v6lo")),
        "[::1]:{port}"
    );
    let (text, from) =
        udp_ask(&format!("[::1]:{uport}"), "lo", 10).expect("an answer on [::1] (UDP)");
    assert_eq!(
        (text.as_str(), from.to_string()),
        ("pong:lo", format!("[::1]:{uport}"))
    );
    assert_eq!(
        http_get(&format!("http://[fd00:db8:37::1]:{port}/")),
        None,
        "not on the bridge's address"
    );
    d(&["rm", "-f", "v6lo"]).ok();
    d(&["network", "rm", "v6lo"]).ok();
}
