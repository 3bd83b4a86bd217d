//! `kaas-controller` without a cluster: `render` prints manifests, a bad tenant exits non-zero naming the field,
//! `crd` prints the committed CRD.

use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kaas-controller"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("runs")
}

/// The platform settings every command that renders needs: the images' owner, and the zones of the examples'
/// region (the golden files' platform, `render::Platform::default()`).
const PLATFORM: [&str; 2] =
    ["--image-lookup-org=123456789012", "--zones=eu-west-1=eu-west-1a,eu-west-1b,eu-west-1c"];

#[test]
fn render_prints_the_manifests() {
    let out = run(&[&["render", "-f", "controller/examples/acme.yaml"][..], &PLATFORM].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let golden =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/acme.yaml")).expect("golden");
    assert_eq!(text, golden);
}

#[test]
fn bad_tenant_exits_non_zero_naming_the_field() {
    let dir = tempfile_dir();
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: kaas.dev/v1alpha1\nkind: KafkaTenant\nmetadata: {name: acme}\nspec:\n  throughput: {ingressMBps: 5000, egressMBps: 1}\n  retentionHours: 0\n",
    )
    .expect("write");
    let out = run(&[&["render", "-f", file.to_str().expect("utf-8 path")][..], &PLATFORM].concat());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spec.throughput.ingressMBps") && err.contains("spec.retentionHours"), "{err}");
    let out = run(&[&["render", "-f", "/nonexistent.yaml"][..], &PLATFORM].concat());
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn run_refuses_a_network_setting_that_is_not_one_before_doing_anything() {
    for (arg, says) in [
        ("--proxy-cidr=10.0.0.0/33", "\"10.0.0.0/33\" is not address/prefix-length"),
        ("--proxy-cidr=10.0.0/16", "\"10.0.0/16\" is not address/prefix-length"),
        ("--proxy-cidr=10.0.0.0", "\"10.0.0.0\" is not address/prefix-length"),
        ("--tenant-vpc-cidr=10.64.0.0", "\"10.64.0.0\" is not address/prefix-length"),
        ("--vpc-netmask-length=8", "8 is not in 16..=28"),
    ] {
        let out = run(&["run", "--gitops-url=/nonexistent", arg]);
        assert_eq!(out.status.code(), Some(2), "{arg}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{arg}: {err}");
    }
}

#[test]
fn no_command_renders_without_the_platforms_images() {
    for command in
        [&["run", "--gitops-url=/nonexistent"][..], &["render", "-f", "controller/examples/acme.yaml"]]
    {
        let out = run(command);
        assert_eq!(out.status.code(), Some(2), "{command:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--image-lookup-org"), "{command:?}: {err}");
    }
}

#[test]
fn platform_settings_that_are_not_ones_are_refused_naming_them() {
    for (arg, says) in [
        ("--image-lookup-org=amazon", "\"amazon\" is not an AWS account id (12 digits)"),
        ("--zones=eu-west-1a", "is not REGION=ZONE,ZONE,ZONE"),
        ("--zones=eu-west-1=eu-west-1a,eu-west-1b", "three distinct zones"),
        ("--zones=eu-west-1=eu-west-1a,eu-west-1b,eu-west-1a", "three distinct zones"),
        ("--zones=eu-west-1=eu-west-1a,eu-west-1b,us-east-1c", "\"us-east-1c\" is not a zone of region"),
        ("--tenant-kubernetes-version=1.35.1", "\"1.35.1\" is not a Kubernetes version like v1.35.1"),
        ("--tenant-kubernetes-version=v1.33.4", "1.34 or newer"),
        ("--volume-kms-key-template=alias/kaas-{tenant}", "is not a KMS key ARN"),
        ("--volume-kms-key-template=arn:aws:kms:eu-west-1:123456789012:alias/kaas", "names no {tenant}"),
        (
            "--tenant-strimzi-version=0.9.0",
            "\"0.9.0\" is not a Strimzi release this controller knows (0.51.0",
        ),
    ] {
        let org = if arg.starts_with("--image-lookup-org") { arg } else { PLATFORM[0] };
        let out = run(&["render", "-f", "controller/examples/acme.yaml", org, arg]);
        assert_eq!(out.status.code(), Some(2), "{arg}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{arg}: {err}");
    }
    let twice = [&PLATFORM[..], &["--zones=eu-west-1=eu-west-1a,eu-west-1b,eu-west-1c"]].concat();
    let out = run(&[&["render", "-f", "controller/examples/acme.yaml"][..], &twice].concat());
    assert!(String::from_utf8_lossy(&out.stderr).contains("region eu-west-1 given twice"));
    // With an IPAM pool the proxy must be told the pool's ranges: it dials a tenant's brokers only there.
    let out = run(&[
        &["render", "-f", "controller/examples/acme.yaml"][..],
        &PLATFORM,
        &["--vpc-ipam-pool=ipam-pool-0abc"],
    ]
    .concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--tenant-vpc-cidr: required with --vpc-ipam-pool"),
        "{err}"
    );
    // A tenant in a region the platform has no zones for is refused, naming the setting.
    let out = run(&["render", "-f", "controller/examples/acme.yaml", "--image-lookup-org=123456789012"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("region eu-west-1") && err.contains("--zones"), "{err}");
}

#[test]
fn a_pinned_version_renders_only_where_the_platform_offers_it() {
    let dir = tempfile_dir();
    let tenant = dir.join("pinned.yaml");
    let text = std::fs::read_to_string(kaas_testsupport::repo_root().join("controller/examples/acme.yaml"))
        .expect("acme");
    let pinned = text.replacen("spec:\n", "spec:\n  versions: { kubernetes: v1.35.1 }\n", 1);
    std::fs::write(&tenant, pinned).expect("write");
    let path = tenant.to_string_lossy();
    let out = run(&[&["render", "-f", &path][..], &PLATFORM].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains(
                "spec.versions.kubernetes: v1.35.1 is not offered by this platform: it offers v1.34.2"
            ),
        "{err}"
    );
    let offered =
        [&["render", "-f", &path][..], &PLATFORM, &["--tenant-kubernetes-version=v1.35.1"]].concat();
    let out = run(&offered);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("version: v1.35.1"));
}

#[test]
fn render_uses_the_platforms_images_and_key_pair() {
    let args =
        ["--image-lookup-org=210987654321", "--image-lookup-base-os=ubuntu-22.04", "--ssh-key-name=ops"];
    let out = run(&[&["render", "-f", "controller/examples/acme.yaml", PLATFORM[1]][..], &args].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("imageLookupOrg: '210987654321'").count(), 3, "{text}");
    assert_eq!(text.matches("imageLookupBaseOS: ubuntu-22.04").count(), 3);
    assert!(text.contains("sshKeyName: ops"));
}

#[test]
fn crd_command_prints_the_committed_crd() {
    let out = run(&["crd"]);
    assert!(out.status.success());
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../charts/kaas-controller/crds/kafkatenant.yaml"
    ))
    .expect("committed crd");
    assert_eq!(String::from_utf8_lossy(&out.stdout), committed);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kaas-controller-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn sync_commits_good_tenants_and_names_the_bad_one() {
    let dir = tempfile_dir().join("sync");
    let (repo, tenants) = (dir.join("repo"), dir.join("tenants"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&repo).expect("mkdir");
    std::fs::create_dir_all(&tenants).expect("mkdir");
    let ok =
        Command::new("git").args(["init", "--quiet", "--initial-branch=main"]).current_dir(&repo).status();
    assert!(ok.expect("git").success());
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    for name in ["acme.yaml", "beta.yaml"] {
        std::fs::copy(format!("{examples}/{name}"), tenants.join(name)).expect("copy");
    }
    std::fs::write(tenants.join("broken.yaml"), "apiVersion: kaas.dev/v1alpha1\nkind: KafkaTenant\nmetadata: {name: broken}\nspec:\n  throughput: {ingressMBps: 0, egressMBps: 1}\n  retentionHours: 1\n").expect("write");
    let args = [
        &["sync", "--repo", repo.to_str().expect("utf-8"), "-f", tenants.to_str().expect("utf-8")][..],
        &PLATFORM,
    ]
    .concat();
    let out = run(&args);
    assert_eq!(out.status.code(), Some(2));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("acme: committed") && stdout.contains("beta: committed"), "{stdout}");
    assert!(stderr.contains("broken.yaml") && stderr.contains("spec.throughput.ingressMBps"), "{stderr}");
    assert!(
        repo.join("tenants/tenants/acme/manifests.yaml").exists()
            && !repo.join("tenants/default/broken").exists()
    );
    let again = run(&args);
    assert!(String::from_utf8_lossy(&again.stdout).contains("acme: unchanged"));
}

#[test]
fn size_explains_the_sizing_and_its_cost() {
    let out = run(&["size", "-f", "controller/examples/acme.yaml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("3 × m7g.xlarge brokers, 11496 GiB gp3 each"), "{text}");
    assert!(text.contains("  * at least 3 brokers"), "the minimum decided acme's count: {text}");
    assert!(text.contains("total          $   3295.15"), "{text}");

    // The flags override the file; JSON is the status.sizing object.
    let out = run(&[
        "size",
        "-f",
        "controller/examples/acme.yaml",
        "--ingress-mbps",
        "1000",
        "--egress-mbps",
        "3000",
        "--retention-hours",
        "72",
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["brokers"], 66);
    let binding: Vec<&serde_json::Value> = json["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .filter(|r| r["binding"] == true)
        .map(|r| &r["limit"])
        .collect();
    assert_eq!(binding, ["storage"]);
    assert!(json["monthlyCost"]["totalUsd"].as_f64().is_some_and(|c| c > 0.0));

    // Flags alone, and a demand past the platform's maxima, which names the field.
    let out = run(&["size", "--ingress-mbps", "10", "--retention-hours", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["size", "--ingress-mbps", "5000", "--retention-hours", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.throughput.ingressMBps"));
}
