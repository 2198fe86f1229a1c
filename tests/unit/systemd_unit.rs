//! `deploy/systemd/ebconnect.service` as systemd reads it: `systemd-analyze verify` (Debian's `systemd` package), on
//! a copy whose `ExecStart` names the binary built here, since it checks that the program exists. Every warning
//! fails the test: `verify` reports a mistyped value (`Type=notifyy`) on stderr and still exits 0.

#[test]
fn the_unit_file_verifies() {
    let Ok(probe) = std::process::Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: the unit file is not checked");
        return;
    };
    assert!(probe.status.success());
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/systemd/ebconnect.service")).unwrap();
    assert!(
        unit.contains("Type=notify\n"),
        "the worker speaks systemd's notify protocol"
    );
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("ebconnect.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/ebconnect", env!("CARGO_BIN_EXE_ebconnect")),
    )
    .unwrap();
    let verified = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let warnings = String::from_utf8_lossy(&verified.stderr);
    assert!(
        verified.status.success() && warnings.trim().is_empty(),
        "systemd-analyze verify: {warnings}"
    );
}
