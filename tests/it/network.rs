//! Networking: the default bridge, published ports, network modes, user networks with DNS,
//! `network connect --ip`, egress through NAT, and what survives a daemon restart. Traffic
//! goes only to loopback, to the host's own addresses, and to containers and namespaces the
//! tests make; every loop that sends is bounded.
use std::process::{Child, Command, Stdio};

use crate::Test;
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[
    (
        "net_default_address_pools_ipv4",
        net_default_address_pools_ipv4,
    ),
    (
        "net_default_bridge_addresses_and_inspect",
        net_default_bridge_addresses_and_inspect,
    ),
    (
        "net_host_and_containers_reach_each_other",
        net_host_and_containers_reach_each_other,
    ),
    ("net_published_ports", net_published_ports),
    ("net_publish_all_and_port", net_publish_all_and_port),
    (
        "net_egress_is_masqueraded_under_forward_drop",
        net_egress_is_masqueraded_under_forward_drop,
    ),
    (
        "net_modes_none_host_container",
        net_modes_none_host_container,
    ),
    (
        "net_user_networks_dns_and_isolation",
        net_user_networks_dns_and_isolation,
    ),
    (
        "net_network_cli_ls_inspect_prune",
        net_network_cli_ls_inspect_prune,
    ),
    (
        "net_connect_ip_to_a_running_none_container",
        net_connect_ip_to_a_running_none_container,
    ),
    ("net_macvlan_network", net_macvlan_network),
    (
        "net_bad_input_is_refused_and_leaves_nothing",
        net_bad_input_is_refused_and_leaves_nothing,
    ),
    ("net_docker_cli", net_docker_cli),
    (
        "net_daemon_restart_keeps_connectivity",
        net_daemon_restart_keeps_connectivity,
    ),
];

/// Runs a host command, returning (success, stdout+stderr).
pub(crate) fn sh(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A TCP port that is free on the host right now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    l.local_addr().unwrap().port()
}

/// GET over HTTP with curl (5 s at most), the body or None.
fn http_get(url: &str) -> Option<String> {
    let (ok, out) = sh("curl", &["-s", "-m", "5", url]);
    ok.then(|| out.trim().to_string())
}

/// An address of this host that is not loopback nor one of berth's bridges: the one of the
/// device the default route uses, else any global one.
fn host_address() -> String {
    let (_, routes) = sh("ip", &["-4", "-o", "route", "show", "default"]);
    let dev = routes
        .split_whitespace()
        .skip_while(|w| *w != "dev")
        .nth(1)
        .map(str::to_string);
    let mut args = vec!["-4", "-o", "addr", "show", "scope", "global"];
    if let Some(d) = &dev {
        args.extend(["dev", d.as_str()]);
    }
    let (_, addrs) = sh("ip", &args);
    addrs
        .lines()
        .filter(|l| !l.contains(" bt") && !l.contains(" br-"))
        .find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let i = w.iter().position(|x| *x == "inet")?;
            w.get(i + 1)?.split('/').next().map(str::to_string)
        })
        .expect("a global IPv4 address on this host")
}

/// A shell line for busybox inside a container that prints the body of `url`
/// (`http://HOST[:PORT]/`; HOST a name or an address). busybox's wget looks the `http`
/// service up through NSS, which a static glibc busybox cannot do, so this speaks HTTP/1.0
/// over nc, resolving names with busybox's own nslookup.
fn get(url: &str) -> String {
    let rest = url.trim_start_matches("http://").trim_end_matches('/');
    let (host, port) = rest.split_once(':').unwrap_or((rest, "80"));
    format!(
        "t={host}; case $t in *[a-z]*) t=$(nslookup $t 2>/dev/null | awk '/^Name:/ {{n=1}} n && /^Address/ {{a=$NF}} END {{print a}}');; esac; \
         [ -n \"$t\" ] || exit 1; printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 $t {port} | tail -n 1 | grep ."
    )
}

/// A web server container: busybox httpd serving `body` on port 80.
fn web_args<'a>(name: &'a str, body: &'a str, extra: &[&'a str]) -> Vec<String> {
    let mut args: Vec<String> = ["run", "-d", "--name", name]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(
        [
            "busybox",
            "sh",
            "-c",
            &format!("mkdir -p /w && echo {body} > /w/index.html && exec httpd -f -p 80 -h /w"),
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args
}

fn run_web(env: &TestEnv, name: &str, body: &str, extra: &[&str]) -> String {
    let args = web_args(name, body, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.berth(&args).ok()
}

fn rm(env: &TestEnv, names: &[&str]) {
    let mut args = vec!["rm", "-f"];
    args.extend(names);
    let _ = env.berth(&args);
}

fn ip_of(env: &TestEnv, name: &str) -> String {
    env.inspect(name, "{{.NetworkSettings.IPAddress}}")
}

/// Lines of berth's `ports` chain in the test daemon's nft table.
fn port_rules(env: &TestEnv) -> String {
    sh("nft", &["list", "chain", "ip", &env.bridge, "ports"]).1
}

fn veths_on_bridge(env: &TestEnv) -> String {
    sh("ip", &["-o", "link", "show", "master", &env.bridge]).1
}

fn bridge_subnet(env: &TestEnv) -> String {
    env.berth(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Subnet}}",
        "bridge",
    ])
    .ok()
}

fn net_default_bridge_addresses_and_inspect(env: &TestEnv) {
    let subnet = bridge_subnet(env);
    assert!(subnet.ends_with(".0.0/16"), "{subnet}");
    assert!(!subnet.starts_with("172.17."), "{subnet}");
    let prefix = subnet.trim_end_matches(".0.0/16").to_string();
    let (_, addr) = sh("ip", &["-4", "-o", "addr", "show", "dev", &env.bridge]);
    assert!(addr.contains(&format!("{prefix}.0.1/16")), "{addr}");

    env.berth(&["run", "-d", "--name", "nb1", "busybox", "sleep", "60"])
        .ok();
    let ip = ip_of(env, "nb1");
    assert!(ip.starts_with(&format!("{prefix}.")), "{ip}");
    let s = env.inspect(
        "nb1",
        "{{.NetworkSettings.Gateway}} {{.NetworkSettings.IPPrefixLen}} {{.NetworkSettings.MacAddress}} {{.NetworkSettings.Networks.bridge.IPAddress}} {{.NetworkSettings.Networks.bridge.Gateway}}",
    );
    let octets: Vec<u8> = ip.split('.').map(|o| o.parse().unwrap()).collect();
    let mac = format!(
        "02:42:{:02x}:{:02x}:{:02x}:{:02x}",
        octets[0], octets[1], octets[2], octets[3]
    );
    assert_eq!(
        s,
        format!("{prefix}.0.1 16 {mac} {ip} {prefix}.0.1"),
        "inspect"
    );
    // Inside: eth0 with the address, a default route via the gateway, /etc/hosts, resolv.conf.
    let inside = env
        .berth(&[
            "exec",
            "nb1",
            "sh",
            "-c",
            "ip -o -4 addr show eth0; ip route; cat /sys/class/net/eth0/address; cat /etc/hosts /etc/resolv.conf; hostname",
        ])
        .ok();
    assert!(inside.contains(&format!("inet {ip}/16")), "{inside}");
    assert!(
        inside.contains(&format!("default via {prefix}.0.1 dev eth0")),
        "{inside}"
    );
    assert!(inside.contains(&mac), "{inside}");
    let hostname = inside.lines().last().unwrap().to_string();
    assert!(
        inside.contains(&format!("{ip}\t{hostname}")),
        "hosts: {inside}"
    );
    assert!(inside.contains("nameserver "), "{inside}");
    assert!(
        !inside.contains("nameserver 127."),
        "no loopback resolver: {inside}"
    );
    // The host end is a veth on the bridge.
    let veths = veths_on_bridge(env);
    assert!(veths.contains("veth"), "{veths}");

    // --mac-address.
    env.berth(&[
        "run",
        "-d",
        "--name",
        "nb2",
        "--mac-address",
        "02:42:de:ad:be:ef",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    assert_eq!(
        env.inspect("nb2", "{{.NetworkSettings.MacAddress}}"),
        "02:42:de:ad:be:ef"
    );
    let mac2 = env
        .berth(&["exec", "nb2", "cat", "/sys/class/net/eth0/address"])
        .ok();
    assert_eq!(mac2, "02:42:de:ad:be:ef");
    // Stopped: no address, the network still listed.
    env.berth(&["stop", "-t", "0", "nb2"]).ok();
    assert_eq!(ip_of(env, "nb2"), "");
    assert_eq!(
        env.inspect(
            "nb2",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}"
        ),
        "bridge"
    );
    rm(env, &["nb1", "nb2"]);
}

fn net_host_and_containers_reach_each_other(env: &TestEnv) {
    run_web(env, "nr1", "from-nr1", &[]);
    env.berth(&["run", "-d", "--name", "nr2", "busybox", "sleep", "60"])
        .ok();
    let ip1 = ip_of(env, "nr1");
    let ip2 = ip_of(env, "nr2");
    // host → container
    assert!(
        env.eventually(10, || http_get(&format!("http://{ip1}/")).as_deref()
            == Some("from-nr1")),
        "host reaches the container"
    );
    let (ok, out) = sh("busybox", &["ping", "-c", "1", "-W", "2", &ip2]);
    assert!(ok, "host pings the container: {out}");
    // container → container, and container → host (the gateway)
    let out = env
        .berth(&["exec", "nr2", "sh", "-c", &get(&format!("http://{ip1}/"))])
        .ok();
    assert_eq!(out, "from-nr1");
    let gw = env.inspect("nr2", "{{.NetworkSettings.Gateway}}");
    env.berth(&["exec", "nr2", "ping", "-c", "1", "-W", "2", &gw])
        .ok();
    rm(env, &["nr1", "nr2"]);
}

// One end-to-end scenario: each step builds on the state the previous ones left.
#[allow(clippy::too_many_lines)]
fn net_published_ports(env: &TestEnv) {
    let (p1, p2, p3, pu) = (free_port(), free_port(), free_port(), free_port());
    let a1 = format!("{p1}:80");
    let a2 = format!("127.0.0.1:{p2}:80");
    let a3 = format!("{p3}:81");
    let au = format!("{pu}:53/udp");
    run_web(
        env,
        "np1",
        "published",
        &["-p", &a1, "-p", &a2, "-p", &a3, "-p", &au, "-p", "80"],
    );
    let host = host_address();
    for url in [
        format!("http://127.0.0.1:{p1}/"),
        format!("http://{host}:{p1}/"),
        format!("http://127.0.0.1:{p2}/"),
    ] {
        assert!(
            env.eventually(10, || http_get(&url).as_deref() == Some("published")),
            "{url}"
        );
    }
    // Bound to 127.0.0.1 only: not on the host's other address.
    assert_eq!(http_get(&format!("http://{host}:{p2}/")), None);
    let ports = env.berth(&["port", "np1"]).ok();
    assert!(
        ports.contains(&format!("80/tcp -> 0.0.0.0:{p1}")),
        "{ports}"
    );
    assert!(
        ports.contains(&format!("80/tcp -> 127.0.0.1:{p2}")),
        "{ports}"
    );
    assert!(
        ports.contains(&format!("81/tcp -> 0.0.0.0:{p3}")),
        "{ports}"
    );
    assert!(
        ports.contains(&format!("53/udp -> 0.0.0.0:{pu}")),
        "{ports}"
    );
    // `-p 80`: a random host port, reachable too.
    let random = env.berth(&["port", "np1", "80/tcp"]).ok();
    let random_port = random
        .lines()
        .filter_map(|l| l.rsplit(':').next())
        .find(|p| *p != p1.to_string() && *p != p2.to_string())
        .expect("a random port")
        .to_string();
    assert!(
        http_get(&format!("http://127.0.0.1:{random_port}/")).as_deref() == Some("published"),
        "random port {random_port}"
    );
    // Another container reaches the published port through the host's address.
    let out = env
        .berth(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            &get(&format!("http://{host}:{p1}/")),
        ])
        .ok();
    assert_eq!(out, "published");
    let ps = env
        .berth(&["ps", "--filter", "name=np1", "--format", "{{.Ports}}"])
        .ok();
    assert!(ps.contains(&format!("0.0.0.0:{p1}->80/tcp")), "{ps}");
    let rules = port_rules(env);
    assert!(rules.contains(&format!("udp dport {pu}")), "{rules}");
    for filter in [
        format!("publish={p1}"),
        format!("publish={pu}/udp"),
        "expose=81".to_string(),
        "network=bridge".to_string(),
    ] {
        let names = env
            .berth(&["ps", "--filter", &filter, "--format", "{{.Names}}"])
            .ok();
        assert!(names.lines().any(|n| n == "np1"), "{filter}: {names}");
    }
    for filter in [format!("publish={pu}/tcp"), "network=nosuchnet".to_string()] {
        let none = env.berth(&["ps", "--filter", &filter, "-q"]).ok();
        assert_eq!(none, "", "{filter}");
    }

    // A host port in use: one clear line, nothing left running or published.
    let before = port_rules(env);
    let r = env.berth(&[
        "run", "-d", "--name", "np2", "-p", &a1, "busybox", "sleep", "60",
    ]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains(&format!("0.0.0.0:{p1} failed: port is already allocated")),
        "{r:?}"
    );
    assert_eq!(port_rules(env), before);
    assert!(env.eventually(10, || env.inspect("np2", "{{.State.Running}}") == "false"));
    rm(env, &["np2"]);
    // A port some other program holds.
    let holder = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let held = holder.local_addr().unwrap().port();
    let r = env.berth(&[
        "run",
        "--rm",
        "-p",
        &format!("{held}:80"),
        "busybox",
        "true",
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("port is already allocated"), "{r:?}");
    drop(holder);

    // Stopping the container removes its rules.
    env.berth(&["stop", "-t", "0", "np1"]).ok();
    let rules = port_rules(env);
    assert!(!rules.contains(&format!("dport {p1}")), "{rules}");
    assert!(!rules.contains("dnat"), "{rules}");
    assert_eq!(http_get(&format!("http://127.0.0.1:{p1}/")), None);
    rm(env, &["np1"]);
}

fn net_publish_all_and_port(env: &TestEnv) {
    run_web(
        env,
        "npa",
        "all",
        &["--expose", "80", "--expose", "7000", "-P"],
    );
    let ports = env.berth(&["port", "npa"]).ok();
    assert_eq!(ports.lines().count(), 2, "{ports}");
    let p80 = env.berth(&["port", "npa", "80"]).ok();
    let port = p80.lines().next().unwrap().rsplit(':').next().unwrap();
    assert!(
        env.eventually(10, || http_get(&format!("http://127.0.0.1:{port}/"))
            .as_deref()
            == Some("all")),
        "{p80}"
    );
    let json = env.inspect("npa", "{{json .NetworkSettings.Ports}}");
    assert!(
        json.contains("\"7000/tcp\":[{\"HostIp\":\"0.0.0.0\""),
        "{json}"
    );
    rm(env, &["npa"]);
}

/// A network namespace with a veth pair to the host: the "outside world" for egress tests.
pub(crate) struct Outside {
    ns: String,
    host_if: String,
    server: Option<Child>,
}

impl Outside {
    /// `10.<a>.<b>.1/30` on the host side, `.2` inside, and no route back from inside.
    fn new(tag: &str, net: &str) -> Outside {
        Outside::with_addrs(tag, &format!("{net}.1/30"), &format!("{net}.2/30"), &[])
    }

    /// A namespace `bo<tag><pid>` joined to the host by a veth pair: `host_addr` on the host
    /// side, `inner_addr` inside (each with `addr_flags`, e.g. `nodad`), no route back.
    pub(crate) fn with_addrs(
        tag: &str,
        host_addr: &str,
        inner_addr: &str,
        addr_flags: &[&str],
    ) -> Outside {
        let ns = format!("bo{tag}{}", std::process::id());
        let host_if = format!("vo{tag}{}", std::process::id());
        let o = Outside {
            ns: ns.clone(),
            host_if: host_if.clone(),
            server: None,
        };
        let inner = format!("vi{tag}{}", std::process::id());
        let mut host_side = vec!["addr", "add", host_addr, "dev", &host_if];
        host_side.extend_from_slice(addr_flags);
        let mut inner_side = vec!["-n", &ns, "addr", "add", inner_addr, "dev", &inner];
        inner_side.extend_from_slice(addr_flags);
        for cmd in [
            vec!["netns", "add", &ns],
            vec![
                "link", "add", &host_if, "type", "veth", "peer", "name", &inner,
            ],
            vec!["link", "set", &inner, "netns", &ns],
            host_side,
            vec!["link", "set", &host_if, "up"],
            inner_side,
            vec!["-n", &ns, "link", "set", &inner, "up"],
            vec!["-n", &ns, "link", "set", "lo", "up"],
        ] {
            let (ok, out) = sh("ip", &cmd);
            assert!(ok, "ip {cmd:?}: {out}");
        }
        o
    }

    /// busybox httpd serving `dir` inside the namespace on `listen` (a port, or `[::]:PORT`).
    pub(crate) fn serve(&mut self, dir: &std::path::Path, listen: &str) {
        let child = Command::new("ip")
            .args([
                "netns", "exec", &self.ns, "busybox", "httpd", "-f", "-p", listen,
            ])
            .arg("-h")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.server = Some(child);
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = sh("ip", &["link", "del", &self.host_if]);
        let _ = sh("ip", &["netns", "del", &self.ns]);
    }
}

/// Sets `tool`'s (iptables' or ip6tables') FORWARD policy to DROP, as Docker's does, for its
/// lifetime.
pub(crate) struct ForwardDrop {
    tool: &'static str,
    was_accept: bool,
}

impl ForwardDrop {
    pub(crate) fn set(tool: &'static str) -> ForwardDrop {
        let (_, rules) = sh(tool, &["-w", "5", "-S", "FORWARD"]);
        let was_accept = rules.contains("-P FORWARD ACCEPT");
        let (ok, out) = sh(tool, &["-w", "5", "-P", "FORWARD", "DROP"]);
        assert!(ok, "{out}");
        ForwardDrop { tool, was_accept }
    }
}

impl Drop for ForwardDrop {
    fn drop(&mut self) {
        if self.was_accept {
            let _ = sh(self.tool, &["-w", "5", "-P", "FORWARD", "ACCEPT"]);
        }
    }
}

fn net_egress_is_masqueraded_under_forward_drop(env: &TestEnv) {
    let mut outside = Outside::new("e", "10.199.77");
    let dir = env.root.join("outside-www");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "outside\n").unwrap();
    outside.serve(&dir, "8000");
    assert!(
        env.eventually(10, || sh(
            "ip",
            &[
                "netns",
                "exec",
                &outside.ns,
                "curl",
                "-s",
                "-m",
                "2",
                "http://10.199.77.2:8000/"
            ]
        )
        .1
        .contains("outside")),
        "the outside server answers"
    );
    let _drop = ForwardDrop::set("iptables");
    // The outside namespace has no route to the bridge subnet: only a masqueraded source
    // (the host's 10.199.77.1) gets an answer.
    let out = env
        .berth(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            &get("http://10.199.77.2:8000/"),
        ])
        .ok();
    assert_eq!(out, "outside");
    // Published ports still work under DROP too.
    let p = free_port();
    run_web(env, "neg", "drop-ok", &["-p", &format!("{p}:80")]);
    let host = host_address();
    assert!(
        env.eventually(10, || http_get(&format!("http://{host}:{p}/")).as_deref()
            == Some("drop-ok"))
    );
    // Container ↔ container on the bridge, under DROP.
    let ip = ip_of(env, "neg");
    let out = env
        .berth(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            &get(&format!("http://{ip}/")),
        ])
        .ok();
    assert_eq!(out, "drop-ok");
    rm(env, &["neg"]);
}

fn net_modes_none_host_container(env: &TestEnv) {
    let out = env
        .berth(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "ls",
            "/sys/class/net",
        ])
        .ok();
    assert_eq!(out, "lo");
    assert_eq!(
        env.berth(&[
            "run",
            "-d",
            "--name",
            "nm0",
            "--network",
            "none",
            "busybox",
            "sleep",
            "60"
        ])
        .code,
        0
    );
    assert_eq!(ip_of(env, "nm0"), "");
    let host_if = env
        .berth(&[
            "run",
            "--rm",
            "--network",
            "host",
            "busybox",
            "ls",
            "/sys/class/net",
        ])
        .ok();
    assert!(host_if.contains(&env.bridge), "{host_if}");
    env.berth(&["run", "-d", "--name", "nm1", "busybox", "sleep", "60"])
        .ok();
    let ip = ip_of(env, "nm1");
    let shared = env
        .berth(&[
            "run",
            "--rm",
            "--network",
            "container:nm1",
            "busybox",
            "ip",
            "-o",
            "-4",
            "addr",
            "show",
            "eth0",
        ])
        .ok();
    assert!(shared.contains(&format!("inet {ip}/")), "{shared}");
    // It shares nm1's /etc/hosts too.
    let hosts = env
        .berth(&[
            "run",
            "--rm",
            "--network",
            "container:nm1",
            "busybox",
            "cat",
            "/etc/hosts",
        ])
        .ok();
    assert!(hosts.contains(&ip), "{hosts}");
    let explicit = env
        .berth(&[
            "run",
            "--rm",
            "--network",
            "bridge",
            "busybox",
            "ip",
            "-o",
            "-4",
            "addr",
        ])
        .ok();
    assert!(explicit.contains("eth0"), "{explicit}");
    rm(env, &["nm0", "nm1"]);
}

// One end-to-end scenario: each step builds on the state the previous ones left.
#[allow(clippy::too_many_lines)]
fn net_user_networks_dns_and_isolation(env: &TestEnv) {
    env.berth(&["network", "create", "--subnet", "10.201.1.0/24", "un1"])
        .ok();
    env.berth(&["network", "create", "un2"]).ok();
    run_web(
        env,
        "ua",
        "from-ua",
        &["--network", "un1", "--network-alias", "web"],
    );
    env.berth(&[
        "run",
        "-d",
        "--name",
        "ub",
        "--network",
        "un1",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "uc",
        "--network",
        "un2",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    let ip_a = env.inspect("ua", "{{.NetworkSettings.Networks.un1.IPAddress}}");
    assert!(ip_a.starts_with("10.201.1."), "{ip_a}");
    assert_eq!(ip_of(env, "ua"), ip_a);
    let resolv = env.berth(&["exec", "ub", "cat", "/etc/resolv.conf"]).ok();
    assert!(resolv.contains("nameserver 10.201.1.1"), "{resolv}");
    // Names and aliases resolve on the network.
    for name in ["ua", "web"] {
        let out = env
            .berth(&["exec", "ub", "sh", "-c", &get(&format!("http://{name}/"))])
            .ok();
        assert_eq!(out, "from-ua", "{name}");
    }
    // A rename follows in DNS.
    env.berth(&["rename", "ub", "ub2"]).ok();
    let out = env.berth(&["exec", "ua", "nslookup", "ub2"]).ok();
    let ip_b = env.inspect("ub2", "{{.NetworkSettings.Networks.un1.IPAddress}}");
    assert!(out.contains(&ip_b), "{out}");
    let r = env.berth(&["exec", "ua", "nslookup", "ub"]);
    assert!(!r.stdout.contains(&ip_b), "{r:?}");
    env.berth(&["rename", "ub2", "ub"]).ok();
    let r = env.berth(&["exec", "ub", "nslookup", "nosuchname.invalid."]);
    assert!(!r.stdout.contains(&ip_a), "{r:?}");
    // Another network: no name, no route through.
    let r = env.berth(&["exec", "uc", "nslookup", "ua"]);
    assert!(!r.stdout.contains(&ip_a), "{r:?}");
    // One second is plenty on a bridge; the drop rule makes it time out.
    let r = env.berth(&[
        "exec",
        "uc",
        "sh",
        "-c",
        &get(&format!("http://{ip_a}/")).replace("-w 5", "-w 1"),
    ]);
    assert_ne!(r.code, 0, "isolation: {r:?}");
    // Connect uc to un1 with an alias: now it reaches ua, and ua resolves it.
    env.berth(&["network", "connect", "--alias", "cee", "un1", "uc"])
        .ok();
    let out = env
        .berth(&["exec", "uc", "sh", "-c", &get(&format!("http://{ip_a}/"))])
        .ok();
    assert_eq!(out, "from-ua");
    // Its resolver is un2's server, which now also answers with un1's names for it.
    let out = env
        .berth(&["exec", "uc", "sh", "-c", &get("http://web/")])
        .ok();
    assert_eq!(out, "from-ua");
    let out = env.berth(&["exec", "ua", "nslookup", "cee"]).stdout;
    let ip_c1 = env.inspect("uc", "{{.NetworkSettings.Networks.un1.IPAddress}}");
    assert!(out.contains(&ip_c1), "{out}");
    let ifs = env.berth(&["exec", "uc", "ls", "/sys/class/net"]).ok();
    assert!(ifs.contains("eth1"), "{ifs}");
    // rm while in use is refused; disconnect, then it goes.
    let r = env.berth(&["network", "rm", "un2"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("has active endpoints"), "{r:?}");
    env.berth(&["network", "disconnect", "un1", "uc"]).ok();
    let ifs = env.berth(&["exec", "uc", "ls", "/sys/class/net"]).ok();
    assert!(!ifs.contains("eth1"), "{ifs}");
    let out = env.berth(&["exec", "ua", "nslookup", "cee"]).stdout;
    assert!(!out.contains(&ip_c1), "{out}");
    rm(env, &["ua", "ub", "uc"]);
    let id = env
        .berth(&["network", "inspect", "-f", "{{.Id}}", "un1"])
        .ok();
    let bridge = format!("br-{}", &id[..12]);
    assert!(
        std::path::Path::new("/sys/class/net")
            .join(&bridge)
            .exists()
    );
    let dns_bound = || sh("ss", &["-uln"]).1.contains("10.201.1.1:53");
    assert!(dns_bound(), "the embedded DNS listens on the gateway");
    env.berth(&["network", "rm", "un1", "un2"]).ok();
    // The bridge, its FORWARD accepts, and its DNS server go with the network.
    assert!(
        !std::path::Path::new("/sys/class/net")
            .join(&bridge)
            .exists()
    );
    assert!(
        !sh("iptables", &["-w", "5", "-S", "FORWARD"])
            .1
            .contains(&bridge)
    );
    assert!(!dns_bound());
    let ls = env.berth(&["network", "ls", "--format", "{{.Name}}"]).ok();
    assert!(!ls.contains("un1") && !ls.contains("un2"), "{ls}");
}

// One end-to-end scenario: each step builds on the state the previous ones left.
#[allow(clippy::too_many_lines)]
fn net_network_cli_ls_inspect_prune(env: &TestEnv) {
    let id = env
        .berth(&[
            "network",
            "create",
            "--subnet",
            "10.202.0.0/16",
            "--gateway",
            "10.202.0.254",
            "--ip-range",
            "10.202.5.0/24",
            "--internal",
            "--label",
            "team=net",
            "nc1",
        ])
        .ok();
    assert_eq!(id.len(), 64, "{id}");
    env.berth(&["network", "create", "--label", "team=other", "nc2"])
        .ok();
    env.berth(&["network", "create", "--subnet", "10.211.0.0/24", "nc3"])
        .ok();
    let q = env
        .berth(&["network", "ls", "-q", "--filter", "label=team=net"])
        .ok();
    assert_eq!(q, id[..12]);
    let names = env
        .berth(&[
            "network",
            "ls",
            "--filter",
            "driver=bridge",
            "--format",
            "{{.Name}} {{.Driver}}",
        ])
        .ok();
    assert!(
        names.contains("nc1 bridge")
            && names.contains("nc2 bridge")
            && names.contains("bridge bridge"),
        "{names}"
    );
    let custom = env
        .berth(&[
            "network",
            "ls",
            "--filter",
            "type=custom",
            "--format",
            "{{.Name}}",
        ])
        .ok();
    assert!(!custom.contains("host"), "{custom}");
    let table = env.berth(&["network", "ls"]).ok();
    assert!(table.starts_with("NETWORK ID"), "{table}");
    let v = env
        .berth(&[
            "network",
            "inspect",
            "-f",
            "{{.Internal}} {{(index .IPAM.Config 0).Gateway}} {{(index .IPAM.Config 0).IPRange}} {{.Labels.team}}",
            "nc1",
        ])
        .ok();
    assert_eq!(v, "true 10.202.0.254 10.202.5.0/24 net");
    // Dynamic addresses come from the ip-range; the gateway is the route.
    env.berth(&[
        "run",
        "-d",
        "--name",
        "nci",
        "--network",
        "nc1",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    let ip = ip_of(env, "nci");
    assert!(ip.starts_with("10.202.5."), "{ip}");
    // Internal: no route out.
    let route = env.berth(&["exec", "nci", "ip", "route"]).ok();
    assert!(!route.contains("default"), "{route}");
    // prune removes unused networks only.
    // Connecting a stopped container only records it; the next start attaches it.
    env.berth(&[
        "create",
        "--name",
        "ncs",
        "--network",
        "nc1",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    env.berth(&["network", "connect", "--ip", "10.211.0.9", "nc3", "ncs"])
        .ok();
    env.berth(&["start", "ncs"]).ok();
    assert_eq!(
        env.inspect("ncs", "{{.NetworkSettings.Networks.nc3.IPAddress}}"),
        "10.211.0.9"
    );
    rm(env, &["ncs"]);
    env.berth(&["network", "rm", "nc3"]).ok();
    let kept = env
        .berth(&["network", "prune", "-f", "--filter", "label=nosuch"])
        .ok();
    assert!(!kept.contains("nc2"), "{kept}");
    let pruned = env
        .berth(&["network", "prune", "-f", "--filter", "label=team"])
        .ok();
    assert!(
        pruned.contains("nc2") && !pruned.contains("nc1"),
        "{pruned}"
    );
    rm(env, &["nci"]);
    env.berth(&["network", "rm", "nc1"]).ok();
    let r = env.berth(&["network", "inspect", "nc1"]);
    assert_ne!(r.code, 0);
}

fn net_connect_ip_to_a_running_none_container(env: &TestEnv) {
    env.berth(&[
        "run",
        "-d",
        "--name",
        "pw",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    let pid = env.inspect("pw", "{{.State.Pid}}");
    env.berth(&[
        "network",
        "create",
        "--subnet",
        "10.203.0.0/16",
        "--gateway",
        "10.203.0.254",
        "pwnet",
    ])
    .ok();
    env.berth(&["network", "connect", "--ip", "10.203.7.9", "pwnet", "pw"])
        .ok();
    // Same process: no restart.
    assert_eq!(env.inspect("pw", "{{.State.Pid}}"), pid);
    let inside = env
        .berth(&["exec", "pw", "sh", "-c", "ip -o -4 addr; ip route"])
        .ok();
    assert!(inside.contains("inet 10.203.7.9/16"), "{inside}");
    assert!(inside.contains("default via 10.203.0.254"), "{inside}");
    env.berth(&["exec", "pw", "ping", "-c", "1", "-W", "2", "10.203.0.254"])
        .ok();
    let (ok, out) = sh("busybox", &["ping", "-c", "1", "-W", "2", "10.203.7.9"]);
    assert!(ok, "{out}");
    assert_eq!(
        env.inspect("pw", "{{.NetworkSettings.Networks.pwnet.IPAddress}}"),
        "10.203.7.9"
    );
    // The address is taken now.
    let r = env.berth(&[
        "run",
        "--rm",
        "--network",
        "pwnet",
        "--ip",
        "10.203.7.9",
        "busybox",
        "true",
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("10.203.7.9"), "{r:?}");
    rm(env, &["pw"]);
    env.berth(&["network", "rm", "pwnet"]).ok();
}

fn net_macvlan_network(env: &TestEnv) {
    let parent = format!("dm{}", std::process::id());
    // A veth end as the parent: any host interface will do, and this one is ours.
    let peer = format!("dp{}", std::process::id());
    let (ok, out) = sh(
        "ip",
        &[
            "link", "add", &parent, "type", "veth", "peer", "name", &peer,
        ],
    );
    assert!(ok, "{out}");
    let _ = sh("ip", &["link", "set", &parent, "up"]);
    let r = env.berth(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.204.0.0/24",
        "-o",
        &format!("parent={parent}"),
        "mv1",
    ]);
    let result = std::panic::catch_unwind(|| {
        r.ok();
        let out = env
            .berth(&[
                "run",
                "--rm",
                "--network",
                "mv1",
                "--ip",
                "10.204.0.50",
                "busybox",
                "sh",
                "-c",
                "ip -o -4 addr show eth0; ip -o link show eth0",
            ])
            .ok();
        assert!(out.contains("inet 10.204.0.50/24"), "{out}");
        let index = std::fs::read_to_string(format!("/sys/class/net/{parent}/ifindex")).unwrap();
        assert!(
            out.contains(&format!("eth0@if{}:", index.trim())),
            "a child of {parent}: {out}"
        );
    });
    let _ = env.berth(&["network", "rm", "mv1"]);
    let _ = sh("ip", &["link", "del", &parent]);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

// One end-to-end scenario: each step builds on the state the previous ones left.
#[allow(clippy::too_many_lines)]
fn net_bad_input_is_refused_and_leaves_nothing(env: &TestEnv) {
    let containers = || env.berth(&["ps", "-aq"]).stdout;
    let networks = || env.berth(&["network", "ls", "-q"]).stdout;
    let (c0, n0) = (containers(), networks());
    env.berth(&["network", "create", "--subnet", "10.205.0.0/16", "bad1"])
        .ok();
    let n1 = networks();
    let one_line = |r: &crate::harness::Run, needle: &str| {
        assert_ne!(r.code, 0, "{r:?}");
        let first = r.stderr.lines().next().unwrap_or("");
        assert!(first.contains(needle), "{needle}: {r:?}");
    };
    // Overlapping subnets.
    let r = env.berth(&["network", "create", "--subnet", "10.205.3.0/24", "bad2"]);
    one_line(&r, "overlap");
    let bridge = bridge_subnet(env);
    let r = env.berth(&["network", "create", "--subnet", &bridge, "bad2"]);
    one_line(&r, "overlap");
    // Gateway outside the subnet, a bad subnet.
    let r = env.berth(&[
        "network",
        "create",
        "--subnet",
        "10.206.0.0/16",
        "--gateway",
        "10.207.0.1",
        "bad2",
    ]);
    assert_ne!(r.code, 0, "{r:?}");
    let r = env.berth(&["network", "create", "--subnet", "10.206.0.0/33", "bad2"]);
    assert_ne!(r.code, 0, "{r:?}");
    // macvlan parent missing.
    let r = env.berth(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "-o",
        "parent=nosuchif0",
        "--subnet",
        "10.208.0.0/24",
        "bad2",
    ]);
    one_line(&r, "nosuchif0");
    let r = env.berth(&["network", "create", "-d", "overlay", "bad2"]);
    assert_ne!(r.code, 0, "{r:?}");
    // Duplicate name.
    let r = env.berth(&["network", "create", "bad1"]);
    one_line(&r, "bad1");
    assert_eq!(networks(), n1, "no network half-made");
    // IP outside the subnet, bad MAC, unknown network, static IP on the default bridge.
    let r = env.berth(&[
        "run",
        "--rm",
        "--network",
        "bad1",
        "--ip",
        "10.99.0.5",
        "busybox",
        "true",
    ]);
    one_line(&r, "10.99.0.5");
    let r = env.berth(&[
        "run",
        "--rm",
        "--mac-address",
        "zz:42:00:00:00:01",
        "busybox",
        "true",
    ]);
    assert_ne!(r.code, 0, "{r:?}");
    let r = env.berth(&["run", "--rm", "--ip", "10.205.0.7", "busybox", "true"]);
    one_line(&r, "user defined networks");
    let r = env.berth(&["run", "--rm", "--network", "nosuchnet", "busybox", "true"]);
    one_line(&r, "nosuchnet");
    assert_eq!(r.code, 125);
    let r = env.berth(&["network", "connect", "nosuchnet", "nosuchcontainer"]);
    assert_ne!(r.code, 0);
    let r = env.berth(&["network", "rm", "nosuchnet"]);
    one_line(&r, "nosuchnet");
    let r = env.berth(&["network", "rm", "bridge"]);
    assert_ne!(r.code, 0, "{r:?}");
    // Taken IP: the second container does not start and holds nothing.
    env.berth(&[
        "run",
        "-d",
        "--name",
        "bi1",
        "--network",
        "bad1",
        "--ip",
        "10.205.0.9",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    let r = env.berth(&[
        "run",
        "-d",
        "--name",
        "bi2",
        "--network",
        "bad1",
        "--ip",
        "10.205.0.9",
        "busybox",
        "sleep",
        "60",
    ]);
    one_line(&r, "10.205.0.9");
    assert!(env.eventually(10, || env.inspect("bi2", "{{.State.Running}}") == "false"));
    assert_eq!(env.inspect("bi2", "{{.NetworkSettings.IPAddress}}"), "");
    rm(env, &["bi1", "bi2"]);
    env.berth(&["network", "rm", "bad1"]).ok();
    assert_eq!(containers(), c0);
    assert_eq!(networks(), n0);
}

fn net_docker_cli(env: &TestEnv) {
    let Some(r) = env.docker(&["network", "create", "--subnet", "10.209.0.0/24", "dn1"]) else {
        return;
    };
    r.ok();
    let d = |args: &[&str]| env.docker(args).unwrap();
    let p = free_port();
    let args = web_args("dw", "via-docker", &[]);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    let pub_arg = format!("{p}:80");
    args.splice(
        4..4,
        [
            "-p",
            pub_arg.as_str(),
            "--network",
            "dn1",
            "--network-alias",
            "dweb",
        ],
    );
    d(&args).ok();
    let ip = d(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.dn1.IPAddress}}",
        "dw",
    ])
    .ok();
    assert!(ip.starts_with("10.209.0."), "{ip}");
    assert_eq!(
        d(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "dw"]).ok(),
        ip
    );
    let port = d(&["port", "dw", "80"]).ok();
    assert!(port.contains(&format!("0.0.0.0:{p}")), "{port}");
    assert!(env.eventually(
        10,
        || http_get(&format!("http://127.0.0.1:{p}/")).as_deref() == Some("via-docker")
    ));
    let out = d(&[
        "run",
        "--rm",
        "--network",
        "dn1",
        "busybox",
        "sh",
        "-c",
        &get("http://dweb/"),
    ])
    .ok();
    assert_eq!(out, "via-docker");
    let ls = d(&["network", "ls", "--format", "{{.Name}}"]).ok();
    assert!(ls.contains("dn1") && ls.contains("bridge"), "{ls}");
    let v = d(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}}{{end}}",
        "dn1",
    ])
    .ok();
    assert_eq!(v, "dw");
    d(&[
        "run",
        "-d",
        "--name",
        "dn",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    d(&["network", "connect", "--ip", "10.209.0.77", "dn1", "dn"]).ok();
    let out = d(&["exec", "dn", "ip", "-o", "-4", "addr", "show", "eth0"]).ok();
    assert!(out.contains("10.209.0.77/24"), "{out}");
    d(&["network", "disconnect", "dn1", "dn"]).ok();
    let r = d(&["network", "rm", "dn1"]);
    assert_ne!(r.code, 0, "in use: {r:?}");
    // The default network, as the docker CLI asks for it (`default`).
    d(&["run", "-d", "--name", "dd", "busybox", "sleep", "60"]).ok();
    let ip = d(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "dd"]).ok();
    let prefix = bridge_subnet(env).trim_end_matches("0.0/16").to_string();
    assert!(ip.starts_with(&prefix), "{ip} in {prefix}");
    d(&["rm", "-f", "dw", "dn", "dd"]).ok();
    d(&["network", "rm", "dn1"]).ok();
}

fn net_daemon_restart_keeps_connectivity(env: &TestEnv) {
    env.berth(&["network", "create", "--subnet", "10.210.0.0/24", "rn1"])
        .ok();
    let p = free_port();
    run_web(
        env,
        "rw",
        "survives",
        &["-p", &format!("{p}:80"), "--network", "rn1"],
    );
    env.berth(&[
        "run",
        "-d",
        "--name",
        "rc",
        "--network",
        "rn1",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let url = format!("http://127.0.0.1:{p}/");
    assert!(env.eventually(10, || http_get(&url).as_deref() == Some("survives")));
    let ip = ip_of(env, "rw");
    env.stop_daemon(libc::SIGTERM);
    env.start_daemon();
    assert_eq!(http_get(&url).as_deref(), Some("survives"));
    assert_eq!(ip_of(env, "rw"), ip);
    let out = env
        .berth(&["exec", "rc", "sh", "-c", &get("http://rw/")])
        .ok();
    assert_eq!(out, "survives");
    // A firewall reload that drops berth's table: the daemon puts it back.
    let (ok, out) = sh("nft", &["delete", "table", "ip", &env.bridge]);
    assert!(ok, "{out}");
    assert!(
        env.eventually(20, || http_get(&url).as_deref() == Some("survives")),
        "the rules come back: {}",
        port_rules(env)
    );
    // kill -9 too.
    env.stop_daemon(libc::SIGKILL);
    env.start_daemon();
    assert_eq!(http_get(&url).as_deref(), Some("survives"));
    // A new container does not get a held address.
    env.berth(&[
        "run",
        "-d",
        "--name",
        "rn",
        "--network",
        "rn1",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    assert_ne!(ip_of(env, "rn"), ip);
    rm(env, &["rw", "rc", "rn"]);
    assert!(env.eventually(10, || !port_rules(env).contains(&format!("dport {p}"))));
    env.berth(&["network", "rm", "rn1"]).ok();
}

/// IPv4 entries of `default-address-pools` replace berth's built-in pool, as with Docker:
/// networks without `--subnet` take the pools' subnets in order, and when none is free the
/// create is refused in Docker's words and nothing is made. (They were accepted and unused.)
fn net_default_address_pools_ipv4(env: &TestEnv) {
    let d = |args: &[&str]| env.docker(args).unwrap();
    let subnet = |name: &str| {
        env.berth(&[
            "network",
            "inspect",
            "-f",
            "{{(index .IPAM.Config 0).Subnet}}",
            name,
        ])
        .ok()
    };
    env.stop_daemon(libc::SIGTERM);
    env.start_daemon_with(&["--default-address-pool", "base=10.123.4.0/23,size=24"]);
    d(&["network", "create", "pool4a"]).ok();
    d(&["network", "create", "pool4b"]).ok();
    assert_eq!(subnet("pool4a"), "10.123.4.0/24");
    assert_eq!(subnet("pool4b"), "10.123.5.0/24");
    let networks = env.berth(&["network", "ls", "-q"]).ok();
    let r = d(&["network", "create", "pool4c"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            1,
            "Error response from daemon: could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
        )
    );
    assert_eq!(
        env.berth(&["network", "ls", "-q"]).ok(),
        networks,
        "nothing created"
    );
    d(&["network", "rm", "pool4a"]).ok();
    d(&["network", "create", "pool4c"]).ok();
    assert_eq!(subnet("pool4c"), "10.123.4.0/24");
    d(&["network", "rm", "pool4b", "pool4c"]).ok();
    env.stop_daemon(libc::SIGTERM);
    env.start_daemon();
}
