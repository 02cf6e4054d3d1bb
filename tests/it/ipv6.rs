//! Networks as dockerd 20.10 takes them (issue 14, item 6): subnets with host bits set are
//! normalised, names may hold spaces, IPAM JSON with `null` fields is accepted. IPv6 networks
//! are refused with a clear error (berth's networks are IPv4 only so far).
use crate::Test;
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[
    (
        "net_subnet_host_bits_and_names_with_spaces",
        net_subnet_host_bits_and_names_with_spaces,
    ),
    ("net_ipam_json_with_nulls", net_ipam_json_with_nulls),
    ("net_ipv6_is_refused_clearly", net_ipv6_is_refused_clearly),
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

fn net_ipv6_is_refused_clearly(env: &TestEnv) {
    let before = env.berth(&["network", "ls", "-q"]).ok();
    let r = env
        .docker(&[
            "network",
            "create",
            "--ipv6",
            "--subnet",
            "fd00:db8:14::/64",
            "v6net",
        ])
        .unwrap();
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("IPv6 networks are not supported by berth yet"),
        "{r:?}"
    );
    assert_eq!(
        env.berth(&["network", "ls", "-q"]).ok(),
        before,
        "nothing created"
    );
}
