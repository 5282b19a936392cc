//! `scripts/backup.sh` from the tests: the restore drill (`tests/backup`) and the restore
//! after a failover (`tests/failover`) call its commands as an operator would.

use std::process::Command;

/// Runs `scripts/backup.sh --target TARGET ARGS...` and returns what it printed on
/// stdout (its JSON, for the commands that print some); panics with its stderr if it fails.
pub async fn run(target: &str, args: &[&str]) -> String {
    let mut all = vec!["--target".to_string(), target.to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/backup.sh");
        let out = Command::new("bash")
            .arg(script)
            .args(&all)
            .output()
            .unwrap_or_else(|e| panic!("running {script} {all:?}: {e}"));
        assert!(
            out.status.success(),
            "{script} {all:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap()
}

/// Like [`run`], for the commands that print one JSON object.
pub async fn run_json(target: &str, args: &[&str]) -> serde_json::Value {
    let out = run(target, args).await;
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("backup.sh {args:?} printed no JSON ({e}): {out}"))
}
